"""Each shim's own test suite, in its own ecosystem's runner (node --test; the JDK test mains).
The shared behaviour is checked once for all in test_conformance.py; these cover each codec
and runtime in depth, on the host."""

import subprocess

import pytest

from conftest import ROOT

SHIMS = ROOT / "runtime-shims"
SUITES = {
    "python": (["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], SHIMS / "python"),
    "node": (["npm", "test", "--silent"], SHIMS / "node"),
    "java": (["./test"], SHIMS / "java"),
    "clojure": (["./test"], SHIMS / "clojure"),
}


@pytest.mark.parametrize("shim", SUITES)
def test_shim_suite(shim):
    command, cwd = SUITES[shim]
    if command[0] == "python":
        import sys

        command = [sys.executable, *command[1:]]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{shim} suite failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
