"""The engine's HTTP API over its unix socket, for what an idle server asks of it: ping, and
listing and removing containers. No docker SDK: loading it (requests, urllib3, email, tarfile,
...) costs the server ~9 MiB, so the driver loads it only once a container is to be started.

One request per connection, HTTP/1.0 (the engine then answers without chunked encoding and
closes when done), the answer read to EOF, bounded in size and time.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any

import trio

from ..base import DriverError, EngineUnavailable

MAX_ANSWER = 16 * 1024 * 1024
DEFAULT_SOCKET = "/var/run/docker.sock"


def socket_path_from_env(env: dict[str, str] | None = None) -> str | None:
    """The engine's unix socket as DOCKER_HOST names it (or the default); None when it names
    another transport (tcp, ssh: the SDK's business)."""
    host = (os.environ if env is None else env).get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return None


class EngineSocket:
    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self.path = path
        self.timeout = timeout

    async def request(self, method: str, path: str, query: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body); EngineUnavailable when the engine cannot be reached in time."""
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        try:
            with trio.fail_after(self.timeout):
                stream = await trio.open_unix_socket(self.path)
                async with stream:
                    await stream.send_all(f"{method} {target} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
                    answer = bytearray()
                    while chunk := await stream.receive_some(65536):
                        answer += chunk
                        if len(answer) > MAX_ANSWER:
                            raise DriverError(f"{method} {path}: the engine's answer exceeds {MAX_ANSWER} bytes")
        except (OSError, trio.BrokenResourceError) as exc:
            raise EngineUnavailable(f"the Docker engine is not reachable at {self.path} ({exc})") from exc
        except trio.TooSlowError:
            raise EngineUnavailable(f"the Docker engine at {self.path} did not answer within "
                                    f"{self.timeout:g} s") from None
        head, _, body = bytes(answer).partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise DriverError(f"{method} {path}: the engine's answer is not HTTP: {head[:80]!r}") from None
        return status, body

    async def json(self, method: str, path: str, query: dict[str, str] | None = None) -> Any:
        status, body = await self.request(method, path, query)
        if status >= 300:
            raise DriverError(f"{method} {path}: {status} {_message(body)}")
        try:
            return json.loads(body) if body.strip() else None
        except ValueError:
            raise DriverError(f"{method} {path}: the engine's answer is not JSON") from None


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message"))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace").strip()
