"""Function containers driven without the HTTP server: the "direct" side of the overhead
breakdown, and container start-to-ready times.

    python -m hotfn_bench.direct RUN_ID     # a JsonWorker (worker.py): one command per line

Commands (``op``):
    start       a hot session: a Docker container started by hotfn's own DockerDriver with the
                spec hotfn's server would use (hotfn.invoke.container_spec: limits, labels,
                direct stdio FIFOs), or (``kind: host``) the Python shim as a plain host process
                over pipes, no Docker. Answers the start and ready-frame times.
    calls       n sequential request frames on a session; every latency, encode to decode.
    stop        end a session.
    cold_phases one cold call, step by step as DockerDriver.start and hotfn's cold invoker do
                them (create, attach, start, run to stdout EOF, wait, remove), each timed.
    docker_run  one `docker run --rm -i` of the image in cold mode, with hotfn's limits.

Every container carries the label hotfn.bench=RUN_ID; the worker kills its sessions on EOF, and
the orchestrator removes anything left with that label.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from typing import Any, Awaitable, Callable

import trio

from hotfn import protocol
from hotfn.drivers.docker import DockerDriver
from hotfn.drivers.docker.container import DockerContainer
from hotfn.invoke import Invocation, Limits, cold_env, container_spec
from hotfn.models import Route

from .functions import PYTHON, REPO_DIR
from .worker import JsonWorker

APP, PATH = "bench", "/direct"


class DirectProcess(JsonWorker):
    """The orchestrator's handle on ``python -m hotfn_bench.direct RUN_ID``."""

    module = "direct"

    def __init__(self, run_id: str) -> None:
        super().__init__(args=[run_id])

    def start(self, **cmd: Any) -> dict[str, Any]:
        return self.request({"op": "start", **cmd})

    def calls(self, session: str, n: int, body: bytes, expect_body: bytes | None,
              headers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        return self.request({
            "op": "calls", "session": session, "n": n, "body": base64.b64encode(body).decode(),
            "expect_body": None if expect_body is None else base64.b64encode(expect_body).decode(),
            "headers": headers or [],
        })

    def stop(self, session: str) -> None:
        self.request({"op": "stop", "session": session})

    def cold_phases(self, image: str, memory: int, body: bytes) -> dict[str, float]:
        return self.request({"op": "cold_phases", "image": image, "memory": memory,
                             "body": base64.b64encode(body).decode()})["phases_ms"]

    def docker_run(self, image: str, memory: int, body: bytes) -> float:
        return self.request({"op": "docker_run", "image": image, "memory": memory,
                             "body": base64.b64encode(body).decode()})["ms"]


def _route(image: str, memory: int, hot: bool, env: dict[str, str]) -> Route:
    return Route(app=APP, path=PATH, image=image, format="hot" if hot else "default",
                 memory=memory, config=env)


class Session:
    """One hot function process and the frames to and from it."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], receive: Callable[[], Awaitable[bytes | None]],
                 close: Callable[[], Awaitable[None]], stderr_tail: Callable[[], str]) -> None:
        self.send = send
        self.receive = receive
        self.close = close
        self.stderr_tail = stderr_tail
        self.decoder = protocol.FrameDecoder()

    async def read_frame(self) -> protocol.Frame:
        while True:
            frame = self.decoder.next_frame()
            if frame is protocol.CLOSED:
                raise RuntimeError(f"function closed its stdout; stderr: {self.stderr_tail()}")
            if not isinstance(frame, protocol.Sentinel):
                return frame
            data = await self.receive()
            self.decoder.receive_data(data or b"")

    def request(self, body: bytes, headers: list[tuple[str, str]]) -> protocol.Request:
        """What hotfn's server would send for a POST of ``body`` to /r/bench/direct."""
        all_headers = (("host", "127.0.0.1"), ("content-type", "application/octet-stream"),
                       ("content-length", str(len(body))), *((k.lower(), v) for k, v in headers))
        return protocol.Request(
            call_id=uuid.uuid4().hex, method="POST", url=f"http://127.0.0.1/r/{APP}{PATH}", path=PATH,
            query=(), headers=all_headers, body=body, deadline=int(time.time() * 1000) + 60_000,
            app=APP, route=PATH, params={},
        )


class DirectWorker:
    def __init__(self, nursery: trio.Nursery, run_id: str) -> None:
        self.nursery = nursery
        self.run_id = run_id
        self.node_id = f"bench-{run_id}-direct"
        # The same layout as the server's FIFOs (io_dir/node_id), under the bench's own node id.
        self.io_dir = os.path.join("/run/hotfn", self.node_id)
        self.driver = DockerDriver.from_env(io_dir=self.io_dir)
        self.sessions: dict[str, Session] = {}

    def _spec(self, route: Route, extra_env: dict[str, str] | None = None):
        spec = container_spec(route, Limits(node_id=self.node_id))
        return dataclasses.replace(spec, env={**spec.env, **(extra_env or {})},
                                   labels={**spec.labels, "hotfn.bench": self.run_id})

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "start":
            return await self.start(cmd)
        if op == "calls":
            return await self.calls(cmd)
        if op == "stop":
            session = self.sessions.pop(cmd["session"], None)
            if session is not None:
                await session.close()
            return {}
        if op == "cold_phases":
            return await self.cold_phases(cmd)
        if op == "docker_run":
            return await self.docker_run(cmd)
        raise ValueError(f"unknown op {op!r}")

    # -- hot sessions --

    async def start(self, cmd: dict[str, Any]) -> dict[str, Any]:
        env = cmd.get("env") or {}
        t0 = time.perf_counter_ns()
        if cmd.get("kind", "docker") == "docker":
            spec = self._spec(_route(cmd["image"], cmd["memory"], True, env))
            container = await self.driver.start(spec)
            session = self._docker_session(container)
        else:
            session = await self._host_session(cmd["function_dir"], env)
        t1 = time.perf_counter_ns()
        try:
            with trio.fail_after(cmd.get("timeout", 120)):
                ready = await session.read_frame()
        except BaseException:
            with trio.CancelScope(shield=True):
                await session.close()
            raise
        t2 = time.perf_counter_ns()
        if not isinstance(ready, protocol.Ready):
            await session.close()
            raise RuntimeError(f"first frame was {ready!r}, not ready")
        key = uuid.uuid4().hex
        self.sessions[key] = session
        return {"session": key, "started_ms": (t1 - t0) / 1e6, "ready_ms": (t2 - t0) / 1e6,
                "runtime": ready.runtime}

    def _docker_session(self, container: DockerContainer) -> Session:
        tail = bytearray()

        async def drain_stderr() -> None:  # the attach stream must be read, or it backs up
            while (output := await container.receive_some()) is not None:
                tail.extend(output[1])
                del tail[:-4096]

        self.nursery.start_soon(drain_stderr)
        return Session(container.send_all, container.receive_stdout, container.kill,
                       lambda: tail.decode(errors="replace"))

    async def _host_session(self, function_dir: str, env: dict[str, str]) -> Session:
        shim = os.path.join(REPO_DIR, "runtime-shims", "python")
        proc = await trio.lowlevel.open_process(
            [PYTHON, "-m", "hotfn_runtime"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env, "PYTHONPATH": shim, "HOTFN_FUNCTION_DIR": function_dir,
                 "HOTFN_FORMAT": "hot", "HOTFN_PROTOCOL_VERSION": "1", "APP_NAME": APP, "ROUTE": PATH},
            cwd=function_dir,
        )
        stdin, stdout = proc.stdin, proc.stdout
        assert stdin is not None and stdout is not None

        async def receive() -> bytes | None:
            return bytes(await stdout.receive_some(262144)) or None

        async def close() -> None:
            with trio.CancelScope(shield=True):
                await stdin.aclose()
                with trio.move_on_after(5):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

        return Session(stdin.send_all, receive, close, lambda: "(host process: stderr not kept)")

    async def calls(self, cmd: dict[str, Any]) -> dict[str, Any]:
        session = self.sessions[cmd["session"]]
        body = base64.b64decode(cmd["body"])
        headers = [tuple(h) for h in cmd.get("headers", [])]
        expect = base64.b64decode(cmd["expect_body"]) if cmd.get("expect_body") is not None else None
        latencies = []
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        with trio.fail_after(cmd.get("max_seconds", 120)):
            for _ in range(cmd["n"]):
                request = session.request(body, headers)
                # Timed from encoding the request to decoding the answer: what any caller of
                # a hot container must do, and what hotfn's server does for each call.
                t0 = time.perf_counter_ns()
                await session.send(protocol.encode_frame(request))
                frame = await session.read_frame()
                t1 = time.perf_counter_ns()
                if not isinstance(frame, protocol.Response) or frame.call_id != request.call_id:
                    raise RuntimeError(f"unexpected answer {frame!r}")
                if frame.status != 200 or (expect is not None and frame.body != expect):
                    raise RuntimeError(f"wrong answer: {frame.status} {frame.body[:80]!r}")
                latencies.append(t1 - t0)
        wall = time.perf_counter() - started
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        return {"latencies_ns": latencies, "wall_s": wall,
                "cpu_s": usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime}

    # -- cold, step by step --

    def _cold_spec(self, cmd: dict[str, Any]) -> tuple[bytes, Any]:
        """The request body and the container spec hotfn would give this cold call."""
        body = base64.b64decode(cmd["body"])
        route = _route(cmd["image"], cmd["memory"], False, cmd.get("env") or {})
        inv = Invocation(call_id=uuid.uuid4().hex, route=route, method="POST",
                         url=f"http://127.0.0.1/r/{APP}{PATH}", path=PATH, query=(),
                         headers=(("content-type", "application/octet-stream"),), body=body)
        return body, self._spec(route, cold_env(inv, int(time.time() * 1000) + 60_000))

    async def cold_phases(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """One cold call as hotfn makes it, each step timed. Mirrors DockerDriver.start
        (create, attach before start, start) and Invoker._run_cold (feed stdin, read to EOF,
        wait for the exit status), then the removal hotfn does in the background. Uses the
        driver's private steps: the bench may look inside; the server is not changed."""
        body, spec = self._cold_spec(cmd)
        d = self.driver
        marks = [("begin", time.perf_counter_ns())]
        container_id = await d._call(d._create, spec, None, None)
        marks.append(("create", time.perf_counter_ns()))
        container = None
        try:
            attached = await d._call(d._attach, container_id, True)
            container = DockerContainer(d, container_id, attached)
            marks.append(("attach", time.perf_counter_ns()))
            await d._call(d.client.start, container_id)
            marks.append(("start", time.perf_counter_ns()))
            stdout = bytearray()
            with trio.fail_after(cmd.get("timeout", 120)):
                if body:
                    await container.send_all(body)
                await container.close_stdin()
                while (output := await container.receive_some()) is not None:
                    stdout += output[0]
                marks.append(("run to stdout EOF", time.perf_counter_ns()))
                status = await container.exit_status(timeout=60)
                marks.append(("wait for exit status", time.perf_counter_ns()))
        finally:
            with trio.CancelScope(shield=True):
                if container is not None:
                    await container.kill()
                else:
                    await d._remove(container_id)
        marks.append(("remove (after the answer in hotfn)", time.perf_counter_ns()))
        if status.code != 0 or bytes(stdout) != body:
            raise RuntimeError(f"cold call failed: {status.describe()}, stdout {bytes(stdout)[:80]!r}")
        phases = {name: (t - marks[i][1]) / 1e6 for i, (name, t) in enumerate(marks[1:])}
        return {"phases_ms": phases}

    async def docker_run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """`docker run --rm -i` with the limits and environment hotfn gives a cold container."""
        body, spec = self._cold_spec(cmd)
        args = ["docker", "run", "--rm", "-i", "--memory", f"{spec.memory_mb}m",
                "--memory-swap", f"{spec.memory_mb}m", "--cpu-shares", str(spec.cpu_shares),
                "--pids-limit", str(spec.pids_limit), "--read-only",
                "--tmpfs", f"/tmp:rw,nosuid,nodev,size={spec.tmpfs_mb}m",
                "--security-opt", "no-new-privileges", "--cap-drop", "ALL", "--network", "none"]
        for key, value in spec.env.items():
            args += ["-e", f"{key}={value}"]
        for key, value in spec.labels.items():
            args += ["--label", f"{key}={value}"]
        t0 = time.perf_counter_ns()
        with trio.fail_after(cmd.get("timeout", 120)):
            result = await trio.run_process(args + [spec.image], stdin=body, capture_stdout=True,
                                            capture_stderr=True, check=False)
        t1 = time.perf_counter_ns()
        if result.returncode != 0 or result.stdout != body:
            raise RuntimeError(f"docker run failed ({result.returncode}): {result.stderr[-300:]!r}")
        return {"ms": (t1 - t0) / 1e6}


async def main(run_id: str) -> None:
    async with trio.open_nursery() as nursery:
        worker = DirectWorker(nursery, run_id)
        stdin = trio.wrap_file(sys.stdin)
        try:
            while line := await stdin.readline():
                if not line.strip():
                    continue
                try:
                    answer = await worker.handle(json.loads(line))
                except Exception as exc:  # reported to the orchestrator, which decides
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
                sys.stdout.write(json.dumps(answer) + "\n")
                sys.stdout.flush()
        finally:
            with trio.CancelScope(shield=True):
                for session in list(worker.sessions.values()):
                    await session.close()
                worker.sessions.clear()
            shutil.rmtree(worker.io_dir, ignore_errors=True)
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    try:
        trio.run(main, sys.argv[1])
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the orchestrator cleans up
        pass
