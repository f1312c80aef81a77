"""A private Docker engine for tests that kill or restart one (scripts/ensure-engine): its own
dockerd, data root, socket and bridge, never the shared engine the other tests use.

    @pytest.fixture(scope="module")
    def engine():
        with private_engine("faults", images=["hotfn-test/conformance-python"]) as engine:
            yield engine

It has no images of its own: the ones a test needs are copied in from the shared engine
(``docker save | docker -H ... load``; no registry is reached). Whatever happens, the engine is
stopped and its containers, bridge and data are removed when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import uuid
from typing import Iterator, Sequence

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENSURE_ENGINE = ROOT / "scripts" / "ensure-engine"


class PrivateEngine:
    def __init__(self, name: str) -> None:
        self.name = name
        self.address = ""  # DOCKER_HOST, unix://...
        self.pidfile = pathlib.Path(f"/run/hotfn-engines/{name}/docker.pid")
        self.log_path = pathlib.Path(os.environ.get("HOTFN_ENGINE_DIR", "/var/tmp/hotfn-engines")) / name / "dockerd.log"

    def start(self) -> str:
        """Start it (again, after a kill); its DOCKER_HOST."""
        done = subprocess.run([str(ENSURE_ENGINE), self.name], capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/ensure-engine {self.name} failed: {done.stderr[-3000:]}")
        self.address = done.stdout.strip().splitlines()[-1]
        return self.address

    def stop(self) -> None:
        subprocess.run([str(ENSURE_ENGINE), "--stop", self.name], capture_output=True, timeout=180)

    def kill(self) -> None:
        """SIGKILL its dockerd, as the finding did."""
        os.kill(int(self.pidfile.read_text().strip()), signal.SIGKILL)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "-H", self.address, *args], capture_output=True, text=True,
                              timeout=120, check=check)

    def load(self, image: str) -> None:
        """Copy ``image`` from the shared engine into this one."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        try:
            subprocess.run(["docker", "-H", self.address, "load", "-q"], stdin=save.stdout,
                           capture_output=True, timeout=300, check=True)
        finally:
            assert save.stdout is not None
            save.stdout.close()
            if save.wait(timeout=60) != 0:
                raise RuntimeError(f"docker save {image} failed")

    def containers(self, *filters: str) -> list[str]:
        """Ids of its containers (running or not) matching every ``filters`` (docker ps --filter)."""
        args = ["ps", "-aq", "--no-trunc"]
        for f in filters:
            args += ["--filter", f]
        return self.docker(*args).stdout.split()

    def env(self) -> dict[str, str]:
        """The environment for a `hotfn serve` that uses this engine."""
        return {**os.environ, "DOCKER_HOST": self.address}


@contextlib.contextmanager
def private_engine(purpose: str, images: Sequence[str] = ()) -> Iterator[PrivateEngine]:
    engine = PrivateEngine(f"{purpose}-{uuid.uuid4().hex[:6]}")
    try:
        engine.start()
        for image in images:
            engine.load(image)
        yield engine
    finally:
        engine.stop()
