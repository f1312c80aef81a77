from .driver import DockerDriver

__all__ = ["DockerDriver"]
