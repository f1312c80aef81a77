"""The HTTP layer on its own: h11 over in-memory streams, with a stand-in API."""

import contextlib
import json
import re

import pytest
import trio
import trio.testing

from hotfn.api import ApiRequest, ApiResponse
from hotfn.http.server import HttpConfig, HttpServer

seen: list[ApiRequest] = []


async def echo_api(request: ApiRequest) -> ApiResponse:
    seen.append(request)
    if request.target == "/boom":
        raise RuntimeError("bug in a handler")
    payload = {"method": request.method, "target": request.target, "length": len(request.body),
               "headers": request.headers}
    return ApiResponse(200, [("content-type", "application/json")], json.dumps(payload, separators=(",", ":")).encode())


async def exchange(data: bytes | list[bytes], config: HttpConfig | None = None,
                   *, close: bool = False, wait: float = 0) -> bytes:
    """Feed ``data`` to one server connection; all it answers until it closes.

    The client keeps its side open (as real clients do: h11 will not keep a connection alive
    once the client half-closed it); a short keep-alive timeout ends the exchange.
    """
    client, server_side = trio.testing.memory_stream_pair()
    server = HttpServer(echo_api, config or HttpConfig(keepalive_timeout=0.3))
    out = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run_housekeeping)
        nursery.start_soon(server.serve_connection, server_side)
        for chunk in ([data] if isinstance(data, bytes) else data):
            await client.send_all(chunk)
            await trio.sleep(wait)
        if close:
            await client.send_eof()
        with trio.move_on_after(5):
            while chunk := await client.receive_some(65536):
                out += chunk
        nursery.cancel_scope.cancel()
    return bytes(out)


def statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


