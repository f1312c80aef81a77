"""Containers kept for routes: warm ones that serve call after call (hot routes), and cold ones
started ahead of their calls (parked).

Who gets which container and when containers come and go is decided here; the containers
themselves come from a driver (``hotfn.drivers``), and what they say is read by the codecs in
``hotfn.protocol``.

Inside: events (what pools report, why a container ended), errors, capacity (server-wide and
per app), deadlines (hot calls' deadlines, one task), worker (a warm container speaking frames),
http_worker (one speaking HTTP/1.1), routepool (one route's containers and waiters), manager
(every route's pool), coldstart (parked cold containers).

May import: ``hotfn.protocol``, ``hotfn.drivers``, ``hotfn.models``.
"""

from .capacity import Capacity, default_max_memory_mb
from .coldstart import ColdStarts
from .cpus import default_cpus, node_cpus
from .errors import (CallTimeout, NotDelivered, PoolClosed, PoolError, QueueTimeout, StartFailed,
                     WorkerDied)
from .events import (CANCELLED, CRASH, DEATHS, EXITED, KILLED, OOM, PROTOCOL_ERROR, START_FAILED,
                     STOPS, TIMEOUT, PoolEvents, exit_cause)
from .manager import PoolManager
from .routepool import SCALE_AFTER
from .worker import LOG_LINGER, CallLog, HotWorker

__all__ = [
    "CANCELLED", "CRASH", "DEATHS", "EXITED", "KILLED", "LOG_LINGER", "OOM", "PROTOCOL_ERROR",
    "SCALE_AFTER", "START_FAILED", "STOPS", "TIMEOUT", "CallLog", "CallTimeout", "Capacity",
    "ColdStarts", "HotWorker", "NotDelivered", "PoolClosed", "PoolError", "PoolEvents",
    "PoolManager", "QueueTimeout", "StartFailed", "WorkerDied", "default_cpus",
    "default_max_memory_mb", "exit_cause", "node_cpus",
]
