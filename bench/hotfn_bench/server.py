"""The processes the bench runs and must always stop: the hotfn server and the baseline
server; and what it reads from them (RSS, CPU time) and from Docker (its containers' memory).

Ownership: every container this bench makes carries the label ``hotfn.bench=<run id>`` (direct
ones) or ``hotfn.node=bench-<run id>`` (the server's); ``remove_containers`` removes only those.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from .functions import BENCH_DIR, PYTHON, REPO_DIR


class ServerError(Exception):
    pass


def free_port(low: int = 18000, high: int = 18999, avoid: set[int] | None = None) -> int:
    """A port in the bench's range that nothing listens on right now."""
    candidates = list(range(low, high + 1))
    random.shuffle(candidates)
    for port in candidates:
        if avoid and port in avoid:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerError(f"no free port in {low}-{high}")


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05,
             what: str = "condition") -> float:
    """Poll until ``predicate`` is true; seconds it took. ServerError after ``timeout``."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if time.monotonic() - started > timeout:
            raise ServerError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class ManagedProcess:
    """A child process that is always stopped: SIGINT, then SIGTERM, then SIGKILL."""

    def __init__(self, args: list[str], log_path: str, env: dict[str, str] | None = None,
                 cwd: str = REPO_DIR) -> None:
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 20.0, wait_first: float = 0.0) -> int | None:
        """``wait_first``: give it that long to exit by itself first (after a Ctrl-C, which its
        whole process group got already: a second SIGINT would cut hotfn's graceful shutdown
        short)."""
        try:
            if wait_first:
                try:
                    self.proc.wait(timeout=wait_first)
                except subprocess.TimeoutExpired:
                    pass
            for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if self.proc.poll() is not None:
                    break
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
            return self.proc.poll()
        finally:
            self.log_file.close()

    # -- what /proc says about it --

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """user + system CPU time so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


