"""Call records and logs on their way to the store: buffered, and written in batches off the
request path; what the store cannot take by shutdown is kept in a spill file, written at the
next start."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import stat

import trio

from ..models import Call
from ..pool import LOG_LINGER, CallLog
from ..store import Store, StoreUnavailable

log = logging.getLogger("hotfn.calls")  # named as before the move: operators filter on it

# Disk taken ahead for the spill file, so that it can be written on a disk that has since
# filled up (the database's, often): some 10,000 records without logs. Given back at a clean
# shutdown.
SPILL_RESERVE = 4 << 20


class _Batch:
    """One write of records: those who wait for it learn how it went."""

    def __init__(self) -> None:
        self.written = trio.Event()
        self.error: BaseException | None = None

    def done(self, error: BaseException | None = None) -> None:
        self.error = error
        self.written.set()


class CallRecorder:
    """Writes call records and logs to the store in batches (group commit), off the request path.

    A record waits at most ``interval`` for others to join its batch; a batch is one write. While
    a write is under way, new records gather for the next one, which begins when it ends. So a
    record is committed within ``interval`` plus two writes of its being recorded (before its
    answer is sent): that, measured at full load, is what a SIGKILL can lose (README).
    ``record_committed`` waits until its record is committed (``--call-records sync``) and
    skips the wait for others.

    A hot call's log may still be filling for a moment after its answer (pool.CallLog); it is
    written once it is done, and a reader that flushes waits that moment out.
    """

    MAX_BUFFERED = 100_000
    FULL_BATCH = 500  # records: written at once, without waiting out the interval

    def __init__(self, store: Store, *, interval: float = 0.02, spill_path: str | None = None) -> None:
        self.store = store
        self.interval = interval
        # Where the records the store could not take by shutdown wait for the next start
        # (a full disk); None: they are lost, and the log says how many.
        self.spill_path = spill_path
        # What was loaded from the spill file and is not yet saved: call ids, "log:" + call id.
        self._unspilled: set[str] = set()
        self._calls: dict[str, Call] = {}
        self._logs: list[tuple[Call, bytes | CallLog]] = []
        self._lock = trio.Lock()
        self._has_work = trio.Event()  # something is buffered
        self._urgent = trio.Event()  # someone waits for the next write, or it is full
        self._batch = _Batch()  # the next write
        self._oldest_at: float | None = None  # trio clock: when the oldest unsaved record came

    def lag(self) -> tuple[int, float]:
        """Records waiting to be written, and how long the oldest has waited (seconds)."""
        if not self._calls or self._oldest_at is None:
            return len(self._calls), 0.0
        return len(self._calls), max(0.0, trio.current_time() - self._oldest_at)

    def record(self, call: Call, log_data: bytes | CallLog | None = None) -> None:
        if not self._calls:
            self._oldest_at = trio.current_time()
        self._calls[call.id] = call
        if log_data is not None:
            self._logs.append((call, log_data))
        self._has_work.set()
        if len(self._calls) >= self.FULL_BATCH:
            self._urgent.set()
        if len(self._calls) > self.MAX_BUFFERED:
            # The store has been failing for a long while: keep memory bounded, say so.
            oldest = next(iter(self._calls))
            del self._calls[oldest]
            self._logs = [e for e in self._logs if e[0].id != oldest]
            log.error("call records are not being saved; dropped the record of call %s", oldest)

    def record_log(self, call: Call, log_data: bytes | CallLog) -> None:
        """Only the log of ``call`` (its record is saved another way: an async call's)."""
        self._logs.append((call, log_data))
        self._has_work.set()

    async def record_committed(self, call: Call, log_data: bytes | CallLog | None = None) -> None:
        """Record ``call`` and return once its record is committed (its log may follow).
        StoreUnavailable if that write failed (the record stays buffered and is retried)."""
        self.record(call, log_data)
        batch = self._batch
        self._urgent.set()
        await batch.written.wait()
        if batch.error is not None:
            raise StoreUnavailable(f"the call's record could not be saved: {batch.error}")

    def _logs_filling(self) -> bool:
        now = trio.current_time()
        return any(isinstance(log, CallLog) and not log.done(now) for _, log in self._logs)

    async def flush(self, *, wait_for_logs: bool = False) -> None:
        if wait_for_logs:
            while self._logs_filling():
                await trio.sleep(LOG_LINGER / 4)
        async with self._lock:
            # What is buffered now is this write; what comes while it runs, the next one.
            batch, self._batch = self._batch, _Batch()
            now = trio.current_time()
            calls = list(self._calls.values())
            ready = [entry for entry in self._logs
                     if not (isinstance(entry[1], CallLog) and not entry[1].done(now))]
            if not calls and not ready:
                batch.done()
                return
            logs = []
            for call, log_data in ready:
                data = log_data.value() if isinstance(log_data, CallLog) else log_data
                # An empty log is not written (the store answers b"" for a call without
                # one): most calls write nothing, and a row each doubled the writes. Not
                # for a later run of an async call, whose empty log replaces an earlier one.
                if data or call.attempts > 1:
                    logs.append((call.id, call.app, data))
            try:
                await self.store.save_calls(calls, logs)
            except BaseException as exc:
                batch.done(exc)
                raise
            batch.done()
            # Only what was saved leaves the buffers: a failed save is tried again, and what
            # was recorded during the save waits for the next one.
            for call in calls:
                if self._calls.get(call.id) is call:
                    del self._calls[call.id]
            if self._unspilled:
                self._unspilled.difference_update(c.id for c in calls)
                self._unspilled.difference_update("log:" + call.id for call, _ in ready)
                if not self._unspilled:
                    self._remove_spill()
            # What is left came during the write (or is a newer version of a saved record).
            self._oldest_at = now if self._calls else None
            saved = {id(entry) for entry in ready}
            self._logs = [entry for entry in self._logs if id(entry) not in saved]

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if self.spill_path is not None:
            self._take_spill(*await trio.to_thread.run_sync(self._read_spill))
            await trio.to_thread.run_sync(self._reserve)
        task_status.started()
        failures = 0
        try:
            while True:
                await self._has_work.wait()
                if failures:
                    # Back off while the store fails: retry, but do not hammer it (or the log).
                    await trio.sleep(min(5.0, self.interval * 2 ** failures))
                else:
                    with trio.move_on_after(self.interval):
                        await self._urgent.wait()
                self._has_work = trio.Event()
                self._urgent = trio.Event()
                try:
                    await self.flush()
                    failures = 0
                except Exception as exc:
                    failures += 1
                    self._has_work.set()
                    log.error("could not save call records (attempt %d, will retry): %s",
                              failures, exc, exc_info=failures == 1)
                if self._logs:  # logs still filling: come back for them
                    self._has_work.set()
        finally:
            with trio.CancelScope(shield=True):
                # At shutdown the containers are gone, so their logs are complete within
                # LOG_LINGER; wait that out (bounded), then write everything.
                with trio.move_on_after(LOG_LINGER * 5):
                    while self._logs_filling():
                        await trio.sleep(LOG_LINGER / 4)
                try:
                    await self.flush()
                except Exception as exc:
                    self._spill(exc)
                else:
                    self._unreserve()

    # -- the spill file: what a shutdown could not save, for the next start --
    # One JSON object a line: {"call": {field: value}} or {"log": [call id, app, base64]}.

    def _spill(self, why: BaseException) -> None:
        logs = [(call, data.value() if isinstance(data, CallLog) else data)
                for call, data in self._logs]
        logs = [(call, data) for call, data in logs if data or call.attempts > 1]
        lines = ([json.dumps({"call": dataclasses.asdict(call)}).encode() + b"\n"
                  for call in self._calls.values()]
                 + [json.dumps({"log": [call.id, call.app, base64.b64encode(data).decode()]})
                    .encode() + b"\n" for call, data in logs])
        what = f"{len(self._calls)} call record(s) and {len(logs)} log(s)"
        if self.spill_path is None:
            log.error("lost %s at shutdown: the store could not take them (%s)", what, why)
            return
        try:
            kept = self._write_spill(lines)
        except OSError as exc:
            log.error("lost %s at shutdown: the store could not take them (%s), nor the spill "
                      "file %s (%s)", what, why, self.spill_path, exc)
            return
        if kept < len(lines):
            log.error("could not save %s at shutdown (%s): kept %d of them in %s, which the next "
                      "start writes to the store; the disk took no more, %d are lost", what,
                      why, kept, self.spill_path, len(lines) - kept)
        else:
            log.error("could not save %s at shutdown (%s): kept in %s, which the next start "
                      "writes to the store", what, why, self.spill_path)

    def _write_spill(self, lines: list[bytes]) -> int:
        """Write ``lines`` to the spill file, in the room reserved for it first (a full disk
        has none left); how many were written whole."""
        assert self.spill_path is not None
        _own_directory(os.path.dirname(self.spill_path))
        temporary = f"{self.spill_path}.{os.getpid()}.tmp"
        try:
            os.remove(temporary)  # left by a spill that was cut short
        except FileNotFoundError:
            pass
        try:
            os.rename(self._reserve_path, temporary)
            fd = os.open(temporary, os.O_WRONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        kept = 0
        with open(fd, "wb", buffering=0) as f:
            try:
                for line in lines:
                    view = memoryview(line)
                    while view:
                        view = view[f.write(view):]
                    kept += 1
            except OSError:
                pass  # no room beyond the reserve: what is whole is kept
            f.truncate(sum(len(line) for line in lines[:kept]))
            os.fsync(f.fileno())
        os.replace(temporary, self.spill_path)
        return kept

    @property
    def _reserve_path(self) -> str:
        return f"{self.spill_path}.reserve"

    def _unreserve(self) -> None:
        """All was saved: the room is given back (the next start takes it again)."""
        if self.spill_path is not None:
            try:
                os.remove(self._reserve_path)
            except OSError:
                pass

    def _reserve(self) -> None:
        """Take room for the spill file now, while the disk has it (on a worker thread)."""
        try:
            _own_directory(os.path.dirname(self._reserve_path))
            fd = os.open(self._reserve_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.posix_fallocate(fd, 0, SPILL_RESERVE)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot reserve %d MiB for the spill file in %s (records a shutdown "
                        "cannot save may be lost): %s", SPILL_RESERVE >> 20,
                        os.path.dirname(self._reserve_path), exc)

    def _read_spill(self) -> tuple[list[Call], list[tuple[Call, bytes]]]:
        """The records and logs the spill file holds, checked (on a worker thread)."""
        path = self.spill_path
        assert path is not None
        calls: list[Call] = []
        logs: list[tuple[Call, bytes]] = []
        if not os.path.lexists(path):
            return calls, logs
        try:
            _own_directory(os.path.dirname(path))
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return calls, logs
        except OSError as exc:
            log.error("cannot read the spill file %s: %s", path, exc)
            return calls, logs
        with open(fd, encoding="utf-8", errors="replace") as f:
            info = os.fstat(f.fileno())
            # It may be in a directory others can write to: only our own file is trusted.
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                log.error("not loading the spill file %s: it is not this user's alone", path)
                return calls, logs
            bad = 0
            for line in f:
                try:
                    entry = json.loads(line)
                    if "call" in entry:
                        calls.append(_call_from_spill(entry["call"]))
                    else:
                        call_id, app, data = entry["log"]
                        if not (isinstance(call_id, str) and isinstance(app, str)):
                            raise ValueError("not a call id and an app")
                        # attempts=2: written even when empty, as flush() writes a rerun's log.
                        stub = Call(id=call_id, app=app, route="", mode="", attempts=2)
                        logs.append((stub, base64.b64decode(data, validate=True)))
                except (ValueError, KeyError, TypeError):
                    bad += 1
        if bad:
            log.error("the spill file %s has %d line(s) that are not call records; skipped",
                      path, bad)
        return calls, logs

    def _take_spill(self, calls: list[Call], logs: list[tuple[Call, bytes]]) -> None:
        """Buffer what the spill file held; the file goes once all of it is saved."""
        for call in calls:
            self.record(call)
            self._unspilled.add(call.id)
        for stub, data in logs:
            self.record_log(stub, data)
            self._unspilled.add("log:" + stub.id)
        if calls or logs:
            log.warning("loaded %d call record(s) and %d log(s) that the last shutdown could not "
                        "save (%s); they are written to the store now", len(calls), len(logs),
                        self.spill_path)
        if not self._unspilled:
            self._remove_spill()

    def _remove_spill(self) -> None:
        if self.spill_path is None:
            return
        try:
            os.remove(self.spill_path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("cannot remove the spill file %s (its records are saved; a later start "
                      "would save them again): %s", self.spill_path, exc)


_CALL_FIELDS = {f.name: f for f in dataclasses.fields(Call)}


def _own_directory(path: str) -> None:
    """Make ``path`` if it is missing; OSError unless it is a directory of this user's alone
    (the spill directory may be under a shared one such as /var/tmp)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        raise OSError(f"{path} is not a directory of this user's alone")


def _call_from_spill(fields: object) -> Call:
    """A call record as the spill file holds it, checked: the file came from outside."""
    if not isinstance(fields, dict) or not set(fields) <= set(_CALL_FIELDS):
        raise ValueError("not a call record")
    for name in ("id", "app", "route", "mode", "type", "status"):
        if not isinstance(fields.get(name), str):
            raise ValueError(f"{name} is not text")
    for name, value in fields.items():
        if value is not None and not isinstance(value, (str, int, float)):
            raise ValueError(f"{name} is not a plain value")
    return Call(**fields)