async def test_keep_alive_serves_several_requests_on_one_connection():
    raw = await exchange(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [200, 200]
    assert raw.index(b'"/a"') < raw.index(b'"/b"')


async def test_pipelined_requests_are_answered_in_order():
    reqs = b"".join(b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % (i, i) for i in range(5))
    raw = await exchange(reqs)
    assert statuses(raw) == [200] * 5
    positions = [raw.index(b'"target":"/%d"' % i) for i in range(5)]
    assert positions == sorted(positions)


async def test_pipelined_requests_fed_one_byte_at_a_time():
    reqs = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = await exchange([reqs[i:i + 1] for i in range(len(reqs))])
    assert statuses(raw) == [200, 200]


async def test_expect_100_continue_gets_100_before_the_body():
    client, server_side = trio.testing.memory_stream_pair()
    server = HttpServer(echo_api, HttpConfig())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run_housekeeping)
        nursery.start_soon(server.serve_connection, server_side)
        await client.send_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = await client.receive_some(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await client.send_all(b"hello")
        final = b""
        while not final.endswith(b"}"):
            final += await client.receive_some(65536)
        assert final.startswith(b"HTTP/1.1 200 ")
        assert b'"length":5' in final
        nursery.cancel_scope.cancel()


async def test_expect_100_continue_with_a_body_over_the_limit_gets_413_and_no_100():
    raw = await exchange(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
                         HttpConfig(max_body_size=10, keepalive_timeout=0.3))
    assert statuses(raw) == [413]
    assert b"exceeds the limit of 10 bytes" in raw


async def test_chunked_request_body_is_reassembled():
    raw = await exchange(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert statuses(raw) == [200]
    assert b'"length":11' in raw


async def test_chunked_body_over_the_limit_is_413_before_it_ends():
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    raw = await exchange([b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"] + [chunk] * 4,
                         HttpConfig(max_body_size=2000, keepalive_timeout=0.3))
    assert statuses(raw) == [413]


async def test_head_gets_headers_and_length_but_no_body():
    raw = await exchange(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: " in head
    assert rest.startswith(b"HTTP/1.1 200 "), "no body bytes between the HEAD answer and the next"


async def test_oversized_headers_get_431_and_the_connection_closes():
    raw = await exchange(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n",
                         HttpConfig(max_header_size=1024, keepalive_timeout=0.3))
    assert statuses(raw) == [431]
    assert b"connection: close" in raw.lower()


async def test_malformed_request_gets_400_json_and_the_connection_closes():
    raw = await exchange(b"THIS IS NOT HTTP\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [400]
    body = raw.partition(b"\r\n\r\n")[2]
    assert "malformed request" in json.loads(body)["error"]["message"]


async def test_client_stalling_mid_request_gets_408():
    raw = await exchange(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
                         HttpConfig(request_timeout=0.3))
    assert statuses(raw) == [408]


async def test_client_stalling_mid_headers_gets_408():
    raw = await exchange(b"GET / HTTP/1.1\r\nHost: x\r\n", HttpConfig(request_timeout=0.3))
    assert statuses(raw) == [408]


async def test_idle_keep_alive_connection_is_closed_quietly():
    raw = await exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", HttpConfig(keepalive_timeout=0.2))
    assert statuses(raw) == [200]  # then closed, with no 408


async def test_a_bug_in_a_handler_is_a_500_and_the_connection_lives_on():
    raw = await exchange(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [500, 200]


async def test_header_values_reach_the_api_as_utf8_with_order_and_repeats():
    seen.clear()
    await exchange("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-Name: Zoë\r\nX-A: 2\r\n\r\n".encode())
    assert [(k, v) for k, v in seen[-1].headers if k.startswith("x-")] == [
        ("x-a", "1"), ("x-name", "Zoë"), ("x-a", "2")]


async def test_stopping_server_takes_no_new_request():
    client, server_side = trio.testing.memory_stream_pair()
    server = HttpServer(echo_api, HttpConfig())
    server.stopping = True
    raw = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run_housekeeping)
        nursery.start_soon(server.serve_connection, server_side)
        try:
            await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with trio.move_on_after(2):
                while chunk := await client.receive_some(65536):
                    raw += chunk
        except trio.BrokenResourceError:
            pass  # closed before it read our request: just as good
        nursery.cancel_scope.cancel()
    assert raw == b""


async def test_request_in_flight_when_stopping_is_answered_with_connection_close():
    release = trio.Event()
    server = None

    async def slow_api(request: ApiRequest) -> ApiResponse:
        server.stopping = True  # shutdown begins while this request is being served
        await release.wait()
        return ApiResponse(200, [], b"done")

    client, server_side = trio.testing.memory_stream_pair()
    server = HttpServer(slow_api, HttpConfig())
    raw = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run_housekeeping)
        nursery.start_soon(server.serve_connection, server_side)
        await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        release.set()
        with trio.move_on_after(2):
            while chunk := await client.receive_some(65536):
                raw += chunk
        nursery.cancel_scope.cancel()
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"done")
    assert b"connection: close" in raw.lower()


# -- the second line of defence: a response that cannot be sent ends its connection alone ------

async def two_clients(response: ApiResponse) -> tuple[bytes, bytes]:
    """Client 1 gets ``response`` from the handler; client 2 then asks the same server for
    something ordinary. What each received until its connection closed (or 2 s passed)."""

    async def api(request: ApiRequest) -> ApiResponse:
        return response if request.target == "/bad" else await echo_api(request)

    server = HttpServer(api, HttpConfig(keepalive_timeout=0.3))
    received = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run_housekeeping)
        for target in (b"/bad", b"/ok"):
            client, server_side = trio.testing.memory_stream_pair()
            nursery.start_soon(server.serve_connection, server_side)
            await client.send_all(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            out = bytearray()
            with trio.move_on_after(2):
                while chunk := await client.receive_some(65536):
                    out += chunk
            received.append(bytes(out))
        nursery.cancel_scope.cancel()
    return received[0], received[1]


CALL_ID = ("hotfn-call-id", "01CALL")
UNSENDABLE = {
    "status 100": ApiResponse(100, [CALL_ID], b""),
    "status 101": ApiResponse(101, [CALL_ID, ("upgrade", "websocket")], b""),
    "status 204 with a body": ApiResponse(204, [CALL_ID], b"body"),
    "status 304 with a body": ApiResponse(304, [CALL_ID], b"body"),
    "header value with CR": ApiResponse(200, [CALL_ID, ("x-a", "a\rb")], b"ok"),
    "header value with LF": ApiResponse(200, [CALL_ID, ("x-a", "a\nset-cookie: x=1")], b"ok"),
    "header value with NUL": ApiResponse(200, [CALL_ID, ("x-a", "a\0b")], b"ok"),
    "header name with a space": ApiResponse(200, [CALL_ID, ("x a", "1")], b"ok"),
    "header name é": ApiResponse(200, [CALL_ID, ("é", "1")], b"ok"),
    "header name outside latin-1": ApiResponse(200, [CALL_ID, ("x-東京", "1")], b"ok"),
    "header value no encoding can carry": ApiResponse(200, [CALL_ID, ("x-a", "\udc80")], b"ok"),
    "headers that are not pairs (a bug)": ApiResponse(200, [CALL_ID, ("x-a",)], b"ok"),  # type: ignore[list-item]
}


@pytest.mark.parametrize("case", UNSENDABLE)
async def test_a_response_http_cannot_carry_is_a_502_and_other_connections_go_on(case):
    bad, ordinary = await two_clients(UNSENDABLE[case])
    assert statuses(bad) == [502], bad
    head, _, body = bad.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b"hotfn-call-id: 01CALL" in head, "the client can still look the call up"
    assert json.loads(body)["error"]["message"].startswith("the response could not be sent: ")
    assert statuses(ordinary) == [200]


async def test_a_response_that_breaks_while_being_written_closes_its_connection_alone(caplog):
    # A str body gets past the head and fails inside h11's send: no 502 is possible any more.
    bad, ordinary = await two_clients(ApiResponse(200, [CALL_ID], "not bytes"))  # type: ignore[arg-type]
    assert bad == b""
    assert statuses(ordinary) == [200]
    assert "call 01CALL" in caplog.text


async def test_a_header_value_outside_latin_1_goes_out_as_utf_8():
    # As request headers come in (UTF-8, else ISO-8859-1): not an error at this layer.
    bad, ordinary = await two_clients(ApiResponse(200, [("x-city", "東京")], b"ok"))
    assert statuses(bad) == [200] and "x-city: 東京".encode() in bad
    assert statuses(ordinary) == [200]


# -- RFC 9112: what the server refuses to read -------------------------------------------------

SMUGGLING = (b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"0\r\n\r\n"
             b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")


@pytest.mark.parametrize("one_byte_at_a_time", [False, True])
async def test_content_length_with_transfer_encoding_is_400_and_nothing_more_is_served(one_byte_at_a_time):
    seen.clear()
    data = [SMUGGLING[i:i + 1] for i in range(len(SMUGGLING))] if one_byte_at_a_time else SMUGGLING
    raw = await exchange(data, HttpConfig(keepalive_timeout=5))  # the server, not the timeout, closes
    assert statuses(raw) == [400]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert "both Content-Length and Transfer-Encoding" in json.loads(body)["error"]["message"]
    assert seen == [], "neither request reached the API"


@pytest.mark.parametrize("version", [b"2.0", b"0.9", b"1.2", b"3.0"])
async def test_a_version_other_than_1_0_or_1_1_is_505_and_the_connection_closes(version):
    seen.clear()
    raw = await exchange(b"GET / HTTP/" + version + b"\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                         HttpConfig(keepalive_timeout=5))
    assert statuses(raw) == [505]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["message"].startswith(f"HTTP/{version.decode()} is not supported")
    assert seen == []


async def test_http_1_0_is_still_served():
    raw = await exchange(b"GET /old HTTP/1.0\r\n\r\n", close=True)
    assert statuses(raw) == [200]


async def test_a_malformed_request_is_named_readably_and_briefly():
    raw = await exchange(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: " + b"y" * 300 + b"\x01\r\n\r\n")
    message = json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["message"]
    assert message.startswith('malformed request: illegal header line: "Bad Header: yyy')
    assert message.endswith("... (313 bytes)")
    assert "bytearray" not in message and "b'" not in message
    assert len(message) < 200


async def test_a_control_character_in_a_request_line_is_shown_escaped():
    raw = await exchange(b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n")
    message = json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["message"]
    assert message == 'malformed request: illegal request line: "G\\x00T / HTTP/1.1"'


# -- waits and limits: what a connection may cost ----------------------------------------------

@contextlib.asynccontextmanager
async def tcp_server(config: HttpConfig, handler=echo_api):
    """An HttpServer on a free port of 127.0.0.1: (server, port)."""
    server = HttpServer(handler, config)
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(server.serve, "127.0.0.1", 0)
        yield server, port
        nursery.cancel_scope.cancel()


async def read_until_closed(stream: trio.abc.Stream, timeout: float = 5) -> tuple[bytes, float]:
    """All a stream receives until the other side closes it, and how long that took."""
    start = trio.current_time()
    out = bytearray()
    with trio.fail_after(timeout):
        try:
            while chunk := await stream.receive_some(65536):
                out += chunk
        except trio.BrokenResourceError:
            pass  # reset: closed all the same
    return bytes(out), trio.current_time() - start


async def test_a_new_connection_that_sends_nothing_is_closed_after_the_header_timeout():
    async with tcp_server(HttpConfig(header_timeout=0.5)) as (server, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        raw, waited = await read_until_closed(stream)
        assert raw == b"" and 0.45 <= waited < 1.5
        with trio.fail_after(1):  # (its task ends a moment after the socket is closed)
            while server.connections:
                await trio.sleep(0.01)


async def test_a_first_head_trickled_past_the_header_timeout_is_408():
    async with tcp_server(HttpConfig(header_timeout=0.6)) as (server, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        for byte in b"GET / HTTP/1.1\r\n":
            try:
                await stream.send_all(bytes([byte]))
            except trio.BrokenResourceError:
                break
            await trio.sleep(0.05)  # one byte each 50 ms: never idle, never done
        raw, _ = await read_until_closed(stream)
        assert statuses(raw) == [408]


async def test_idle_keep_alive_connections_keep_their_own_timeout():
    async with tcp_server(HttpConfig(header_timeout=0.3, keepalive_timeout=1.5)) as (server, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw, waited = await read_until_closed(stream)
        assert statuses(raw) == [200] and waited >= 1.4


async def test_at_the_limit_the_longest_waiting_connections_make_room():
    async with tcp_server(HttpConfig(max_connections=3)) as (server, port):
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        await idle.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert statuses(await idle.receive_some(65536)) == [200]
        silent = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(10)]
        await trio.sleep(0.2)
        assert len(server.connections) <= 3
        # The idle one waited longest, then the first silent ones: all closed to make room.
        assert (await read_until_closed(idle, 1))[0] == b""
        for stream in silent[:7]:
            assert (await read_until_closed(stream, 1))[0] == b""
        newcomer = await trio.open_tcp_stream("127.0.0.1", port)
        await newcomer.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert statuses(await newcomer.receive_some(65536)) == [200]


async def test_when_every_connection_is_busy_new_ones_wait_to_be_accepted():
    release = trio.Event()

    async def busy_api(request: ApiRequest) -> ApiResponse:
        if request.target == "/busy":
            await release.wait()
        return ApiResponse(200, [], b"done")

    async with tcp_server(HttpConfig(max_connections=2), busy_api) as (server, port):
        busy = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        for stream in busy:
            await stream.send_all(b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
        await trio.sleep(0.2)
        late = await trio.open_tcp_stream("127.0.0.1", port)  # the kernel's backlog takes it
        await late.send_all(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.move_on_after(0.3):
            await late.receive_some(65536)
            pytest.fail("served past the limit while every connection was busy")
        assert len(server.connections) == 2
        release.set()
        for stream in busy:
            assert statuses(await stream.receive_some(65536)) == [200], "busy ones were not closed"
        with trio.fail_after(2):
            assert statuses(await late.receive_some(65536)) == [200]


async def test_a_client_that_does_not_read_is_cut_off_after_the_send_timeout():
    body = b"x" * (3 * 1024 * 1024)

    async def big_api(request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, [], body)

    server = HttpServer(big_api, HttpConfig(send_timeout=0.5))
    client, server_side = trio.testing.lockstep_stream_pair()  # nothing buffered in between
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run_housekeeping)
        nursery.start_soon(server.serve_connection, server_side)
        await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.receive_some(1000)  # the head and a little: then it stops reading
        with trio.fail_after(2):
            while server.connections:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert server.memory_to_release or server._released_memory_at > 0


async def test_a_slow_reader_that_keeps_reading_gets_the_whole_response():
    body = bytes(range(256)) * (3 * 4096)  # 3 MiB: three sends, each within the timeout

    async def big_api(request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, [], body)

    server = HttpServer(big_api, HttpConfig(send_timeout=0.4))
    client, server_side = trio.testing.lockstep_stream_pair()
    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run_housekeeping)
        nursery.start_soon(server.serve_connection, server_side)
        await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(5):
            while len(received.partition(b"\r\n\r\n")[2]) < len(body):
                received += await client.receive_some(256 * 1024)
                await trio.sleep(0.05)  # 256 KiB per 50 ms: the whole takes 0.6 s, more than 0.4
        nursery.cancel_scope.cancel()
    assert received.partition(b"\r\n\r\n")[2] == body


async def test_a_responses_after_work_runs_once_after_it_is_written_or_fails():
    """ApiResponse.after (a call's bookkeeping) runs once the response is out, once a response
    that could not be sent is replaced, and once the client has gone: never twice, never lost."""
    ran: list[str] = []

    async def api(request: ApiRequest) -> ApiResponse:
        if request.target == "/bad":  # a header HTTP cannot carry: a 502 goes instead
            return ApiResponse(200, [("x-bad", "a\r\nb")], b"", after=lambda: ran.append("bad"))
        if request.target == "/raise":  # bookkeeping that fails must not end the connection
            return ApiResponse(200, [], b"r", after=lambda: 1 / 0)
        return ApiResponse(200, [], b"ok", after=lambda: ran.append(request.target))

    async def serve(data: bytes, *, leave: bool = False) -> bytes:
        client, server_side = trio.testing.memory_stream_pair()
        server = HttpServer(api, HttpConfig(keepalive_timeout=0.3))
        out = bytearray()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_connection, server_side)
            await client.send_all(data)
            if leave:
                await client.aclose()  # gone before the answer is written
                await trio.sleep(0.1)
            else:
                with trio.move_on_after(1):
                    while chunk := await client.receive_some(65536):
                        out += chunk
            nursery.cancel_scope.cancel()
        return bytes(out)

    raw = await serve(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /raise HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [200, 200, 200]
    assert ran == ["/a", "/b"]
    ran.clear()
    assert statuses(await serve(b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")) == [502]
    assert ran == ["bad"]
    ran.clear()
    await serve(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n", leave=True)
    assert ran == ["/gone"]
