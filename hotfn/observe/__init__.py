"""What a server tells about itself: Prometheus metrics (metrics, written by promtext), the access
log and JSON logs (accesslog), per-route time series for the dashboard (timeseries), W3C trace
context (tracecontext), and telemetry, the one place calls and containers are reported to.

It sits above the pools and the invoker, which it observes: metrics reads the pools' state at a
scrape, telemetry is the pools' PoolEvents and takes the invoker's Outcome.

May import: ``hotfn.invoke``, ``hotfn.pool``, ``hotfn.models``.
"""

from .telemetry import Telemetry
from .metrics import Metrics
from .accesslog import AccessLog, JsonFormatter, use_json_logs
from .timeseries import Series

__all__ = [
    "AccessLog", "JsonFormatter", "Metrics", "Series", "Telemetry", "use_json_logs",
]
