"""Server-wide capacity: caps on running containers and their memory, each app's share of them, and
the waiters for room.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Deque

if TYPE_CHECKING:
    from .worker import HotWorker


class Capacity:
    """Server-wide caps on running containers and their memory, with a FIFO of waiters; and
    each app's share of them (tenants: an app's ``max_containers`` and ``max_memory_mb``).

    A waiter whose app is at its own cap waits for its app's containers, not the server's: it
    lets the waiters behind it pass. Among the others the order is strict FIFO.
    """

    def __init__(self, max_containers: int, max_memory_mb: int) -> None:
        self.max_containers = max_containers
        self.max_memory_mb = max_memory_mb
        self.containers = 0
        self.memory_mb = 0
        self._waiters: Deque[_CapacityWaiter] = collections.deque()
        # app -> (max containers, max memory MiB), None for no limit of its own
        self.app_limits: dict[str, tuple[int | None, int | None]] = {}
        self.app_usage: dict[str, list[int]] = {}  # app -> [containers, memory MiB]
        self._waking = False

    def server_fits(self, memory_mb: int, freed: "list[HotWorker]" = ()) -> bool:  # type: ignore[assignment]
        return (
            self.containers - len(freed) + 1 <= self.max_containers
            and self.memory_mb - sum(w.pool.route.memory for w in freed) + memory_mb <= self.max_memory_mb
        )

    def app_fits(self, app: str | None, memory_mb: int, freed: "list[HotWorker]" = ()) -> bool:  # type: ignore[assignment]
        max_containers, max_memory = self.app_limits.get(app, (None, None)) if app else (None, None)
        if max_containers is None and max_memory is None:
            return True
        containers, memory = self.app_usage.get(app, (0, 0))
        own = [w for w in freed if w.pool.route.app == app]
        return (
            (max_containers is None or containers - len(own) + 1 <= max_containers)
            and (max_memory is None or memory - sum(w.pool.route.memory for w in own) + memory_mb <= max_memory)
        )

    def fits(self, memory_mb: int, app: str | None = None) -> bool:
        return self.server_fits(memory_mb) and self.app_fits(app, memory_mb)

    def take(self, memory_mb: int, app: str | None = None) -> None:
        self.containers += 1
        self.memory_mb += memory_mb
        if app is not None:
            usage = self.app_usage.setdefault(app, [0, 0])
            usage[0] += 1
            usage[1] += memory_mb

    def give(self, memory_mb: int, app: str | None = None) -> None:
        self.containers -= 1
        self.memory_mb -= memory_mb
        if app is not None:
            usage = self.app_usage[app]
            usage[0] -= 1
            usage[1] -= memory_mb
            if usage[0] <= 0:
                del self.app_usage[app]
        self._wake()

    def set_app_limits(self, limits: dict[str, tuple[int | None, int | None]]) -> None:
        self.app_limits = {app: lim for app, lim in limits.items() if lim != (None, None)}
        self._wake()  # a cap raised (or lifted) may let someone in

    def wait(self, memory_mb: int, on_grant: Callable[[], None], app: str | None = None) -> "_CapacityWaiter":
        waiter = _CapacityWaiter(memory_mb, on_grant, app)
        self._waiters.append(waiter)
        return waiter

    @property
    def waiting(self) -> "Deque[_CapacityWaiter]":
        return self._waiters

    def cancel(self, waiter: "_CapacityWaiter") -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _wake(self) -> None:
        # Strict FIFO for the server's room: a big request at the head is not overtaken by
        # smaller ones behind it. Only a waiter held by its own app's cap is passed over.
        if self._waking:
            return  # a grant gave room back: the loop below looks again
        self._waking = True
        try:
            granted = True
            while granted:
                granted = False
                for waiter in self._waiters:
                    if not self.app_fits(waiter.app, waiter.memory_mb):
                        continue
                    if not self.server_fits(waiter.memory_mb):
                        return
                    self._waiters.remove(waiter)
                    self.take(waiter.memory_mb, waiter.app)
                    waiter.on_grant()
                    granted = True
                    break
        finally:
            self._waking = False


@dataclass(eq=False)
class _CapacityWaiter:
    memory_mb: int
    on_grant: Callable[[], None]
    app: str | None = None



def default_max_memory_mb() -> int:
    """Most of this machine's memory: three quarters of MemTotal."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(int(line.split()[1]) / 1024 * 0.75)
    except OSError:
        pass
    return 4096

