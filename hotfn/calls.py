"""Call records and logs on their way to the store: buffered, and written in batches off the
request path."""

from __future__ import annotations

import logging

import trio

from .models import Call
from .pool import LOG_LINGER, CallLog
from .store import Store

log = logging.getLogger(__name__)


class CallRecorder:
    """Buffers call records and logs and writes them in batches, off the request path.

    A hot call's log may still be filling for a moment after its answer (pool.CallLog); it is
    written once it is done, and a reader that flushes waits that moment out.
    """

    MAX_BUFFERED = 100_000

    # Small, frequent batches: the rows of a batch are built on a worker thread that holds the
    # GIL meanwhile, and the event loop should never wait long for it.
    def __init__(self, store: Store, *, interval: float = 0.05) -> None:
        self.store = store
        self.interval = interval
        self._calls: dict[str, Call] = {}
        self._logs: list[tuple[Call, bytes | CallLog]] = []
        self._lock = trio.Lock()
        self._wake = trio.Event()

    def record(self, call: Call, log_data: bytes | CallLog | None = None) -> None:
        self._calls[call.id] = call
        if log_data is not None:
            self._logs.append((call, log_data))
        if len(self._calls) >= 100:
            self._wake.set()
        if len(self._calls) > self.MAX_BUFFERED:
            # The store has been failing for a long while: keep memory bounded, say so.
            oldest = next(iter(self._calls))
            del self._calls[oldest]
            self._logs = [e for e in self._logs if e[0].id != oldest]
            log.error("call records are not being saved; dropped the record of call %s", oldest)

    async def flush(self, *, wait_for_logs: bool = False) -> None:
        if wait_for_logs:
            while any(isinstance(log, CallLog) and not log.done(trio.current_time())
                      for _, log in self._logs):
                await trio.sleep(LOG_LINGER / 4)
        async with self._lock:
            if not self._calls and not self._logs:
                return
            now = trio.current_time()
            calls = list(self._calls.values())
            ready = [entry for entry in self._logs
                     if not (isinstance(entry[1], CallLog) and not entry[1].done(now))]
            await self.store.save_calls(calls, [
                (call.id, call.app, log.value() if isinstance(log, CallLog) else log)
                for call, log in ready
            ])
            # Only what was saved leaves the buffers: a failed save is tried again, and what
            # was recorded during the save waits for the next one.
            for call in calls:
                if self._calls.get(call.id) is call:
                    del self._calls[call.id]
            saved = {id(entry) for entry in ready}
            self._logs = [entry for entry in self._logs if id(entry) not in saved]

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        failures = 0
        try:
            while True:
                # Back off while the store fails: retry, but do not hammer it (or the log).
                with trio.move_on_after(min(5.0, self.interval * 2 ** failures)):
                    await self._wake.wait()
                self._wake = trio.Event()
                try:
                    await self.flush()
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.error("could not save call records (attempt %d, will retry): %s",
                              failures, exc, exc_info=failures == 1)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.flush()
                except Exception:
                    log.exception("could not save the last call records at shutdown")
