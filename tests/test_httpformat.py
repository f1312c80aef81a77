"""The http hot format's codec (hotfn/protocol/httpformat.py), byte by byte, without a container."""

from __future__ import annotations

import pytest

from hotfn import protocol
from hotfn.protocol.httpformat import (HttpChannel, MalformedResponse, RequestNotWritable,
                                       ResponseTooLarge, request_head)


def make_request(**kw) -> protocol.Request:
    fields = dict(
        call_id="01CALL", method="POST", url="http://fn.example:8080/r/demo/users/7?x=1&y=%20",
        path="/users/7", query=(("x", "1"), ("y", " ")),
        headers=(("host", "fn.example:8080"), ("content-type", "text/plain"),
                 ("x-multi", "a"), ("x-multi", "b"), ("connection", "keep-alive"),
                 ("transfer-encoding", "chunked"), ("expect", "100-continue")),
        body=b"hello", deadline=1764284400000, app="demo", route="/users/:id",
        params={"id": "7"},
    )
    fields.update(kw)
    return protocol.Request(**fields)


EXPECTED_REQUEST = (
    b"POST /users/7?x=1&y=%20 HTTP/1.1\r\n"
    b"Host: fn.example:8080\r\n"
    b"content-type: text/plain\r\n"
    b"x-multi: a\r\n"
    b"x-multi: b\r\n"
    b"Content-Length: 5\r\n"
    b"METHOD: POST\r\n"
    b"ROUTE: /users/:id\r\n"
    b"REQUEST_URL: http://fn.example:8080/r/demo/users/7?x=1&y=%20\r\n"
    b"HEADER_HOST: fn.example:8080\r\n"
    b"HEADER_CONTENT_TYPE: text/plain\r\n"
    b"HEADER_X_MULTI: a, b\r\n"
    b"HEADER_CONNECTION: keep-alive\r\n"
    b"HEADER_TRANSFER_ENCODING: chunked\r\n"
    b"HEADER_EXPECT: 100-continue\r\n"
    b"PARAM_ID: 7\r\n"
    b"Task-ID: 01CALL\r\n"
    b"Hotfn-Call-Id: 01CALL\r\n"
    b"Hotfn-Deadline: 1764284400000\r\n"
    b"Hotfn-Attempt: 1\r\n"
    b"\r\n"
    b"hello"
)

RESPONSE = (b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-Id: caf\xe9\r\n"
            b"Content-Length: 11\r\n\r\nhello world")


def answered(channel: HttpChannel, data: bytes, *, step: int | None = None) -> list:
    """Feed ``data`` (in pieces of ``step`` bytes) and collect what next_frame returns."""
    out = []
    pieces = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        channel.receive_data(piece)
        while (frame := channel.next_frame()) is not protocol.NEED_DATA:
            out.append(frame)
            if frame is protocol.CLOSED:
                break
    return out


def test_request_bytes_exactly():
    channel = HttpChannel()
    assert channel.send_request(make_request()) == EXPECTED_REQUEST
    assert channel.in_flight


def test_head_goes_as_get_with_the_true_method_in_a_header():
    method, target, headers = request_head(make_request(method="HEAD", body=b""))
    assert method == "GET" and target == b"/users/7?x=1&y=%20"
    assert (b"METHOD", b"HEAD") in headers and (b"Content-Length", b"0") in headers


def test_response_whole_and_split_at_every_byte():
    for split in range(1, len(RESPONSE) + 1):
        channel = HttpChannel()
        channel.send_request(make_request())
        first, rest = RESPONSE[:split], RESPONSE[split:]
        got = answered(channel, first) + (answered(channel, rest) if rest else [])
        assert got == [protocol.Response("01CALL", 201, (
            ("content-type", "text/plain"), ("x-id", "caf\xe9"), ("content-length", "11")),
            b"hello world")], split
        assert not channel.in_flight and not channel.must_close


def test_byte_at_a_time_chunked_and_many_calls_on_one_channel():
    channel = HttpChannel()
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    for n in range(3):
        channel.send_request(make_request(call_id=f"c{n}"))
        data = chunked if n % 2 else RESPONSE
        got = answered(channel, data, step=1)
        assert len(got) == 1 and got[0].call_id == f"c{n}" and got[0].body == b"hello world"


