"""The no-container baselines of the overhead breakdown, each its own process:

    python -m hotfn_bench.baseline --port P          hotfn's own HTTP front (hotfn.http.HttpServer,
                                                     h11 over trio) with a handler echoing the body
                                                     from memory: one Python process, one trio loop,
                                                     as in `hotfn serve`, minus everything behind
                                                     the HTTP layer.
    python -m hotfn_bench.baseline --port P --raw    no HTTP library at all: blocking sockets, a
                                                     thread per connection, the request's
                                                     Content-Length found by hand and the body sent
                                                     back with a canned head in one send(): what the
                                                     client and loopback TCP cost by themselves.
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading

import trio

from hotfn.api import ApiRequest, ApiResponse
from hotfn.http import HttpConfig, HttpServer


async def echo(request: ApiRequest) -> ApiResponse:
    # The same headers a hot echo answers with (content-type aside): hotfn-call-id.
    return ApiResponse(200, [("hotfn-call-id", "baseline")], request.body)


async def serve_h11(port: int) -> None:
    server = HttpServer(echo, HttpConfig())
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await nursery.start(server.serve, "127.0.0.1", port)
            print(f"baseline (h11) serving on 127.0.0.1:{port}", flush=True)
            async for _ in signals:
                server.stop()
                break


def _raw_connection(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            conn.sendall(b"HTTP/1.1 200 OK\r\nhotfn-call-id: raw\r\ncontent-length: %d\r\n\r\n" % len(body) + body)


def serve_raw(port: int) -> None:
    listener = socket.create_server(("127.0.0.1", port))
    print(f"baseline (raw sockets) serving on 127.0.0.1:{port}", flush=True)
    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    # Explicitly: a process started in the background may have inherited SIGINT ignored.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_raw_connection, args=(conn,), daemon=True).start()
    except (KeyboardInterrupt, OSError):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--raw", action="store_true")
    args = parser.parse_args()
    if args.raw:
        serve_raw(args.port)
    else:
        trio.run(serve_h11, args.port)
