"""Why a call could not be served by a pool: PoolError and its kinds, each with its HTTP status."""

from __future__ import annotations

class PoolError(Exception):
    """A call could not be served; ``status`` is the HTTP status that says so best."""

    status = 502
    retryable = False
    log = b""  # what the function wrote to stderr during the failed call, if anything
    # What the client may read, where the message holds the function's own words (its stderr):
    # those go to the call's record and log, not to whoever called.
    public: str | None = None


class QueueTimeout(PoolError):
    status = 503


class StartFailed(PoolError):
    pass


class CallTimeout(PoolError):
    status = 504


class WorkerDied(PoolError):
    """The container ended or broke the protocol during the call."""


class NotDelivered(WorkerDied):
    """The container was gone before the request reached it: safe to try once more."""

    retryable = True


class PoolClosed(PoolError):
    status = 503
    retryable = True