def test_204_needs_no_length():
    channel = HttpChannel()
    channel.send_request(make_request())
    [answer] = answered(channel, b"HTTP/1.1 204 No Content\r\n\r\n")
    assert answer.status == 204 and answer.body == b""


@pytest.mark.parametrize("data, says", [
    (b"HTTP/1.1 200 OK\r\n\r\nno length", "neither Content-Length nor"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "interim 100"),
    (b"this is not http\r\n\r\n", "not a well-formed HTTP/1.1 response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "not a well-formed"),
    (b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 0\r\n\r\n", "not a well-formed"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "not a well-formed"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a well-formed"),
])
def test_malformed_responses_break_the_channel_for_good(data, says):
    channel = HttpChannel()
    channel.send_request(make_request())
    with pytest.raises(MalformedResponse, match=says):
        answered(channel, data)
    with pytest.raises(MalformedResponse, match=says):
        channel.next_frame()  # sticky: the container is never read again
    with pytest.raises(MalformedResponse):
        channel.send_request(make_request())


def test_oversized_head_is_refused():
    channel = HttpChannel()
    channel.send_request(make_request())
    with pytest.raises(MalformedResponse):
        answered(channel, b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024))


def test_body_over_the_limit_is_refused_by_its_length_before_it_is_read():
    channel = HttpChannel(max_response_size=10)
    channel.send_request(make_request())
    with pytest.raises(ResponseTooLarge, match="response body of 11 bytes exceeds the 10-byte limit"):
        answered(channel, b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")


def test_chunked_body_over_the_limit_is_refused_as_it_grows():
    channel = HttpChannel(max_response_size=10)
    channel.send_request(make_request())
    with pytest.raises(ResponseTooLarge):
        answered(channel, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n")


def test_bytes_with_no_request_in_flight_are_malformed():
    channel = HttpChannel()
    with pytest.raises(MalformedResponse, match="no request in flight"):
        answered(channel, b"HTTP/1.1 200 OK\r\n")


def test_bytes_after_a_response_keep_the_answer_then_break_the_channel():
    channel = HttpChannel()
    channel.send_request(make_request())
    channel.receive_data(RESPONSE + b"junk")
    assert channel.next_frame().body == b"hello world"
    with pytest.raises(MalformedResponse, match="4 bytes after its response"):
        channel.next_frame()


def test_connection_close_answers_then_must_close():
    for response in (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                     b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"):
        channel = HttpChannel()
        channel.send_request(make_request())
        [answer] = answered(channel, response)
        assert answer.body == b"ok" and channel.must_close
        with pytest.raises(RuntimeError):
            channel.send_request(make_request())


def test_eof_between_answers_and_without_an_answer_is_closed_mid_answer_malformed():
    channel = HttpChannel()
    assert answered(channel, b"") == [protocol.CLOSED]
    channel = HttpChannel()
    channel.send_request(make_request())
    assert answered(channel, b"") == [protocol.CLOSED]  # it exited: its exit status says why
    channel = HttpChannel()
    channel.send_request(make_request())
    with pytest.raises(MalformedResponse):
        answered(channel, RESPONSE[:-3])
        answered(channel, b"")


def test_requests_http_cannot_carry_are_refused_without_harm():
    channel = HttpChannel(max_request_size=4)
    with pytest.raises(protocol.FrameTooLarge):
        channel.send_request(make_request())
    channel = HttpChannel()
    with pytest.raises(RequestNotWritable):
        channel.send_request(make_request(params={"id": "a\r\nX-Injected: 1"}))
    assert not channel.in_flight
    channel.send_request(make_request())  # the channel is still good
    assert answered(channel, RESPONSE)[0].status == 201


def test_non_ascii_parameter_goes_as_utf8():
    _, _, headers = request_head(make_request(params={"name": "caf\u00e9 \u2603"}))
    assert (b"PARAM_NAME", "caf\u00e9 \u2603".encode()) in headers
