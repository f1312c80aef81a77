"""A small HTTP/1.1 client for the tests: real sockets, h11 on the client side."""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any

import h11
import trio


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:300]!r}>"


class HttpClient:
    """One keep-alive connection."""

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self.stream = stream
        self.host = host
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)

    @classmethod
    async def connect(cls, host: str, port: int) -> "HttpClient":
        return cls(await trio.open_tcp_stream(host, port), f"{host}:{port}")

    async def request(self, method: str, target: str, body: bytes | None = None, *,
                      headers: list[tuple[str, str]] | None = None, json: Any = None) -> Reply:
        hdrs = list(headers or [])
        if json is not None:
            body = jsonlib.dumps(json).encode()
            if not any(k.lower() == "content-type" for k, _ in hdrs):
                hdrs.append(("content-type", "application/json"))
        body = body or b""
        if not any(k.lower() == "host" for k, _ in hdrs):
            hdrs.insert(0, ("host", self.host))
        if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
            hdrs.append(("content-length", str(len(body))))
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        await self._send(h11.Request(method=method, target=target,
                                     headers=[(k.encode(), v.encode()) for k, v in hdrs]))
        if body:
            await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())
        return await self.read_reply()

    async def _send(self, event: h11.Event) -> None:
        await self.stream.send_all(self.conn.send(event))

    async def read_reply(self) -> Reply:
        head = None
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("server closed the connection")
        assert head is not None
        return Reply(head.status_code,
                     [(k.decode(), v.decode("utf-8", "replace")) for k, v in head.headers], bytes(body))

    async def aclose(self) -> None:
        await self.stream.aclose()


async def request(url: str, method: str, target: str, body: bytes | None = None, **kw: Any) -> Reply:
    host, port = url.removeprefix("http://").split(":")
    client = await HttpClient.connect(host, int(port))
    try:
        return await client.request(method, target, body, **kw)
    finally:
        await client.aclose()


async def raw_exchange(url: str, data: bytes, *, read_timeout: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server sends until it closes (or the timeout)."""
    host, port = url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    out = bytearray()
    try:
        await stream.send_all(data)
        with trio.move_on_after(read_timeout):
            while chunk := await stream.receive_some(65536):
                out += chunk
    finally:
        await stream.aclose()
    return bytes(out)
