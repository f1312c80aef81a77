"""What the engine above needs from a container runtime, and nothing of how Docker does it.

A driver starts containers from a ContainerSpec and hands back a Container: a byte pipe to the
process's stdin, its stdout and stderr as they come, its exit status, and kill. Docker is the
real one (drivers/docker); tests of pool logic may use a fake that keeps this contract.
"""

from __future__ import annotations

import abc
import signal
from dataclasses import dataclass, field
from typing import Mapping


class DriverError(Exception):
    """The container engine failed to do what was asked."""


class EngineUnavailable(DriverError):
    """The engine cannot be reached at all."""


class ImageNotFound(DriverError):
    def __init__(self, image: str, why: str = "") -> None:
        super().__init__(f"image {image!r} is not present on this server" + (f" ({why})" if why else ""))
        self.image = image


class IsolationUnavailable(DriverError):
    """The engine cannot run containers at the isolation level a route asks for."""


class ContainerGone(DriverError):
    """The container's stdio is closed: it exited, was killed, or was never fully started."""


# Who a function runs as unless its route says otherwise: an unprivileged uid and gid that no
# image's system accounts use (as Fn does), so a function that escapes its container's mount
# namespace owns nothing of the host's.
DEFAULT_USER = "1000:1000"
ISOLATIONS = ("container", "gvisor")


class NoShell(DriverError):
    """The image has no /bin/sh, which a container started ahead of its call needs."""


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    memory_mb: int = 128
    cpu_shares: int = 1024  # relative weight, Docker's default
    cpus: float | None = None  # at most this many cores (a CFS quota); None: no limit
    pids_limit: int = 256
    user: str = DEFAULT_USER  # "uid" or "uid:gid", numeric
    # "container": namespaces, cgroups, no capabilities, seccomp (runc); "gvisor": the same
    # container behind gVisor's user-space kernel (runsc), so the host kernel sees only runsc.
    isolation: str = "container"
    network: bool = False
    # With network: the labels of the network the container joins (one per app and node: its
    # containers share it, and cannot reach each other on it). The driver names the network
    # after them and removes it once no container of ours has used it for a while.
    network_labels: Mapping[str, str] = field(default_factory=dict)
    read_only_root: bool = True
    tmpfs_mb: int = 64
    # Hot containers: carry stdin and stdout over a faster path than the engine's attach
    # stream where the driver has one (Docker: FIFOs shared with the host). stderr and the
    # process's end still come through receive_some().
    direct_stdio: bool = False


@dataclass(frozen=True)
class ExitStatus:
    code: int | None  # None: still running or unknown
    oom_killed: bool = False

    def describe(self) -> str:
        if self.oom_killed:
            return "out of memory (killed at its memory limit)"
        if self.code is None:
            return "exit status unknown"
        if self.code > 128:
            # 128 + n: the process ended by signal n. Only the engine knows an OOM kill, and it
            # said no: someone killed it (docker kill, a shutdown, the kernel for another reason).
            try:
                name = signal.Signals(self.code - 128).name
            except ValueError:
                name = f"signal {self.code - 128}"
            return f"killed by {name} (exit status {self.code})"
        return f"exit status {self.code}"


class Container(abc.ABC):
    id: str
    # True when stdout comes through receive_stdout() rather than receive_some().
    separate_stdout: bool = False

    async def receive_stdout(self) -> bytes | None:
        """The next stdout bytes, or None at EOF; only where ``separate_stdout``."""
        raise NotImplementedError

    def receive_stdout_nowait(self) -> bytes | None:
        """The stdout bytes there are now, without waiting (None: none); only where
        ``separate_stdout``."""
        return None

    def unread_stdin(self) -> int | None:
        """Bytes sent to stdin that the process has not read yet; None where unknowable."""
        return None

    def close_stdout(self) -> None:
        """Stop reading stdout (the container is done for): a receive_stdout waiting now
        returns None at once; only where ``separate_stdout``."""

    @abc.abstractmethod
    async def send_all(self, data: bytes) -> None:
        """Write to the process's stdin; ContainerGone if it cannot take it any more."""

    @abc.abstractmethod
    async def close_stdin(self) -> None:
        """EOF on the process's stdin."""

    @abc.abstractmethod
    async def receive_some(self) -> tuple[bytes, bytes] | None:
        """The next output: (stdout bytes, stderr bytes), either maybe empty; None once the
        process has ended (its output streams closed)."""

    @abc.abstractmethod
    async def exit_status(self, timeout: float = 10.0) -> ExitStatus:
        """Wait (up to ``timeout``) for the process to end and say how it ended."""

    async def watch_exit(self, timeout: float) -> None:
        """Optional, in a task of its own once the container runs: ask for the exit status
        ahead of need, so exit_status() answers as soon as the process ends. Default: no-op."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """Kill and remove the container. Idempotent; safe to call while cancelled."""


class Driver(abc.ABC):
    @abc.abstractmethod
    async def start(self, spec: ContainerSpec) -> Container:
        """Create, attach (before start, so no output is lost) and start a container."""

    @abc.abstractmethod
    async def image_exists(self, image: str) -> bool: ...

    @abc.abstractmethod
    async def ensure_image(self, image: str) -> str:
        """Make the image present and return its id; ImageNotFound if it cannot be had. A
        driver pulls from a registry only where it was told it may (``--allow-pull``)."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """Whether the engine answers."""

    @abc.abstractmethod
    async def remove_containers(self, labels: Mapping[str, str]) -> int:
        """Kill and remove every container carrying all of ``labels``; how many there were."""

    async def remove_strays(self, labels: Mapping[str, str]) -> int:
        """Kill and remove every container carrying all of ``labels`` that this driver did not
        start, or has given up on (its removal failed): what an engine restart, or an answer
        lost on the way, left behind. How many there were. A driver whose containers cannot
        outlive it has none."""
        return 0

    async def isolation_available(self, isolation: str) -> bool:
        """Whether containers can run at ``isolation`` (one of ISOLATIONS) on this engine."""
        return isolation == "container"

    async def remove_networks(self, labels: Mapping[str, str]) -> int:
        """Remove every network of ours carrying all of ``labels`` (after their containers);
        how many there were. A driver without networks of its own has none."""
        return 0

    async def prune_networks(self, idle_for: float) -> int:
        """Remove the networks no container of ours has used for ``idle_for`` seconds."""
        return 0
