"""A parked cold container (DockerDriver.park): started ahead of its call, waiting in /bin/sh for
the call's environment, which ``release`` writes to its environment FIFO.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import os
import re
import shutil
import termios
from typing import Mapping

import trio

from ..base import ContainerGone
from .container import IO_MOUNT, DockerContainer, _fifo_dir

# A parked cold container (DockerDriver.park): started ahead of its call, it waits in /bin/sh,
# blocked reading the call's environment from a FIFO, and execs the image's own command only
# once that is complete. The last line of what hotfn writes sets HOTFN_GO: without it (hotfn
# died mid-write, or the FIFO was closed empty) the function never runs.
PARK_WRAPPER = [
    "/bin/sh", "-c",
    f'set -a; . {IO_MOUNT}/env; set +a; [ "${{HOTFN_GO-}}" = 1 ] || exit 125; unset HOTFN_GO; exec "$@"',
    "hotfn-park",
]
# What a parked container's /bin/sh can take as a variable name.
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")



def render_env(env: Mapping[str, str]) -> bytes:
    """``env`` as the lines a parked container's /bin/sh reads (PARK_WRAPPER), HOTFN_GO last.

    Values are single-quoted, so the shell expands nothing in them. ValueError for what an
    environment (or the shell) cannot hold: a name that is not a portable shell name, a NUL.
    """
    lines = []
    for name, value in env.items():
        if not _SHELL_NAME.match(name) or name == "HOTFN_GO":
            raise ValueError(f"{name!r} cannot be passed to a parked container")
        if "\0" in value:
            raise ValueError(f"the value of {name} holds a NUL")
        lines.append(f"{name}='" + value.replace("'", "'\\''") + "'\n")
    lines.append("HOTFN_GO=1\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


class _EnvFifo:
    """A parked container's environment FIFO, in a private directory mounted at IO_MOUNT."""

    def __init__(self, path: str) -> None:
        self.path = path
        # O_RDWR, as for _Fifos: opening never blocks, and the reader sees EOF only when we close.
        self.stream = trio.lowlevel.FdStream(os.open(f"{path}/env", os.O_RDWR | os.O_CLOEXEC))

    @classmethod
    def make(cls, io_dir: str) -> "_EnvFifo":
        return cls(_fifo_dir(io_dir, "p-", {"env": 0o644}))

    def unread(self) -> int:
        """Bytes the shell has not read yet; OSError once the FIFO is closed."""
        fd = self.stream.fileno()
        if fd < 0:  # (closed: ioctl would raise ValueError)
            raise OSError(errno.EBADF, "the environment FIFO is closed")
        pending = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, pending)
        return pending[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        shutil.rmtree(self.path, ignore_errors=True)


class ParkedContainer:
    """A started cold container that runs its function once given a call's environment."""

    # How long a parked shell may take to read its environment before it counts as dead.
    RELEASE_TIMEOUT = 2.0

    def __init__(self, container: "DockerContainer", env_fifo: _EnvFifo) -> None:
        self.container = container
        self._env_fifo = env_fifo

    @property
    def id(self) -> str:
        return self.container.id

    def alive(self) -> bool:
        return not self.container._output_ended()

    async def release(self, env: Mapping[str, str]) -> "DockerContainer":
        """Hand the call's environment over and let the function start; the container is
        then an ordinary cold one. ValueError if ``env`` cannot be passed (render_env), and
        ContainerGone if the container no longer reads it; either way it is discarded."""
        try:
            data = render_env(env)
            if self.container._output_ended():
                raise ContainerGone(f"parked container {self.id[:12]} has ended")
            with trio.fail_after(self.RELEASE_TIMEOUT):
                await self._env_fifo.stream.send_all(data)
                # Closing before the shell has read everything would lose the rest: the FIFO's
                # buffer goes with its last open end. Read all means the shell is reading.
                while self._env_fifo.unread():
                    if self.container._output_ended():
                        raise ContainerGone(f"parked container {self.id[:12]} has ended")
                    await trio.sleep(0.0005)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self.discard()
            if isinstance(exc, (trio.TooSlowError, trio.BrokenResourceError, OSError)):
                raise ContainerGone(f"parked container {self.id[:12]} did not take its call") from exc
            raise
        self._env_fifo.close()
        return self.container

    async def discard(self) -> None:
        """Kill and remove it unused (its function never started). Idempotent."""
        with trio.CancelScope(shield=True):
            await self.container.kill()
            self._env_fifo.close()

