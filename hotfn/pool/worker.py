"""One warm container speaking msgpack frames (docs/protocol.md section 2): a HotWorker sends
requests to its stdin, reads answers and the log from its stdout and stderr, and dies for good
on any fault; and CallLog, one call's stderr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .. import protocol
from ..drivers import Container, ContainerGone, DriverError, ExitStatus
from .errors import CallTimeout, NotDelivered, PoolError, WorkerDied
from .events import CANCELLED, CRASH, PROTOCOL_ERROR, TIMEOUT, exit_cause

if TYPE_CHECKING:
    from .routepool import RoutePool

log = logging.getLogger("hotfn.pool")  # named as before the move: operators filter on it

LOG_CAP = 1024 * 1024  # per call; the rest of a chatty call's stderr is dropped, and said so
STDERR_TAIL = 4096  # kept per worker outside calls, to explain a failed start
# Docker copies a container's stdout and stderr separately, so what a handler wrote to stderr
# just before answering can arrive just after the answer. A call's log stays open that long.
LOG_LINGER = 0.1



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
                    try:
                        status = await self.container.exit_status(timeout=5)
                    except DriverError as exc:  # the engine is gone too (killed, restarting)
                        reason = f"ended (its exit status is unknown: {exc})"
                ended = status.describe() if status else "its end is unknown"
                reason, cause = reason or f"exited ({ended})", exit_cause(status)
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

