"""What the pools report as containers come and go (PoolEvents), and why a container ended."""

from __future__ import annotations

from ..drivers import ExitStatus
from ..models import Route

# Why a container ended, as metrics count it. Deaths: it failed (or was cut short); stops:
# hotfn ended a healthy container.
CRASH, OOM, KILLED, TIMEOUT, PROTOCOL_ERROR = "crash", "oom", "killed", "timeout", "protocol_error"
START_FAILED, CANCELLED = "start_failed", "cancelled"
IDLE, RETIRED, EVICTED, SHUTDOWN = "idle", "retired", "evicted", "shutdown"
EXITED = "exited"  # ended by itself when done: cold (status 0); http format (Connection: close)
DEATHS = (CRASH, OOM, KILLED, TIMEOUT, PROTOCOL_ERROR, START_FAILED, CANCELLED)
STOPS = (IDLE, RETIRED, EVICTED, SHUTDOWN, EXITED)


def exit_cause(status: ExitStatus | None) -> str:
    """The cause a container's own end names: OOM only when the engine says so, a signal
    (128 + n) as killed, anything else as a crash."""
    if status is None:
        return CRASH
    if status.oom_killed:
        return OOM
    if status.code is not None and status.code > 128:
        return KILLED
    return CRASH


class PoolEvents:
    """What the pools (and cold calls) report as containers come and go; these do nothing.
    Called synchronously from the pools' bookkeeping: an implementation must not block."""

    def container_starting(self, route: Route) -> None:
        pass

    def container_ready(self, route: Route, seconds: float) -> None:
        """A hot container sent its ready frame ``seconds`` after its start began."""

    def container_ended(self, route: Route, cause: str) -> None:
        """``cause``: one of DEATHS or STOPS."""

