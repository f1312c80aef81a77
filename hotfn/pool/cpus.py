"""This machine's cores, and what a container gets of them unless its route says otherwise."""

from __future__ import annotations

import os


def node_cpus() -> int:
    """The cores this process may run on (its cpuset's, which may be fewer than the host's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_cpus(cores: int | None = None) -> float:
    """A container's CPU limit unless its route sets one: every core but one, which stays for the
    server (and the other routes) when one route's containers spin; one core on a machine of one
    or two."""
    return float(max(1, (cores or node_cpus()) - 1))
