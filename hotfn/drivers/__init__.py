from .base import (
    Container,
    ContainerGone,
    ContainerSpec,
    Driver,
    DriverError,
    EngineUnavailable,
    ExitStatus,
    ImageNotFound,
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
]
