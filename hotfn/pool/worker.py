"""Warm containers for hot routes: who gets which container, and when containers come and go.

Layout (after httpcore's pool): the bookkeeping in ``RoutePool`` and ``Capacity`` is synchronous
— never an ``await`` between "find an idle worker" and "mark it busy" — and the I/O it decides on
(starting, reading, killing containers) runs in tasks owned by the ``PoolManager``'s nursery.

Invariants:
- A worker has at most ``concurrency`` calls in flight (1 unless its ready frame asked for more)
  and is handed out only while it has room (it is in ``idle``). Answers are matched to calls by
  call id, in any order.
- A worker whose container crashed, timed out, was cancelled mid-call, or spoke a bad frame is
  ``dead`` and never handed out again; its task kills and removes the container. Every call in
  flight on it fails, and only those.
- Waiters are served first come, first served; a worker freed or newly ready goes to the oldest
  waiter before it is parked as idle.
- Every container counts against the server-wide Capacity from the moment its start is decided
  until its worker is gone.
"""

from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Deque

import trio

from .. import protocol
from ..protocol.httpformat import HttpChannel
from ..drivers import Container, ContainerGone, ContainerSpec, Driver, DriverError, ExitStatus
from ..models import Route

log = logging.getLogger("hotfn.pool")  # logger names stay as they were: operators filter on them

LOG_CAP = 1024 * 1024  # per call; the rest of a chatty call's stderr is dropped, and said so
STDERR_TAIL = 4096  # kept per worker outside calls, to explain a failed start
# Docker copies a container's stdout and stderr separately, so what a handler wrote to stderr
# just before answering can arrive just after the answer. A call's log stays open that long.
LOG_LINGER = 0.1
# Scaling out on evidence: a call that finds every container busy starts another only once it
# has waited SCALE_AFTER (the containers there clear most bursts within a few ms, and a start
# costs the machine ~0.1-1 s of CPU that the server and the running containers need), and a
# route has at most MAX_STARTING containers starting at once. A route with no container
# starts one at once. Measured: a burst of 8 clients on a route with one warm container and
# max_concurrency 8 (bench: hotfn_bench.ab --burst).
SCALE_AFTER = 0.02
MAX_STARTING = 2


# Why a container ended, as metrics count it. Deaths: it failed (or was cut short); stops:
# hotfn ended a healthy container.
CRASH, OOM, KILLED, TIMEOUT, PROTOCOL_ERROR = "crash", "oom", "killed", "timeout", "protocol_error"
START_FAILED, CANCELLED = "start_failed", "cancelled"
IDLE, RETIRED, EVICTED, SHUTDOWN = "idle", "retired", "evicted", "shutdown"
EXITED = "exited"  # ended by itself when done: cold (status 0); http format (Connection: close)
DEATHS = (CRASH, OOM, KILLED, TIMEOUT, PROTOCOL_ERROR, START_FAILED, CANCELLED)
STOPS = (IDLE, RETIRED, EVICTED, SHUTDOWN, EXITED)


def exit_cause(status: ExitStatus | None) -> str:
    """The cause a container's own end names: OOM only when the engine says so, a signal
    (128 + n) as killed, anything else as a crash."""
    if status is None:
        return CRASH
    if status.oom_killed:
        return OOM
    if status.code is not None and status.code > 128:
        return KILLED
    return CRASH


class PoolEvents:
    """What the pools (and cold calls) report as containers come and go; these do nothing.
    Called synchronously from the pools' bookkeeping: an implementation must not block."""

    def container_starting(self, route: Route) -> None:
        pass

    def container_ready(self, route: Route, seconds: float) -> None:
        """A hot container sent its ready frame ``seconds`` after its start began."""

    def container_ended(self, route: Route, cause: str) -> None:
        """``cause``: one of DEATHS or STOPS."""


