"""The store's contract: what the rest of hotfn may ask of a store, whichever it is.

``Store`` is the interface the rest of hotfn uses; nothing outside this package knows which
implementation it has. Every method is async so that an implementation can do real I/O.

Async calls are a queue in the store: ``enqueue_call`` commits a call with what it needs to run;
a node claims due calls with a lease (``claim_calls``), and ends each claim by finishing or
requeueing the call. A claim names its node and attempt: a node whose lease ran out (the call was
claimed again meanwhile) can no longer change the call. PostgreSQL implements the claim with
``SELECT ... FOR UPDATE SKIP LOCKED``, so several nodes share one queue.

Every change of an app or route is numbered (``routes_version``) and kept in a change feed
(``changes_since``), so that a node applies the one route a change touches instead of reloading
them all; ``wait_for_changes`` returns early when the store can tell (PostgreSQL's NOTIFY).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping

import trio

from ..models import App, Call, Route, Token

if TYPE_CHECKING:
    from .health import StoreHealth


def display_url(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


class StoreUnavailable(StoreError):
    """The store cannot do what was asked right now (a full disk, an I/O error, a lock held
    too long, a database server that does not answer); the message says why. Nothing was
    changed."""


class QuotaExceeded(StoreError):
    """A tenant's bound is reached (routes, queued calls): nothing was changed; the message says
    which bound, and what the tenant holds."""


class QueueFull(QuotaExceeded):
    """An enqueue refused: the app or the route holds as many async calls (or bytes of their
    requests) as its bound allows."""


@dataclass(frozen=True)
class QueueBounds:
    """What an app and each of its routes may hold in the async queue (queued or running): calls,
    and bytes of their requests. None: no bound."""

    app_calls: int | None = None
    app_bytes: int | None = None
    route_calls: int | None = None
    route_bytes: int | None = None


class StoreUnreachable(StoreUnavailable):
    """The store does not answer at all (its server is down or cut off): every request would
    fail the same way until it is back, so they fail fast meanwhile (``StoreHealth``)."""


# How often the background probe (``Store.watch``) asks a store that answers, and one that
# does not: a dead store is found within a probe, and a store back within half of one.
PROBE_INTERVAL = 1.0
PROBE_INTERVAL_DOWN = 0.5


@dataclass(frozen=True)
class CallRequest:
    """What an async call needs to run (again): the request as the API received it. The route
    is looked up anew each time it runs."""

    method: str
    url: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """A node's hold on a queued call, until ``lease_until`` (Unix time). ``attempt`` is the
    run this claim is for, and fences out an older claim of the same call."""

    call_id: str
    node_id: str
    attempt: int
    lease_until: float


@dataclass
class ClaimedCall:
    call: Call  # status running, attempts == claim.attempt, node_id == claim.node_id
    request: CallRequest
    claim: Claim


@dataclass(frozen=True)
class Change:
    """App or route ``path`` of ``app`` (``path`` None: the app itself) changed at ``seq``;
    read it again to learn how (it may be gone)."""

    seq: int
    app: str
    path: str | None


@dataclass(frozen=True)
class ChangeFeed:
    latest: int  # routes_version now
    changes: list[Change]  # every change after the asked seq, oldest first, if ``complete``
    complete: bool  # False: some are no longer kept (or too many): reload everything


@dataclass(frozen=True)
class NodeInfo:
    """A hotfn server as it registers itself (and refreshes ``heartbeat_at``)."""

    id: str
    address: str  # host:port it serves on
    capacity: int  # containers it may run at once
    version: str
    draining: bool
    started_at: float
    heartbeat_at: float

    def to_json(self, now: float, stale_after: float) -> dict:
        return {"id": self.id, "address": self.address, "capacity": self.capacity,
                "version": self.version, "draining": self.draining,
                "started_at": self.started_at, "heartbeat_at": self.heartbeat_at,
                "alive": now - self.heartbeat_at <= stale_after}


class Store(abc.ABC):
    @abc.abstractmethod
    async def create_app(self, app: App) -> None: ...
    @abc.abstractmethod
    async def get_app(self, name: str) -> App: ...
    @abc.abstractmethod
    async def list_apps(self, *, after: str | None = None, limit: int | None = None) -> list[App]:
        """Apps by name; with ``after``, only those named after it; at most ``limit``."""
    @abc.abstractmethod
    async def update_app(self, app: App) -> None: ...
    @abc.abstractmethod
    async def delete_app(self, name: str, cascade: bool = False) -> None: ...

    @abc.abstractmethod
    async def create_route(self, route: Route, max_routes: int | None = None) -> None:
        """QuotaExceeded if its app has its ``max_routes`` routes already, or (none of its
        own) ``max_routes`` (None: no bound)."""
    @abc.abstractmethod
    async def get_route(self, app: str, path: str) -> Route: ...
    @abc.abstractmethod
    async def list_routes(self, app: str | None = None, *, after: str | None = None,
                          limit: int | None = None) -> list[Route]:
        """Routes by (app, path); with ``app`` and ``after``, only its routes after that path."""
    @abc.abstractmethod
    async def update_route(self, route: Route) -> None: ...
    @abc.abstractmethod
    async def delete_route(self, app: str, path: str) -> None: ...
    @abc.abstractmethod
    async def routes_version(self) -> int:
        """A number that grows whenever any app or route changes (for route caches)."""
    @abc.abstractmethod
    async def changes_since(self, seq: int) -> ChangeFeed:
        """The app and route changes after routes_version ``seq``."""

    async def wait_for_changes(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or earlier once a change may have happened."""
        await trio.sleep(timeout)

    @abc.abstractmethod
    async def save_calls(self, calls: Iterable[Call], logs: Iterable[tuple[str, str, bytes]]) -> None:
        """Insert or update call records, and store (call_id, app, log bytes) logs."""
    @abc.abstractmethod
    async def get_call(self, app: str, call_id: str) -> Call: ...
    @abc.abstractmethod
    async def list_calls(
        self, app: str, *, route: str | None = None, since: float | None = None,
        until: float | None = None, limit: int = 50, before_id: str | None = None,
    ) -> list[Call]: ...
    @abc.abstractmethod
    async def get_log(self, app: str, call_id: str) -> bytes:
        """A call's log; b"" for a call stored without one (empty logs are not written);
        NotFound when there is no such call."""
    @abc.abstractmethod
    async def purge(self, older_than: float) -> int:
        """Delete call records and logs created before ``older_than``; how many calls went.
        A call still in the queue is kept. The space they (and finished queued calls) took is
        given back to the file system where the store can (SQLite's incremental vacuum)."""

    # -- the async-call queue --

    @abc.abstractmethod
    async def enqueue_call(self, call: Call, request: CallRequest,
                           bounds: QueueBounds | None = None) -> None:
        """Commit ``call`` (status ``queued``) with the request to run it with; it can be
        claimed at once. QueueFull, and nothing stored, if it would take its app or route past
        ``bounds`` (checked in the same transaction, so every node's enqueues keep to them)."""
    @abc.abstractmethod
    async def due_routes(self, now: float) -> list[tuple[str, str]]:
        """(app, route path) of every route with a call that can be claimed at ``now``."""
    @abc.abstractmethod
    async def claim_calls(self, node_id: str, app: str, route: str, limit: int,
                          lease_until: float, now: float) -> list[ClaimedCall]:
        """Claim up to ``limit`` of the route's due calls, oldest first, for ``node_id`` until
        ``lease_until``: each becomes ``running`` with one more attempt. A call is due when it
        is queued and its back-off is over, or claimed and its lease has run out. No two claims
        overlap: concurrent callers (other nodes) get other calls or none."""
    @abc.abstractmethod
    async def requeue_call(self, call: Call, claim: Claim, available_at: float) -> bool:
        """End ``claim`` by putting the call back in the queue, due at ``available_at``, its
        record as ``call`` says (status ``queued``, attempts, last error). False, and nothing
        changed, if the claim is no longer held."""
    @abc.abstractmethod
    async def finish_call(self, call: Call, claim: Claim) -> bool:
        """End ``claim`` with the call's final record; the call leaves the queue. False, and
        nothing changed, if the claim is no longer held."""
    @abc.abstractmethod
    async def release_calls(self, node_id: str, now: float) -> int:
        """Make every call claimed by ``node_id`` due at ``now`` (that node restarted: nothing
        of it is running any more); how many. Their attempts stay counted."""

    @abc.abstractmethod
    async def queue_stats(self) -> list[tuple[str, str, int, float]]:
        """Per route with async calls queued or claimed: (app, route, how many, the oldest's
        created_at). Asked at each metrics scrape: one cheap grouped query."""

    # -- nodes --

    @abc.abstractmethod
    async def register_node(self, node: NodeInfo) -> None:
        """Insert or refresh ``node``'s row (a heartbeat)."""
    @abc.abstractmethod
    async def list_nodes(self) -> list[NodeInfo]: ...
    @abc.abstractmethod
    async def remove_node(self, node_id: str) -> None: ...

    # -- API tokens (hotfn.models.tokens, hotfn.access.auth) --
    # A revoked token must fail within a second on every node. Nodes keep the tokens they found
    # and ask ``tokens_version`` (one number, which every create and delete moves on in the same
    # transaction) at most every few hundred ms; a change empties what they kept.

    @abc.abstractmethod
    async def create_token(self, token: Token) -> None: ...
    @abc.abstractmethod
    async def list_tokens(self) -> list[Token]: ...
    @abc.abstractmethod
    async def delete_token(self, token_id: str) -> None:
        """Revoke: the token is gone. NotFound if there is no such token."""
    @abc.abstractmethod
    async def find_token(self, secret_hash: str) -> Token | None:
        """The token whose secret hashes to ``secret_hash``, if any (expired ones too)."""
    @abc.abstractmethod
    async def tokens_version(self) -> int:
        """A number that every token create and delete (revoke) changes."""

    async def check(self) -> None:
        """Raise StoreUnavailable unless the store can be read and written right now."""
        await self.routes_version()

    # -- health: known without asking the store (hotfn.store.health) --

    @property
    def health(self) -> "StoreHealth":
        """What the probe and the last requests found; never does I/O."""
        try:
            return self._health
        except AttributeError:
            from .health import StoreHealth

            self._health: StoreHealth = StoreHealth(type(self).__name__)
            return self._health

    async def probe(self) -> None:
        """Ask the store once whether it can be read and written, and note it in ``health``."""
        try:
            await self.check()
        except StoreUnreachable as exc:
            self.health.unreachable(str(exc))
        except StoreError as exc:
            self.health.failing(str(exc))
        else:
            self.health.ok()

    async def watch(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Probe the store now and then, for ``health`` (and, for a store that can be
        unreachable, to close its circuit once it answers again); its owner's nursery runs it."""
        await self.probe()
        task_status.started()
        while True:
            await trio.sleep(PROBE_INTERVAL if self.health.state == "ok" else PROBE_INTERVAL_DOWN)
            await self.probe()

    async def close(self) -> None:
        pass
