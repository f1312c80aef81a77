"""`hotfn serve`: run the server until a signal stops it."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

from ..config import Settings
from ..server import Server, StartupError, setup_logging
from . import _find


def serve(args: argparse.Namespace) -> int:
    settings = Settings.from_namespace(args)
    setup_logging(settings.log_level)
    server = Server(settings)
    log = logging.getLogger("hotfn")
    _renice(settings.server_nice, log)

    async def main() -> None:
        # The receiver stays open for the whole run: the first SIGINT/SIGTERM starts a graceful
        # shutdown, a second one cuts it short (calls in flight are cancelled; containers are
        # still removed, under shielded cleanup).
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                run_scope = trio.CancelScope()

                async def watch_signals() -> None:
                    received = 0
                    async for signum in signals:
                        received += 1
                        if received == 1:
                            log.info("%s: stopping gracefully (again to stop at once)",
                                     signal.Signals(signum).name)
                            server.stop()
                        else:
                            log.warning("second signal: stopping at once")
                            run_scope.cancel()

                async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
                    with run_scope:
                        await server.run(task_status=task_status)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch_signals)
                await nursery.start(run)
                print(f"hotfn serving on {server.url}", flush=True)

    try:
        trio.run(main)
    except BaseException as exc:
        startup = _find(exc, StartupError)
        if startup is None:
            raise
        print(f"hotfn: cannot start: {startup}", file=sys.stderr)
        return 1
    return 0


def _renice(nice: int, log: logging.Logger) -> None:
    """Run at ``nice`` (before any thread starts: threads inherit it from the one that made
    them). Here, not in Server: a server run inside another program leaves its priority alone."""
    if not -20 <= nice <= 19:
        raise SystemExit(f"hotfn: --server-nice must be from -20 to 19, not {nice}")
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        log.warning("cannot run at niceness %d (%s): the server's CPU weight is no higher than "
                    "its function containers'", nice, exc.strerror)
