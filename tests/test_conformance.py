"""One conformance suite for every runtime shim, run inside each runtime's real image.

Each runtime ships runtime-shims/<runtime>/conformance/, a function that behaves as the table in
docs/runtimes.md says. This suite builds it with `hotfn build` and speaks to the container
directly through the Docker driver: frames for hot mode, env + stdin for cold mode. Every
check runs as hotfn runs functions (uid 1000, no capabilities, read-only root), once in a
plain container and once under gVisor (route `isolation`).
"""

from __future__ import annotations

import json
import struct
import subprocess
import time

import pytest
import trio

from conftest import NODE_ID, ROOT
from hotfn import protocol
from hotfn.drivers import DEFAULT_USER, ISOLATIONS, ContainerSpec
from hotfn.drivers.docker import DockerDriver

pytestmark = pytest.mark.docker

RUNTIMES = ["python", "node", "java", "clojure"]
EVERY_BYTE = bytes(range(256))


@pytest.fixture(scope="session")
def conformance_images(docker_engine) -> dict[str, str]:
    from hotfn.functions import build_function

    return {rt: build_function(str(ROOT / "runtime-shims" / rt / "conformance"),
                               tag=f"hotfn-test/conformance-{rt}")
            for rt in RUNTIMES}


@pytest.fixture(params=ISOLATIONS)
def isolation(request) -> str:
    if request.param == "gvisor":
        request.getfixturevalue("gvisor")
    return request.param


@pytest.fixture
async def driver(tmp_path):
    return DockerDriver.from_env(io_dir=str(tmp_path / "io"))


def spec(image: str, env: dict[str, str], *, hot: bool, isolation: str) -> ContainerSpec:
    return ContainerSpec(
        image=image,
        env={"HOTFN_FORMAT": "hot" if hot else "default", "HOTFN_PROTOCOL_VERSION": "1",
             "APP_NAME": "conf", "ROUTE": "/items/:id", **env},
        labels={"hotfn": "1", "hotfn.node": NODE_ID, "hotfn.test": "conformance"},
        memory_mb=256, direct_stdio=hot, isolation=isolation,
        user=DEFAULT_USER,  # said here too: the suite must not depend on the spec's default
    )


class HotSession:
    """A hot container spoken to frame by frame, its stderr collected."""

    def __init__(self, container, max_frame_size: int) -> None:
        self.container = container
        self.decoder = protocol.FrameDecoder(max_frame_size)
        self.stderr = bytearray()
        self.frames: list = []
        self.ended = trio.Event()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            if self.container.separate_stdout:
                nursery.start_soon(self._read_stdout)
            while (out := await self.container.receive_some()) is not None:
                self.stderr += out[1]
                self._feed(out[0])
            self.ended.set()
            nursery.cancel_scope.cancel()

    async def _read_stdout(self) -> None:
        while (data := await self.container.receive_stdout()) is not None:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        if data:
            self.decoder.receive_data(data)
            while (frame := self.decoder.next_frame()) is not protocol.NEED_DATA:
                self.frames.append(frame)

    async def next_frame(self, timeout: float = 30):
        with trio.fail_after(timeout):
            while not self.frames:
                if self.ended.is_set():
                    raise AssertionError(f"container ended; stderr: {bytes(self.stderr)!r}")
                await trio.sleep(0.005)
        return self.frames.pop(0)

    async def call(self, body: bytes = b"", headers=(), call_id: str = "call-1", **kw):
        request = protocol.Request(
            call_id=call_id, method=kw.get("method", "POST"),
            url=kw.get("url", "http://localhost:8080/r/conf/items/7?a=1&a=2&b=x%20y"),
            path="/items/7", query=(("a", "1"), ("a", "2"), ("b", "x y")),
            headers=tuple(headers), body=body, deadline=int(time.time() * 1000) + 30000,
            app="conf", route="/items/:id", params={"id": "7"},
        )
        await self.container.send_all(protocol.encode_frame(request))
        frame = await self.next_frame()
        assert frame.call_id == call_id
        return frame


@pytest.fixture
async def hot(driver, conformance_images, nursery, isolation):
    started = []

    async def start(runtime: str, env: dict[str, str] | None = None) -> HotSession:
        container = await driver.start(spec(conformance_images[runtime], env or {}, hot=True,
                                            isolation=isolation))
        started.append(container)
        session = HotSession(container, protocol.DEFAULT_MAX_FRAME_SIZE)
        await nursery.start(session.run)
        ready = await session.next_frame(timeout=60)
        assert isinstance(ready, protocol.Ready) and ready.version == 1 and ready.runtime
        return session

    yield start
    for container in started:
        await container.kill()