class CallLog:
    """One call's stderr. It stays open after the answer (see LOG_LINGER) until the container's
    next call begins or the container dies; ``done`` says when it may be stored."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._dropped = 0
        self.answered_at: float | None = None
        self.closed = False

    def write(self, data: bytes) -> None:
        room = LOG_CAP - len(self._data)
        self._data += data[:room]
        self._dropped += max(0, len(data) - room)

    def accepts_more(self, now: float) -> bool:
        return not self.closed and (self.answered_at is None or now - self.answered_at < LOG_LINGER)

    def done(self, now: float) -> bool:
        return not self.accepts_more(now)

    def value(self) -> bytes:
        data = bytes(self._data)
        if self._dropped:
            data += f"\n[hotfn: {self._dropped} more bytes of stderr dropped]\n".encode()
        return data


class PoolError(Exception):
    """A call could not be served; ``status`` is the HTTP status that says so best."""

    status = 502
    retryable = False
    log = b""  # what the function wrote to stderr during the failed call, if anything
    # What the client may read, where the message holds the function's own words (its stderr):
    # those go to the call's record and log, not to whoever called.
    public: str | None = None


class QueueTimeout(PoolError):
    status = 503


class StartFailed(PoolError):
    pass


class CallTimeout(PoolError):
    status = 504


class WorkerDied(PoolError):
    """The container ended or broke the protocol during the call."""


class NotDelivered(WorkerDied):
    """The container was gone before the request reached it: safe to try once more."""

    retryable = True


class PoolClosed(PoolError):
    status = 503
    retryable = True


# -- server-wide capacity ---------------------------------------------------------------------


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


# -- call deadlines ---------------------------------------------------------------------------


class CallDeadlines:
    """When each hot call in flight must be answered by, timed by one task (``run``) instead of
    a cancel scope per call: entering and leaving one was ~57 k instructions, 9 % of a hot
    call (callgrind, sequential calls). At its deadline a call's worker is killed
    (HotWorker.time_out), which wakes the call, as a cancel scope would have.

    As with the HTTP server's waits, each timeout has a dict of calls in insertion order, which
    is deadline order (one timeout, a clock that only moves forward), so the task looks only at
    the front of each, and a call costs a dict insert and a delete."""

    def __init__(self) -> None:
        self._by_timeout: dict[float, dict[_Slot, tuple[float, HotWorker]]] = {}
        self._wake_at = math.inf  # when the task wakes next
        self._sleep: trio.CancelScope | None = None  # its sleep, while it sleeps
        self._stopped = False

    def add(self, slot: "_Slot", worker: "HotWorker", deadline: float) -> None:
        # Rounded to the millisecond: calls of one route fall in one dict.
        timeout = round(deadline - trio.current_time(), 3)
        slot.timeout = timeout
        calls = self._by_timeout.get(timeout)
        if calls is None:
            calls = self._by_timeout[timeout] = {}
        calls[slot] = (deadline, worker)
        if deadline < self._wake_at:
            self._wake_at = deadline
            if self._sleep is not None:
                self._sleep.deadline = deadline

    def discard(self, slot: "_Slot") -> None:
        calls = self._by_timeout.get(slot.timeout)
        if calls is not None:
            calls.pop(slot, None)

    def expired(self, now: float) -> list[tuple["_Slot", "HotWorker"]]:
        """Take every call whose deadline has passed; set when to look next."""
        due = []
        wake_at = math.inf
        for timeout, calls in list(self._by_timeout.items()):
            while calls:
                slot, (deadline, worker) = next(iter(calls.items()))
                if deadline > now:
                    wake_at = min(wake_at, deadline)
                    break
                del calls[slot]
                due.append((slot, worker))
            if not calls:
                del self._by_timeout[timeout]
        self._wake_at = wake_at
        return due

    async def run(self) -> None:
        """Until ``stop``: the nursery it runs in may be waiting for its tasks to end."""
        while not self._stopped:
            for slot, worker in self.expired(trio.current_time()):
                worker.time_out(slot)
            with trio.CancelScope(deadline=self._wake_at) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None

    def stop(self) -> None:
        self._stopped = True
        if self._sleep is not None:
            self._sleep.cancel()


# -- one warm container -----------------------------------------------------------------------


@dataclass(eq=False)
class _Slot:
    """One call in flight on a worker, and its answer once it came."""

    call_id: str
    log: CallLog
    stdin_start: int  # bytes written to the container's stdin before this request
    timeout: float = 0.0  # its deadline's distance when registered (CallDeadlines' key)
    frame: protocol.Response | protocol.HandlerError | None = None
    error: PoolError | None = None
    wake: trio.Event | None = None  # set when answered, or when the stdout reader role is free

    @property
    def answered(self) -> bool:
        return self.frame is not None or self.error is not None

    def notify(self) -> None:
        if self.wake is not None:
            self.wake.set()


class HotWorker:
    """One warm container speaking msgpack frames (docs/protocol.md section 2)."""

    STARTING, IDLE, BUSY, DEAD = "starting", "idle", "busy", "dead"
    MALFORMED = "sent a malformed frame"

    def __init__(self, pool: "RoutePool") -> None:
        self.pool = pool
        self.state = self.STARTING
        self.container: Container | None = None
        self.idle_since = trio.current_time()
        self.ready = trio.Event()
        self.gone = trio.Event()
        self.settled = trio.Event()  # ready or gone, whichever came first
        self.holds_capacity = True  # taken before the worker was made, given back when it dies
        self.death: str | None = None
        self.concurrency = 1  # calls it takes at once: its ready frame's `concurrency`
        self.load = 0  # calls handed out on it (acquired and not yet released)
        self.listed = False  # in its pool's ``idle`` list (it has room for another call)
        self.cause: str | None = None  # set with death
        self._decoder = protocol.FrameDecoder(pool.max_frame_size)
        self._slots: dict[str, _Slot] = {}  # calls in flight, by call id
        # With direct stdout, no task of its own reads the container's answers: the task of a
        # call in flight does (one at a time: the reader), handing each answer to its call,
        # so a call's answer wakes its own task and no other (one task switch per call fewer).
        self._reader: _Slot | None = None
        self._logs: list[CallLog] = []  # logs that stderr may still go to: in flight, lingering
        self._stdin_sent = 0
        self._stderr_tail = bytearray()
        self.started_at: float | None = None  # trio clock: when its container's start began

    @property
    def container_id(self) -> str | None:
        return self.container.id if self.container else None

    # Called by the pool's worker task.
    async def read_output(self) -> None:
        """Read the container's stdout and stderr until it ends or misbehaves."""
        assert self.container is not None
        if not self.container.separate_stdout:
            await self._read_all()
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_stdout_until_ready)
            await self._read_all()
            nursery.cancel_scope.cancel()

    async def _read_stdout_until_ready(self) -> None:
        """Direct stdout up to the ready frame; from then on the calls read it (call())."""
        assert self.container is not None
        try:
            while self.state == self.STARTING and not self.ready.is_set():
                data = await self.container.receive_stdout()
                if data is None:
                    # Our end of a direct stdout never sees EOF while the process lives; the
                    # process's end is reported by _read_all.
                    return
                self._on_stdout(data)
        except protocol.ProtocolError as exc:
            self.die(f"{self.MALFORMED}: {exc}", PROTOCOL_ERROR)

    async def _read_all(self) -> None:
        """stderr (and stdout, unless it comes directly) until the process ends."""
        assert self.container is not None
        reason, cause = None, CRASH
        try:
            while self.state != self.DEAD:
                output = await self.container.receive_some()
                if output is None:
                    break
                stdout, stderr = output
                if stderr:
                    self._on_stderr(stderr)
                if stdout:
                    self._on_stdout(stdout)
            if self.state != self.DEAD and not self.container.separate_stdout:
                self._decoder.receive_data(b"")
                self._decoder.next_frame()  # raises if stdout ended inside a frame
        except protocol.ProtocolError as exc:
            reason, cause = f"{self.MALFORMED}: {exc}", PROTOCOL_ERROR
        except ContainerGone as exc:
            reason, cause = str(exc), CRASH
        if self.state != self.DEAD:
            if reason is None:
                status: ExitStatus | None = None
                with trio.move_on_after(5):
                    status = await self.container.exit_status(timeout=5)
                ended = status.describe() if status else "its end is unknown"
                reason, cause = f"exited ({ended})", exit_cause(status)
            self.die(reason, cause)

    def _on_stdout(self, data: bytes) -> None:
        self._decoder.receive_data(data)
        while self.state != self.DEAD:
            frame = self._decoder.next_frame()
            if frame is protocol.NEED_DATA:
                return
            self._on_frame(frame)

    def _on_frame(self, frame: protocol.Frame) -> None:
        if self.state == self.STARTING:
            if not isinstance(frame, protocol.Ready):
                self.die(f"sent a {type(frame).__name__} frame before its ready frame", PROTOCOL_ERROR)
            elif frame.version != protocol.PROTOCOL_VERSION:
                self.die(f"speaks protocol version {frame.version}, not {protocol.PROTOCOL_VERSION}",
                         PROTOCOL_ERROR)
            else:
                self.concurrency = frame.concurrency
                self.ready.set()
                self.settled.set()
            return
        slot = None
        if isinstance(frame, (protocol.Response, protocol.HandlerError)):
            slot = self._slots.pop(frame.call_id, None)
        if slot is None:
            # Not an answer, a second answer, or one to a call not in flight (never sent, or
            # already answered): the container's view of the conversation is not ours.
            self.die(f"sent an unexpected {type(frame).__name__} frame", PROTOCOL_ERROR)
            return
        slot.frame = frame
        slot.notify()

    def _on_stderr(self, data: bytes) -> None:
        # A call's log holds what the container wrote while the call was in flight (and for
        # LOG_LINGER after): with several calls in flight, each of their logs gets it.
        written = False
        if self._logs:
            now = trio.current_time()
            for log in self._logs:
                if log.accepts_more(now):
                    log.write(data)
                    written = True
        if not written:
            self._stderr_tail += data
            del self._stderr_tail[:-STDERR_TAIL]

    def stderr_tail(self) -> str:
        return self._stderr_tail.decode("utf-8", "replace").strip()

    def die(self, reason: str, cause: str = CRASH) -> None:
        """Mark the worker dead (never reused) and fail the calls in flight. Idempotent.
        ``cause``: one of DEATHS or STOPS, for metrics; ``reason`` says it to people."""
        if self.state == self.DEAD:
            return
        self.state = self.DEAD
        self.death = reason
        self.cause = cause
        for log in self._logs:
            log.closed = True
        slots, self._slots = self._slots, {}
        for slot in slots.values():
            if slot.error is None:  # (a call that timed out keeps its CallTimeout)
                slot.error = WorkerDied(f"function container {reason}")
            slot.notify()
        if self._reader is not None and self.container is not None:
            # A call waits on a stdout that will say no more: closing our end wakes it.
            self.container.close_stdout()
        self.pool._forget(self)
        if self.holds_capacity:
            # Given back now, not when the container is finally removed a moment later, so
            # that whoever waits for room is not kept waiting by a container already dying.
            self.holds_capacity = False
            self.pool.manager.capacity.give(self.pool.route.memory, self.pool.route.app)
        self.gone.set()
        self.settled.set()

    def time_out(self, slot: _Slot) -> None:
        """``slot``'s deadline passed before its answer came (CallDeadlines): it fails with
        CallTimeout, and the container, whose state is unknown now, dies."""
        if slot.answered or self._slots.get(slot.call_id) is not slot:
            return
        slot.error = CallTimeout(
            f"function did not answer within its timeout of {self.pool.route.timeout:g} s")
        self.die("timed out", TIMEOUT)

    async def call(self, request: protocol.Request, deadline: float) -> tuple[protocol.Response | protocol.HandlerError, CallLog]:
        """Send one request, wait for its answer until ``deadline`` (trio clock); the call's log."""
        assert self.state == self.BUSY and self.container is not None
        container = self.container
        if request.call_id in self._slots:
            raise WorkerDied(f"call {request.call_id} is already in flight on this container")
        if not self._slots and container.separate_stdout:
            self._check_quiet_stdout()
            if self.state == self.DEAD:
                raise NotDelivered(f"function container {self.death}")
        data = self._encode(request)
        # A new call ends the log of the one before it (lingering after its answer).
        if self._logs:
            for old in self._logs:
                if old.answered_at is not None:
                    old.closed = True
            self._logs = [old for old in self._logs if not old.closed]
        log = CallLog()
        self._logs.append(log)
        slot = self._slots[request.call_id] = _Slot(request.call_id, log, self._stdin_sent)
        self._stdin_sent += len(data)
        # The deadline covers sending too: a container that stops reading its stdin must not
        # hold a large request (and its caller) forever. (Its sender wakes when the container
        # is removed, a moment after time_out.)
        deadlines = self.pool.manager.deadlines
        deadlines.add(slot, self, deadline)
        try:
            try:
                await container.send_all(data)
            except ContainerGone as exc:
                self.die(str(exc), CRASH)
                if isinstance(slot.error, CallTimeout):
                    raise slot.error from None
                raise NotDelivered(f"function container was gone: {exc}") from None
            if not slot.answered:
                await self._await_answer(slot, container.separate_stdout)
            if slot.error is not None:
                if not isinstance(slot.error, CallTimeout) and self._never_read(slot):
                    raise NotDelivered(f"function container {self.death} before the request reached it")
                raise slot.error
            assert slot.frame is not None
            log.answered_at = trio.current_time()
            return slot.frame, log
        except BaseException as exc:
            if not slot.answered:
                # Cancelled mid-call: the container's protocol state is unknown.
                self.die("was abandoned mid-call", CANCELLED)
            log.closed = True
            if isinstance(exc, PoolError):
                exc.log = log.value()
            raise
        finally:
            deadlines.discard(slot)
            if self._slots.get(request.call_id) is slot:
                del self._slots[request.call_id]

    async def _await_answer(self, slot: _Slot, direct: bool) -> None:
        assert self.container is not None
        try:
            while not slot.answered:
                if direct and self._reader is None:
                    self._reader = slot
                    try:
                        data = await self.container.receive_stdout()
                    finally:
                        self._reader = None
                    if data is None:
                        self.die("closed its stdout", CRASH)
                        return
                    try:
                        self._on_stdout(data)
                    except protocol.ProtocolError as exc:
                        self.die(f"{self.MALFORMED}: {exc}", PROTOCOL_ERROR)
                else:
                    slot.wake = trio.Event()
                    await slot.wake.wait()
        finally:
            if direct and self._reader is None:
                # Hand the reader role to a call still waiting, if there is one.
                for other in self._slots.values():
                    if other.wake is not None and not other.wake.is_set():
                        other.wake.set()
                        break

    def _check_quiet_stdout(self) -> None:
        """Between calls a container has nothing to say: what it wrote on stdout since its
        last answer (read now, without waiting) is a broken protocol, and ends it."""
        assert self.container is not None
        try:
            data = self.container.receive_stdout_nowait()
            if data:
                self._on_stdout(data)
        except protocol.ProtocolError as exc:
            self.die(f"{self.MALFORMED}: {exc}", PROTOCOL_ERROR)

    def _never_read(self, slot: _Slot) -> bool:
        """Whether the container died before reading a byte of ``slot``'s request (so that it
        is safe to send it elsewhere)."""
        assert self.container is not None
        unread = self.container.unread_stdin()
        return unread is not None and self._stdin_sent - unread <= slot.stdin_start

    def _encode(self, request: protocol.Request) -> bytes:
        return protocol.encode_frame(request, self.pool.max_frame_size)


