"""What every scenario works with: the processes, the profile, routes it can create (and that
are always deleted), calls it can make, and the time budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .client import Call, ClientProcess
from .direct import DirectProcess
from .functions import ECHO_BODY, FUNCTIONS, SUM_HEADERS, BenchFunction, sum_body
from .profiles import Profile
from .server import BaselineServer, HotfnServer, container_memory_mb, containers

APP = "bench"


class OverBudget(Exception):
    """The run's time budget is spent: the scenario stops where it is."""


@dataclass
class Context:
    profile: Profile
    run_id: str
    server: HotfnServer
    baseline: BaselineServer
    raw_baseline: BaselineServer
    client: ClientProcess
    direct: DirectProcess
    log: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    routes: set[str] = field(default_factory=set)
    sum_payload: tuple[bytes, float] = field(default_factory=sum_body)

    @property
    def functions(self) -> list[BenchFunction]:
        return [FUNCTIONS[k] for k in self.profile.functions]

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check_budget(self) -> None:
        if self.elapsed() > self.profile.budget_seconds:
            raise OverBudget(f"time budget of {self.profile.budget_seconds:g} s spent")

    # -- routes --

    def create_route(self, path: str, fn: BenchFunction, *, hot: bool = True, **fields: Any) -> str:
        """A route of ``fn``; warm containers live 10 minutes idle, so that none is stopped
        mid-scenario; the scenario deletes it (and the runner deletes any left)."""
        defaults: dict[str, Any] = {"memory": fn.memory_mb, "timeout": 120, "startup_timeout": 120,
                                    "queue_timeout": 60}
        if hot:
            defaults.update(format="hot", idle_timeout=600)
        else:
            defaults.update(format="default")
        self.server.create_route(APP, path, fn.image, **{**defaults, **fields})
        self.routes.add(path)
        return path

    def delete_route(self, path: str) -> None:
        self.server.delete_route(APP, path)
        self.routes.discard(path)

    def delete_all_routes(self) -> None:
        for path in list(self.routes):
            self.delete_route(path)

    # -- calls --

    def echo(self, path: str) -> Call:
        return Call(self.server.port, f"/r/{APP}{path}", ECHO_BODY, expect_body=ECHO_BODY)

    def sum(self, path: str) -> Call:
        body, total = self.sum_payload
        return Call(self.server.port, f"/r/{APP}{path}", body, headers=SUM_HEADERS, expect_number=total)

    def baseline_echo(self, raw: bool = False) -> Call:
        port = self.raw_baseline.port if raw else self.baseline.port
        return Call(port, "/", ECHO_BODY, expect_body=ECHO_BODY)

    # -- memory --

    def route_memory_mb(self, path: str) -> list[float]:
        """Memory of each warm container of a route (cgroup; as `docker stats` counts it)."""
        found = []
        for row in containers(f"hotfn.node={self.server.node_id}"):
            if row["route"] == path:
                mb = container_memory_mb(row["id"])
                if mb is not None:
                    found.append(mb)
        return found
