"""Drive a hotfn runtime image (hot and cold) through Docker and time it.

    .venv/bin/python runtime-shims/java/e2e/docker_check.py hotfn-conformance/java [--runs 5]

Runs the conformance function (docs/runtimes.md) with the same container limits as hotfn's
Docker driver (128 MiB, read-only root, /tmp tmpfs, no network, all capabilities dropped):
echo, 5 MiB body, raise, status, print, info in a hot container; then cold calls. Prints the
time from `docker run` to the ready frame, the median echo round trip over 200 calls, and the
time of a whole cold `docker run`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

from hotfn.protocol import (
    CLOSED, NEED_DATA, FrameDecoder, HandlerError, Ready, Request, Response, encode_frame,
)

LIMITS = [
    "--memory", "128m", "--memory-swap", "128m", "--read-only",
    "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m", "--security-opt", "no-new-privileges",
    "--cap-drop", "ALL", "--network", "none", "--pids-limit", "256",
]


class Hot:
    def __init__(self, image: str, env: dict[str, str] | None = None) -> None:
        self.name = f"hotfn-shim-check-{uuid.uuid4().hex[:10]}"
        args = ["docker", "run", "-i", "--rm", "--name", self.name, "--label", "hotfn=1",
                *LIMITS, "-e", "HOTFN_FORMAT=hot", "-e", "APP_NAME=demo", "-e", "ROUTE=/users/:id",
                "-e", "CONFORMANCE_CONFIG=configured"]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(args + [image], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        self.decoder = FrameDecoder()
        self.stderr = bytearray()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read(65536), b""):
            self.stderr += chunk

    def read(self):
        while True:
            frame = self.decoder.next_frame()
            if frame is CLOSED:
                raise RuntimeError(f"stdout closed; stderr: {self.stderr.decode(errors='replace')}")
            if frame is not NEED_DATA:
                return frame
            data = os.read(self.proc.stdout.fileno(), 1 << 20)
            self.decoder.receive_data(data)

    def call(self, call_id: str, body: bytes = b"", headers=(), method="POST") -> object:
        request = Request(
            call_id=call_id, method=method, url="http://localhost:8080/r/demo/users/7?tag=a&tag=b&q=a%20b",
            path="/users/7", query=(("tag", "a"), ("tag", "b"), ("q", "a b")),
            headers=tuple(headers), body=body, deadline=int(time.time() * 1000) + 30000,
            app="demo", route="/users/:id", params={"id": "7"},
        )
        self.proc.stdin.write(encode_frame(request))
        return self.read()

    def close(self) -> int:
        self.proc.stdin.close()
        try:
            return self.proc.wait(30)
        finally:
            subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"  ok   {what}")


def hot_checks(image: str) -> None:
    h = Hot(image)
    try:
        ready = h.read()
        check(isinstance(ready, Ready) and ready.version == 1, f"ready frame: {ready}")
        r = h.call("c-echo", bytes(range(256)), [("x-echo-a", "1"), ("x-echo-b", "Zoë – 東京"), ("x-echo-a", "2")])
        check(isinstance(r, Response) and r.status == 200 and r.body == bytes(range(256)), "echo of every byte")
        check(r.headers == (("x-method", "POST"), ("x-call-id", "c-echo"), ("x-echo-a", "1"),
                            ("x-echo-b", "Zoë – 東京"), ("x-echo-a", "2")), f"echo headers {r.headers}")
        big = os.urandom(5 * 1024 * 1024)
        t = time.perf_counter()
        r = h.call("c-big", big)
        check(isinstance(r, Response) and r.body == big, f"5 MiB echo ({(time.perf_counter() - t) * 1000:.0f} ms)")
        r = h.call("c-raise", headers=[("x-hotfn-test", "raise")])
        check(isinstance(r, HandlerError) and r.message == "boom" and r.call_id == "c-raise",
              f"raise -> error frame {r.error_type}: {r.message}")
        r = h.call("c-status", headers=[("x-hotfn-test", "status"), ("x-status", "418")])
        check(isinstance(r, Response) and r.status == 418 and ("x-custom", "yes") in r.headers
              and r.body == b"status", f"status 418: {r.headers}")
        r = h.call("c-print", b"p", headers=[("x-hotfn-test", "print")])
        check(isinstance(r, Response) and r.body == b"p", "print keeps frames intact")
        r = h.call("c-info", b"abc", headers=[("x-hotfn-test", "info"), ("x-echo-z", "Zoë")])
        info = json.loads(r.body)
        check(info == {
            "method": "POST", "url": "http://localhost:8080/r/demo/users/7?tag=a&tag=b&q=a%20b",
            "path": "/users/7", "query": [["tag", "a"], ["tag", "b"], ["q", "a b"]],
            "headers": [["x-hotfn-test", "info"], ["x-echo-z", "Zoë"]], "app": "demo",
            "route": "/users/:id", "params": {"id": "7"}, "call_id": "c-info",
            "deadline": info["deadline"], "body_length": 3, "config_value": "configured",
        } and isinstance(info["deadline"], int), f"info {info}")
        check(("content-type", "application/json") in r.headers, "info content type")
        status = h.close()
        check(status == 0, f"exit status {status} after stdin EOF")
        check(b"noise" in h.stderr, "print output on stderr")
    finally:
        h.proc.kill()
        subprocess.run(["docker", "rm", "-f", h.name], capture_output=True)


def hot_timing(image: str, runs: int) -> tuple[list[float], list[float], list[float]]:
    ready_times = []
    first_calls = []
    medians = []
    for i in range(runs):
        h = Hot(image)
        try:
            h.read()
            ready_times.append(time.perf_counter() - h.started)
            t = time.perf_counter()
            h.call("first", b"first")
            first_calls.append(time.perf_counter() - t)
            if i == 0:
                rtts = []
                for n in range(200):
                    t = time.perf_counter()
                    r = h.call(f"c-{n}", b"hello")
                    rtts.append(time.perf_counter() - t)
                    assert isinstance(r, Response) and r.body == b"hello"
                medians.append(statistics.median(rtts))
                rtts = []
                for n in range(200):  # the same again, warm
                    t = time.perf_counter()
                    h.call(f"d-{n}", b"hello")
                    rtts.append(time.perf_counter() - t)
                medians.append(statistics.median(rtts))
            h.close()
        finally:
            h.proc.kill()
    return ready_times, first_calls, medians


def cold(image: str, test: str = "echo", body: bytes = b"cold body") -> tuple[float, subprocess.CompletedProcess]:
    name = f"hotfn-shim-check-{uuid.uuid4().hex[:10]}"
    args = ["docker", "run", "-i", "--rm", "--name", name, *LIMITS,
            "-e", "HOTFN_FORMAT=default", "-e", "METHOD=POST",
            "-e", "REQUEST_URL=http://localhost:8080/r/demo/users/7?tag=a&tag=b",
            "-e", "APP_NAME=demo", "-e", "ROUTE=/users/:id", "-e", "CALL_ID=cold-1",
            "-e", "DEADLINE=1764284400000", "-e", f"HEADER_X_HOTFN_TEST={test}",
            "-e", "HEADER_X_ECHO_A=1", "-e", "PARAM_ID=7", image]
    t = time.perf_counter()
    try:
        done = subprocess.run(args, input=body, capture_output=True, timeout=60)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return time.perf_counter() - t, done


def cold_checks(image: str) -> None:
    _, done = cold(image, "echo", bytes(range(256)))
    check(done.returncode == 0 and done.stdout == bytes(range(256)), "cold echo of every byte, exit 0")
    _, done = cold(image, "info", b"abc")
    info = json.loads(done.stdout)
    check(done.returncode == 0 and info["path"] == "/users/7" and info["params"] == {"id": "7"}
          and info["query"] == [["tag", "a"], ["tag", "b"]] and ["x-echo-a", "1"] in info["headers"]
          and info["call_id"] == "cold-1" and info["deadline"] == 1764284400000 and info["body_length"] == 3,
          f"cold info {info}")
    _, done = cold(image, "raise")
    check(done.returncode == 1 and done.stdout == b"" and b"boom" in done.stderr, "cold raise -> exit 1, trace on stderr")
    _, done = cold(image, "print", b"x")
    check(done.returncode == 0 and done.stdout == b"x" and b"noise" in done.stderr, "cold print -> stderr")
    _, done = cold(image, "exit")
    check(done.returncode == 3, f"cold exit -> status {done.returncode}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timing-only", action="store_true")
    args = ap.parse_args()
    if not args.timing_only:
        print(f"{args.image}: hot checks")
        hot_checks(args.image)
        print(f"{args.image}: cold checks")
        cold_checks(args.image)
    ready, first, medians = hot_timing(args.image, args.runs)
    colds = [cold(args.image)[0] for _ in range(args.runs)]
    ms = lambda xs: ", ".join(f"{x * 1000:.0f}" for x in xs)
    print(f"{args.image}: docker run -> ready frame: median {statistics.median(ready) * 1000:.0f} ms ({ms(ready)})")
    print(f"{args.image}: first echo call after ready: median {statistics.median(first) * 1000:.1f} ms ({ms(first)})")
    print(f"{args.image}: echo round trip, 200 calls: median {medians[0] * 1000:.3f} ms "
          f"(next 200: {medians[1] * 1000:.3f} ms)")
    print(f"{args.image}: cold docker run (echo): median {statistics.median(colds) * 1000:.0f} ms ({ms(colds)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
