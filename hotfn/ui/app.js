// hotfn's dashboard: polls the JSON API and draws what it says. Plain JavaScript, no
// dependencies; everything from the API is put in the page as text, never as HTML.
"use strict";

const POLL_MS = 2000;
const WINDOW_S = 300;  // the charts' last five minutes...
const STEP_S = 2;      // ...in points of two seconds
const RECENT_CALLS = 8;
const OLD_TOKEN_KEY = "hotfn.token";  // where earlier versions kept the token
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.setAttribute("class", v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// -- the API, with the session's cookie -------------------------------------------------------
// The token entered at the top goes to the server once, for a session cookie that no script
// can read (HttpOnly): the page never keeps it, so no script on this origin can take it.

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function failure(reply) {
  let message = reply.statusText;
  try { message = (await reply.json()).error.message; } catch (e) { /* not JSON */ }
  return new ApiError(reply.status, message);
}

async function api(path, asText = false) {
  const reply = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (!reply.ok) throw await failure(reply);
  return asText ? reply.text() : reply.json();
}

async function signIn(token) {
  const reply = await fetch("/v1/sessions", {
    method: "POST", cache: "no-store", credentials: "same-origin", body: "{}",
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
  });
  if (!reply.ok) throw await failure(reply);
  return (await reply.json()).session;
}

async function signOut() {
  await fetch("/v1/sessions", { method: "DELETE", cache: "no-store", credentials: "same-origin" });
}

const enc = encodeURIComponent;

// -- formatting -------------------------------------------------------------------------------

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? value.toFixed(2) + " ms" : value < 1000 ? value.toFixed(0) + " ms" : (value / 1000).toFixed(2) + " s";
}

function clock(unix) {
  return unix ? new Date(unix * 1000).toLocaleTimeString() : "–";
}

// -- the chart: calls per second as bars, p50 and p99 as lines -------------------------------

const CHART_W = 400, CHART_H = 130, PAD_L = 34, PAD_R = 40, PAD_T = 8, PAD_B = 16;

function drawChart(svg, points) {
  while (svg.firstChild) svg.firstChild.remove();
  const w = CHART_W - PAD_L - PAD_R, h = CHART_H - PAD_T - PAD_B;
  const n = Math.max(points.length, 1);
  const maxRate = Math.max(1, ...points.map((p) => p.rate));
  const latencies = points.flatMap((p) => [p.p50_ms, p.p99_ms]).filter((v) => v !== null && v > 0);
  const maxMs = Math.max(0.1, ...latencies);
  // Latency on a log scale: a cold start and a sub-millisecond hot call fit one chart.
  const minMs = Math.min(maxMs / 10, ...latencies);
  const x = (i) => PAD_L + (i / n) * w;
  const yRate = (v) => PAD_T + h - (v / maxRate) * h;
  const yMs = (v) => PAD_T + h - (Math.log(v / minMs) / Math.log(maxMs / minMs)) * h;
  svg.append(el("svg:line", { class: "axis", x1: PAD_L, y1: PAD_T + h, x2: PAD_L + w, y2: PAD_T + h }));
  svg.append(el("svg:text", { x: 2, y: PAD_T + 8 }, maxRate.toFixed(maxRate < 10 ? 1 : 0) + "/s"));
  svg.append(el("svg:text", { x: PAD_L + w + 3, y: PAD_T + 8 }, ms(maxMs)));
  svg.append(el("svg:text", { x: PAD_L + w + 3, y: PAD_T + h }, ms(minMs)));
  svg.append(el("svg:text", { x: PAD_L, y: CHART_H - 3 }, `-${WINDOW_S / 60} min`));
  svg.append(el("svg:text", { x: PAD_L + w - 18, y: CHART_H - 3 }, "now"));
  let withCalls = 0, total = 0;
  const lines = { p50: [], p99: [] };
  points.forEach((p, i) => {
    if (!p.calls) return;
    withCalls += 1;
    total += p.calls;
    const top = yRate(p.rate);
    const barWidth = Math.max(1, w / n - 1);
    svg.append(el("svg:rect", { class: "bar", x: x(i), y: top, width: barWidth, height: PAD_T + h - top }));
    if (p.errors) {  // the failed share of the bar (5xx), from its foot
      const errTop = yRate(p.errors / STEP_S);
      svg.append(el("svg:rect", { class: "bar-error", x: x(i), y: errTop, width: barWidth, height: PAD_T + h - errTop }));
    }
    for (const key of ["p50", "p99"]) {
      const v = p[key + "_ms"];
      if (v !== null) lines[key].push(`${(x(i) + w / n / 2).toFixed(1)},${yMs(v).toFixed(1)}`);
    }
  });
  for (const key of ["p50", "p99"]) {
    if (lines[key].length) svg.append(el("svg:polyline", { class: key, points: lines[key].join(" ") }));
  }
  // For people reading the page's source, and for the browser test.
  svg.dataset.points = withCalls;
  svg.dataset.calls = total;
}

