"""The HTTP/1.1 listener: it accepts connections (connection.py serves each) and keeps them within
bounds.

Connections cost file descriptors and memory, so they are bounded, the way nginx does it:
- At most ``max_connections``. At the limit, the connection that has waited longest for a
  request (a new one that sent nothing yet, or an idle keep-alive one) is closed to make room
  for each new one, so a health check gets in while thousands of silent sockets knock; only
  when every connection is busy does the listener stop accepting, until one ends or waits.
- A new connection has ``header_timeout`` for its first request head; an idle one
  ``keepalive_timeout``; a client that does not read a response ``send_timeout`` for each
  SEND_CHUNK of it. Past those the connection is closed (and freed memory is handed back to
  the operating system).

These waits are timed by one server task, not by a cancel scope per request: each kind of
wait is a dict of connection -> deadline in insertion order, which is deadline order (same
timeout for all its entries), so the task looks only at the front, and a keep-alive request
costs two dict operations. Each connection has one cancel scope, made once, which that task
(or the limit, or shutdown) cancels; a connection checks it when a wait ends, so a deadline
that passed as the wait ended never cancels a request that began after it.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator

import trio

from ..api import ApiRequest, ApiResponse
from .connection import HttpConnection

log = logging.getLogger(__name__)

# accept() failing for want of resources: make room or wait, rather than end the listener.
_ACCEPT_CAPACITY_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_TRIM_INTERVAL = 1.0  # seconds between two hand-backs of freed memory, at most


@dataclass
class HttpConfig:
    max_body_size: int = 6 * 1024 * 1024
    max_header_size: int = 64 * 1024
    header_timeout: float = 10.0  # a request head; a new connection's counts from its connect
    request_timeout: float = 30.0  # to receive one whole request, once it has begun
    keepalive_timeout: float = 75.0  # an idle connection between requests
    send_timeout: float = 30.0  # for each SEND_CHUNK of a response to leave
    max_connections: int = 1000
    shutdown_grace: float = 10.0


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None without glibc (musl, macOS: nothing to do there).

    glibc keeps freed blocks in its heap for reuse unless asked: after 40 clients left 5 MiB
    responses unread, the process stayed at 440 MB long after they were gone."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        import ctypes  # here: only a server that dropped a large response needs it

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (ValueError, OSError, AttributeError):
        return None


_malloc_trim: Callable[[int], int] | None | bool = False  # False: not looked up yet



def _expired(waiting: dict["HttpConnection", float], now: float) -> Iterator["HttpConnection"]:
    """Take from ``waiting`` (in deadline order) each connection whose deadline has passed."""
    while waiting:
        connection, deadline = next(iter(waiting.items()))
        if deadline > now:
            return
        del waiting[connection]
        yield connection



class HttpServer:
    def __init__(self, handler: Callable[[ApiRequest], Awaitable[ApiResponse]], config: HttpConfig) -> None:
        self.handler = handler
        self.config = config
        self.stopping = False
        self.connections: set[HttpConnection] = set()
        # Connections waiting, each kind in deadline order (see the module's docstring): new
        # ones for their first byte, idle keep-alive ones, and ones whose client must read.
        self.fresh: dict[HttpConnection, float] = {}
        self.idle: dict[HttpConnection, float] = {}
        self.sending: dict[HttpConnection, float] = {}
        # Held by the one refused connection (connection.py) waiting for the loop to be idle.
        self.refusal_turn = trio.Lock()
        self.room_wanted: trio.Event | None = None  # set when a connection ends or waits
        # Once soon after start-up too: what importing left freed in the heap (~1 MiB) goes
        # back to the operating system.
        self.memory_to_release = True
        self._released_memory_at = -_TRIM_INTERVAL
        self._limit_logged_at = -60.0
        self._listener_scope: trio.CancelScope | None = None

    def _admit(self, stream: trio.abc.Stream) -> HttpConnection:
        connection = HttpConnection(stream, self)
        self.connections.add(connection)
        self.fresh[connection] = connection.accepted_at + self.config.header_timeout
        return connection

    async def serve_connection(self, stream: trio.abc.Stream) -> None:
        """Serve one client connection until it ends; never raises (but Cancelled)."""
        await self._serve(self._admit(stream))

    async def _serve(self, connection: HttpConnection) -> None:
        try:
            await connection.serve()
        except Exception:
            # One connection's bug must not reach the listener's nursery: that would end the server.
            log.exception("unexpected error on a connection; closed it")
        finally:
            self.connections.discard(connection)
            if connection.dropped_large_response:
                self.memory_to_release = True
            if self.room_wanted is not None:
                self.made_room()

    def made_room(self) -> None:
        assert self.room_wanted is not None
        self.room_wanted.set()
        self.room_wanted = None

    def _close_longest_waiting(self) -> bool:
        """Close the connection that has waited longest for a request (new and silent, or idle
        between requests) to make room; False when every connection is busy."""
        oldest = oldest_queue = None
        oldest_since = 0.0
        for queue, timeout in ((self.fresh, self.config.header_timeout),
                               (self.idle, self.config.keepalive_timeout)):
            if queue:
                connection = next(iter(queue))
                since = queue[connection] - timeout
                if oldest is None or since < oldest_since:
                    oldest, oldest_queue, oldest_since = connection, queue, since
        if oldest is None or oldest_queue is None:
            return False
        del oldest_queue[oldest]
        oldest.scope.cancel()
        self.connections.discard(oldest)  # counted out now; its socket closes on its next step
        return True

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        limit = self.config.max_connections
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_CAPACITY_ERRORS:
                        raise
                    log.error("cannot accept a connection (%s) with %d open", exc.strerror,
                              len(self.connections))
                    if not self._close_longest_waiting():
                        await trio.sleep(0.1)
                    continue
                if len(self.connections) >= limit:
                    self._log_limit(limit)
                    while len(self.connections) >= limit and not self._close_longest_waiting():
                        # Every connection is busy: this one waits for room, and the next ones
                        # in the kernel's backlog, until a connection ends or waits.
                        self.room_wanted = self.room_wanted or trio.Event()
                        await self.room_wanted.wait()
                nursery.start_soon(self._serve, self._admit(stream))

    def _log_limit(self, limit: int) -> None:
        now = trio.current_time()
        if now - self._limit_logged_at > 60:
            self._limit_logged_at = now
            log.warning("at the limit of %d connections: closing those that wait for a request, "
                        "longest waiting first; when all are busy, new ones wait", limit)

    async def run_housekeeping(self) -> None:
        """Close connections whose wait passed its deadline; hand freed memory back to the OS.

        Ticks at a tenth of the shortest timeout, at most once a second: a deadline is kept
        within that much."""
        c = self.config
        tick = min(1.0, c.header_timeout / 10, c.keepalive_timeout / 10, c.send_timeout / 10)
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for connection in _expired(self.fresh, now):
                connection.scope.cancel()
            for connection in _expired(self.idle, now):
                connection.scope.cancel()
            for connection in _expired(self.sending, now):
                log.info("closing a connection whose client has not read its response for %gs",
                         c.send_timeout)
                connection.scope.cancel()
            if self.memory_to_release and now - self._released_memory_at >= _TRIM_INTERVAL:
                self.memory_to_release = False
                self._released_memory_at = now
                global _malloc_trim
                if _malloc_trim is False:
                    _malloc_trim = _find_malloc_trim()
                if callable(_malloc_trim):
                    await trio.to_thread.run_sync(_malloc_trim, 0)

    async def serve(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen until stop(); reports the bound (host, port) through task_status."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[:2]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.run_housekeeping)
            with trio.CancelScope() as self._listener_scope:
                task_status.started(bound)
                async with trio.open_nursery() as accepting:
                    for listener in listeners:
                        accepting.start_soon(self._accept, listener, nursery)
            # Stopped: no new connections; waiting ones close now, busy ones after their response.
            for connection in [*self.fresh, *self.idle]:
                connection.scope.cancel()
            with trio.move_on_after(self.config.shutdown_grace):
                while self.connections:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    def stop(self) -> None:
        self.stopping = True
        if self._listener_scope is not None:
            self._listener_scope.cancel()