def headers_of(frame) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in frame.headers]


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_echo_every_byte_value_and_call_id(hot, runtime):
    session = await hot(runtime)
    frame = await session.call(EVERY_BYTE, call_id="abc-123")
    assert isinstance(frame, protocol.Response), frame
    assert frame.status == 200 and frame.body == EVERY_BYTE
    assert ("x-method", "POST") in headers_of(frame)
    assert ("x-call-id", "abc-123") in headers_of(frame)


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_five_mib_body(hot, runtime):
    session = await hot(runtime)
    body = EVERY_BYTE * (5 * 1024 * 4)
    frame = await session.call(body)
    assert frame.status == 200 and frame.body == body


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_repeated_and_non_ascii_headers_keep_order(hot, runtime):
    session = await hot(runtime)
    sent = [("x-echo-a", "1"), ("x-echo-name", "Zoë – 東京"), ("x-echo-a", "2")]
    frame = await session.call(b"", headers=sent)
    assert [h for h in headers_of(frame) if h[0].startswith("x-echo-")] == sent


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_status_and_headers_set_by_the_handler(hot, runtime):
    session = await hot(runtime)
    frame = await session.call(headers=[("x-hotfn-test", "status"), ("x-status", "201")])
    assert frame.status == 201 and frame.body == b"status"
    assert ("x-custom", "yes") in headers_of(frame)


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_handler_error_is_an_error_frame_and_the_loop_goes_on(hot, runtime):
    session = await hot(runtime)
    frame = await session.call(headers=[("x-hotfn-test", "raise")], call_id="bad")
    assert isinstance(frame, protocol.HandlerError), frame
    assert "boom" in frame.message and frame.error_type
    # The trace travels in the frame, for hotfn to put in the call's log (not in the answer).
    assert "boom" in frame.trace and frame.trace.count("\n") >= 2, frame.trace
    again = await session.call(b"still here", call_id="good")
    assert isinstance(again, protocol.Response) and again.body == b"still here"


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_user_print_to_stdout_keeps_frames_clean(hot, runtime):
    session = await hot(runtime)
    for i in range(3):
        frame = await session.call(b"clean %d" % i, headers=[("x-hotfn-test", "print")], call_id=f"p{i}")
        assert isinstance(frame, protocol.Response) and frame.body == b"clean %d" % i
    with trio.fail_after(5):
        while session.stderr.count(b"noise") < 3:
            await trio.sleep(0.01)


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_stderr_is_the_log(hot, runtime):
    session = await hot(runtime)
    await session.call(headers=[("x-hotfn-test", "stderr")])
    with trio.fail_after(5):
        while b"log line\n" not in session.stderr:
            await trio.sleep(0.01)


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_request_fields_reach_the_handler(hot, runtime):
    session = await hot(runtime, {"CONFORMANCE_CONFIG": "configured"})
    frame = await session.call(b"12345", headers=[("x-hotfn-test", "info"), ("x-echo-z", "Zoë")],
                               call_id="info-1")
    info = json.loads(frame.body)
    assert info["method"] == "POST"
    assert info["url"] == "http://localhost:8080/r/conf/items/7?a=1&a=2&b=x%20y"
    assert info["path"] == "/items/7"
    assert info["query"] == [["a", "1"], ["a", "2"], ["b", "x y"]]
    assert ["x-echo-z", "Zoë"] in info["headers"]
    assert (info["app"], info["route"], info["params"]) == ("conf", "/items/:id", {"id": "7"})
    assert info["call_id"] == "info-1"
    assert isinstance(info["deadline"], int) and info["deadline"] > time.time() * 1000
    assert info["body_length"] == 5
    assert info["config_value"] == "configured"


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_oversized_frame_is_refused(hot, runtime):
    session = await hot(runtime, {"HOTFN_MAX_FRAME_SIZE": str(1024 * 1024)})
    ok = await session.call(b"x" * 1000)
    assert ok.status == 200
    # Announce a frame over the shim's limit: it must stop before reading (or allocating) it.
    await session.container.send_all(struct.pack(">I", 2 * 1024 * 1024) + b"\x80")
    with trio.fail_after(30):
        await session.ended.wait()
    status = await session.container.exit_status()
    assert status.code not in (0, None)
    assert not session.frames


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_stdin_closed_is_a_clean_exit(hot, runtime):
    session = await hot(runtime)
    await session.call(b"one")
    await session.container.close_stdin()
    with trio.fail_after(30):
        await session.ended.wait()
    assert (await session.container.exit_status()).code == 0


async def cold_call(driver, image: str, body: bytes, env: dict[str, str],
                    isolation: str) -> tuple[bytes, bytes, int | None]:
    container = await driver.start(spec(image, env, hot=False, isolation=isolation))
    try:
        out, err = bytearray(), bytearray()
        await container.send_all(body)
        await container.close_stdin()
        with trio.fail_after(60):
            while (chunk := await container.receive_some()) is not None:
                out += chunk[0]
                err += chunk[1]
        return bytes(out), bytes(err), (await container.exit_status()).code
    finally:
        await container.kill()