// -- the page ---------------------------------------------------------------------------------

const appNodes = new Map();    // app name -> section
const routeNodes = new Map();  // "app/path" -> {card, parts}

function routeCard(app, route) {
  const key = app + route.path;
  const parts = {
    settings: el("p", { class: "settings" }),
    pool: el("p", { class: "pool" }),
    chart: el("svg:svg", { class: "chart", viewBox: `0 0 ${CHART_W} ${CHART_H}`, role: "img",
                           "aria-label": `calls per second, p50 and p99 of ${key}` }),
    calls: el("tbody"),
  };
  const card = el("section", { class: "route", "data-route": key },
    el("h3", {}, route.path),
    parts.settings, parts.pool, parts.chart,
    el("div", { class: "legend" }, el("span", { class: "k calls" }), "calls/s",
       el("span", { class: "k errors" }), "5xx/s", el("span", { class: "k p50" }), "p50",
       el("span", { class: "k p99" }), "p99"),
    el("table", { class: "calls" },
      el("thead", {}, el("tr", {}, ...["time", "call", "status", "HTTP", "duration", "mode", ""].map((t) => el("th", {}, t)))),
      parts.calls));
  return { card, parts };
}

function routeSettings(r) {
  const bits = [`${r.format === "hot" ? "hot" : "cold"}`, r.type, r.image, `${r.memory} MiB`,
                `timeout ${r.timeout} s`, `max ${r.max_concurrency}`];
  if (r.min_warm) bits.push(`min_warm ${r.min_warm}`);
  if (r.type === "async") bits.push(`max_attempts ${r.max_attempts}`);
  return bits.join(" · ");
}

function poolText(parts, stats, known) {
  parts.pool.replaceChildren();
  if (!known) { parts.pool.append("containers: (an admin token shows them)"); return; }
  if (!stats) { parts.pool.append("no warm containers"); return; }
  const busy = Math.max(0, stats.workers - stats.idle - stats.starting);
  parts.pool.append("containers: ", el("b", {}, stats.idle), " warm · ", el("b", {}, busy), " busy · ",
                    el("b", {}, stats.starting), " starting · ", el("b", {}, stats.waiting), " waiting");
}

function callRows(tbody, app, calls) {
  tbody.replaceChildren(...calls.map((c) => el("tr", { "data-call": c.id },
    el("td", {}, clock(c.created_at)),
    el("td", { class: "id", title: c.id }, c.id.slice(-8)),
    el("td", { class: c.status }, c.status),
    el("td", {}, c.http_status ?? "–"),
    el("td", {}, ms(c.duration_ms)),
    el("td", {}, c.mode),
    el("td", {}, el("button", { class: "log", type: "button", onclick: () => showLog(app, c) }, "log")))));
}

async function showLog(app, call) {
  $("log-call").textContent = call.id;
  const record = $("log-record");
  record.replaceChildren();
  for (const k of ["app", "route", "status", "http_status", "error", "mode", "container_id", "attempts", "traceparent"]) {
    if (call[k] !== null && call[k] !== undefined) record.append(el("dt", {}, k), el("dd", {}, call[k]));
  }
  $("log-text").textContent = "loading…";
  $("log-panel").hidden = false;
  try {
    const text = await api(`/v1/apps/${enc(app)}/calls/${enc(call.id)}/log`, true);
    $("log-text").textContent = text || "(the call wrote nothing to stderr)";
  } catch (e) {
    $("log-text").textContent = e.status === 404 ? "(no log for this call)" : `could not read the log: ${e.message}`;
  }
}

