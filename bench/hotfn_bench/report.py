"""results.json -> report.md and the PNG charts (charts.py), in the run's directory."""

from __future__ import annotations

import os
from typing import Any

from . import charts
from .functions import FUNCTIONS

GOALS = {"seq_p50_ms": 0.5, "seq_p99_ms": 2.0, "rps_8_clients": 2000}


def _f(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, float)):
        if abs(value) >= 100:
            text = f"{value:,.0f}"
        elif abs(value) >= 10:
            text = f"{value:.1f}"
        else:
            text = f"{value:.{digits}f}"
        return text + unit
    return str(value)


def _ms(value: Any) -> str:
    """Milliseconds with sensible precision: 0.412 ms, 12.3 ms, 1,234 ms."""
    if value is None:
        return "–"
    return _f(value, 3 if value < 1 else 2) + " ms"


def _spread(s: dict[str, Any] | None, fmt=_ms) -> str:
    """median (min–max over runs)."""
    if not s or s.get("median") is None:
        return "–"
    if s.get("runs", 1) <= 1 or s["min"] == s["max"]:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min']).replace(' ms', '')}–{fmt(s['max'])})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _label(key: str) -> str:
    return FUNCTIONS[key].label if key in FUNCTIONS else key


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _ok(good: bool | None) -> str:
    return "–" if good is None else ("met" if good else "**missed**")


