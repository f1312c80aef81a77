"""Async calls: the store's queue of accepted calls, claimed and run on this node (dispatcher).

It sits above observe: every run it makes is reported to telemetry, as the API reports sync calls.

May import: ``hotfn.observe``, ``hotfn.invoke``, ``hotfn.store``, ``hotfn.models``.
"""

from .dispatcher import Dispatcher

__all__ = [
    "Dispatcher",
]
