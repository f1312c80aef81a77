"""The fast reader of plain requests (hotfn/http/simple.py): exact parses, refusals, and a
differential test against h11 — wherever the fast reader answers, h11 answers the same."""

from __future__ import annotations

import random

import h11
import pytest

from hotfn.http.simple import SimpleRequest, keeps_alive, parse_simple_request
from test_http import exchange, seen, statuses

MAX = 64 * 1024


def parse(data: bytes | bytearray, max_header_size: int = MAX):
    return parse_simple_request(data, max_header_size)


# -- exact parses ---------------------------------------------------------------------------

def test_a_plain_get_is_read_exactly():
    data = b"GET /r/app/fn?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    assert parse(data) == (SimpleRequest(b"GET", b"/r/app/fn?x=1",
                                         [(b"host", b"example.com"), (b"accept", b"*/*")],
                                         b"1.1", b"", True), len(data))


def test_a_post_with_its_body_is_read_exactly_and_what_follows_is_left():
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n"
    request, consumed = parse(data)
    assert request == SimpleRequest(b"POST", b"/echo", [(b"host", b"x"), (b"content-length", b"5")],
                                    b"1.1", b"hello", True)
    assert data[consumed:] == b"GET / HTTP/1.1\r\n"


def test_pipelined_requests_are_read_one_after_the_other():
    one = b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
    two = b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    first, consumed = parse(one + two)
    assert (first.target, first.body, consumed) == (b"/1", b"a", len(one))
    second, consumed = parse((one + two)[consumed:])
    assert (second.method, second.target, consumed) == (b"GET", b"/2", len(two))


def test_a_bytearray_is_read_as_bytes():
    data = bytearray(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    request, consumed = parse(data)
    assert type(request.body) is bytes and request.body == b"hi" and consumed == len(data)
    assert all(type(n) is bytes and type(v) is bytes for n, v in request.headers)


def test_names_are_lower_case_values_trimmed_repeats_kept_in_order():
    data = (b"GET / HTTP/1.1\r\nHOST: x\r\nX-A:  one two \t\r\nx-a:two\r\nEmpty:\r\n"
            b"Tabs:\t\tv\t\r\nObs-Text: caf\xc3\xa9\x80\xff\r\n\r\n")
    request, _ = parse(data)
    assert request.headers == [(b"host", b"x"), (b"x-a", b"one two"), (b"x-a", b"two"),
                               (b"empty", b""), (b"tabs", b"v"), (b"obs-text", b"caf\xc3\xa9\x80\xff")]


@pytest.mark.parametrize("value", [b"5", b" 5", b"5 ", b"\t5\t", b"0005"])
def test_content_length_with_white_space_around_it_is_read_as_h11_reads_it(value):
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:" + value + b"\r\n\r\nhelloX"
    request, consumed = parse(data)
    assert request.body == b"hello" and data[consumed:] == b"X"
    assert request.headers[1] == (b"content-length", value.strip())


def test_content_length_zero_and_no_content_length_are_empty_bodies():
    for head in (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                 b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"):
        request, consumed = parse(head + b"rest")
        assert request.body == b"" and consumed == len(head)


@pytest.mark.parametrize("head, alive", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive , CLOSE\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),  # (as h11: no 1.0 keep-alive)
])
def test_keep_alive_is_decided_as_h11_decides_it(head, alive):
    request, _ = parse(head)
    assert request.keep_alive is alive
    assert keeps_alive(request.http_version, request.headers) is alive


def test_http_1_0_needs_no_host():
    request, _ = parse(b"GET / HTTP/1.0\r\n\r\n")
    assert (request.http_version, request.headers) == (b"1.0", [])


def test_a_head_at_the_size_limit_is_read_and_one_past_it_is_not():
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 100 + b"\r\n\r\n"
    assert parse(head, len(head)) is not None
    assert parse(head, len(head) - 1) is None


def test_a_head_whose_end_lies_past_the_limit_is_left_to_h11():
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 200 + b"\r\n\r\n"
    assert parse(head, 100) is None


def test_many_short_headers_count_as_the_server_counts_them():
    # "a:b" lines take 5 bytes each on the wire but count 6 (name + value + 4): the wire size
    # is under the limit and the counted size over it, so h11's path must answer (431).
    head = b"GET / HTTP/1.1\r\nHost:x\r\n" + b"a:b\r\n" * 100 + b"\r\n"
    assert parse(head, len(head)) is None


