"""An in-memory container driver for fast tests of pool logic. It keeps the Driver contract
(hotfn/drivers/base.py) and speaks protocol v1 like a well-behaved shim; it never replaces the
Docker tests."""

from __future__ import annotations

import itertools
from typing import Mapping

import trio

from hotfn import protocol
from hotfn.drivers import Container, ContainerGone, ContainerSpec, Driver, ExitStatus, ImageNotFound

_ids = itertools.count(1)


class FakeContainer(Container):
    def __init__(self, driver: "FakeDriver", spec: ContainerSpec) -> None:
        self.id = f"fake{next(_ids):08d}"
        self.spec = spec
        self.driver = driver
        self.alive = True
        self.served = 0
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](100)
        self._decoder = protocol.FrameDecoder()
        self.exit = ExitStatus(None)

    async def boot(self) -> None:
        await trio.sleep(self.driver.startup_delay)
        if self.alive:
            self._out_send.send_nowait(protocol.encode_frame(protocol.Ready(1, "fake")))

    async def send_all(self, data: bytes) -> None:
        if not self.alive:
            raise ContainerGone(f"{self.id} is gone")
        self._decoder.receive_data(data)
        while (frame := self._decoder.next_frame()) is not protocol.NEED_DATA:
            assert isinstance(frame, protocol.Request)
            self.driver.nursery.start_soon(self._answer, frame)

    async def _answer(self, request: protocol.Request) -> None:
        delay = float(dict(request.headers).get("x-delay", "0"))
        await trio.sleep(delay)
        if self.alive:
            self.served += 1
            self._out_send.send_nowait(protocol.encode_frame(
                protocol.Response(request.call_id, 200, (("x-container", self.id),), request.body)))

    async def close_stdin(self) -> None:
        self.crash(0)

    async def receive_some(self) -> tuple[bytes, bytes] | None:
        try:
            return await self._out_recv.receive(), b""
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return None

    async def exit_status(self, timeout: float = 10.0) -> ExitStatus:
        return self.exit

    def crash(self, code: int = 1) -> None:
        if self.alive:
            self.alive = False
            self.exit = ExitStatus(code)
            self._out_send.close()

    async def kill(self) -> None:
        self.crash(137)
        self.driver.running.discard(self)


class FakeDriver(Driver):
    def __init__(self, nursery: trio.Nursery, *, startup_delay: float = 0.0) -> None:
        self.nursery = nursery
        self.startup_delay = startup_delay
        self.running: set[FakeContainer] = set()
        self.started = 0
        self.images = {"fake/image"}

    async def start(self, spec: ContainerSpec) -> FakeContainer:
        if spec.image not in self.images:
            raise ImageNotFound(spec.image)
        container = FakeContainer(self, spec)
        self.running.add(container)
        self.started += 1
        self.nursery.start_soon(container.boot)
        return container

    async def image_exists(self, image: str) -> bool:
        return image in self.images

    async def ensure_image(self, image: str) -> str:
        if image not in self.images:
            raise ImageNotFound(image)
        return f"sha256:{image}"

    async def ping(self) -> bool:
        return True

    async def remove_containers(self, labels: Mapping[str, str]) -> int:
        return 0
