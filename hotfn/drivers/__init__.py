from .base import (
    Container,
    ContainerGone,
    ContainerSpec,
    Driver,
    DriverError,
    EngineUnavailable,
    ExitStatus,
    ImageNotFound,
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
    "NoShell",
]
