"""Benchmark function: a handler that waits IOWAIT_MS (default 10) on I/O, then echoes the body.

It speaks the frames itself (docs/protocol.md), not through a shim, and asks for IOWAIT_CONCURRENCY
requests in flight (route config; 1 sends no `concurrency` key, as a container that knows
nothing of it). Each request waits on a thread of its own, so answers leave in any order.
"""
import os
import struct
import sys
import threading
import time

import msgpack

CONCURRENCY = int(os.environ.get("IOWAIT_CONCURRENCY", "1"))
WAIT_S = float(os.environ.get("IOWAIT_MS", "10")) / 1000
out, inp = sys.stdout.buffer, sys.stdin.buffer
lock = threading.Lock()


def send(obj):
    payload = msgpack.packb(obj, use_bin_type=True)
    with lock:
        out.write(struct.pack(">I", len(payload)) + payload)
        out.flush()


def answer(req):
    time.sleep(WAIT_S)  # the I/O wait: a database, another service
    send({"type": "response", "call_id": req["call_id"], "status": 200, "headers": [],
          "body": req["body"]})


ready = {"type": "ready", "version": 1, "runtime": "python iowait-bench"}
if CONCURRENCY != 1:
    ready["concurrency"] = CONCURRENCY
send(ready)
while len(prefix := inp.read(4)) == 4:
    req = msgpack.unpackb(inp.read(struct.unpack(">I", prefix)[0]), raw=False)
    threading.Thread(target=answer, args=(req,), daemon=True).start()
