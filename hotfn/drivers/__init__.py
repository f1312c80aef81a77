"""Container runtimes behind one interface (base): what the pools need of a container, and nothing
of how an engine does it. ``hotfn.drivers.docker`` is the real one; tests of pool logic may use
a fake that keeps the same contract.

May import: nothing of hotfn (docker may import base).
"""

from .base import (
    Container,
    ContainerGone,
    ContainerSpec,
    Driver,
    DriverError,
    EngineUnavailable,
    ExitStatus,
    ImageNotFound,
    IsolationUnavailable,
    DEFAULT_USER,
    ISOLATIONS,
    NoShell,
)

__all__ = [
    "Container",
    "ContainerGone",
    "ContainerSpec",
    "Driver",
    "DriverError",
    "EngineUnavailable",
    "ExitStatus",
    "ImageNotFound",
    "IsolationUnavailable",
    "DEFAULT_USER",
    "ISOLATIONS",
    "NoShell",
]
