"""Benchmark function in the http format (IronFunctions' hot format), no shim: read an HTTP/1.1
request from stdin, echo its body in a response with Content-Length, loop. The counterpart of
echo-python (msgpack frames through the Python shim) for docs/protocol.md section 6."""
import sys

inp = sys.stdin.buffer
out = sys.stdout.buffer
while True:
    if not inp.readline():
        sys.exit(0)
    length = 0
    while True:
        line = inp.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    body = inp.read(length)
    out.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    out.flush()
