"""One node id, one server: a host-wide lock per node id; and the node's entry in the store's
registry, kept fresh by a heartbeat.

A node id names what a server owns on its engine: its containers carry it as a label and its
FIFOs live in a directory named after it, and a server removes both at start and stop. Two
servers with the same id would remove each other's, so a server holds an exclusive lock on
its id for its whole life. The lock lives in a fixed directory, whatever --io-dir says, so
that any two servers on this host find each other's; the kernel drops it when the process
ends, however it ends, so a crashed server never blocks the next one.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import logging
import os
import re
import time

import trio

from .. import __version__
from ..store import NodeInfo, Store, StoreUnreachable

log = logging.getLogger("hotfn.node")  # named as before the move: operators filter on it

LOCK_DIR = "/run/lock/hotfn"
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class NodeIdError(Exception):
    """This server cannot take its node id: the message says why and what to do."""


def check_node_id(node_id: str) -> str:
    if not NODE_ID.match(node_id):
        raise NodeIdError(
            f"node id {node_id!r} must be 1-63 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (--node-id / HOTFN_NODE_ID)")
    return node_id


class NodeLock:
    """Held from acquire() to release() (or the process's end)."""

    def __init__(self, node_id: str, lock_dir: str = LOCK_DIR) -> None:
        self.node_id = check_node_id(node_id)
        self.path = os.path.join(lock_dir, f"{node_id}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, exist_ok=True)
            # Every user's servers share the directory, each with its own files.
            if os.stat(directory).st_uid == os.getuid():
                os.chmod(directory, 0o1777)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise NodeIdError(f"cannot create the lock file {self.path} for node id "
                              f"{self.node_id!r}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise NodeIdError(f"cannot lock {self.path}: {exc.strerror}") from None
            who = f"process {holder}" if holder else "another process"
            raise NodeIdError(
                f"node id {self.node_id!r} is in use by another hotfn server ({who}, lock "
                f"{self.path}); a second server with the same id would remove its containers. "
                "Give this one its own id with --node-id NAME (or HOTFN_NODE_ID)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # The file stays: unlinking it would let a third server lock a new file while a
            # second one still waits on the old one.
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


# Seconds between heartbeats; a node silent for STALE_AFTER is shown as not alive.
HEARTBEAT_INTERVAL = 2.0
STALE_AFTER = 3 * HEARTBEAT_INTERVAL


class Registration:
    """This node's row in the store's node registry: written at start, refreshed every
    HEARTBEAT_INTERVAL (draining or not), removed when the node stops."""

    def __init__(self, store: Store, node_id: str, address: str, capacity: int) -> None:
        self.store = store
        self.started_at = time.time()
        self.node = NodeInfo(id=node_id, address=address, capacity=capacity, version="",
                             draining=False, started_at=self.started_at, heartbeat_at=0.0)

    async def beat(self, *, draining: bool | None = None) -> None:
        if draining is not None:
            self.node = dataclasses.replace(self.node, draining=draining)
        self.node = dataclasses.replace(self.node, heartbeat_at=time.time())
        await self.store.register_node(self.node)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.node = dataclasses.replace(self.node, version=__version__)
        try:
            await self.beat()
        except Exception as exc:  # the store is down: /health says so; keep trying
            log.warning("could not register node %s: %s", self.node.id, exc)
        task_status.started()
        while True:
            await trio.sleep(HEARTBEAT_INTERVAL)
            try:
                await self.beat()
            except StoreUnreachable:
                pass  # said once, by the store's health
            except Exception as exc:
                log.warning("node heartbeat failed: %s", exc)

    async def leave(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await self.store.remove_node(self.node.id)
            except Exception as exc:
                log.warning("could not remove node %s from the registry: %s", self.node.id, exc)