class Report:
    def __init__(self, results: dict[str, Any], pngs: dict[str, str]) -> None:
        self.r = results
        self.s = results.get("sections", {})
        self.pngs = pngs
        self.out: list[str] = []

    def add(self, text: str = "") -> None:
        self.out.append(text)

    def png(self, key: str, alt: str) -> None:
        if key in self.pngs:
            self.add(f"![{alt}]({self.pngs[key]})\n")

    # -- sections --

    def head(self) -> None:
        r, m, v = self.r, self.r["machine"], self.r["versions"]
        self.add("# hotfn benchmark report\n")
        self.add(f"Run `{r['run_id']}` ({r['profile']} profile, `bench/run{' --quick' if r['profile'] == 'quick' else ''}`), "
                 f"{r['date']}, took {r['duration_s'] / 60:.1f} min. "
                 f"Machine: {m['nproc']} × {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}.\n")
        runtimes = ", ".join(f"{_label(k)}: `{x}`" for k, x in (v.get("runtimes") or {}).items() if x)
        self.add(f"Versions: Python {v['python']}, hotfn {v['hotfn']}, trio {v['trio']}, h11 {v['h11']}, "
                 f"msgpack {v['msgpack']}, Docker engine {v['docker_engine']}, {v['wrk']}. "
                 f"Runtimes (their ready frames): {runtimes or '–'}.\n")
        self.add("How to read: every call is a POST of 100 bytes (or, for the JIT figures, ~7 kB of JSON) "
                 "over a keep-alive connection to 127.0.0.1. Things that are compared ran in "
                 "alternation (A, B, A, B, ...); \"median (min–max)\" is the median over those rounds and "
                 "its range; pooled percentiles are over every sample, with n next to them (a p99 of "
                 "few samples is close to their maximum). bench/README.md explains each figure.\n")
        if r.get("errors"):
            self.add("**Some scenarios failed**; see *Errors* at the end.\n")

    def headlines(self) -> None:
        self.add("## Headlines\n")
        rows = []
        seq = self.s.get("sequential")
        if seq:
            p50, p99 = seq["hotfn"]["round_p50"]["median"], seq["hotfn"]["round_p99"]["median"]
            rows.append([f"Issue 3: {seq['calls']} sequential keep-alive calls, hot Python echo: p50",
                         _ms(p50), f"< {GOALS['seq_p50_ms']} ms", _ok(p50 < GOALS["seq_p50_ms"])])
            rows.append(["Issue 3: same calls, p99", _ms(p99), f"< {GOALS['seq_p99_ms']:g} ms",
                         _ok(p99 < GOALS["seq_p99_ms"])])
        load = self.s.get("load")
        if load:
            t = load["targets"]
            if "8" in t.get("mc1", {}):
                rps = t["mc1"]["8"]["rps"]["median"]
                rows.append(["Issue 3: 8 concurrent clients, one hot route (max_concurrency 1): req/s",
                             _f(rps), f">= {GOALS['rps_8_clients']:,}", _ok(rps >= GOALS["rps_8_clients"])])
            if "8" in t.get("mc4", {}):
                rps = t["mc4"]["8"]["rps"]["median"]
                rows.append(["Issue 3: 8 concurrent clients, max_concurrency 4: req/s", _f(rps),
                             f">= {GOALS['rps_8_clients']:,}", _ok(rps >= GOALS["rps_8_clients"])])
            if "16" in t.get("mc4", {}):
                x = t["mc4"]["16"]
                rows.append(["Issue 4: max_concurrency 4 under 16 clients: req/s, p50, p99",
                             f"{_f(x['rps']['median'])} req/s, {_ms(x['p50_ms']['median'])}, {_ms(x['p99_ms']['median'])}",
                             "", ""])
        hc = self.s.get("hot_cold", {}).get("functions", {})
        if "python" in hc:
            x = hc["python"]
            rows.append(["Issue 2: median latency of the same Python function, hot / cold",
                         f"{_ms(x['hot']['round_p50']['median'])} / {_ms(x['cold']['round_p50']['median'])}", "", ""])
        for key, x in hc.items():
            rows.append([f"Cold/hot p50 ratio, {_label(key)}", f"{x['ratio_p50']:,.0f}×", "", ""])
        ov = self.s.get("overhead", {})
        for key, x in ov.items():
            http, direct = x["hot"]["http"]["round_p50"]["median"], x["hot"]["direct"]["round_p50"]["median"]
            rows.append([f"HTTP hot path over a direct frame call, {_label(key)} (p50)",
                         f"+{_ms(http - direct)} ({_ms(http)} vs {_ms(direct)})", "", ""])
        mit = self.s.get("mitigation", {})
        for key, x in mit.items():
            rows.append([f"First request after deploy, {_label(key)}: without / with min_warm 1",
                         f"{_ms(x['first_plain']['median'])} / {_ms(x['first_warm']['median'])}", "", ""])
        self.add(_table(["figure", "value", "goal", "status"], rows))

    def hot_cold(self) -> None:
        hc = self.s.get("hot_cold")
        if not hc:
            return
        ready = self.s.get("ready", {})
        self.add("## 1. Hot vs cold, per runtime\n")
        self.add("The same function (echo of a 100-byte body) on a hot route (one warm container, frames) and a "
                 "cold route (one `docker run` per call), through the HTTP server, in alternation. "
                 "Ready: a container started by hotfn's DockerDriver (as the server starts one), from the "
                 "create call to the ready frame; \"engine\" is the part until Docker's start call returned.\n")
        rows = []
        for key, x in hc["functions"].items():
            rd = ready.get(key, {})
            rows.append([
                _label(key), _spread(rd.get("ready_ms")), _spread(rd.get("engine_start_ms")),
                _spread(x["cold"]["round_p50"]), f"{_ms(x['cold']['pooled']['p99'])} (n={x['cold']['pooled']['n']})",
                _spread(x["hot"]["round_p50"]), f"{_ms(x['hot']['pooled']['p99'])} (n={x['hot']['pooled']['n']})",
                f"{x['ratio_p50']:,.0f}×", f"{x['ratio_p99']:,.0f}×",
                ", ".join(f"{m:.0f}" for m in x["hot_container_memory_mb"]) + " MiB",
            ])
        self.add(_table(["runtime", "start → ready", "of which engine", "cold p50", "cold p99", "hot p50",
                         "hot p99", "cold/hot p50", "cold/hot p99", "warm container memory"], rows))
        self.png("hot_cold", "latency distribution, hot vs cold, per runtime")

    def jit(self) -> None:
        jit = self.s.get("jit")
        if jit:
            self.add("### JIT effect: calls 1, 10, 100, 1000 on a fresh warm container\n")
            self.add("A function doing real work: parse a JSON array of 1000 numbers by hand and sum it. "
                     "Each call index is the median over fresh containers (a new route with min_warm 1, first "
                     "request once it is idle: start-up is not in call 1). Steady: median of the last 100 calls.\n")
            rows = []
            for key, x in jit.items():
                c = x["call_ms"]
                rows.append([_label(key) + ("" if x["jvm"] else " (not a JVM; for comparison)"),
                             *(_ms(c.get(k)) for k in ("1", "10", "100", "1000")), _ms(x["steady_ms"]),
                             f"{x['first_over_steady']:.0f}×" if x.get("first_over_steady") else "–",
                             str(x["containers"])])
            self.add(_table(["runtime", "call 1", "call 10", "call 100", "call 1000", "steady", "call 1 / steady",
                             "containers"], rows))
            self.png("jit", "latency per call index on a fresh container")

    def overhead(self) -> None:
        ov = self.s.get("overhead")
        if not ov:
            return
        self.add("## 2. Overhead breakdown\n")
        self.add("Hot: the full HTTP hot path; (a) the same image's container started by hotfn's DockerDriver "
                 "with the server's own spec (direct stdio FIFOs) and called over frames by a minimal trio "
                 "caller, no HTTP; (b) hotfn's HTTP front (HttpServer, h11) with a handler echoing from memory, "
                 "in its own process; for Python also the shim and function as a plain host process over pipes "
                 "(no Docker); and the server's own record of each call (invoker start to answer, from "
                 "`/v1/apps/bench/calls`). Cold: the HTTP cold path; (c) a plain `docker run --rm -i` of the "
                 "same image with hotfn's limits; and one cold call done step by step as hotfn does it.\n")
        names = {"http": "HTTP hot path (hotfn)", "server_invoker": "server-side invoker time (call records)",
                 "direct": "(a) direct frames to the container", "host_pipes": "shim and function as a host process over pipes (reference, see note)",
                 "baseline_http": "(b) HTTP front only, no container", "http_cold": "HTTP cold path (hotfn)",
                 "raw_tcp": "raw-socket echo server (no HTTP library)",
                 "server_invoker_cold": "server-side cold invoker time (call records)",
                 "docker_run": "(c) `docker run --rm -i`"}
        for key, x in ov.items():
            self.add(f"### {_label(key)}\n")
            rows = [[names.get(n, n), _spread(v["round_p50"]), f"{_ms(v['pooled']['p99'])} (n={v['pooled']['n']})"]
                    for n, v in {**x["hot"], **x["cold"]}.items()]
            self.add(_table(["variant", "p50", "p99"], rows))
            self.add("Where the hot path's milliseconds go (differences of medians):\n")
            self.add(_table(["part", "ms", "share"],
                            [[a["part"], _ms(a["ms"]) + (" (within noise)" if a["ms"] < 0 else ""),
                              _pct(a["share"])] for a in x["hot_attribution"]]))
            if "host_pipes" in x["hot"]:
                self.add("The shim as a host process is shown for reference, not subtracted: it is no clean "
                         "\"without Docker\" control. The host's Python is another build (this machine's pyenv "
                         "3.11.7 without PGO/LTO: ~13% slower than the container's Debian 3.11.2 on a pure-Python "
                         "loop), and above all a pipe round trip costs ~25 µs when the scheduler wakes the shim "
                         "on the caller's core and ~90 µs on the other core (measured here with taskset), and a "
                         "host process and a container's cgroup are placed differently. What it does show: the "
                         "container's FIFOs add nothing measurable.\n")
            if any(a["ms"] < 0 for a in x["hot_attribution"]):
                self.add("A negative part is a difference of two medians smaller than this machine's "
                         "round-to-round noise (see the ranges above): read it as about zero.\n")
            self.add("Where the cold path's milliseconds go (steps timed one by one, medians):\n")
            rows = [[a["part"], _ms(a["ms"]), _pct(a["share"])] for a in x["cold_attribution"]]
            removal = {k: v for k, v in x["cold_phases_ms"].items() if k.startswith("remove")}
            rows += [[f"(not on the client's path) docker: {k}", _ms(v), ""] for k, v in removal.items()]
            self.add(_table(["part", "ms", "share"], rows))
        self.png("overhead", "hot path attribution")

    def load(self) -> None:
        seq, load = self.s.get("sequential"), self.s.get("load")
        if not (seq or load):
            return
        self.add("## 3. Load\n")
        if seq:
            self.add(f"Sequential: {seq['calls']} keep-alive calls one after another by the bench's client, "
                     f"{seq['hotfn']['round_p50']['runs']} round(s) "
                     "alternating hotfn (hot Python echo) and the no-container baseline.\n")
            rows = [[name, _spread(x["round_p50"]), _spread(x["round_p99"]), _ms(x["pooled"]["p999"]),
                     _pct(x["client_cpu_share"]["median"])] for name, x in seq.items() if name != "calls"]
            self.add(_table(["target", "p50", "p99", "p99.9 (pooled)", "client CPU / wall"], rows))
        if load:
            self.add(f"wrk, one thread, N keep-alive connections, {load['seconds']:g} s per run, "
                     f"{load['rounds']} round(s) with every target in turn at each client count. Targets: "
                     "`baseline` the no-container HTTP front; `mc1` one hot Python echo route with "
                     "max_concurrency 1; `mc4` the same with max_concurrency 4 (and min_warm 4); "
                     "`routesN` N such routes with max_concurrency 1, requests spread round-robin. "
                     "Server CPU: the hotfn process's CPU time over the run's wall time (1 = one core).\n")
            rows = []
            for name, by_clients in load["targets"].items():
                for clients, x in by_clients.items():
                    rows.append([name, clients, _spread(x["rps"], lambda v: _f(v)), _spread(x["p50_ms"]),
                                 _spread(x["p99_ms"]), _spread(x["p999_ms"]), str(x["errors"]),
                                 _f(x["server_cpu_share"]["median"]) if x["server_cpu_share"] else "–",
                                 _pct(x["wrk_cpu_share"]["median"])])
            self.add(_table(["target", "clients", "req/s", "p50", "p99", "p99.9", "errors", "server CPU", "wrk CPU"], rows))
            self.png("throughput", "throughput and p99 vs clients")

    def mitigation(self) -> None:
        mit = self.s.get("mitigation")
        if not mit:
            return
        hc = self.s.get("hot_cold", {}).get("functions", {})
        self.add("## 4. Cold-start mitigation\n")
        self.add("A route is created, then its first request is sent: without min_warm (the request starts "
                 "the container and waits for its ready frame), and with min_warm 1 (sent once `/v1/stats` "
                 "shows the container idle; the wait is shown too). Alternated, a new route each time. The "
                 "cold route's calls (format default: a container per call) are from section 1.\n")
        rows = []
        for key, x in mit.items():
            cold = hc.get(key, {}).get("cold", {}).get("round_p50")
            rows.append([_label(key), _spread(x["first_plain"]), _spread(x["second_plain"]),
                         _spread(x["time_to_idle"]), _spread(x["first_warm"]), _spread(cold)])
        self.add(_table(["runtime", "first request, no min_warm", "next calls (p50)", "min_warm: deploy → idle",
                         "first request, min_warm 1", "cold route call (p50)"], rows))

    def gvisor(self) -> None:
        gv = self.s.get("gvisor")
        if not gv:
            return
        self.add("## 6. What gVisor costs\n")
        self.add("The same echo on routes with `isolation: \"container\"` (runc) and `\"gvisor\"` (runsc), hot "
                 "(one warm container) and cold (a container per call), in alternation in each round. "
                 "gVisor / runc is the ratio of the round medians of p50.\n")
        rows = []
        for key, x in gv.items():
            memory = x["hot_container_memory_mb"]
            rows.append([
                _label(key),
                _spread(x["cold_container"]["round_p50"]), _spread(x["cold_gvisor"]["round_p50"]),
                f"{x['cold_ratio_p50']:.2f}×",
                _spread(x["hot_container"]["round_p50"]), _spread(x["hot_gvisor"]["round_p50"]),
                f"{x['hot_ratio_p50']:.2f}×",
                f"{_ms(x['hot_container']['pooled']['p99'])} / {_ms(x['hot_gvisor']['pooled']['p99'])}",
                " / ".join(", ".join(f"{m:.0f}" for m in memory[i]) or "?" for i in ("container", "gvisor")) + " MiB",
            ])
        self.add(_table(["runtime", "cold p50 runc", "cold p50 gVisor", "gVisor / runc", "hot p50 runc",
                         "hot p50 gVisor", "gVisor / runc", "hot p99 runc / gVisor",
                         "warm container memory runc / gVisor"], rows))

    def memory(self) -> None:
        self.add("## 5. Memory\n")
        r, load = self.r, self.s.get("load", {})
        rss = load.get("server_rss_mb", {})
        rows = [["server RSS, idle after start", _f(r.get("server_rss_mb_idle_at_start"), 1, " MiB")],
                ["server RSS, idle before the load runs", _f(rss.get("idle_before"), 1, " MiB")],
                ["server RSS under load (median / max of 0.2 s samples)",
                 f"{_f(rss.get('median_under_load'), 1, ' MiB')} / {_f(rss.get('max_under_load'), 1, ' MiB')}"],
                ["server RSS, idle after the load runs", _f(rss.get("idle_after"), 1, " MiB")],
                ["server RSS, at the end of the run", _f(r.get("server_rss_mb_idle_at_end"), 1, " MiB")]]
        self.add(_table(["hotfn server process", "RSS"], rows))
        rows = []
        hc = self.s.get("hot_cold", {}).get("functions", {})
        jit = self.s.get("jit", {})
        for key in FUNCTIONS:
            if key not in hc and key not in jit:
                continue
            after_echo = hc.get(key, {}).get("hot_container_memory_mb") or []
            after_sum = jit.get(key, {}).get("memory_after_mb") or []
            rows.append([_label(key), ", ".join(f"{m:.1f}" for m in after_echo) + " MiB" if after_echo else "–",
                         ", ".join(f"{m:.1f}" for m in after_sum) + " MiB" if after_sum else "–",
                         f"{FUNCTIONS[key].memory_mb} MiB"])
        self.add("Each warm container's memory (its cgroup's usage less inactive page cache, as `docker stats` "
                 "counts it):\n")
        self.add(_table(["runtime", "after the hot echo calls of section 1", "after 1000 `sum` calls (JIT)",
                         "route memory limit"], rows))
        if load.get("container_memory_mb"):
            rows = [[path, ", ".join(f"{m:.1f}" for m in mbs) + " MiB"] for path, mbs in load["container_memory_mb"].items()]
            self.add("Python echo containers after the load runs:\n")
            self.add(_table(["route", "containers"], rows))

    def client_check(self) -> None:
        self.add("## Is the client the bottleneck?\n")
        lines = []
        seq, load, hc = self.s.get("sequential"), self.s.get("load"), self.s.get("hot_cold")
        if seq:
            x = seq["hotfn"]["client_cpu_share"]["median"]
            lines.append(f"- The bench's own client (a separate process) used {_pct(x)} of the wall time as CPU "
                         f"during the sequential hotfn calls, and {_pct(seq['baseline']['client_cpu_share']['median'])} "
                         "against the baseline: the rest of the time it waited for answers.")
        if hc:
            lines.append(f"- During the hot calls of section 1: {_pct(hc['client_cpu_share_hot']['median'])} of wall time.")
        if seq and load and "1" in load["targets"].get("baseline", {}):
            own = seq["baseline"]["round_p50"]["median"]
            wrk = load["targets"]["baseline"]["1"]["p50_ms"]["median"]
            lines.append(f"- Two clients against the same no-container baseline, one connection: the bench's client "
                         f"measured p50 {_ms(own)}, wrk {_ms(wrk)}.")
        if load:
            t = load["targets"]
            top = max(load["clients"])
            base = t.get("baseline", {}).get(str(top))
            if base:
                best_hotfn = max(x[str(top)]["rps"]["median"] for n, x in t.items() if n != "baseline")
                lines.append(f"- wrk drove the baseline at {_f(base['rps']['median'])} req/s with {top} connections, "
                             f"{base['rps']['median'] / best_hotfn:.1f}× hotfn's best at that count, using "
                             f"{_pct(base['wrk_cpu_share']['median'])} of one core "
                             f"({_f(base['wrk_cpu_us_per_request']['median'])} µs CPU per request). Against hotfn it "
                             f"used at most {_pct(max(x[c]['wrk_cpu_share']['median'] for n, x in t.items() if n != 'baseline' for c in x))}"
                             " of a core, while the hotfn server process used "
                             f"{_f(max(x[c]['server_cpu_share']['median'] for n, x in t.items() if n != 'baseline' for c in x))} cores.")
        self.add("\n".join(lines) + "\n" if lines else "No client figures in this run.\n")

    def errors(self) -> None:
        if not self.r.get("errors"):
            return
        self.add("## Errors\n")
        for name, text in self.r["errors"].items():
            self.add(f"### {name}\n\n```\n{text}\n```\n")

    def render(self) -> str:
        for part in (self.head, self.headlines, self.hot_cold, self.jit, self.overhead, self.load, self.mitigation,
                     self.memory, self.gvisor, self.client_check, self.errors):
            part()
        return "\n".join(self.out)


def write(results: dict[str, Any], out_dir: str) -> None:
    pngs = charts.draw_all(results, out_dir)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(Report(results, pngs).render())
