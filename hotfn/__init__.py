"""hotfn: serverless functions in Docker containers, kept hot."""


def __getattr__(name: str) -> str:
    # `hotfn.__version__` is looked up lazily: importlib.metadata (and the email package it
    # pulls in) costs ~35 ms and a few MiB at start-up, and the server needs it only on request.
    if name != "__version__":
        raise AttributeError(f"module 'hotfn' has no attribute {name!r}")
    from importlib import metadata

    try:
        # One version string for the server, the CLI, /version and /v1/version: the package's own.
        version = metadata.version("hotfn")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        version = "0.0.0+unknown"
    globals()["__version__"] = version
    return version
