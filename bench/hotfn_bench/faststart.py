"""Fast-start figures (issue 13), each measured side by side in alternation on one machine:

    bench/run-faststart [--rounds N] [--only ready concurrency cold] [--base hotfn]

ready        start -> ready frame and first-call latency, containers started by hotfn's own
             DockerDriver with the server's spec (hotfn_bench.direct), same image, three ways:
             as built (the function's AppCDS archive + the shim's warm-up), HOTFN_CDS=off,
             HOTFN_WARMUP=off. Java, Clojure, Java framework-style; Node (warm-up only).
concurrency  one container, a handler that waits 10 ms as if on I/O: calls/s with 16 frames
             kept in flight at HOTFN_CONCURRENCY=16 vs one at a time at 1 (Python async, Node,
             Java). Frames straight to the container: the server's side is not measured here.
cold         cold-call latency through a hotfn server that parks containers ahead of calls vs
             one with --max-parked 0 vs `docker run --rm -i` of the same image, with hotfn's
             limits; each call after an idle gap (a parked container is back by then).

Function images are built FROM <base>/<runtime> (default hotfn, the runtime images
scripts/build-images makes). Results: bench/results/faststart-<time>/results.json, report.md;
a run of every scenario is also copied to bench/results/latest-faststart/ (kept in git).
Every container carries hotfn.bench=<run id> (direct) or the servers' node ids; all are removed
at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from typing import Any

import trio

from hotfn import protocol
from hotfn.functions import dockerfile_for

from .direct import DirectWorker
from .functions import BENCH_DIR, ECHO_BODY, FUNCTIONS_DIR, PYTHON, REPO_DIR
from .server import HotfnServer, free_port, remove_containers
from .stats import spread, summarize

RESULTS_DIR = os.path.join(BENCH_DIR, "results")

# key: (directory, runtime, memory MiB)
READY_FUNCTIONS = {
    "java": ("echo-java", 128), "clojure": ("echo-clojure", 128),
    "framework": ("framework-java", 256), "node": ("echo-node", 128),
}
IO_FUNCTIONS = {"python": ("io-python", 128), "node": ("io-node", 128), "java": ("io-java", 128)}
COLD_FUNCTIONS = {"python": ("echo-python", 128), "node": ("echo-node", 128), "java": ("echo-java", 128)}
READY_VARIANTS = {
    "as built": {},
    "HOTFN_CDS=off": {"HOTFN_CDS": "off"},
    "HOTFN_WARMUP=off": {"HOTFN_WARMUP": "off"},
}


def log(message: str) -> None:
    print(f"[faststart {datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def image_of(directory: str) -> str:
    return f"hotfn-bench/faststart-{directory}:latest"  # not the main bench's tags: it may run meanwhile


def build(directory: str, base: str) -> str:
    """The function's image, FROM <base>/<runtime> (hotfn build's Dockerfile, base swapped)."""
    path = os.path.join(FUNCTIONS_DIR, directory)
    dockerfile = dockerfile_for(path).replace("FROM hotfn/", f"FROM {base}/", 1)
    tag = image_of(directory)
    result = subprocess.run(["docker", "build", "-q", "-f", "-", "-t", tag, path], input=dockerfile,
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"building {tag} failed:\n{result.stderr[-2000:]}")
    return tag


# -- ready: AppCDS and warm-up -----------------------------------------------------------------


async def ready(worker: DirectWorker, rounds: int) -> dict[str, Any]:
    raw: dict[str, dict[str, list[dict]]] = {k: {v: [] for v in READY_VARIANTS} for k in READY_FUNCTIONS}
    for r in range(rounds):
        for key, (directory, memory) in READY_FUNCTIONS.items():
            for variant, env in READY_VARIANTS.items():
                if key == "node" and variant == "HOTFN_CDS=off":
                    continue
                started = await worker.start({"image": image_of(directory), "memory": memory, "env": env})
                try:
                    first = await worker.calls({"session": started["session"], "n": 1,
                                                "body": _b64(ECHO_BODY), "expect_body": _b64(ECHO_BODY)})
                finally:
                    await worker.handle({"op": "stop", "session": started["session"]})
                raw[key][variant].append({"ready_ms": started["ready_ms"],
                                          "first_call_ms": first["latencies_ns"][0] / 1e6})
        log(f"ready: round {r + 1}/{rounds} done")
    out: dict[str, Any] = {}
    for key, variants in raw.items():
        out[key] = {}
        for variant, samples in variants.items():
            if samples:
                out[key][variant] = {
                    "ready_ms": spread(s["ready_ms"] for s in samples),
                    "first_call_ms": spread(s["first_call_ms"] for s in samples),
                }
    return out


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


# -- concurrency: one container, 16 calls in flight --------------------------------------------


async def _in_flight(session, n: int, depth: int, wait_ms: int) -> float:
    """Calls/s of ``n`` calls with ``depth`` frames kept in flight, answers matched by call id."""
    pending: set[str] = set()
    sent = 0
    started = time.perf_counter()

    async def send_one() -> None:
        nonlocal sent
        request = session.request(ECHO_BODY, [("x-wait-ms", str(wait_ms))])
        pending.add(request.call_id)
        sent += 1
        await session.send(protocol.encode_frame(request))

    with trio.fail_after(120):
        while sent < min(depth, n):
            await send_one()
        done = 0
        while done < n:
            frame = await session.read_frame()
            if not isinstance(frame, protocol.Response) or frame.call_id not in pending:
                raise RuntimeError(f"unexpected answer {frame!r}")
            pending.discard(frame.call_id)
            done += 1
            if sent < n:
                await send_one()
    return n / (time.perf_counter() - started)


async def concurrency(worker: DirectWorker, rounds: int, calls: int) -> dict[str, Any]:
    raw: dict[str, dict[int, list[float]]] = {k: {1: [], 16: []} for k in IO_FUNCTIONS}
    for r in range(rounds):
        for key, (directory, memory) in IO_FUNCTIONS.items():
            for level in (1, 16):
                started = await worker.start({"image": image_of(directory), "memory": memory,
                                              "env": {"HOTFN_CONCURRENCY": str(level)}})
                session = worker.sessions[started["session"]]
                try:
                    await _in_flight(session, 32, level, 10)  # warm-up: JIT, threads
                    n = calls if level == 16 else max(20, calls // 16)
                    raw[key][level].append(await _in_flight(session, n, level, 10))
                finally:
                    await worker.handle({"op": "stop", "session": started["session"]})
        log(f"concurrency: round {r + 1}/{rounds} done")
    return {key: {"calls_per_s_1": spread(v[1]), "calls_per_s_16": spread(v[16]),
                  "ratio": spread(b / a for a, b in zip(v[1], v[16]))}
            for key, v in raw.items()}


# -- cold: parked vs not vs docker run ---------------------------------------------------------


def _cold_call(server: HotfnServer, path: str) -> float:
    req = urllib.request.Request(f"{server.base}/r/bench{path}", data=ECHO_BODY, method="POST")
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        body = resp.read()
    took = (time.perf_counter() - t0) * 1000
    if body != ECHO_BODY:
        raise RuntimeError(f"cold call to {path} answered {body[:80]!r}")
    return took


async def cold(worker: DirectWorker, rounds: int, calls: int, out_dir: str, run_id: str,
               gap: float) -> dict[str, Any]:
    servers = {}
    try:
        for name, args in (("parked", []), ("not parked", ["--max-parked", "0"])):
            node_id = f"bench-{run_id}-{name.replace(' ', '')}"
            db = os.path.join(out_dir, f"{node_id}.db")
            servers[name] = await trio.to_thread.run_sync(lambda: HotfnServer(
                port=free_port(), db=db, node_id=node_id, extra_args=args,
                log_path=os.path.join(out_dir, f"{node_id}.log")))
        for server in servers.values():
            server.ensure_app("bench")
            for key, (directory, memory) in COLD_FUNCTIONS.items():
                server.create_route("bench", f"/cold-{key}", image_of(directory), format="default",
                                    memory=memory)
        await trio.sleep(3)  # the routes' first parked containers
        raw: dict[str, dict[str, list[float]]] = {
            k: {"parked": [], "not parked": [], "docker run --rm -i": []} for k in COLD_FUNCTIONS}
        for r in range(rounds):
            for key, (directory, memory) in COLD_FUNCTIONS.items():
                for _ in range(calls):
                    for variant in raw[key]:
                        await trio.sleep(gap)
                        if variant == "docker run --rm -i":
                            took = (await worker.docker_run({"image": image_of(directory), "memory": memory,
                                                             "body": _b64(ECHO_BODY)}))["ms"]
                        else:
                            took = await trio.to_thread.run_sync(_cold_call, servers[variant], f"/cold-{key}")
                        raw[key][variant].append(took)
            log(f"cold: round {r + 1}/{rounds} done")
        result = {}
        for key, variants in raw.items():
            result[key] = {variant: summarize(samples) for variant, samples in variants.items()}
            base = result[key]["docker run --rm -i"]["p50"]
            for variant in ("parked", "not parked"):
                result[key][variant]["p50_over_docker_run"] = result[key][variant]["p50"] / base
        return result
    finally:
        for server in servers.values():
            await trio.to_thread.run_sync(server.stop)
            remove_containers(f"hotfn.node={server.node_id}")


# -- report --------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    lines = [f"# Fast-start figures ({results['date']}, {results['machine']})", "",
             "Side by side in alternation on one machine (medians over rounds; min-max in brackets).", ""]
    if "ready" in results:
        lines += ["## Start -> ready frame and first call (AppCDS archive, shim warm-up)", "",
                  "| function | variant | start -> ready | first call |", "| --- | --- | --- | --- |"]
        for key, variants in results["ready"].items():
            for variant, f in variants.items():
                lines.append(f"| {key} | {variant} | {_fmt(f['ready_ms'])} | {_fmt(f['first_call_ms'], 2)} |")
        lines.append("")
    if "concurrency" in results:
        lines += ["## One container, a handler waiting 10 ms: calls/s at concurrency 1 vs 16", "",
                  "| shim | concurrency 1 | concurrency 16 | ratio |", "| --- | --- | --- | --- |"]
        for key, f in results["concurrency"].items():
            lines.append(f"| {key} | {f['calls_per_s_1']['median']:.0f} | {f['calls_per_s_16']['median']:.0f} "
                         f"| {f['ratio']['median']:.1f}x ({f['ratio']['min']:.1f}-{f['ratio']['max']:.1f}) |")
        lines.append("")
    if "cold" in results:
        lines += ["## Cold calls: parked containers vs none vs `docker run --rm -i`", "",
                  "| function | variant | p50 | p99 | n | p50 / docker run |", "| --- | --- | --- | --- | --- | --- |"]
        for key, variants in results["cold"].items():
            for variant, f in variants.items():
                ratio = f.get("p50_over_docker_run")
                lines.append(f"| {key} | {variant} | {f['p50']:.0f} ms | {f['p99']:.0f} ms | {f['n']} "
                             f"| {'' if ratio is None else f'{ratio:.2f}'} |")
        lines.append("")
    return "\n".join(lines)


def _fmt(s: dict[str, float], digits: int = 0) -> str:
    return f"{s['median']:.{digits}f} ms ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


async def main_async(args: argparse.Namespace) -> int:
    run_id = f"fs{datetime.datetime.now():%Y%m%d%H%M%S}"
    out_dir = os.path.join(RESULTS_DIR, f"faststart-{run_id[2:]}")
    os.makedirs(out_dir)
    wanted = set(args.only or ["ready", "concurrency", "cold"])
    directories = set()
    if "ready" in wanted:
        directories |= {d for d, _ in READY_FUNCTIONS.values()}
    if "concurrency" in wanted:
        directories |= {d for d, _ in IO_FUNCTIONS.values()}
    if "cold" in wanted:
        directories |= {d for d, _ in COLD_FUNCTIONS.values()}
    for directory in sorted(directories):
        log(f"building {image_of(directory)} FROM {args.base}/...")
        await trio.to_thread.run_sync(build, directory, args.base)
    results: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores", "base": args.base,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR,
                                 capture_output=True, text=True).stdout.strip(),
    }
    try:
        async with trio.open_nursery() as nursery:
            worker = DirectWorker(nursery, run_id)
            try:
                if "ready" in wanted:
                    results["ready"] = await ready(worker, args.rounds)
                if "concurrency" in wanted:
                    results["concurrency"] = await concurrency(worker, args.rounds, args.calls)
                if "cold" in wanted:
                    results["cold"] = await cold(worker, args.rounds, args.cold_calls, out_dir, run_id, args.gap)
            finally:
                with trio.CancelScope(shield=True):
                    for session in list(worker.sessions.values()):
                        await session.close()
                nursery.cancel_scope.cancel()
    finally:
        remove_containers(f"hotfn.bench={run_id}")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    text = report(results)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"results in {out_dir}")
    if not args.only:
        latest = os.path.join(RESULTS_DIR, "latest-faststart")
        shutil.rmtree(latest, ignore_errors=True)
        shutil.copytree(out_dir, latest, ignore=shutil.ignore_patterns("*.log", "*.db*"))
        log(f"copied to {latest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotfn_bench.faststart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=640, help="calls per concurrency-16 run")
    parser.add_argument("--cold-calls", type=int, default=3, help="cold calls per variant per round")
    parser.add_argument("--gap", type=float, default=1.0, help="idle seconds before each cold call")
    parser.add_argument("--only", nargs="+", choices=("ready", "concurrency", "cold"))
    parser.add_argument("--base", default="hotfn", help="runtime images: <base>/<runtime>")
    return trio.run(main_async, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
