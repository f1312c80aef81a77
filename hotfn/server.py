"""Puts the parts together and owns them: one root of nurseries for the whole server.

    services nursery ── the store's probe, route refresh, call-record flushing, log purging,
    │                   pool housekeeping, the HTTP listener and its connections
    └── calls nursery ── every warm container's task, the async-call dispatcher and the calls
                         it runs, cold-container removal

Shutdown runs in order: stop accepting and stop claiming async calls, let requests and async
calls in flight finish (up to the grace period), retire every pool (busy containers finish
their call first), cancel what is left (an async call cut short keeps its claim and runs again
at this node's next start), and only then stop the services, so the last call records are
flushed and no container outlives us.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import resource
import shutil
import sqlite3
from typing import TextIO

import trio

from .access import Authenticator, ImagePolicy
from .api import Api, ApiConfig
from .cluster import NodeIdError, NodeLock, Registration
from .config import Settings
from .drivers import Driver, DriverError
from .http import HttpConfig, HttpServer
from .invoke import MIN_CPUS, Invoker, Limits, container_spec
from .observe import Metrics, Telemetry, accesslog, logthrottle
from .pool import ColdStarts, PoolManager, node_cpus
from .store import Store, StoreError, display_url, is_postgres_url, open_store

log = logging.getLogger(__name__)

# A function network no container of ours has used for this long is removed (an app's last
# network route deleted, or its containers all idle-stopped); the next container makes it again.
NETWORK_LINGER = 60.0


def setup_logging(level: str) -> None:
    """The process's logging (`hotfn serve`): to stderr at ``level``, a fault that repeats (the
    engine away) said once and then counted rather than written thousands of times."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logthrottle.install()


class StartupError(Exception):
    """The server cannot start; the message says why (and what to change)."""


def _open_store(location: str) -> Store:
    try:
        return open_store(location)
    except (StoreError, OSError, sqlite3.Error) as exc:
        shown = display_url(location) if is_postgres_url(location) else repr(location)
        raise StartupError(f"cannot open the store {shown}: {exc}") from None


# Open files kept for all but client connections: the store (SQLite, its journal), the
# engine's connection pool, the listener, logs; and per container a few (its attach socket,
# two FIFOs, one spare).
_RESERVED_FILES = 64
_FILES_PER_CONTAINER = 4


def _raise_open_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit (the soft one is often 1,024,
    which 1,000 clients exhaust); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard


def _max_connections(s: Settings, open_files: int) -> int:
    room = open_files - _RESERVED_FILES - _FILES_PER_CONTAINER * s.max_containers
    if not s.max_connections:
        return max(room, 16)
    if s.max_connections > room:
        log.warning("--max-connections %d leaves too few of the %d open files this process may "
                    "have for %d containers and the store; at most %d would", s.max_connections,
                    open_files, s.max_containers, max(room, 16))
    return s.max_connections


# An admin token shorter than this is refused: it would be guessable.
MIN_ADMIN_TOKEN_LENGTH = 16


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name may resolve anywhere: treated as reachable from the network


def _admin_token(s: Settings) -> str | None:
    """The bootstrap admin token, or None with auth off; StartupError for a setting that
    would leave the API open by mistake."""
    if s.admin_token_file and s.no_auth:
        raise StartupError("--admin-token-file and --no-auth contradict each other; give one")
    if not s.admin_token_file:
        if _is_loopback(s.host):
            return None
        if not s.no_auth:
            raise StartupError(
                f"refusing to listen on {s.host} without authentication: anyone who reaches the "
                "port could run any code. Give --admin-token-file FILE (HOTFN_ADMIN_TOKEN_FILE), "
                "or --no-auth (HOTFN_NO_AUTH=1) if something in front does it")
        log.warning("listening on %s with --no-auth: the API is open to anyone who reaches it", s.host)
        return None
    try:
        with open(s.admin_token_file, encoding="utf-8") as f:
            token = f.read(4096).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise StartupError(f"cannot read the admin token file {s.admin_token_file!r}: {exc}") from None
    if len(token) < MIN_ADMIN_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
        raise StartupError(f"the admin token in {s.admin_token_file!r} must be one line of at least "
                           f"{MIN_ADMIN_TOKEN_LENGTH} printable characters without spaces "
                           "(e.g. from: openssl rand -base64 32)")
    return token