def test_every_proper_prefix_of_a_request_is_left_to_h11_byte_by_byte():
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    for end in range(len(data)):
        assert parse(data[:end]) is None, data[:end]
    assert parse(data)[1] == len(data)


# -- refusals: each left to h11, which answers it as before -----------------------------------

GOOD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"

REFUSED = {
    "content-length with transfer-encoding":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
    "transfer-encoding alone": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n0\r\n\r\n",
    "two content-lengths, same": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                 b"Content-Length: 5\r\n\r\nhello",
    "two content-lengths, different": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                      b"Content-Length: 3\r\n\r\nhello",
    "content-length list": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
    "content-length +5": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "content-length -5": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello",
    "content-length 5 5": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\nhello",
    "content-length hex": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
    "content-length empty": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\nhello",
    "content-length 21 digits": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                + b"0" * 20 + b"5\r\n\r\nhello",
    "content-length arabic digit": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xd9\xa5\r\n\r\n",
    "expect 100-continue": b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                           b"Content-Length: 5\r\n\r\nhello",
    "expect anything": b"GET / HTTP/1.1\r\nHost: x\r\nExpect: x\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
    "obs-fold with a tab": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n",
    "continuation first": b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
    "bare LF at the end": b"GET / HTTP/1.1\r\nHost: x\n\n",
    "bare LF ending the request line": b"GET / HTTP/1.1\nHost: x\r\n\r\n",
    "bare LF in a header": b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
    "blank LF line before CRLFCRLF": b"GET / HTTP/1.1\r\nHost: x\n\nX: y\r\n\r\n",
    "bare CR in a header": b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    "NUL in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    "CTL in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
    "DEL in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n",
    "vertical tab in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x0bb\r\n\r\n",
    "8-bit in the target": b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
    "space in the target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "missing host": b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "two hosts in 1.0": b"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n",
    "HTTP/1.2": b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
    "HTTP/2.0": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "HTTP/0.9 style": b"GET /\r\n\r\n",
    "lower-case version": b"GET / http/1.1\r\nHost: x\r\n\r\n",
    "space before the colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "empty header name": b"GET / HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n",
    "no colon": b"GET / HTTP/1.1\r\nHost: x\r\nX\r\n\r\n",
    "separator in a name": b"GET / HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n",
    "two spaces in the request line": b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    "tab in the request line": b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "trailing space after the version": b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
    "method not a token": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "leading CRLF": b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "empty": b"",
    "only CRLFCRLF": b"\r\n\r\n",
    "TLS hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "partial head": b"GET / HTTP/1.1\r\nHost: x\r\n",
    "partial body": GOOD[:-1],
    "huge head": b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * MAX + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_each_hostile_or_unusual_request_is_left_to_h11(name):
    assert parse(REFUSED[name]) is None


# -- the same reading as h11's ---------------------------------------------------------------

def h11_reads(data: bytes, max_header_size: int = MAX):
    """What the server's h11 path makes of ``data`` arriving whole: (request, bytes taken), or
    None when h11 needs more bytes, or refuses it, or the server would refuse what h11 read."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
    conn.receive_data(data)
    try:
        head = conn.next_event()
        if not isinstance(head, h11.Request):
            return None
        headers = list(head.headers)
        names = {name for name, _ in headers}
        size = len(head.target) + sum(len(k) + len(v) + 4 for k, v in headers)
        if (head.http_version not in (b"1.0", b"1.1") or size > max_header_size
                or {b"content-length", b"transfer-encoding"} <= names):
            return None  # the server's own refusals (505, 431, 400)
        body = b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return None
    except h11.RemoteProtocolError:
        return None
    request = SimpleRequest(head.method, head.target, headers, head.http_version, body,
                            keeps_alive(head.http_version, headers))
    return request, len(data) - len(conn.trailing_data[0])


CORPUS = [GOOD, *REFUSED.values(),
          b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
          b"GET /r/app/fn?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8.5.0\r\n"
          b"Accept: */*\r\n\r\n",
          b"POST /r/bench/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,
          b"PUT /v1/apps/a HTTP/1.1\r\nhost: h\r\ncontent-type: application/json\r\n"
          b"content-length: 2\r\nconnection: close\r\n\r\n{}",
          b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
          b"OPTIONS * HTTP/1.1\r\nHost: x\r\nX-Empty: \r\nX-Text: caf\xc3\xa9\r\n\r\n",
          b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
          b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
          b"DELETE /a HTTP/1.1\r\nHost: x\r\nCookie: a=\x01b\r\nContent-Length: 0\r\n\r\n",
          b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
          b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\r\n"]

# What a mutation inserts: the bytes HTTP parsers trip on, and any byte now and then.
INTERESTING = b"\r\n \t:,;\x00\x01\x7f\x80\xff0123456789aAzZ/.-+\"'()"


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(3)
        at = rng.randint(0, len(data))
        byte = rng.choice(INTERESTING) if rng.random() < 0.8 else rng.randrange(256)
        if op == 0 and at < len(data):
            data[at] = byte
        elif op == 1:
            data.insert(at, byte)
        elif at < len(data):
            del data[at]
    return bytes(data)


def test_wherever_the_fast_reader_answers_h11_answers_the_same():
    rng = random.Random(13)
    # Mostly mutants of requests it accepts: near the edge of what it accepts.
    accepted_seeds = [data for data in CORPUS if parse(data) is not None]
    cases = list(CORPUS)
    cases += [mutate(rng, rng.choice(accepted_seeds)) for _ in range(5000)]
    cases += [mutate(rng, rng.choice(CORPUS)) for _ in range(1000)]
    accepted = 0
    for data in cases:
        for limit in (MAX, 60):
            fast = parse(data, limit)
            if fast is not None:
                accepted += 1
                assert h11_reads(data, limit) == fast, data
    # The test is worth something only if many mutants are still accepted.
    assert accepted > 1000


def test_the_fast_reader_accepts_what_h11_reads_in_the_plain_corpus():
    # The other direction, for the requests it is there for: it must not leave them to h11.
    for data in CORPUS[len(REFUSED) + 1:]:
        expected = h11_reads(data)
        if expected is not None and b"\x01" not in data:
            assert parse(data) == expected, data


# -- in the server ---------------------------------------------------------------------------

@pytest.fixture
def h11_connections(monkeypatch):
    """How many h11 connections the server makes."""
    made = []
    real = h11.Connection

    def counting(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("hotfn.http.connection.h11.Connection", counting)
    return made


async def test_plain_requests_are_served_without_an_h11_connection(h11_connections):
    reqs = b"".join(b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % (i, i)
                    for i in range(3))
    raw = await exchange(reqs)
    assert statuses(raw) == [200] * 3
    assert h11_connections == []


async def test_plain_and_other_requests_pipelined_are_answered_in_order(h11_connections):
    seen.clear()
    reqs = (b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
            b"POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nbb\r\n0\r\n\r\n"
            b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /4 HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"
            b"GET /5 HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await exchange(reqs)
    assert statuses(raw) == [200] * 5
    assert [(r.target, r.body) for r in seen] == [("/1", b"a"), ("/2", b"bb"), ("/3", b""),
                                                  ("/4", b""), ("/5", b"")]
    assert seen[3].headers[1] == ("x", "a b")  # (obs-fold, read by h11)
    assert len(h11_connections) == 2


async def test_a_body_that_arrives_after_its_head_is_read_by_h11(h11_connections):
    seen.clear()
    raw = await exchange([b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe", b"llo",
                          b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"], wait=0.05)
    assert statuses(raw) == [200, 200]
    assert [(r.target, r.body) for r in seen] == [("/a", b"hello"), ("/b", b"")]
    assert len(h11_connections) == 1


async def test_a_whole_plain_request_over_the_body_limit_is_413_and_nothing_more(h11_connections):
    from hotfn.http.server import HttpConfig
    seen.clear()
    raw = await exchange(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
                         b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                         HttpConfig(max_body_size=10, keepalive_timeout=0.3))
    assert statuses(raw) == [413]
    assert b"request body of 11 bytes exceeds the limit of 10 bytes" in raw
    assert b"connection: close" in raw.lower()
    assert seen == [] and h11_connections == []


async def test_connection_close_and_http_1_0_end_a_plain_exchange():
    for request in (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    b"GET / HTTP/1.0\r\n\r\n"):
        raw = await exchange(request + b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        assert statuses(raw) == [200]
        assert b"connection: close" in raw.lower() and b"/never" not in raw


async def test_a_plain_head_request_gets_no_body():
    raw = await exchange(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [200, 200]
    first, second = raw.split(b"HTTP/1.1 200 OK")[1:]
    assert first.endswith(b"\r\n\r\n") and b'"target":"/b"' in second