COLD_ENV = {
    "METHOD": "PUT", "REQUEST_URL": "http://localhost:8080/r/conf/items/7?a=1&a=2",
    "CALL_ID": "cold-1", "DEADLINE": "4102444800000", "HEADER_X_ECHO_NAME": "cold",
    "PARAM_ID": "7", "CONFORMANCE_CONFIG": "cold-config",
}


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_cold_echo_and_print_keep_stdout_the_body(driver, conformance_images, runtime, isolation):
    image = conformance_images[runtime]
    out, _, code = await cold_call(driver, image, EVERY_BYTE, COLD_ENV, isolation)
    assert (out, code) == (EVERY_BYTE, 0)
    out, err, code = await cold_call(driver, image, b"body",
                                     {**COLD_ENV, "HEADER_X_HOTFN_TEST": "print"}, isolation)
    assert (out, code) == (b"body", 0)
    assert b"noise" in err


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_cold_request_comes_from_the_environment(driver, conformance_images, runtime, isolation):
    out, _, code = await cold_call(driver, conformance_images[runtime], b"abc",
                                   {**COLD_ENV, "HEADER_X_HOTFN_TEST": "info"}, isolation)
    assert code == 0
    info = json.loads(out)
    assert info["method"] == "PUT" and info["path"] == "/items/7"
    assert info["query"] == [["a", "1"], ["a", "2"]]
    assert ["x-echo-name", "cold"] in info["headers"]
    assert info["params"] == {"id": "7"} and info["call_id"] == "cold-1"
    assert (info["app"], info["route"]) == ("conf", "/items/:id")
    assert info["body_length"] == 3 and info["deadline"] == 4102444800000
    assert info["config_value"] == "cold-config"


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_cold_handler_error_and_exit_are_nonzero(driver, conformance_images, runtime, isolation):
    image = conformance_images[runtime]
    out, err, code = await cold_call(driver, image, b"", {**COLD_ENV, "HEADER_X_HOTFN_TEST": "raise"},
                                     isolation)
    # The trace is the call's log (stderr), never the body a client could get.
    assert code != 0 and b"boom" in err and out == b""
    _, _, code = await cold_call(driver, image, b"", {**COLD_ENV, "HEADER_X_HOTFN_TEST": "exit"},
                                 isolation)
    assert code == 3


# -- many calls per container (docs/protocol.md 2.2.1): HOTFN_CONCURRENCY in every shim


async def _send(session: HotSession, call_id: str, headers) -> None:
    request = protocol.Request(
        call_id=call_id, method="POST", url="http://localhost:8080/r/conf/items/7", path="/items/7",
        query=(), headers=tuple(headers), body=call_id.encode(),
        deadline=int(time.time() * 1000) + 30000, app="conf", route="/items/:id", params={"id": "7"},
    )
    await session.container.send_all(protocol.encode_frame(request))


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_concurrency_answers_calls_in_flight_by_call_id_in_any_order(hot, runtime):
    session = await hot(runtime, {"HOTFN_CONCURRENCY": "16"})
    started = time.monotonic()
    # c0 is sent first and waits longest: one call at a time would answer it first, after 2 s,
    # and the other 15 in 3 s more.
    for i in range(16):
        await _send(session, f"c{i}", [("x-hotfn-test", "sleep"), ("x-sleep-ms", "2000" if i == 0 else "200")])
    answers = [await session.next_frame() for _ in range(15)]
    fifteen = time.monotonic() - started
    answers.append(await session.next_frame())
    assert all(isinstance(a, protocol.Response) and a.body == a.call_id.encode() for a in answers), answers
    assert sorted(a.call_id for a in answers) == sorted(f"c{i}" for i in range(16))
    assert answers[-1].call_id == "c0"
    assert fifteen < 1.6, f"15 calls of 200 ms took {fifteen:.2f} s"


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_hot_a_crash_with_calls_in_flight_ends_the_container_with_whole_frames(hot, runtime):
    session = await hot(runtime, {"HOTFN_CONCURRENCY": "8"})
    for i in range(7):
        await _send(session, f"s{i}", [("x-hotfn-test", "sleep"), ("x-sleep-ms", "300")])
    await _send(session, "crash", [("x-hotfn-test", "exit")])
    with trio.fail_after(30):
        await session.ended.wait()
    # The decoder raised on nothing: whatever came out before the crash is whole frames.
    assert all(isinstance(f, protocol.Response) for f in session.frames), session.frames
    assert len(session.frames) < 8
    assert (await session.container.exit_status()).code == 3


# -- JVM start-up: the function's own class-data-sharing archive (runtime-shims/java/bin/hotfn-java-cds)


@pytest.mark.parametrize("runtime, first_class", [("java", "Func"), ("clojure", "func__init")])
def test_jvm_function_classes_come_from_its_archive_even_as_another_user(conformance_images, runtime,
                                                                          first_class):
    run = subprocess.run(
        ["docker", "run", "--rm", "-i", "--user", "1000", "--read-only", "--network", "none",
         "--label", "hotfn=1", "--label", f"hotfn.node={NODE_ID}",
         "-e", "HOTFN_FORMAT=hot", "-e", "HOTFN_JAVA_OPTS=-Xlog:class+load=info:stderr",
         conformance_images[runtime]], input=b"", capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"] {first_class} source: shared objects file (top)".encode() in run.stderr, run.stderr[-3000:]
    decoder = protocol.FrameDecoder()
    decoder.receive_data(run.stdout)
    assert isinstance(decoder.next_frame(), protocol.Ready)
