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