class HttpHotWorker(HotWorker):
    """One warm container of a ``format: "http"`` route: HTTP/1.1 on stdin and stdout
    (docs/protocol.md section 6). Only the wire differs; limits, timeouts, faults and reuse
    are the frame worker's."""

    MALFORMED = "sent a malformed HTTP response"

    def __init__(self, pool: "RoutePool") -> None:
        super().__init__(pool)
        self._channel = HttpChannel(pool.max_frame_size, pool.max_frame_size)
        self._decoder = self._channel  # type: ignore[assignment]  # same interface
        self._sent_any = False

    async def read_output(self) -> None:
        # The format has no ready frame: as in IronFunctions, a running container is ready,
        # and its first request waits in the pipe until the function reads it.
        self.ready.set()
        self.settled.set()
        await super().read_output()

    async def call(self, request: protocol.Request, deadline: float) -> tuple[protocol.Response | protocol.HandlerError, CallLog]:
        if not self._sent_any:
            # The first request also waits for the function to start: it gets the start-up time too.
            deadline += self.pool.route.startup_timeout
        return await super().call(request, deadline)

    def _encode(self, request: protocol.Request) -> bytes:
        data = self._channel.send_request(request)
        self._sent_any = True
        return data

    def _on_frame(self, frame: protocol.Frame) -> None:
        super()._on_frame(frame)
        if self._channel.must_close and self.state != self.DEAD:
            self.die("closed its connection after answering (Connection: close)", EXITED)


