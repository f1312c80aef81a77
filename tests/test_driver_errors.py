"""The Docker driver's edges without an engine: every transport error of the SDK becomes the
driver's own type, the early exit-status watch never raises into its nursery, and strays are told
from the containers the driver owns."""

from __future__ import annotations

import http.client

import docker.errors
import pytest
import requests.exceptions
import trio
import urllib3.exceptions

from hotfn.drivers import DriverError, EngineUnavailable, ImageNotFound
from hotfn.drivers.docker import DockerDriver
from hotfn.drivers.docker.container import DockerContainer
from hotfn.drivers.docker.errors import engine_errors


@pytest.mark.parametrize("error", [
    requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(0 bytes read)"),
    requests.exceptions.ConnectionError("Connection aborted."),
    requests.exceptions.ReadTimeout("read timed out"),
    urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
    http.client.RemoteDisconnected("Remote end closed connection without response"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    FileNotFoundError(2, "No such file or directory: '/var/run/docker.sock'"),
    docker.errors.DockerException("Error while fetching server API version"),
])
def test_every_transport_error_is_engine_unavailable(error):
    with pytest.raises(EngineUnavailable, match="waiting for container abc: the Docker engine is not reachable"):
        with engine_errors("waiting for container abc"):
            raise error


def test_the_engines_answers_keep_their_meaning():
    with pytest.raises(ImageNotFound):
        with engine_errors("inspecting"):
            raise docker.errors.ImageNotFound("no such image: x")
    with pytest.raises(DriverError) as caught:
        with engine_errors("starting"):
            raise docker.errors.APIError("500 Server Error", explanation="OCI runtime create failed")
    assert not isinstance(caught.value, EngineUnavailable) and "OCI runtime create failed" in str(caught.value)
    with pytest.raises(KeyError):  # a bug of ours stays a bug, not an engine fault
        with engine_errors("x"):
            raise KeyError("Id")


class _BrokenWaits:
    """An SDK client whose wait breaks as a SIGKILLed dockerd breaks it."""

    api_version = "1.41"

    def wait(self, container_id, timeout):
        raise requests.exceptions.ChunkedEncodingError("Connection broken: InvalidChunkLength(got length b'', 0 bytes read)")

    def inspect_container(self, container_id):
        raise AssertionError("not asked")


class _Attached:
    def __init__(self, sock) -> None:
        self._sock = sock

    def close(self) -> None:
        self._sock.close()


async def test_the_early_exit_status_watch_never_raises_into_its_nursery():
    import socket

    client = _BrokenWaits()
    driver = DockerDriver(client, wait_client=client)
    ours, theirs = socket.socketpair()
    container = DockerContainer(driver, "c" * 64, _Attached(ours))
    try:
        async with trio.open_nursery() as nursery:  # (the server's, in the finding)
            nursery.start_soon(container.watch_exit, 5.0)
        with pytest.raises(EngineUnavailable, match="not reachable"):
            await container.exit_status(timeout=1.0)
    finally:
        theirs.close()
        ours.close()


class _Listing:
    """The engine socket's answers for listing and removing containers."""

    def __init__(self, ids) -> None:
        self.ids = ids
        self.removed: list[str] = []

    async def json(self, method, path, query=None):
        if method == "GET":
            return [{"Id": i} for i in self.ids] + [{"Names": ["no id"]}, "junk"]
        self.removed.append(path.rsplit("/", 1)[-1])
        return None


async def test_strays_are_what_the_driver_does_not_own_once_creates_in_flight_have_answered():
    engine = _Listing(["ours", "left-behind", "being-created"])
    driver = DockerDriver(engine=engine)
    driver._live = {"ours"}
    created = trio.Event()
    driver._creating.add(created)

    async def create_answers() -> None:
        await trio.sleep(0.05)
        driver._live.add("being-created")
        driver._creating.discard(created)
        created.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(create_answers)
        assert await driver.remove_strays({"hotfn.node": "n"}) == 1
    assert engine.removed == ["left-behind"]


async def test_a_container_whose_removal_failed_is_a_stray_for_the_next_look():
    class _Down(_Listing):
        async def json(self, method, path, query=None):
            if method == "DELETE" and not self.removed:
                self.removed.append("failed")
                raise EngineUnavailable("the Docker engine is not reachable")
            return await super().json(method, path, query)

    engine = _Down(["gone-wrong"])
    driver = DockerDriver(engine=engine)
    driver._live = {"gone-wrong"}
    await driver._remove("gone-wrong")  # the engine is away: logged, not raised
    assert "gone-wrong" not in driver._live
    assert await driver.remove_strays({"hotfn.node": "n"}) == 1
    assert engine.removed == ["failed", "gone-wrong"]


async def test_a_closed_environment_fifo_is_an_os_error_not_a_value_error(tmp_path):
    from hotfn.drivers.docker.parked import _EnvFifo

    fifo = _EnvFifo.make(str(tmp_path))
    assert fifo.unread() == 0
    fifo.close()
    with pytest.raises(OSError):
        fifo.unread()
