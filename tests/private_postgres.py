"""A PostgreSQL server of a test's own, for tests that stop, crash or restart it: initdb'd in a
directory of its own, on a free port and a socket directory of its own, never the shared one
(scripts/ensure-postgres), which other tests use at the same time. Removed after the test.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest
import trio

from test_durability import free_port


def _bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed (scripts/ensure-postgres installs it)")
    return os.path.dirname(found[-1])


class PrivatePostgres:
    """``settings``: server settings (-c name=value) for every start, e.g. synchronous_commit."""

    def __init__(self, **settings: str) -> None:
        self.bin = _bin()
        self.port = free_port()
        # Not under pytest's tmp_path: the server runs as an unprivileged user, who must reach it.
        self.dir = tempfile.mkdtemp(prefix="hotfn-test-pg-", dir="/var/tmp")
        self.data = os.path.join(self.dir, "data")
        self.settings = {"fsync": "off", "full_page_writes": "off", "max_connections": "100",
                         "shared_buffers": "16MB", **settings}
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("no 'postgres' user to run a PostgreSQL server as (scripts/ensure-postgres makes one)")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.dir, 0o700)
        self._run("initdb", "-D", self.data, "-U", "hotfn", "--auth=trust", "--no-locale",
                  "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://hotfn@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [os.path.join(self.bin, program), *args]
        if self.user is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stdout}{result.stderr}")
        return result

    def start_now(self) -> None:
        options = " ".join([f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir}"]
                           + [f"-c {k}={v}" for k, v in self.settings.items()])
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-w",
                  "-t", "60", "start", "-o", options)

    def stop_now(self, mode: str = "fast") -> None:
        """``fast``: the server ends its sessions and stops; ``immediate``: as a crash (no
        checkpoint; what is not yet in the WAL on disk is lost)."""
        self._run("pg_ctl", "-D", self.data, "-w", "-t", "60", "stop", "-m", mode, check=False)

    async def start(self) -> None:
        await trio.to_thread.run_sync(self.start_now)

    async def stop(self, mode: str = "fast") -> None:
        await trio.to_thread.run_sync(self.stop_now, mode)

    def remove(self) -> None:
        self.stop_now("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()
        except OSError:
            return ""
