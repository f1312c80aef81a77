"""A started container as the Container the pools use: a byte pipe to the process's stdin, its
stdout and stderr as they come (direct stdio over two FIFOs, or the engine's attach stream
demultiplexed), its exit status, and kill.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import socket
import tempfile
import termios
from typing import TYPE_CHECKING, Any, Mapping

import trio

from ..base import Container, ContainerGone, DriverError, ExitStatus
from .demux import Demultiplexer, DemuxError

if TYPE_CHECKING:
    from .driver import DockerDriver

log = logging.getLogger(__name__)

# Direct stdio: the process's stdin and stdout become two FIFOs in a host directory mounted at
# IO_MOUNT, opened by a /bin/sh wrapper before it execs the image's own command. A frame then
# crosses one pipe each way instead of dockerd's and containerd's copying: a hot round trip
# drops from about 0.33 ms to about 0.08 ms here.
IO_MOUNT = "/hotfn/io"
IO_WRAPPER = ["/bin/sh", "-c", f'exec <{IO_MOUNT}/in >{IO_MOUNT}/out && exec "$@"', "hotfn-io"]
_NO_SHELL = (f"image {{image}} has no {IO_WRAPPER[0]}, which hot containers need for direct stdio "
             "(docs/protocol.md; or run the server with --io-dir '')")
RECEIVE_SIZE = 256 * 1024



def _fifo_dir(io_dir: str, prefix: str, fifos: Mapping[str, int]) -> str:
    """A private directory under ``io_dir`` holding the named FIFOs (name -> mode)."""
    # The node's directory may have been removed under us (a tmp cleaner, an operator):
    # make it again rather than fail every start from now on.
    os.makedirs(io_dir, mode=0o700, exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=io_dir)
    os.chmod(path, 0o755)  # the function may run as any user; the parent stays 0700
    for name, mode in fifos.items():
        os.mkfifo(f"{path}/{name}", mode)
        os.chmod(f"{path}/{name}", mode)  # past the umask
    return path


class _Fifos:
    """A container's direct stdin and stdout: two FIFOs in a private directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        # O_RDWR: opening never blocks waiting for the other end, and the container's reads
        # see EOF only when we close stdin ourselves.
        self.stdin = trio.lowlevel.FdStream(os.open(f"{path}/in", os.O_RDWR | os.O_CLOEXEC))
        self.stdout = trio.lowlevel.FdStream(os.open(f"{path}/out", os.O_RDWR | os.O_CLOEXEC))

    @classmethod
    def make(cls, io_dir: str) -> "_Fifos":
        return cls(_fifo_dir(io_dir, "c-", {"in": 0o666, "out": 0o666}))

    def close(self) -> None:
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        shutil.rmtree(self.path, ignore_errors=True)



