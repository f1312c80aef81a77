"""Containers kept for routes: warm ones that serve call after call (hot routes), and cold ones
started ahead of their calls (parked).

Who gets which container and when containers come and go is decided here; the containers
themselves come from a driver (``hotfn.drivers``), and what they say is read by the codecs in
``hotfn.protocol``.

May import: ``hotfn.protocol``, ``hotfn.drivers``, ``hotfn.models``.
"""

from .coldstart import ColdStarts
from .worker import (
    CANCELLED,
    CRASH,
    DEATHS,
    EXITED,
    KILLED,
    LOG_LINGER,
    OOM,
    PROTOCOL_ERROR,
    SCALE_AFTER,
    START_FAILED,
    STOPS,
    TIMEOUT,
    CallLog,
    CallTimeout,
    Capacity,
    HotWorker,
    NotDelivered,
    PoolClosed,
    PoolError,
    PoolEvents,
    PoolManager,
    QueueTimeout,
    StartFailed,
    WorkerDied,
    default_max_memory_mb,
    exit_cause,
)

__all__ = [
    "CANCELLED", "CRASH", "DEATHS", "EXITED", "KILLED", "LOG_LINGER", "OOM", "PROTOCOL_ERROR",
    "SCALE_AFTER", "START_FAILED", "STOPS", "TIMEOUT", "CallLog", "CallTimeout", "Capacity",
    "ColdStarts", "HotWorker", "NotDelivered", "PoolClosed", "PoolError", "PoolEvents",
    "PoolManager", "QueueTimeout", "StartFailed", "WorkerDied", "default_max_memory_mb",
    "exit_cause",
]