class Server:
    def __init__(self, settings: Settings, *, driver: Driver | None = None, store: Store | None = None,
                 access_log_stream: TextIO | None = None) -> None:
        self.settings = settings
        self._access_log_stream = access_log_stream  # None: stderr
        self._driver = driver
        self._store = store
        self.address: tuple[str, int] | None = None
        self._stop = trio.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def url(self) -> str:
        assert self.address is not None
        return f"http://{self.address[0]}:{self.address[1]}"

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        s = self.settings
        self._admin_token = _admin_token(s)
        for origin in _names(s.allowed_origins, strip="/"):
            if not origin.startswith(("http://", "https://")) or "/" in origin.partition("://")[2]:
                raise StartupError(f"--allowed-origins: {origin!r} is not an origin "
                                   "(scheme://host[:port], e.g. https://admin.example.com)")
        if s.session_lifetime <= 0:
            raise StartupError("--session-lifetime must be more than 0 seconds")
        try:
            self._images = ImagePolicy(s.allowed_images)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        if not MIN_CPUS <= s.default_cpus <= node_cpus():
            raise StartupError(f"--default-cpus must be from {MIN_CPUS} to this machine's "
                               f"{node_cpus()} cores, not {s.default_cpus:g}")
        # Before anything of this node's is touched: another server may be this node.
        try:
            lock = NodeLock(s.node_id)
            lock.acquire()
        except NodeIdError as exc:
            raise StartupError(str(exc)) from None
        try:
            await self._run_locked(task_status)
        finally:
            lock.release()

    async def _run_locked(self, task_status) -> None:
        s = self.settings
        io_dir = os.path.join(s.io_dir, s.node_id) if s.io_dir else None
        if io_dir:
            # FIFOs of containers this node ran before are dead with them.
            shutil.rmtree(io_dir, ignore_errors=True)
        if self._driver is None:
            from .drivers.docker import DockerDriver

            try:
                self._driver = DockerDriver.from_env(io_dir=io_dir, allow_pull=s.allow_pull)
            except DriverError as exc:
                raise StartupError(str(exc)) from None
        driver = self._driver
        store = self._store or _open_store(s.db)
        limits = Limits(max_frame_size=s.max_frame_size, max_response_size=s.max_frame_size,
                        node_id=s.node_id, images=self._images, default_cpus=s.default_cpus)
        if s.log_format == "json":
            accesslog.use_json_logs()
        metrics = None if s.no_metrics else Metrics(s.node_id,
                                                    max_routes_per_app=s.max_metric_routes or None)
        telemetry = Telemetry(
            metrics=metrics,
            access_log=accesslog.AccessLog(s.log_format, self._access_log_stream)
            if not s.no_access_log else None)
        try:
            stale = await driver.remove_containers({"hotfn": "1", "hotfn.node": s.node_id})
        except DriverError as exc:
            with trio.CancelScope(shield=True):
                await store.close()
            raise StartupError(str(exc)) from None
        if stale:
            log.warning("removed %d container(s) left behind by an earlier run of node %s", stale, s.node_id)
        ours = {"hotfn": "1", "hotfn.node": s.node_id}
        try:
            if stale_networks := await driver.remove_networks(ours):
                log.warning("removed %d network(s) left behind by an earlier run of node %s",
                            stale_networks, s.node_id)
        except DriverError as exc:
            log.warning("could not remove the networks of an earlier run: %s", exc)
        registration: Registration | None = None
        try:
            async with trio.open_nursery() as services:
                async with trio.open_nursery() as calls:
                    pools = PoolManager(
                        driver, calls, spec_for=lambda route: container_spec(route, limits),
                        max_containers=s.max_containers, max_memory_mb=s.max_memory_mb,
                        max_frame_size=s.max_frame_size, events=telemetry,
                    )
                    cold_starts = None
                    if s.max_parked > 0 and getattr(driver, "io_dir", None) and hasattr(driver, "park"):
                        cold_starts = ColdStarts(
                            driver, lambda route: container_spec(route, limits),
                            lambda route: (pools.capacity.fits(route.memory, route.app)
                                           and not pools.capacity.waiting
                                           and limits.images.allows(route.image)),
                            max_parked=s.max_parked)
                    invoker = Invoker(driver, pools, calls, limits, cold_starts)
                    api = Api(store, driver, pools, invoker, ApiConfig(
                        domain=s.domain or None, log_retention=s.log_retention, node_id=s.node_id,
                        call_records=s.call_records, async_retry_delay=s.async_retry_delay,
                        async_lease_margin=s.async_lease_margin,
                        async_engine_wait=s.async_engine_wait,
                        record_spill=os.path.join(s.spill_dir, f"{s.node_id}.calls")
                        if s.spill_dir else None,
                        allowed_hosts=_names(s.allowed_hosts),
                        allowed_origins=_names(s.allowed_origins, strip="/"),
                        session_lifetime=s.session_lifetime,
                        max_queued_calls=s.max_queued_calls, max_queued_bytes=s.max_queued_mb << 20,
                        max_route_queued_calls=s.max_route_queued_calls,
                        max_route_queued_bytes=s.max_route_queued_mb << 20,
                        max_routes=s.max_routes),
                        auth=Authenticator(store, admin_token=self._admin_token,
                                           enabled=self._admin_token is not None),
                        images=self._images, telemetry=telemetry)
                    await api.reload_routes()
                    # /health reads what this probe found; a dead store fails requests fast.
                    await services.start(store.watch)
                    if telemetry.access_log is not None:
                        await services.start(telemetry.access_log.run)
                    await services.start(api.run_background)
                    await services.start(pools.run_housekeeping)
                    services.start_soon(_prune_networks, driver)
                    services.start_soon(pools.run_reconcile, ours)
                    if cold_starts is not None:
                        await services.start(functools.partial(
                            cold_starts.run, lambda: [r for r in api.table.all_routes() if not r.is_hot]))
                    # After the routes are loaded: it runs again what this node left unfinished.
                    await calls.start(api.dispatcher.run)
                    http = HttpServer(api.handle, HttpConfig(
                        max_body_size=s.max_body_size, max_header_size=s.max_header_size,
                        header_timeout=s.header_timeout, request_timeout=s.request_timeout,
                        keepalive_timeout=s.keepalive_timeout, send_timeout=s.send_timeout,
                        max_connections=_max_connections(s, _raise_open_file_limit()),
                        shutdown_grace=s.shutdown_grace))
                    if telemetry.metrics is not None:
                        telemetry.metrics.watch(
                            pools=pools, record_lag=api.recorder.lag,
                            connections=lambda: len(http.connections),
                            async_running=lambda: sum(api.dispatcher.stats().values()))
                    http_done = trio.Event()

                    async def serve_http(task_status=trio.TASK_STATUS_IGNORED) -> None:
                        try:
                            await http.serve(s.host, s.port, task_status=task_status)
                        except OSError as exc:
                            if self.address is not None:
                                raise
                            raise StartupError(f"cannot listen on {s.host}:{s.port}: "
                                               f"{exc.strerror or exc}") from None
                        finally:
                            http_done.set()

                    self.address = await services.start(serve_http)
                    log.info("hotfn listening on %s (node %s)", self.url, s.node_id)
                    registration = Registration(
                        store, s.node_id, s.advertise or "%s:%d" % self.address, s.max_containers)
                    await services.start(registration.run)
                    task_status.started(self)
                    await self._stop.wait()
                    if s.drain_time > 0:
                        log.info("draining: /health answers 503 for %gs before the node stops "
                                 "accepting", s.drain_time)
                        api.draining = True
                        with trio.move_on_after(s.drain_time):
                            try:
                                await registration.beat(draining=True)
                            except Exception as exc:
                                log.warning("could not mark node %s draining: %s", s.node_id, exc)
                            await trio.sleep(s.drain_time)
                    log.info("shutting down: finishing calls in flight (up to %gs)", s.shutdown_grace)
                    deadline = trio.current_time() + s.shutdown_grace
                    api.dispatcher.stop_claiming()
                    http.stop()
                    await http_done.wait()
                    with trio.move_on_at(deadline):
                        await api.dispatcher.wait_idle()
                    await pools.close(grace=max(0.0, deadline - trio.current_time()))
                    calls.cancel_scope.cancel()
                if registration is not None:
                    await registration.leave()
                services.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                # Every container is gone by now; their networks go with them.
                with trio.move_on_after(30):
                    try:
                        await driver.remove_networks(ours)
                    except DriverError as exc:
                        log.warning("could not remove this node's networks: %s", exc)
                await store.close()
            if io_dir:
                shutil.rmtree(io_dir, ignore_errors=True)
        log.info("hotfn stopped")


def _names(setting: str, *, strip: str = "") -> tuple[str, ...]:
    """The items of a comma-separated setting of names, lower case."""
    items = (item.strip().rstrip(strip).lower() for item in setting.split(","))
    return tuple(item for item in items if item)


async def _prune_networks(driver: Driver) -> None:
    while True:
        await trio.sleep(min(10.0, NETWORK_LINGER / 2))
        try:
            await driver.prune_networks(NETWORK_LINGER)
        except DriverError as exc:
            log.warning("could not prune networks: %s", exc)
