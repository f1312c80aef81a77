"""Repeated log lines said once, then counted (observe.logthrottle), byte for byte; and text from
outside escaped for a log line (models.log_text)."""

from __future__ import annotations

import io
import logging

import pytest

from hotfn.models import log_text
from hotfn.observe.logthrottle import RepeatFilter, install


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged():
    """(a logger writing through a RepeatFilter with a clock of its own, the clock, the output)"""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    clock = Clock()
    handler.addFilter(RepeatFilter(window=10.0, clock=clock))
    logger = logging.getLogger("hotfn.test-throttle")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, clock, out
    logger.removeHandler(handler)


def _remove_failed(logger, n: int) -> None:
    logger.warning("could not remove container %s: %s", f"c{n:04d}", "the engine is not reachable")


def test_a_flood_is_said_once_then_counted(logged):
    logger, clock, out = logged
    for n in range(5896):
        clock.now = 1000.0 + n * 20.0 / 5896
        _remove_failed(logger, n)
    clock.now = 1020.0
    _remove_failed(logger, 9999)
    clock.now = 1020.5
    _remove_failed(logger, 10000)  # held back: the count goes on
    assert out.getvalue() == (
        "WARNING hotfn.test-throttle: could not remove container c0000: the engine is not reachable\n"
        "WARNING hotfn.test-throttle: could not remove container c2948: the engine is not reachable"
        " (and 2,947 more like it in 10 s)\n"
        "WARNING hotfn.test-throttle: could not remove container c9999: the engine is not reachable"
        " (and 2,947 more like it in 10 s)\n"
    )


def _start_failed(logger, path: str) -> None:
    logger.warning("route %s: start failed", path)


def test_lines_of_other_kinds_are_not_held_back(logged):
    logger, clock, out = logged
    _remove_failed(logger, 1)
    _start_failed(logger, "/a")
    logger.error("could not remove container %s: %s", "c0002", "gone")  # another place
    _remove_failed(logger, 3)
    _start_failed(logger, "/b")  # the same kind as /a's: held back
    clock.now += 0.5
    logger.info("hotfn stopped")
    assert out.getvalue() == (
        "WARNING hotfn.test-throttle: could not remove container c0001: the engine is not reachable\n"
        "WARNING hotfn.test-throttle: route /a: start failed\n"
        "ERROR hotfn.test-throttle: could not remove container c0002: gone\n"
        "INFO hotfn.test-throttle: hotfn stopped\n"
    )


def test_a_line_seen_again_after_a_quiet_window_is_said_without_a_count(logged):
    logger, clock, out = logged
    _remove_failed(logger, 1)
    clock.now += 60
    _remove_failed(logger, 2)
    assert out.getvalue().count(" more like it") == 0
    assert out.getvalue().count("\n") == 2


def test_kinds_are_forgotten_beyond_the_cap():
    clock = Clock()
    repeat = RepeatFilter(window=10.0, clock=clock, max_kinds=8)
    records = [logging.LogRecord("x", logging.WARNING, "f.py", n, f"line {n}", (), None) for n in range(20)]
    assert all(repeat.filter(r) for r in records)
    assert len(repeat._seen) <= 8


def test_install_puts_one_filter_on_every_handler():
    logger = logging.getLogger("hotfn.test-throttle-install")
    handlers = [logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())]
    for handler in handlers:
        logger.addHandler(handler)
    try:
        repeat = install(logger=logger)
        assert all(h.filters == [repeat] for h in handlers)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)


@pytest.mark.parametrize("text, shown", [
    ("plain words", "plain words"),
    ("two\nlines", '"two\\nlines"'),
    ("\x1b[2Jred", '"\\u001b[2Jred"'),
    ("tab\there", '"tab\\there"'),
    ("caf\u00e9", "caf\u00e9"),
])
def test_log_text_escapes_what_could_forge_a_line_or_drive_a_terminal(text, shown):
    assert log_text(text) == shown


def test_log_text_quotes_spaces_for_space_separated_fields():
    assert log_text("a b", quote_spaces=True) == '"a b"'
    assert log_text("ab", quote_spaces=True) == "ab"
