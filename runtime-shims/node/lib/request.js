'use strict';
/** What a handler receives: built from a request frame (hot) or from the environment (cold). */

class Request {
  constructor({ method, url, path, query, headers, body, callId, deadline, app, route, params }) {
    this.method = method;
    this.url = url;
    this.path = path;
    /** [name, value] pairs in order, percent-decoded, repeats kept. */
    this.query = query;
    /** [name, value] pairs in order received, names lower case, repeats kept. */
    this.headers = headers;
    /** @type {Buffer} */
    this.body = body;
    this.callId = callId;
    /** When hotfn gives up on this call: ms since the Unix epoch (0 when unknown). */
    this.deadline = deadline;
    this.app = app;
    this.route = route;
    /** Path parameters the route pattern matched: {id: "7"} for /users/:id. */
    this.params = params;
  }

  /** The first value of header `name` (any case), or `fallback` (default undefined). */
  header(name, fallback = undefined) {
    const wanted = name.toLowerCase();
    for (const [key, value] of this.headers) {
      if (key === wanted || key.toLowerCase() === wanted) return value;
    }
    return fallback;
  }

  /** Every value of header `name` (any case), in order. */
  headerValues(name) {
    const wanted = name.toLowerCase();
    return this.headers.filter(([key]) => key.toLowerCase() === wanted).map(([, value]) => value);
  }

  /** The first value of query parameter `name` (exact case), or `fallback`. */
  queryParam(name, fallback = undefined) {
    for (const [key, value] of this.query) {
      if (key === name) return value;
    }
    return fallback;
  }

  /** The body decoded as UTF-8. */
  text() {
    return this.body.toString('utf8');
  }

  /** The body parsed as JSON (throws SyntaxError when it is not). */
  json() {
    return JSON.parse(this.text());
  }

  /** Milliseconds left before the deadline (negative once past; Infinity when unknown). */
  remainingMs() {
    return this.deadline ? this.deadline - Date.now() : Infinity;
  }
}

function requestFromFrame(frame) {
  return new Request({
    method: frame.method,
    url: frame.url,
    path: frame.path,
    query: frame.query,
    headers: frame.headers,
    body: frame.body,
    callId: frame.call_id,
    deadline: frame.deadline,
    app: frame.app,
    route: frame.route,
    params: frame.params,
  });
}

/**
 * Path and query string of a URL, taken verbatim: no normalisation (`new URL` would resolve
 * `..` and re-encode characters, which the hot path, built by hotfn, does not do).
 */
function splitUrl(url) {
  let rest = url;
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  let query = '';
  const question = rest.indexOf('?');
  if (question !== -1) {
    query = rest.slice(question + 1);
    rest = rest.slice(0, question);
  }
  const origin = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/.exec(rest);
  const path = origin ? rest.slice(origin[0].length) : rest;
  return { path: path || '/', query };
}

/** The path within the app: what follows /r/<app>, else the whole URL path. */
function appPath(urlPath, app) {
  const prefix = `/r/${app}`;
  if (app && (urlPath === prefix || urlPath.startsWith(`${prefix}/`))) {
    return urlPath.slice(prefix.length) || '/';
  }
  return urlPath;
}

/** A cold call's request, rebuilt from the IronFunctions-style environment (protocol §3). */
function requestFromEnv(env, body) {
  const url = env.REQUEST_URL || '';
  const app = env.APP_NAME || '';
  const { path, query } = splitUrl(url);
  const headers = [];
  const params = {};
  for (const key of Object.keys(env)) {
    if (key.startsWith('HEADER_')) {
      headers.push([key.slice(7).toLowerCase().replace(/_/g, '-'), env[key]]);
    } else if (key.startsWith('PARAM_')) {
      params[key.slice(6).toLowerCase()] = env[key];
    }
  }
  const deadline = Number(env.DEADLINE);
  return new Request({
    method: env.METHOD || 'GET',
    url,
    path: appPath(path, app),
    // URLSearchParams decodes like the server: percent-escapes and '+', blanks kept, in order.
    query: [...new URLSearchParams(query)],
    headers,
    body,
    callId: env.CALL_ID || '',
    deadline: Number.isSafeInteger(deadline) ? deadline : 0,
    app,
    route: env.ROUTE || '',
    params,
  });
}

module.exports = { Request, requestFromFrame, requestFromEnv, splitUrl, appPath };