class HotfnServer(ManagedProcess):
    """`hotfn serve` on a bench port, database and node id, with a small admin client."""

    def __init__(self, *, port: int, db: str, node_id: str, log_path: str,
                 extra_args: list[str] | None = None, source: str = REPO_DIR,
                 python: str = PYTHON, env: dict[str, str] | None = None) -> None:
        """``source``: the checkout whose ``hotfn`` package runs (the cwd comes first on
        sys.path); another revision's, to compare side by side."""
        self.port = port
        self.node_id = node_id
        self.base = f"http://127.0.0.1:{port}"
        # Bytecode compiled ahead, as Python caches it on a user's machine: where
        # PYTHONDONTWRITEBYTECODE is set (this workplace's sessions), every start would compile
        # hotfn from source, which costs start-up time and leaves ~0.5 MiB more in the idle RSS.
        # (Not the function templates and runtime recipes: files to copy, not modules.)
        subprocess.run([python, "-m", "compileall", "-q", "-x", r"/(templates|recipes)/",
                        os.path.join(source, "hotfn")],
                       cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        super().__init__(
            [python, "-m", "hotfn", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", db,
             "--node-id", node_id, "--log-level", "warning", "--shutdown-grace", "5",
             *(extra_args or [])],
            log_path, env=env, cwd=source,
        )
        try:
            wait_for(lambda: self.alive() and self.request("GET", "/health")[0] == 200, 60,
                     what="the hotfn server's /health")
        except ServerError:
            self.stop()
            raise

    def request(self, method: str, path: str, body: Any = None, timeout: float = 120) -> tuple[int, Any]:
        if not self.alive():
            raise ServerError(f"the hotfn server exited with status {self.proc.returncode}")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.request(method, path, body)
        if status >= 300:
            raise ServerError(f"{method} {path} answered {status}: {payload}")
        return payload

    def ensure_app(self, app: str) -> None:
        status, _ = self.request("GET", f"/v1/apps/{app}")
        if status == 404:
            self.admin("POST", "/v1/apps", {"app": {"name": app}})

    def create_route(self, app: str, path: str, image: str, **fields: Any) -> None:
        self.admin("POST", f"/v1/apps/{app}/routes", {"route": {"path": path, "image": image, **fields}})

    def delete_route(self, app: str, path: str) -> None:
        status, payload = self.request("DELETE", f"/v1/apps/{app}/routes/{urllib.parse.quote(path.lstrip('/'))}")
        if status not in (200, 404):
            raise ServerError(f"deleting route {path} answered {status}: {payload}")

    def pool_stats(self, app: str, path: str) -> dict[str, int]:
        return self.admin("GET", "/v1/stats")["routes"].get(f"{app}{path}", {})

    def wait_idle(self, app: str, path: str, count: int = 1, timeout: float = 120) -> float:
        """Wait until /v1/stats shows ``count`` idle containers on the route; seconds taken."""
        return wait_for(lambda: self.pool_stats(app, path).get("idle", 0) >= count, timeout,
                        interval=0.02, what=f"{count} idle container(s) on {app}{path}")

    def call_durations_ms(self, app: str, route: str, limit: int) -> list[float]:
        """Server-side durations (invoker start to answer) of the route's latest calls."""
        query = urllib.parse.urlencode({"route": route, "limit": str(min(limit, 1000))})
        calls = self.admin("GET", f"/v1/apps/{app}/calls?{query}")["calls"]
        return [c["duration_ms"] for c in calls if c.get("duration_ms") is not None]


class BaselineServer(ManagedProcess):
    """hotfn_bench.baseline: hotfn's HTTP front echoing from memory, or (raw) plain sockets."""

    def __init__(self, *, port: int, log_path: str, raw: bool = False) -> None:
        self.port = port
        super().__init__([PYTHON, "-m", "hotfn_bench.baseline", "--port", str(port), *(["--raw"] if raw else [])],
                         log_path, env={"PYTHONPATH": BENCH_DIR})

        def answers() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return self.alive()

        try:
            wait_for(answers, 30, what="the baseline server")
        except ServerError:
            self.stop()
            raise


# -- Docker: our containers only ----------------------------------------------------------------


def docker(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ServerError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def containers(label: str) -> list[dict[str, str]]:
    """Running containers with ``label`` (key=value): id, and their hotfn route label."""
    out = docker("ps", "--no-trunc", "--filter", f"label={label}",
                 "--format", '{{.ID}}\t{{.Label "hotfn.route"}}\t{{.Image}}')
    rows = []
    for line in out.splitlines():
        cid, route, image = (line.split("\t") + ["", ""])[:3]
        rows.append({"id": cid, "route": route, "image": image})
    return rows


def remove_containers(label: str) -> int:
    """Force-remove every container (running or not) carrying ``label`` (key=value)."""
    ids = docker("ps", "-aq", "--no-trunc", "--filter", f"label={label}").split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)
    return len(ids)


_CGROUP_DIRS = [
    "/sys/fs/cgroup/memory/docker/{id}",  # cgroup v1, cgroupfs driver
    "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope",  # v1, systemd driver
    "/sys/fs/cgroup/system.slice/docker-{id}.scope",  # v2, systemd driver
    "/sys/fs/cgroup/docker/{id}",  # v2, cgroupfs driver
]


def container_memory_mb(container_id: str) -> float | None:
    """A container's memory as `docker stats` counts it (usage minus inactive page cache),
    read from its cgroup: `docker stats --no-stream` takes a second or two per call."""
    for pattern in _CGROUP_DIRS:
        path = pattern.format(id=container_id)
        if not os.path.isdir(path):
            continue
        stat: dict[str, int] = {}
        with open(os.path.join(path, "memory.stat")) as f:
            for line in f:
                key, value = line.split()
                stat[key] = int(value)
        if os.path.exists(os.path.join(path, "memory.usage_in_bytes")):  # v1
            with open(os.path.join(path, "memory.usage_in_bytes")) as f:
                usage = int(f.read())
            inactive = stat.get("total_inactive_file", 0)
        else:  # v2
            with open(os.path.join(path, "memory.current")) as f:
                usage = int(f.read())
            inactive = stat.get("inactive_file", 0)
        return max(0, usage - inactive) / (1024 * 1024)
    try:
        out = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", container_id).strip()
    except ServerError:
        return None
    amount = out.split("/")[0].strip()
    units = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "B": 1 / (1024 * 1024)}
    for unit, factor in units.items():
        if amount.endswith(unit):
            return float(amount[: -len(unit)]) * factor
    return None