# -- one route's pool ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Waiter:
    since: float
    granted: trio.Event = field(default_factory=trio.Event)
    worker: HotWorker | None = None
    error: PoolError | None = None


class RoutePool:
    def __init__(self, manager: "PoolManager", route: Route, spec: ContainerSpec) -> None:
        self.manager = manager
        self.route = route
        self.spec = spec
        self.max_frame_size = manager.max_frame_size
        self.workers: set[HotWorker] = set()
        # Workers with room for another call (all of a one-at-a-time one's, while it is idle),
        # a stack: the most recently used is reused first.
        self.idle: list[HotWorker] = []
        self.waiters: Deque[_Waiter] = collections.deque()
        self.pending_capacity: list[_CapacityWaiter] = []
        self.retired = False

    # -- decisions (synchronous) --

    @property
    def starting(self) -> int:
        return sum(1 for w in self.workers if w.state == HotWorker.STARTING)

    def _want_starts(self) -> int:
        """How many more containers to start now: min_warm, and enough for the waiters once
        one of them has waited SCALE_AFTER (at once when no container is up); at most
        MAX_STARTING at a time."""
        if self.retired:
            return 0
        live = len(self.workers)
        starting = self.starting
        pending = len(self.pending_capacity)
        wanted = self.route.min_warm - live - pending
        if self.waiters and (live == starting or trio.current_time() - self.waiters[0].since >= SCALE_AFTER):
            wanted = max(wanted, len(self.waiters) - starting - pending)
        room = min(self.route.max_concurrency - live - pending, MAX_STARTING - starting)
        return max(0, min(wanted, room))

    def _maybe_start(self) -> None:
        for _ in range(self._want_starts()):
            if self.manager.reserve(self.route.memory, exclude=self, app=self.route.app):
                self._start_worker()
            else:
                # Queue for capacity; when it is granted the reservation is already taken.
                waiter = self.manager.capacity.wait(self.route.memory, lambda: self._granted(waiter),
                                                    self.route.app)
                self.pending_capacity.append(waiter)

    def _granted(self, waiter: _CapacityWaiter) -> None:
        self.pending_capacity.remove(waiter)
        if self.retired or (not self.waiters and len(self.workers) >= self.route.min_warm):
            self.manager.capacity.give(self.route.memory, self.route.app)
            return
        self._start_worker()

    def _start_worker(self) -> None:
        worker = HttpHotWorker(self) if self.route.format == "http" else HotWorker(self)
        self.workers.add(worker)
        self.manager.nursery.start_soon(self._run_worker, worker)

    def _hand_out(self, worker: HotWorker) -> None:
        worker.load += 1
        worker.state = HotWorker.BUSY
        if worker.load >= worker.concurrency and worker.listed:
            worker.listed = False
            self.idle.remove(worker)  # (the top of the stack, in the common case)

    def _offer(self, worker: HotWorker) -> None:
        """A worker has room: the oldest waiters get it, else it is listed as idle."""
        while self.waiters and worker.load < worker.concurrency:
            waiter = self.waiters.popleft()
            if not waiter.granted.is_set():
                self._hand_out(worker)
                waiter.worker = worker
                waiter.granted.set()
        if worker.load >= worker.concurrency:
            return
        if not worker.listed:
            worker.listed = True
            self.idle.append(worker)
        if worker.load == 0:
            worker.state = HotWorker.IDLE
            worker.idle_since = trio.current_time()
            self.manager.relieve()

    def _forget(self, worker: HotWorker) -> None:
        """Called once when a worker dies: drop it from the books."""
        if worker.listed:
            worker.listed = False
            self.idle.remove(worker)

    # -- what callers use --

    async def acquire(self) -> HotWorker:
        """A busy-marked worker for one call; QueueTimeout after the route's queue timeout."""
        if self.retired:
            raise PoolClosed("route was updated; retry")
        if self.idle and not self.waiters:
            worker = self.idle[-1]
            self._hand_out(worker)
            return worker
        waiter = _Waiter(trio.current_time())
        self.waiters.append(waiter)
        self._maybe_start()
        try:
            if (not waiter.granted.is_set()
                    and len(self.workers) + len(self.pending_capacity) < self.route.max_concurrency):
                # Busy containers may free up soon: start more only if this call had to wait.
                # (A pool at its max_concurrency skips this wait and its cancel scope: under
                # load every queued call would pay for one.)
                with trio.move_on_after(SCALE_AFTER):
                    await waiter.granted.wait()
                if not waiter.granted.is_set():
                    self._maybe_start()
            with trio.move_on_at(waiter.since + self.route.queue_timeout):
                await waiter.granted.wait()
        except BaseException:
            self._abandon(waiter)
            raise
        if waiter.worker is not None:
            return waiter.worker
        if waiter.error is not None:
            raise waiter.error
        self._abandon(waiter)
        capacity = self.manager.capacity
        if self.pending_capacity and not capacity.app_fits(self.route.app, self.route.memory):
            raise QueueTimeout(
                f"app {self.route.app} is at its max_containers or max_memory_mb; route "
                f"{self.route.path} found no room within its queue timeout of {self.route.queue_timeout:g} s"
            )
        if self.pending_capacity:
            raise QueueTimeout(
                f"the server is at its container or memory cap; route {self.route.path} found no "
                f"room within its queue timeout of {self.route.queue_timeout:g} s"
            )
        raise QueueTimeout(
            f"all {self.route.max_concurrency} container(s) of route {self.route.path} stayed busy "
            f"for its queue timeout of {self.route.queue_timeout:g} s"
        )

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.worker is not None:
            # Granted while we were being cancelled: pass the worker on.
            worker, waiter.worker = waiter.worker, None
            self.release(worker)
        else:
            waiter.granted.set()
            try:
                self.waiters.remove(waiter)
            except ValueError:
                pass

    def release(self, worker: HotWorker) -> None:
        worker.load -= 1
        if worker.state == HotWorker.DEAD:
            self._maybe_start()
        elif self.retired:
            if worker.load == 0:
                worker.die("retired (route updated)", RETIRED)
        else:
            self._offer(worker)

    def retire(self) -> None:
        """Stop serving new calls; idle containers go now, busy ones after their call."""
        self.retired = True
        for worker in [w for w in self.idle if w.load == 0]:
            worker.die("retired (route updated)", RETIRED)
        for waiter in self.pending_capacity:
            self.manager.capacity.cancel(waiter)
        self.pending_capacity.clear()
        for waiter in list(self.waiters):
            if not waiter.granted.is_set():
                waiter.error = PoolClosed("route was updated while this call waited")
                waiter.granted.set()
        self.waiters.clear()
        for worker in list(self.workers):
            if worker.state == HotWorker.STARTING:
                worker.die("retired (route updated)", RETIRED)

    # -- the task behind each worker --

    async def _run_worker(self, worker: HotWorker) -> None:
        try:
            await self._serve(worker)
        except StartFailed as exc:
            self._start_failed(exc)
            worker.die(str(exc), START_FAILED)
        except DriverError as exc:
            self._start_failed(StartFailed(f"could not start a container of {self.spec.image}: {exc}"))
            worker.die(str(exc), START_FAILED)
        except Exception as exc:
            # A bug here must not take down every other route's containers with it.
            log.exception("worker of route %s%s failed", self.route.app, self.route.path)
            self._start_failed(StartFailed(f"internal error starting a container: {exc!r}"))
            worker.die(repr(exc), START_FAILED)
        finally:
            was_ready = worker.ready.is_set()
            worker.die(worker.death or "stopped", SHUTDOWN)
            if worker.started_at is not None:
                # Reported now, not after the removal below (which can take seconds).
                cause = worker.cause or CRASH
                if not was_ready and cause not in STOPS:
                    cause = START_FAILED
                self.manager.events.container_ended(self.route, cause)
            with trio.CancelScope(shield=True):
                if worker.container is not None:
                    await worker.container.kill()
            self.workers.discard(worker)
            self.manager.worker_gone(self, worker)
            # Replace a container that served and died; after a failed start only waiters
            # trigger another try (min_warm retries come from housekeeping, once a second).
            if was_ready or self.waiters:
                self._maybe_start()

    async def _serve(self, worker: HotWorker) -> None:
        startup = self.route.startup_timeout
        worker.started_at = trio.current_time()
        self.manager.events.container_starting(self.route)
        with trio.move_on_after(startup) as scope:
            worker.container = await self.manager.driver.start(self.spec)
        if scope.cancelled_caught:
            raise StartFailed(f"container of {self.spec.image} was not created within {startup:g} s")
        if worker.state == HotWorker.DEAD:
            return  # retired while it was being created
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.read_output)
            with trio.move_on_after(startup):
                await worker.settled.wait()
            if worker.ready.is_set() and worker.state != HotWorker.DEAD:
                self.manager.events.container_ready(self.route, trio.current_time() - worker.started_at)
                self._offer(worker)
                self._maybe_start()  # the next one, if more are wanted (MAX_STARTING)
                await worker.gone.wait()
            nursery.cancel_scope.cancel()
        # Raised out here, not inside the nursery, so that it is not wrapped in a group.
        if not worker.ready.is_set():
            why = worker.death or f"sent no ready frame within its start-up timeout of {startup:g} s"
            worker.die(why, START_FAILED)
            if why.startswith("retired"):
                return
            tail = worker.stderr_tail()
            failure = StartFailed(f"function container {why}" + (f"; its stderr: {tail}" if tail else ""))
            if tail:
                failure.public = f"function container {why}; its stderr is in the call's log"
                failure.log = tail.encode() + b"\n"
            raise failure

    def _start_failed(self, exc: StartFailed) -> None:
        log.warning("route %s%s: %s", self.route.app, self.route.path, exc)
        # The oldest waiter hears why; the others keep waiting for another try.
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.granted.is_set():
                waiter.error = exc
                waiter.granted.set()
                break

    def stats(self) -> dict[str, int]:
        return {
            "workers": len(self.workers),
            "idle": sum(1 for w in self.idle if w.load == 0),
            "in_flight": sum(w.load for w in self.workers),
            "starting": self.starting,
            "waiting": sum(1 for w in self.waiters if not w.granted.is_set()),
        }


