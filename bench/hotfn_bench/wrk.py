"""The load client: wrk (C, epoll), one thread, keep-alive connections, with a Lua hook that
prints p99.9 too. Its CPU time is read with wait4() and reported next to the wall time."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "wrk_report.lua")


@dataclass
class WrkResult:
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    errors: int  # connect + read + write + timeout + non-2xx/3xx
    wrk_cpu_s: float  # wrk's own user + system time
    wall_s: float

    def to_json(self) -> dict:
        return asdict(self)


def run_wrk(port: int, paths: list[str], body: bytes, connections: int, seconds: float,
            threads: int = 1) -> WrkResult:
    """One wrk run. ``threads`` stays 1: one epoll thread keeps 64 connections busy far faster
    than a Python server answers, and a second thread would take CPU from the server on a
    2-core machine (see the client check in report.md)."""
    with tempfile.NamedTemporaryFile(prefix="hotfn-bench-body-", delete=False) as f:
        f.write(body)
        body_file = f.name
    try:
        env = {**os.environ, "BENCH_PATHS": ",".join(paths), "BENCH_BODY_FILE": body_file}
        args = ["wrk", "-t", str(min(threads, connections)), "-c", str(connections),
                "-d", f"{max(1, round(seconds))}s",  # wrk takes whole seconds only
                "--timeout", "10s", "-s", LUA, f"http://127.0.0.1:{port}"]
        started = time.monotonic()
        # stdout/stderr go to files: wrk's output is small, and reaping it ourselves with
        # wait4() (no pipe to drain meanwhile) gives its exact CPU time.
        with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
            proc = subprocess.Popen(args, stdout=out_f, stderr=err_f, env=env)
            try:
                returncode, cpu = _wait_with_rusage(proc, timeout=seconds + 30)
            except BaseException:  # Ctrl-C: never leave wrk running
                if proc.returncode is None:
                    proc.kill()
                    proc.wait()
                raise
            wall = time.monotonic() - started
            out_f.seek(0)
            err_f.seek(0)
            out, err = out_f.read(), err_f.read()
    finally:
        os.unlink(body_file)
    if returncode != 0:
        raise RuntimeError(f"wrk failed ({returncode}): {err.decode(errors='replace')}")
    line = next((l for l in out.decode().splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no report:\n{out.decode(errors='replace')}")
    data = json.loads(line[len("BENCH_JSON "):])
    lat = data["latency_us"]
    errors = sum(data["errors"].values())
    duration = data["duration_us"] / 1e6
    return WrkResult(
        connections=connections, seconds=duration, requests=data["requests"],
        rps=data["requests"] / duration if duration else 0.0,
        p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000, p99_ms=lat["p99"] / 1000,
        p999_ms=lat["p999"] / 1000, max_ms=lat["max"] / 1000, mean_ms=lat["mean"] / 1000,
        errors=errors, wrk_cpu_s=cpu, wall_s=wall,
    )


def _wait_with_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Reap ``proc`` (killing it after ``timeout``): its exit code and user + system CPU."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not reap it again
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)