async function refresh() {
  const [apps, stats, series] = await Promise.all([
    api("/v1/apps"),
    // Pools and capacity are for admin tokens: a deploy token's page goes without them.
    api("/v1/stats").catch((e) => { if (e.status === 403) return null; throw e; }),
    api(`/v1/stats/series?window=${WINDOW_S}&step=${STEP_S}`),
  ]);
  const perApp = await Promise.all(apps.apps.map(async (a) => {
    const routes = (await api(`/v1/apps/${enc(a.name)}/routes`)).routes;
    // Each route's own recent calls: a busy route does not push the others' out of sight.
    const calls = await Promise.all(routes.map((r) =>
      api(`/v1/apps/${enc(a.name)}/calls?route=${enc(r.path)}&limit=${RECENT_CALLS}`)));
    return { app: a, routes, calls: new Map(routes.map((r, i) => [r.path, calls[i].calls])) };
  }));

  $("capacity").textContent = stats
    ? `containers ${stats.containers}/${stats.max_containers} · memory ${stats.memory_mb}/${stats.max_memory_mb} MiB` : "";
  $("empty").hidden = apps.apps.length > 0;
  const seenApps = new Set(), seenRoutes = new Set();
  for (const { app, routes, calls } of perApp) {
    seenApps.add(app.name);
    let section = appNodes.get(app.name);
    if (!section) {
      section = el("section", { class: "app", "data-app": app.name },
        el("h2", {}, app.name, el("span", { class: "config" })), el("div", { class: "routes" }));
      appNodes.set(app.name, section);
      $("apps").append(section);
    }
    const keys = Object.keys(app.config || {});
    section.querySelector(".config").textContent = keys.length ? `config: ${keys.join(", ")}` : "";
    const grid = section.querySelector(".routes");
    for (const route of routes) {
      const key = app.name + route.path;
      seenRoutes.add(key);
      let node = routeNodes.get(key);
      if (!node) {
        node = routeCard(app.name, route);
        routeNodes.set(key, node);
        grid.append(node.card);
      }
      node.parts.settings.textContent = routeSettings(route);
      poolText(node.parts, stats ? stats.routes[key] : undefined, stats !== null);
      drawChart(node.parts.chart, series.routes[key] || []);
      callRows(node.parts.calls, app.name, calls.get(route.path) || []);
    }
  }
  for (const [key, node] of routeNodes) {
    if (!seenRoutes.has(key)) { node.card.remove(); routeNodes.delete(key); }
  }
  for (const [name, section] of appNodes) {
    if (!seenApps.has(name)) { section.remove(); appNodes.delete(name); }
  }
}

async function update() {
  const status = $("status");
  try {
    await refresh();
    status.textContent = "live · updated " + new Date().toLocaleTimeString();
    status.classList.remove("error");
  } catch (e) {
    status.textContent = e.status === 401 || e.status === 403
      ? "the API wants a token: enter it above" : `cannot reach the API: ${e.message}`;
    status.classList.add("error");
    if (e.status === 401) {  // signed out, or the session ended: what it showed goes too
      $("apps").replaceChildren();
      appNodes.clear();
      routeNodes.clear();
      showSession(null);
    }
  }
}

async function poll() {
  await update();
  setTimeout(poll, POLL_MS);
}

function showSession(session) {
  $("session").textContent = session && session.expires_at
    ? `signed in (${session.scope}) until ${clock(session.expires_at)}` : "";
}

function init() {
  localStorage.removeItem(OLD_TOKEN_KEY);
  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = $("token");
    const token = field.value.trim();
    field.value = "";
    if (!token) return;
    try {
      showSession(await signIn(token));
    } catch (e) {
      $("status").textContent = `the token was refused: ${e.message}`;
      $("status").classList.add("error");
      return;
    }
    update();  // at once, not at the next poll
  });
  $("sign-out").addEventListener("click", async () => {
    await signOut();
    showSession(null);
    update();
  });
  $("log-close").addEventListener("click", () => { $("log-panel").hidden = true; });
  poll();
}

document.addEventListener("DOMContentLoaded", init);
