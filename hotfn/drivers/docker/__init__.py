"""The Docker engine as hotfn's driver: the only package that talks to Docker.

- driver: DockerDriver, the Driver the server uses; the only module that imports the docker SDK
  (loaded on first need), with errors (the SDK's errors translated where they enter).
- container: a started container's byte pipe (direct stdio over FIFOs, or the attach stream
  demultiplexed by demux), exit status and kill; parked: cold containers started ahead of their
  call; networks: the per-app bridges.
- engine: the engine's API over its unix socket without the SDK (ping, list, remove); images:
  building function images (blocking, for the CLI).

May import: ``hotfn.drivers`` (base), and nothing else of hotfn.
"""

from .driver import DockerDriver

__all__ = ["DockerDriver"]
