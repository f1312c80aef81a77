"""hotfn: serverless functions in Docker containers, kept hot."""

# One version string for the server, the CLI, /version and /v1/version, and the package's own
# (pyproject.toml reads it from here). A constant rather than importlib.metadata's lookup, which
# cost ~35 ms and 0.7-2 MiB of RSS for good (importlib.metadata, zipfile, csv, email).
__version__ = "0.1.0"
