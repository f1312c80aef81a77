"""The latency client: a separate process making sequential keep-alive HTTP/1.1 calls and
keeping every latency.

Why not wrk for these: the scenarios need exact counts (2000 calls; call 1, 10, 100, 1000 of a
fresh container) and every single latency, and wrk runs for a time and keeps a histogram.
Why not http.client: its per-call cost (~100 us) would be a sizeable part of a 0.5 ms call.
This client sends one pre-built request with one send() and parses only the status line and
Content-Length; its own CPU time per call is measured and reported with every run
(``cpu_s`` vs ``wall_s``), so that a reader can see it is not the bottleneck.

    python -m hotfn_bench.client       # reads one JSON command per line, answers one JSON line

ClientProcess (below) is the orchestrator's handle on that process.
"""

from __future__ import annotations

import base64
import resource
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from .worker import JsonWorker, serve_lines


# -- the orchestrator's side -------------------------------------------------------------------


@dataclass
class RunResult:
    latencies_ms: list[float]  # in call order; failed calls are not in here
    ok: int
    failed: int
    statuses: dict[str, int]
    errors: list[str]  # the first few
    wall_s: float
    cpu_s: float  # the client process's own user + system time during the run

    @property
    def client_cpu_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


@dataclass
class Call:
    """One kind of request: where to, what, and what must come back."""

    port: int
    path: str
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    method: str = "POST"
    expect_body: bytes | None = None  # the response body must be exactly this
    expect_number: float | None = None  # or a decimal number this close (1e-6 relative)


class ClientProcess(JsonWorker):
    """The orchestrator's handle on ``python -m hotfn_bench.client``."""

    module = "client"

    def run(self, call: Call, n: int, *, max_seconds: float = 120.0, fresh_connection: bool = False,
            stop_on_error: bool = False) -> RunResult:
        """``n`` sequential calls (stops early after ``max_seconds``)."""
        answer = self.request({
            "port": call.port, "path": call.path, "method": call.method, "headers": call.headers,
            "body": base64.b64encode(call.body).decode(), "n": n, "max_seconds": max_seconds,
            "expect_body": None if call.expect_body is None else base64.b64encode(call.expect_body).decode(),
            "expect_number": call.expect_number, "fresh_connection": fresh_connection,
            "stop_on_error": stop_on_error,
        })
        return RunResult(
            latencies_ms=[v / 1e6 for v in answer["latencies_ns"]], ok=answer["ok"],
            failed=answer["failed"], statuses=answer["statuses"], errors=answer["errors"],
            wall_s=answer["wall_s"], cpu_s=answer["cpu_s"],
        )


# -- the client process ---------------------------------------------------------------------------


class CallFailed(Exception):
    pass


# A connection idle longer than this is replaced before the next call (not timed): servers
# close idle keep-alive connections (hotfn after 75 s by default), and a request sent just as
# the server closes is lost, which no client-side latency should include.
MAX_IDLE_S = 20.0


class StaleConnection(CallFailed):
    """A reused connection was closed by the server before any byte of the answer."""


class Connection:
    """One keep-alive connection to 127.0.0.1:port."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.closed = False
        self.used = 0
        self.last_used = time.monotonic()

    def stale(self) -> bool:
        return self.closed or time.monotonic() - self.last_used > MAX_IDLE_S

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, read one whole response: (status, body)."""
        self.used += 1
        self.last_used = time.monotonic()
        try:
            self.sock.sendall(request)
            if not self.buf:
                self._fill()
        except (CallFailed, ConnectionError) as exc:
            if self.used > 1:
                raise StaleConnection(str(exc)) from None
            raise
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = bytes(buf[:end]).lower()
        del buf[: end + 4]
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise CallFailed("response without content-length")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17: stop if stop >= 0 else len(head)])
        while len(buf) < length:
            self._fill()
        body = bytes(buf[:length])
        del buf[:length]
        if b"\r\nconnection: close" in head:
            self.closed = True
        return status, body

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise CallFailed("connection closed by the server")
        self.buf += data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _request_bytes(cmd: dict[str, Any], body: bytes) -> bytes:
    lines = [f"{cmd['method']} {cmd['path']} HTTP/1.1", f"Host: 127.0.0.1:{cmd['port']}",
             "Content-Type: application/octet-stream", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in cmd["headers"]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _check(cmd: dict[str, Any], expect: bytes | None, status: int, body: bytes) -> str | None:
    if status != 200:
        return f"status {status}: {body[:200]!r}"
    if expect is not None and body != expect:
        return f"unexpected body {body[:80]!r}"
    if cmd["expect_number"] is not None:
        try:
            value = float(body)
        except ValueError:
            return f"not a number: {body[:80]!r}"
        want = cmd["expect_number"]
        if abs(value - want) > 1e-6 * max(1.0, abs(want)):
            return f"sum {value} != {want}"
    return None


_connections: dict[int, Connection] = {}


def _connection(port: int, timeout: float) -> Connection:
    conn = _connections.get(port)
    if conn is None or conn.stale():
        if conn is not None:
            conn.close()
        # Connecting is not part of a call's latency: keep-alive clients connect once.
        conn = _connections[port] = Connection(port, timeout=timeout)
    return conn


def _timed_exchange(port: int, request: bytes, timeout: float) -> tuple[int, bytes, int]:
    """One call: (status, body, nanoseconds). A reused connection that the server had closed
    is replaced and the call sent again, once, and only that second exchange is timed."""
    for attempt in (1, 2):
        conn = _connection(port, timeout)
        t0 = time.perf_counter_ns()
        try:
            status, body = conn.exchange(request)
        except StaleConnection:
            conn.closed = True
            if attempt == 2:
                raise
            continue
        return status, body, time.perf_counter_ns() - t0
    raise AssertionError("unreachable")


def run_command(cmd: dict[str, Any]) -> dict[str, Any]:
    body = base64.b64decode(cmd["body"])
    expect = base64.b64decode(cmd["expect_body"]) if cmd["expect_body"] is not None else None
    request = _request_bytes(cmd, body)
    port = cmd["port"]
    if cmd["fresh_connection"] and port in _connections:
        _connections.pop(port).close()
    latencies: list[int] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    failed = 0
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    stop_at = started + cmd["max_seconds"]
    for _ in range(cmd["n"]):
        if time.perf_counter() > stop_at:
            errors.append(f"stopped after max_seconds={cmd['max_seconds']}")
            break
        try:
            status, got, elapsed = _timed_exchange(port, request, cmd["max_seconds"])
        except (OSError, CallFailed, ValueError) as exc:
            failed += 1
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")
            if port in _connections:
                _connections.pop(port).close()
            if cmd["stop_on_error"]:
                break
            continue
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        problem = _check(cmd, expect, status, got)
        if problem is not None:
            failed += 1
            if len(errors) < 5:
                errors.append(problem)
            if cmd["stop_on_error"]:
                break
            continue
        latencies.append(elapsed)
    wall = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {"latencies_ns": latencies, "ok": len(latencies), "failed": failed, "statuses": statuses,
            "errors": errors, "wall_s": wall, "cpu_s": cpu}


def main() -> None:
    try:
        serve_lines(run_command)
    finally:
        for conn in _connections.values():
            conn.close()


if __name__ == "__main__":
    main()
