"""hotfn: serverless functions in Docker containers, kept hot."""

from importlib import metadata as _metadata

try:
    # One version string for the server, the CLI, /version and /v1/version: the package's own.
    __version__ = _metadata.version("hotfn")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
