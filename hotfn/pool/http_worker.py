"""One warm container of a ``format: "http"`` route: the frame worker with HTTP/1.1 on its stdio
(hotfn.protocol.httpformat) instead of frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import protocol
from ..protocol.httpformat import HttpChannel
from .events import EXITED
from .worker import CallLog, HotWorker

if TYPE_CHECKING:
    from .routepool import RoutePool


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

