"""Runs the whole bench and always cleans up.

    bench/run [--quick] [--only SECTION ...]

Order: build the function images; start the hotfn server (own port, database, node id), the
baseline server, the HTTP client process and the direct-frames process; run the scenarios;
write results/<run id>/ (results.json, report.md, PNGs) and, for a complete full run, copy them
to results/latest/. Whatever happens (a failed scenario, Ctrl-C, SIGTERM), every process the
bench started is stopped and every container it made is removed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from contextlib import ExitStack
from typing import Any, Callable

from . import measure
from .client import ClientProcess
from .context import Context
from .direct import DirectProcess
from .functions import BENCH_DIR, FUNCTIONS, REPO_DIR, build_images
from .profiles import PROFILES
from .server import BaselineServer, HotfnServer, free_port, remove_containers

RESULTS_DIR = os.path.join(BENCH_DIR, "results")

# (name, function, what it measures) in the order they run.
SECTIONS: list[tuple[str, Callable[[Context], Any]]] = [
    ("ready", measure.ready_times),
    ("hot_cold", measure.hot_vs_cold),
    ("jit", measure.jit_effect),
    ("overhead", measure.overhead),
    ("sequential", measure.sequential),
    ("load", measure.load),
    ("mitigation", measure.mitigation),
    ("gvisor", measure.gvisor),
]


def log(message: str) -> None:
    try:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
    except OSError:  # stderr gone (a pipe whose reader died with the same Ctrl-C): go on quietly
        pass


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    """A cleanup step: its failure is logged, and the next steps still run."""
    try:
        fn(*args)
    except Exception as exc:
        log(f"cleanup step {getattr(fn, '__name__', fn)} failed: {exc}")


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "machine": platform.machine()}


def versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    commit = _cmd(["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"])
    dirty = bool(_cmd(["git", "-C", REPO_DIR, "status", "--porcelain", "--", "hotfn", "runtime-shims"]))
    return {
        "python": platform.python_version(),
        "hotfn": f"{pkg('hotfn')} (git {commit}{', hotfn/ or runtime-shims/ modified' if dirty else ''})",
        "trio": pkg("trio"), "h11": pkg("h11"), "msgpack": pkg("msgpack"), "docker_sdk": pkg("docker"),
        "docker_engine": _cmd(["docker", "version", "--format", "{{.Server.Version}}"]),
        "wrk": _cmd(["sh", "-c", "wrk -v 2>&1 | head -1"]).split(" [")[0],
        "runtimes": {},  # filled from the ready frames
    }


def _clean(obj: Any) -> Any:
    """JSON-safe and compact: floats to 4 decimals (0.1 us in ms), NaN to null."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else round(obj, 4)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def run(profile_name: str, only: list[str] | None) -> int:
    profile = PROFILES[profile_name]
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.join(RESULTS_DIR, run_id)
    tmp_dir = os.path.join(RESULTS_DIR, "tmp")
    os.makedirs(out_dir)
    os.makedirs(tmp_dir, exist_ok=True)
    node_id = f"bench-{run_id}"
    started = time.monotonic()
    results: dict[str, Any] = {
        "run_id": run_id, "profile": profile_name,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(), "versions": versions(), "sections": {}, "errors": {},
        "node_id": node_id,
    }
    # SIGTERM ends the run like Ctrl-C does: through every finally below.
    signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    db = os.path.join(tmp_dir, f"{node_id}.db")
    with ExitStack() as cleanup:
        cleanup.callback(_quietly, _remove_files, [db, db + "-wal", db + "-shm"])
        cleanup.callback(_quietly, remove_containers, f"hotfn.node={node_id}")  # what the server left
        cleanup.callback(_quietly, remove_containers, f"hotfn.bench={run_id}")  # what the direct worker left
        try:
            log(f"run {run_id}, profile {profile_name}; results in {out_dir}")
            results["image_build_s"] = build_images([FUNCTIONS[k] for k in profile.functions], log)
            server_port = free_port()
            server = HotfnServer(port=server_port, db=db, node_id=node_id,
                                 log_path=os.path.join(out_dir, "server.log"))
            cleanup.callback(_quietly, _stop, server, "hotfn server")
            baseline = BaselineServer(port=free_port(avoid={server_port}),
                                      log_path=os.path.join(out_dir, "baseline.log"))
            cleanup.callback(_quietly, _stop, baseline, "baseline server", 5.0)
            raw_baseline = BaselineServer(port=free_port(avoid={server_port, baseline.port}),
                                          log_path=os.path.join(out_dir, "baseline-raw.log"), raw=True)
            cleanup.callback(_quietly, _stop, raw_baseline, "raw baseline server", 5.0)
            client = ClientProcess()
            cleanup.callback(_quietly, client.close)
            direct = DirectProcess(run_id)
            cleanup.callback(_quietly, direct.close)
            ctx = Context(profile=profile, run_id=run_id, server=server, baseline=baseline,
                          raw_baseline=raw_baseline, client=client, direct=direct, log=log, started=started)
            cleanup.callback(_quietly, _delete_routes, ctx)
            server.ensure_app("bench")
            time.sleep(1.0)
            results["server_rss_mb_idle_at_start"] = server.rss_mb()
            for name, section in SECTIONS:
                if only and name not in only:
                    continue
                log(f"== {name}")
                t0 = time.monotonic()
                try:
                    results["sections"][name] = section(ctx)
                except Exception as exc:  # OverBudget, ServerError, ScenarioError, a bug: next one
                    log(f"{name} failed: {exc}")
                    results["errors"][name] = "".join(traceback.format_exception(exc))[-4000:]
                    ctx.delete_all_routes()
                results.setdefault("section_seconds", {})[name] = time.monotonic() - t0
            results["server_rss_mb_idle_at_end"] = server.rss_mb()
        except KeyboardInterrupt as exc:
            global _group_interrupted
            _group_interrupted = not isinstance(exc, Terminated)
            interrupted = True
            log("interrupted: cleaning up")
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        except Exception as exc:
            log(f"failed: {exc}")
            results["errors"]["run"] = "".join(traceback.format_exception(exc))[-4000:]
        finally:
            results["duration_s"] = time.monotonic() - started
    ready = results["sections"].get("ready", {})
    results["versions"]["runtimes"] = {k: v.get("runtime") for k, v in ready.items()}
    results = _clean(results)
    from . import report  # matplotlib is imported only now, after the measuring

    report.write(results, out_dir)  # before results.json: a chart that fails is noted in it
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    log(f"report: {os.path.join(out_dir, 'report.md')} ({results['duration_s']:.0f} s)")
    complete = not interrupted and not results["errors"] and not only
    if profile_name == "full" and complete:
        latest = os.path.join(RESULTS_DIR, "latest")
        shutil.rmtree(latest, ignore_errors=True)
        shutil.copytree(out_dir, latest, ignore=shutil.ignore_patterns("*.log"))
        log(f"copied to {latest}")
    if interrupted:
        return 130
    return 0 if complete else 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, sent to the runner alone: its children still need telling."""


def _interrupt(signum: int, frame: Any) -> None:
    raise Terminated


# Set when a Ctrl-C (SIGINT to the whole foreground process group) ended the run: the children
# got it too and are on their way out.
_group_interrupted = False


def _stop(proc, name: str, grace: float = 20.0) -> None:
    status = proc.stop(grace, wait_first=10.0 if _group_interrupted else 0.0)
    if status not in (0, None, -2, 130):
        log(f"{name} exited with status {status}")


def _delete_routes(ctx: Context) -> None:
    try:
        ctx.delete_all_routes()
    except Exception as exc:  # the server may be gone already; its containers are removed anyway
        log(f"could not delete routes: {exc}")


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description="hotfn's benchmark suite")
    parser.add_argument("--quick", action="store_true", help="the ~3-minute smoke version")
    parser.add_argument("--only", nargs="+", choices=[n for n, _ in SECTIONS],
                        help="run only these scenarios (development; never updates results/latest)")
    parser.add_argument("--report-only", metavar="DIR",
                        help="measure nothing: rewrite DIR/report.md and its charts from DIR/results.json")
    args = parser.parse_args(argv)
    if args.report_only:
        from . import report

        with open(os.path.join(args.report_only, "results.json")) as f:
            report.write(json.load(f), args.report_only)
        log(f"rewrote {os.path.join(args.report_only, 'report.md')}")
        return 0
    return run("quick" if args.quick else "full", args.only)
