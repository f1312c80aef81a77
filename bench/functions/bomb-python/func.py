"""Benchmark function (Python): a noisy neighbour. With `x-bench: bomb`, starts a fork bomb that
runs for `x-bomb-seconds` (at most 30) and answers at once: every process forks again and again
until the container's pids limit refuses, and spins on the CPU between tries, as a runaway
fork loop does. Every process ends by itself at the deadline; hotfn_bench.neighbours also
deletes the route. Otherwise: echo the request body."""

import os
import time

MAX_SECONDS = 30


def _spin(until: float) -> None:
    while time.monotonic() < until:
        try:
            if os.fork() == 0:
                _spin(until)
                os._exit(0)
        except OSError:  # the pids limit: spin a little, try again
            for _ in range(20000):
                pass
    # A parent exits without waiting: the container's init (pid 1) reaps its children.


def _start(seconds: float) -> None:
    until = time.monotonic() + min(seconds, MAX_SECONDS)
    # Twice forked, so the bomb belongs to init and no zombie of it waits on this process.
    if os.fork() == 0:
        if os.fork() == 0:
            _spin(until)
        os._exit(0)
    os.wait()


def handler(request):
    if request.header("x-bench") == "bomb":
        _start(float(request.header("x-bomb-seconds", "5")))
        return b"bomb started"
    return request.body