class DockerContainer(Container):
    """A started container and its attach stream (and FIFOs, with direct stdio), read and
    written by trio directly."""

    def __init__(self, driver: DockerDriver, container_id: str, attached: Any,
                 fifos: _Fifos | None = None, network: str | None = None) -> None:
        self.id = container_id
        self._network = network
        self._driver = driver
        self._fifos = fifos
        self.separate_stdout = fifos is not None
        # docker-py returns a read-only SocketIO whose ._sock is the hijacked connection.
        # The SocketIO keeps the HTTP response alive; we keep the SocketIO alive with it.
        self._attached = attached
        raw = attached._sock
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(raw))
        self._demux = Demultiplexer()
        self._killed = False
        self._send_lock = trio.Lock()
        self._pending = array.array("i", [0])  # FIONREAD's answer (_unread)
        self._exit_watched: trio.Event | None = None
        self._exit_early: ExitStatus | None = None

    async def send_all(self, data: bytes) -> None:
        try:
            if self._fifos is not None:
                # A frame that fits in the pipe goes in one write with no lock and no yield
                # (trio's FdStream and Lock would each yield to the scheduler first: two
                # passes of its loop per call), here rather than in a coroutine more.
                if self._send_lock.locked():
                    await self._send_to_fifo(data, None)
                elif (sent := self._write_stdin(data)) < len(data):
                    await self._send_to_fifo(data, sent)
                return
            async with self._send_lock:
                await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ContainerGone(f"container {self.id[:12]} no longer takes input") from exc

    async def _send_to_fifo(self, data: bytes, sent: int | None) -> None:
        """The rest of a frame into the stdin FIFO: its first ``sent`` bytes went in already,
        none when another frame's partial write holds the lock (``sent`` None). Frames of
        concurrent calls never interleave: a partial write holds the lock until its frame is
        complete."""
        assert self._fifos is not None
        if sent is None:
            await self._send_lock.acquire()
            sent = self._write_stdin(data)
        else:
            self._send_lock.acquire_nowait()  # (free: nothing was awaited since it was checked)
        try:
            view = memoryview(data)
            while sent < len(data):
                await trio.lowlevel.wait_writable(self._fifos.stdin.fileno())
                sent += self._write_stdin(view[sent:])
        finally:
            self._send_lock.release()

    def _write_stdin(self, data: bytes | memoryview) -> int:
        assert self._fifos is not None
        try:
            return os.write(self._fifos.stdin.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError as exc:  # EBADF once closed (fileno -1), EPIPE
            raise trio.ClosedResourceError(str(exc)) from exc

    async def close_stdin(self) -> None:
        try:
            async with self._send_lock:
                if self._fifos is not None:
                    await self._fifos.stdin.aclose()
                else:
                    await self._stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    def unread_stdin(self) -> int | None:
        if self._fifos is None:
            return None  # the attach stream's buffers are dockerd's: nothing to ask
        try:
            return self._unread(self._fifos.stdin.fileno())
        except (OSError, trio.ClosedResourceError):
            return None

    def _unread(self, fd: int) -> int:
        """Bytes waiting in the FIFO ``fd`` (FIONREAD): no read, nothing consumed. OSError
        once it is closed."""
        if fd < 0:  # (trio's FdStream says -1 once closed; ioctl would raise ValueError)
            raise OSError(errno.EBADF, f"container {self.id[:12]}: its FIFO is closed")
        fcntl.ioctl(fd, termios.FIONREAD, self._pending)
        return self._pending[0]

    def close_stdout(self) -> None:
        if self._fifos is not None:
            with contextlib.suppress(OSError):
                self._fifos.stdout.close()  # (trio wakes a task waiting on it: notify_closing)

    def receive_stdout_nowait(self) -> bytes | None:
        assert self._fifos is not None
        fd = self._fifos.stdout.fileno()
        try:
            # Asked first: nothing there (the rule between calls) costs no read and no
            # BlockingIOError raised and caught.
            if not self._unread(fd):
                return None
            return os.read(fd, RECEIVE_SIZE) or None
        except (BlockingIOError, OSError, trio.ClosedResourceError):
            return None

    async def receive_stdout(self) -> bytes | None:
        # Waits first, reads after: an answer is never there the moment its request went out,
        # so trying a read first (as FdStream does, after a yield) is one failed syscall more.
        assert self._fifos is not None
        stdout = self._fifos.stdout
        while True:
            fd = stdout.fileno()
            if fd < 0:
                return None  # closed
            try:
                await trio.lowlevel.wait_readable(fd)
                return os.read(fd, RECEIVE_SIZE) or None
            except BlockingIOError:
                continue
            except (OSError, trio.ClosedResourceError, trio.BrokenResourceError):
                return None

    async def receive_some(self) -> tuple[bytes, bytes] | None:
        try:
            data = await self._stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        if not data:
            return None
        try:
            return self._demux.feed(data)
        except DemuxError as exc:
            raise ContainerGone(f"container {self.id[:12]}: {exc}") from exc

    async def watch_exit(self, timeout: float) -> None:
        """The engine answers a wait request when the process ends: asked ahead, its answer
        is there as stdout reaches EOF instead of one round trip (~6 ms) later."""
        driver = self._driver
        if not driver._early_exit_status or self._exit_watched is not None:
            return
        if driver._wait_limiter.available_tokens < 1:
            return  # all busy: exit_status() asks after EOF rather than queue behind long calls
        self._exit_watched = watched = trio.Event()
        try:
            self._exit_early = await driver._exit_status(self.id, timeout, early=True)
        except DriverError:
            pass  # exit_status() asks again
        except Exception:
            # Runs in a task no call waits on: whatever went wrong must not reach its nursery
            # (the server's). exit_status() asks again, and says what it finds.
            log.exception("container %s: asking for its exit status ahead failed", self.id[:12])
        finally:
            watched.set()

    async def exit_status(self, timeout: float = 10.0) -> ExitStatus:
        if self._exit_watched is not None:
            with trio.move_on_after(timeout):
                await self._exit_watched.wait()
            early = self._exit_early
            if early is not None and early.code is not None:
                return early
        return await self._driver._exit_status(self.id, timeout)

    def _output_ended(self) -> bool:
        """Whether the attach stream is at EOF (the container has ended), without reading."""
        try:
            return self._attached._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    async def kill(self) -> None:
        with trio.CancelScope(shield=True):
            # The attach stream first: a process still writing output no one reads (a response
            # refused as too large) holds the engine's copy of it, and with it the removal,
            # until the engine gives up (60 s).
            self._close_socket()
            if not self._killed:
                self._killed = True
                await self._driver._remove(self.id)
                if self._network is not None:
                    self._driver._leave_network(self._network)

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.socket.close()
        with contextlib.suppress(OSError):
            self._attached.close()
        if self._fifos is not None:
            self._fifos.close()

    def __repr__(self) -> str:
        return f"<DockerContainer {self.id[:12]}>"

