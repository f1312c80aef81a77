#!/usr/bin/env python3
"""End-to-end check of hotfn/node against Docker, driven with hotfn's own codec.

    cd /work/main && ./scripts/build-images node
    .venv/bin/python runtime-shims/node/test/docker_e2e.py

Builds hotfn-conformance/node from a directory holding only conformance/func.js and a
Dockerfile `FROM hotfn/node` (the ONBUILD steps do the rest), then:
  hot:  docker run -i ... -e HOTFN_FORMAT=hot: ready frame, echo (bytes 0-255, 5 MiB, headers),
        status, raise, print, info, stdin EOF -> exit 0; measures start-up and round-trip;
  cold: docker run -i ... -e METHOD=... with a body on stdin.
Every container gets a unique name and is removed at the end, whatever happens.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from hotfn.protocol import (  # noqa: E402
    CLOSED,
    NEED_DATA,
    FrameDecoder,
    HandlerError,
    Ready,
    Request,
    Response,
    encode_frame,
)

IMAGE = "hotfn-conformance/node"
FUNC_JS = ROOT / "runtime-shims" / "node" / "conformance" / "func.js"
started_containers: list[str] = []


def build_image() -> None:
    with tempfile.TemporaryDirectory(prefix="hotfn-conformance-node-") as tmp:
        shutil.copy(FUNC_JS, pathlib.Path(tmp, "func.js"))
        pathlib.Path(tmp, "Dockerfile").write_text("FROM hotfn/node\n")
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, tmp], check=True, stdout=subprocess.DEVNULL)


def docker_run(*args: str, **popen: object) -> subprocess.Popen:
    name = f"hotfn-node-e2e-{uuid.uuid4().hex[:12]}"
    started_containers.append(name)
    cmd = ["docker", "run", "-i", "--rm", "--name", name, "--label", "hotfn=1", *args, IMAGE]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **popen)


class HotContainer:
    def __init__(self) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.started = time.perf_counter()
        self.proc = docker_run("-e", "HOTFN_FORMAT=hot", "-e", "CONFORMANCE_CONFIG=from-e2e", stderr=self.stderr)
        self.decoder = FrameDecoder()
        self.calls = 0

    def next_frame(self):
        while True:
            frame = self.decoder.next_frame()
            if frame is not NEED_DATA:
                return frame
            self.decoder.receive_data(os.read(self.proc.stdout.fileno(), 1 << 20))

    def call(self, body: bytes = b"", headers=(), method: str = "POST"):
        self.calls += 1
        request = Request(
            call_id=f"e2e-{self.calls}", method=method,
            url="http://localhost:8080/r/demo/users/7?tag=a&tag=b&q=a%20b", path="/users/7",
            query=(("tag", "a"), ("tag", "b"), ("q", "a b")), headers=tuple(headers), body=body,
            deadline=int(time.time() * 1000) + 30_000, app="demo", route="/users/:id",
            params={"id": "7"},
        )
        self.proc.stdin.write(encode_frame(request))
        self.proc.stdin.flush()
        answer = self.next_frame()
        assert answer.call_id == request.call_id, answer
        return answer

    def close(self) -> int:
        self.proc.stdin.close()
        assert self.next_frame() is CLOSED
        return self.proc.wait(timeout=30)

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)
    print(f"  ok  {what}")


def hot_checks() -> None:
    print("hot mode")
    c = HotContainer()
    ready = c.next_frame()
    startup_ms = (time.perf_counter() - c.started) * 1000
    check(isinstance(ready, Ready) and ready.version == 1, f"ready frame: {ready.runtime!r}")
    print(f"      docker run -> ready frame: {startup_ms:.0f} ms")

    every_byte = bytes(range(256))
    r = c.call(every_byte)
    check(isinstance(r, Response) and r.status == 200 and r.body == every_byte, "echo of bytes 0-255")
    check(r.headers[:2] == (("x-method", "POST"), ("x-call-id", "e2e-1")), "x-method and x-call-id headers")

    big = os.urandom(5 * 1024 * 1024)
    t0 = time.perf_counter()
    r = c.call(big)
    big_ms = (time.perf_counter() - t0) * 1000
    check(r.body == big, f"echo of a 5 MiB body ({big_ms:.0f} ms round trip)")

    echoed = (("x-echo-a", "1"), ("x-echo-b", "zwei"), ("x-echo-a", "2"), ("x-echo-name", "Zoë – 東京"))
    r = c.call(b"", (("host", "h"), *echoed))
    check(r.headers[2:] == echoed, "repeated and non-ASCII headers echoed in order")

    r = c.call(b"", (("x-hotfn-test", "status"), ("x-status", "418")))
    check(r.status == 418 and ("x-custom", "yes") in r.headers and r.body == b"status", "status 418 + x-custom")

    r = c.call(b"", (("x-hotfn-test", "raise"),))
    check(isinstance(r, HandlerError) and r.message == "boom", f"raise -> error frame ({r.error_type})")

    r = c.call(b"after print", (("x-hotfn-test", "print"),))
    check(r.body == b"after print", "print does not corrupt the frame stream")

    r = c.call(b"xyz", (("x-hotfn-test", "info"),), method="GET")
    info = json.loads(r.body)
    check(
        info["path"] == "/users/7" and info["params"] == {"id": "7"} and info["body_length"] == 3
        and info["query"] == [["tag", "a"], ["tag", "b"], ["q", "a b"]] and info["method"] == "GET"
        and info["config_value"] == "from-e2e",
        "info",
    )

    payload = b"ping"
    for _ in range(20):  # warm up (JIT, docker's stream copying)
        c.call(payload)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        r = c.call(payload)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.body == payload
    times.sort()
    print(f"      echo round trip over 200 calls: median {statistics.median(times):.3f} ms, "
          f"p90 {times[179]:.3f} ms, min {times[0]:.3f} ms")

    status = c.close()
    check(status == 0, "stdin EOF -> exit 0")
    log = c.log()
    check("noise" in log, "console.log output went to stderr")

    startups = []
    for _ in range(5):
        c = HotContainer()
        c.next_frame()
        startups.append((time.perf_counter() - c.started) * 1000)
        c.close()
    print(f"      docker run -> ready frame over 5 runs: median {statistics.median(startups):.0f} ms "
          f"(min {min(startups):.0f}, max {max(startups):.0f})")


def cold_run(body: bytes, *env: str) -> subprocess.CompletedProcess:
    name = f"hotfn-node-e2e-{uuid.uuid4().hex[:12]}"
    started_containers.append(name)
    args = []
    for item in env:
        args += ["-e", item]
    return subprocess.run(
        ["docker", "run", "-i", "--rm", "--name", name, "--label", "hotfn=1", *args, IMAGE],
        input=body, capture_output=True, timeout=60,
    )


def cold_checks() -> None:
    print("cold mode")
    base = ("HOTFN_FORMAT=default", "METHOD=POST", "REQUEST_URL=http://localhost:8080/r/demo/users/7?x=1",
            "APP_NAME=demo", "ROUTE=/users/:id", "CALL_ID=cold-1", "DEADLINE=1764284400000", "PARAM_ID=7")
    body = bytes(range(256)) * 4
    t0 = time.perf_counter()
    p = cold_run(body, *base)
    cold_ms = (time.perf_counter() - t0) * 1000
    check(p.returncode == 0 and p.stdout == body, f"cold echo: body on stdout, exit 0 ({cold_ms:.0f} ms)")

    p = cold_run(b"abc", *base, "HEADER_X_HOTFN_TEST=info", "HEADER_X_ECHO_A=1, 2")
    info = json.loads(p.stdout)
    check(
        p.returncode == 0 and info["path"] == "/users/7" and info["params"] == {"id": "7"}
        and info["call_id"] == "cold-1" and info["deadline"] == 1764284400000
        and ["x-echo-a", "1, 2"] in info["headers"] and info["query"] == [["x", "1"]],
        "cold info from the environment",
    )
    p = cold_run(b"body", *base, "HEADER_X_HOTFN_TEST=print")
    check(p.returncode == 0 and p.stdout == b"body" and b"noise" in p.stderr, "cold print goes to stderr")
    p = cold_run(b"", *base, "HEADER_X_HOTFN_TEST=raise")
    check(p.returncode == 1 and p.stdout == b"" and b"boom" in p.stderr, "cold raise -> exit 1")
    big = os.urandom(5 * 1024 * 1024)
    p = cold_run(big, *base)
    check(p.returncode == 0 and p.stdout == big, "cold echo of a 5 MiB body")


def main() -> int:
    build_image()
    try:
        hot_checks()
        cold_checks()
    finally:
        # --rm removes containers that exited; this removes any a failure left running. Only
        # ours, by name: other people's containers share this engine.
        for name in started_containers:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    print("all docker checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
