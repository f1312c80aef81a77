"""The SDK's and its transport's errors, translated where they enter into hotfn.drivers' own types.
Never loads the SDK: an error of the SDK's comes only once the SDK is loaded.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from ..base import DriverError, EngineUnavailable, ImageNotFound


def _sdk_error(exc: BaseException, kind: str) -> bool:
    """Whether ``exc`` is the SDK's (or its transport's) error ``kind``; never loads the SDK
    (an error of the SDK's comes only once the SDK is loaded)."""
    module, _, name = kind.rpartition(".")
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Translate SDK and transport errors into the driver's own types."""
    try:
        yield
    except DriverError:
        raise
    except Exception as exc:
        if _sdk_error(exc, "docker.errors.ImageNotFound"):
            raise ImageNotFound(str(exc.explanation or exc)) from exc  # type: ignore[attr-defined]
        if _sdk_error(exc, "docker.errors.APIError"):
            raise DriverError(f"{what}: {exc.explanation or exc}") from exc  # type: ignore[attr-defined]
        if (_sdk_error(exc, "requests.exceptions.ConnectionError")
                or _sdk_error(exc, "docker.errors.DockerException")):
            raise EngineUnavailable(f"{what}: the Docker engine is not reachable ({exc})") from exc
        raise

