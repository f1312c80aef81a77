"""Running one call: the invoker (hot or cold, deadlines, every failure mapped to an Outcome with
its HTTP status) and the recorder that takes call records and logs to the store in batches.

May import: ``hotfn.pool``, ``hotfn.access``, ``hotfn.store``, ``hotfn.protocol``,
``hotfn.drivers``, ``hotfn.models``.
"""

from ..models import MIN_CPUS  # the least --default-cpus may be (checked by the server)
from .invoker import Invocation, Invoker, Limits, Outcome, cold_env, container_spec
from .recorder import CallRecorder

__all__ = [
    "CallRecorder", "MIN_CPUS", "cold_env", "container_spec", "Invocation", "Invoker", "Limits",
    "Outcome",
]
