"""The SDK's and its transport's errors, translated where they enter into hotfn.drivers' own types.
Never loads the SDK: an error of the SDK's comes only once the SDK is loaded.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from ..base import DriverError, EngineUnavailable, ImageNotFound

# How a conversation with the engine breaks below the API: the connection refused, reset or
# cut mid-answer (requests' ConnectionError, ChunkedEncodingError, timeouts, urllib3's
# ProtocolError ...), or the socket's own OSError. Each means the engine is not there (now).
_TRANSPORT_ERRORS = (
    "http.client.HTTPException",  # (not imported here: it costs an idle server 1 MiB)
    "requests.exceptions.RequestException",
    "urllib3.exceptions.HTTPError",
    "docker.errors.DockerException",  # (its APIError, an answer, is looked at first)
)


def _sdk_error(exc: BaseException, kind: str) -> bool:
    """Whether ``exc`` is the SDK's (or its transport's) error ``kind``; never loads the SDK
    (an error of the SDK's comes only once the SDK is loaded)."""
    module, _, name = kind.rpartition(".")
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


def _transport_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or any(_sdk_error(exc, kind) for kind in _TRANSPORT_ERRORS)


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Translate SDK and transport errors into the driver's own types: every way a call to
    the engine can fail comes out as a DriverError (EngineUnavailable when the engine could not
    be talked to)."""
    try:
        yield
    except DriverError:
        raise
    except Exception as exc:
        if _sdk_error(exc, "docker.errors.ImageNotFound"):
            raise ImageNotFound(str(exc.explanation or exc)) from exc  # type: ignore[attr-defined]
        if _sdk_error(exc, "docker.errors.APIError"):
            raise DriverError(f"{what}: {exc.explanation or exc}") from exc  # type: ignore[attr-defined]
        if _transport_error(exc):
            raise EngineUnavailable(f"{what}: the Docker engine is not reachable "
                                    f"({type(exc).__name__}: {exc})") from exc
        raise
