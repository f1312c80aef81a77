"""A measuring process the orchestrator drives: ``python -m hotfn_bench.<module>`` reading one
JSON command per line on stdin and answering one JSON line on stdout. Used by the HTTP client
(client.py) and the direct-frames driver (direct.py), so that what is measured never shares a
process, or a GIL, with the orchestrator's bookkeeping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Callable

from .functions import BENCH_DIR, PYTHON


class WorkerError(Exception):
    pass


class JsonWorker:
    module: str = ""

    def __init__(self, args: list[str] | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": BENCH_DIR}
        self.proc = subprocess.Popen(
            [PYTHON, "-m", f"hotfn_bench.{self.module}", *(args or [])], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, text=True, bufsize=1,
        )

    def request(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"the {self.module} process died (exit status {self.proc.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(f"{self.module}: {answer['error']}")
        return answer

    def close(self, timeout: float = 30) -> None:
        """EOF on its stdin: the worker cleans up (containers, connections) and exits."""
        if self.proc.poll() is not None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def serve_lines(handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The worker's side: answer each command line until EOF; an exception is answered as
    {"error": ...} and the worker goes on."""
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                answer = handle(json.loads(line))
            except Exception as exc:  # reported to the orchestrator, which decides
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the orchestrator reports
        pass
