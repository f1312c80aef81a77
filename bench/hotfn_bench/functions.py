"""The bench functions (bench/functions/<dir>/), their images, and the request payloads.

Every function does the same thing in its language: echo the request body, or with the header
`x-bench: sum`, parse the body as a JSON array of ~1000 numbers by hand and answer the sum.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from dataclasses import dataclass

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)
FUNCTIONS_DIR = os.path.join(BENCH_DIR, "functions")
# The interpreter of the servers and builds: the repository's .venv, or another one with hotfn's
# dependencies (a git worktree shares its checkout's), run from REPO_DIR so this tree's hotfn loads.
PYTHON = os.environ.get("HOTFN_BENCH_PYTHON") or os.path.join(REPO_DIR, ".venv", "bin", "python")


@dataclass(frozen=True)
class BenchFunction:
    key: str  # short name used in routes and results: python, node, java, clojure, framework
    label: str  # for tables and charts
    directory: str  # under bench/functions/
    memory_mb: int  # the route's memory limit
    jvm: bool

    @property
    def path(self) -> str:
        return os.path.join(FUNCTIONS_DIR, self.directory)

    @property
    def image(self) -> str:
        return f"hotfn-bench/{self.directory}:latest"


FUNCTIONS: dict[str, BenchFunction] = {f.key: f for f in [
    BenchFunction("python", "Python", "echo-python", 128, jvm=False),
    BenchFunction("node", "Node.js", "echo-node", 128, jvm=False),
    BenchFunction("java", "Java", "echo-java", 128, jvm=True),
    BenchFunction("clojure", "Clojure", "echo-clojure", 128, jvm=True),
    # javac in the container needs more heap than the JVM's default quarter of 128 MiB.
    BenchFunction("framework", "Java framework-style", "framework-java", 256, jvm=True),
]}


def build_images(functions: list[BenchFunction], log) -> dict[str, float]:
    """`hotfn build` every function directory (Docker's cache makes a rebuild ~1 s)."""
    took = {}
    for fn in functions:
        started = time.monotonic()
        result = subprocess.run(
            [PYTHON, "-m", "hotfn", "build", fn.path, "--tag", fn.image],
            cwd=REPO_DIR, capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"hotfn build {fn.directory} failed:\n{result.stderr}")
        took[fn.key] = time.monotonic() - started
        log(f"built {fn.image} in {took[fn.key]:.1f} s")
    return took


# -- payloads -------------------------------------------------------------------------------------

# 100 printable bytes: what every echo call sends and must get back unchanged.
ECHO_BODY = (b"hotfn-bench echo body " + bytes(range(48, 58)) * 8)[:100]
assert len(ECHO_BODY) == 100


def sum_body(count: int = 1000, seed: int = 6) -> tuple[bytes, float]:
    """A JSON array of ``count`` numbers with two decimals, and their exact sum."""
    rng = random.Random(seed)
    cents = [rng.randint(-100_000, 100_000) for _ in range(count)]
    text = "[" + ", ".join(f"{c / 100:.2f}" for c in cents) + "]"
    return text.encode(), sum(cents) / 100


SUM_HEADERS = [("x-bench", "sum")]