# -- all pools of this server -------------------------------------------------------------------


class PoolManager:
    """Owns every route's pool, the server-wide capacity, and the tasks of every warm container."""

    def __init__(
        self,
        driver: Driver,
        nursery: trio.Nursery,
        *,
        spec_for: Callable[[Route], ContainerSpec],
        max_containers: int = 64,
        max_memory_mb: int = 8192,
        max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE,
        events: PoolEvents | None = None,
    ) -> None:
        self.driver = driver
        self.events = events or PoolEvents()
        self.nursery = nursery
        self.spec_for = spec_for
        self.capacity = Capacity(max_containers, max_memory_mb)
        self.max_frame_size = max_frame_size
        self.pools: dict[tuple[str, str], RoutePool] = {}
        self._retired: set[RoutePool] = set()
        self.closed = False
        self.deadlines = CallDeadlines()
        nursery.start_soon(self.deadlines.run)

    def pool_for(self, route: Route) -> RoutePool:
        key = (route.app, route.path)
        pool = self.pools.get(key)
        # Identity first: the route table hands out the same Route object until it changes, so
        # the common case skips computing revisions on every request.
        if pool is not None and (pool.route is route or pool.route.revision() == route.revision()):
            if route.updated_at >= pool.route.updated_at:
                pool.route = route  # timeouts and limits apply at once; they need no new container
            return pool
        if pool is not None and pool.route.updated_at > route.updated_at:
            # A call that waited across an update still holds the old route: it runs on the new
            # revision's pool rather than bringing the old revision back (which would retire the
            # new pool and start its containers again).
            return pool
        if self.closed:
            raise PoolClosed("server is shutting down")
        if pool is not None:
            self._retire(pool)
        pool = self.pools[key] = RoutePool(self, route, self.spec_for(route))
        return pool

    def route_changed(self, route: Route) -> None:
        """A route was created or updated: swap its pool if needed and keep min_warm."""
        pool = self.pool_for(route)
        pool._maybe_start()

    def route_removed(self, app: str, path: str | None = None) -> None:
        for key in [k for k in self.pools if k[0] == app and (path is None or k[1] == path)]:
            self._retire(self.pools.pop(key))

    def _retire(self, pool: RoutePool) -> None:
        pool.retire()
        if pool.workers:
            self._retired.add(pool)

    def set_app_limits(self, limits: dict[str, tuple[int | None, int | None]]) -> None:
        """Each app's (max_containers, max_memory_mb) on this node; None: no limit of its own."""
        self.capacity.set_app_limits(limits)

    def _idle_workers(self, exclude: RoutePool | None = None) -> list[HotWorker]:
        # (Only those with no call in flight: one with room for more calls is not idle.)
        return sorted((w for p in self.pools.values() if p is not exclude for w in p.idle if w.load == 0),
                      key=lambda w: w.idle_since)

    def reserve(self, memory_mb: int, exclude: RoutePool | None = None, app: str | None = None) -> bool:
        """Take capacity for one container, stopping idle containers of other routes if needed
        (under an app's own cap, only that app's)."""
        capacity = self.capacity
        if capacity.fits(memory_mb, app):
            capacity.take(memory_mb, app)
            return True
        idle = self._idle_workers(exclude)
        chosen: list[HotWorker] = []
        for worker in idle:
            if capacity.app_fits(app, memory_mb, chosen):
                break
            if worker.pool.route.app == app:
                chosen.append(worker)
        if not capacity.app_fits(app, memory_mb, chosen):
            return False
        for worker in idle:
            if capacity.server_fits(memory_mb, chosen):
                break
            if worker not in chosen:
                chosen.append(worker)
        if not capacity.server_fits(memory_mb, chosen):
            return False
        for worker in chosen:
            worker.die("stopped to make room for another route", EVICTED)
        if not capacity.fits(memory_mb, app):
            return False  # what was freed went to someone who had waited longer
        capacity.take(memory_mb, app)
        return True

    def relieve(self) -> None:
        """Someone waits for room and a container just went idle: stop idle ones for them."""
        while self.capacity.waiting:
            idle = self._idle_workers()
            if not idle:
                return
            victim = None
            for waiter in list(self.capacity.waiting):
                if not self.capacity.app_fits(waiter.app, waiter.memory_mb):
                    # Held by its app's own cap: only that app's idle containers help it.
                    own = [w for w in idle if w.pool.route.app == waiter.app]
                    if own and self.capacity.app_fits(waiter.app, waiter.memory_mb, own):
                        victim = own[0]
                        break
                    continue
                if self.capacity.server_fits(waiter.memory_mb, idle):
                    victim = idle[0]
                break  # the head of the server's FIFO
            if victim is None:
                return
            victim.die("stopped to make room for another route", EVICTED)

    def worker_gone(self, pool: RoutePool, worker: HotWorker) -> None:
        if pool in self._retired and not pool.workers:
            self._retired.discard(pool)

    async def run_housekeeping(self, *, interval: float = 1.0, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Stop containers idle past their route's idle_timeout; restore min_warm."""
        task_status.started()
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            for pool in list(self.pools.values()):
                keep = pool.route.min_warm
                # The oldest idle containers go first; min_warm of them stay whatever their age.
                for worker in sorted((w for w in pool.idle if w.load == 0), key=lambda w: w.idle_since):
                    if len(pool.workers) <= keep:
                        break
                    if now - worker.idle_since >= pool.route.idle_timeout:
                        worker.die(f"idle for {pool.route.idle_timeout:g} s", IDLE)
                pool._maybe_start()

    async def close(self, grace: float = 10.0) -> None:
        """Retire every pool; calls in flight get ``grace`` seconds; then every container goes."""
        self.closed = True
        pools = list(self.pools.values()) + list(self._retired)
        self.pools.clear()
        for pool in pools:
            pool.retire()
        with trio.move_on_after(grace):
            while any(p.workers for p in pools):
                await trio.sleep(0.05)
        for pool in pools:
            for worker in list(pool.workers):
                worker.die("server shutting down", SHUTDOWN)
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            while any(p.workers for p in pools):
                await trio.sleep(0.05)
        self.deadlines.stop()  # no call is left to time

    def stats(self) -> dict[str, object]:
        return {
            "containers": self.capacity.containers,
            "memory_mb": self.capacity.memory_mb,
            "max_containers": self.capacity.max_containers,
            "max_memory_mb": self.capacity.max_memory_mb,
            "routes": {f"{a}{p}": pool.stats() for (a, p), pool in self.pools.items()},
            # Apps with a cap of their own or containers running: their use against their caps.
            "apps": {app: {"containers": used[0], "memory_mb": used[1],
                           "max_containers": self.capacity.app_limits.get(app, (None, None))[0],
                           "max_memory_mb": self.capacity.app_limits.get(app, (None, None))[1]}
                     for app in sorted(set(self.capacity.app_usage) | set(self.capacity.app_limits))
                     for used in [self.capacity.app_usage.get(app, (0, 0))]},
        }


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


__all__ = [
    "CallTimeout", "Capacity", "HotWorker", "NotDelivered", "PoolClosed", "PoolError",
    "PoolManager", "QueueTimeout", "RoutePool", "StartFailed", "WorkerDied", "default_max_memory_mb",
]
