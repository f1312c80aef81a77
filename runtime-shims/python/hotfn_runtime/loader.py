"""Finds the author's handler and calls it, sync or async."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
from typing import Any, Callable


class LoadError(Exception):
    pass


def load_handler(spec: str | None = None, function_dir: str | None = None) -> Callable[..., Any]:
    """Import ``module:attr`` (env HOTFN_HANDLER, default ``func:handler``) from the function dir."""
    spec = spec or os.environ.get("HOTFN_HANDLER") or "func:handler"
    function_dir = function_dir or os.environ.get("HOTFN_FUNCTION_DIR") or os.getcwd()
    module_name, _, attr = spec.partition(":")
    attr = attr or "handler"
    if function_dir not in sys.path:
        sys.path.insert(0, function_dir)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise LoadError(f"cannot import {module_name!r} from {function_dir}: {exc!r}") from exc
    try:
        handler = getattr(module, attr)
    except AttributeError:
        raise LoadError(f"module {module_name!r} has no {attr!r}") from None
    if not callable(handler):
        raise LoadError(f"{spec} is not callable")
    return handler


class Caller:
    """Calls a handler; a coroutine result runs on one event loop kept for the process."""

    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, *args: Any) -> Any:
        result = self.handler(*args)
        if inspect.isawaitable(result):
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            result = self._loop.run_until_complete(_await(result))
        return result


async def _await(awaitable: Any) -> Any:
    return await awaitable
