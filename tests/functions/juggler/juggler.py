"""A function container that takes many requests at once and answers them in any order.

Speaks frames by hand (no shim): its ready frame asks for JUGGLER_CONCURRENCY requests in flight
(route config; "absent" sends no `concurrency` key: one at a time). Each request is answered on
a thread of its own after its `x-delay-ms` header's milliseconds (default JUGGLER_DELAY_MS), so a
later request with a shorter delay is answered first. The answer echoes the body, with
`x-in-flight` (requests in flight when this one came), `x-max-in-flight` (the most so far)
and `x-instance` (one id per container).
`x-juggler: crash` exits at once (status 3) with every request in flight unanswered;
`x-juggler: unknown-id` answers with a call id that was never sent.
"""
import os
import struct
import sys
import threading
import time
import uuid

import msgpack

CONCURRENCY = os.environ.get("JUGGLER_CONCURRENCY", "16")
DELAY_MS = float(os.environ.get("JUGGLER_DELAY_MS", "0"))
INSTANCE = uuid.uuid4().hex  # (its pid is 1 in every container)
out = sys.stdout.buffer
inp = sys.stdin.buffer
write_lock = threading.Lock()
count_lock = threading.Lock()
in_flight = 0
max_in_flight = 0


def send(obj):
    payload = msgpack.packb(obj, use_bin_type=True)
    with write_lock:
        out.write(struct.pack(">I", len(payload)) + payload)
        out.flush()


def read():
    prefix = inp.read(4)
    if len(prefix) < 4:
        return None
    (n,) = struct.unpack(">I", prefix)
    return msgpack.unpackb(inp.read(n), raw=False)


def answer(req, seen):
    global in_flight
    headers = dict(req["headers"])
    time.sleep(float(headers.get("x-delay-ms", DELAY_MS)) / 1000)
    call_id = req["call_id"]
    if headers.get("x-juggler") == "unknown-id":
        call_id = "never-sent-" + call_id
    print(f"answering {req['call_id']}", file=sys.stderr, flush=True)
    with count_lock:
        in_flight -= 1
        most = max_in_flight
    send({"type": "response", "call_id": call_id, "status": 200,
          "headers": [["x-in-flight", str(seen)], ["x-max-in-flight", str(most)],
                      ["x-instance", INSTANCE]],
          "body": req["body"]})


ready = {"type": "ready", "version": 1, "runtime": "juggler"}
if CONCURRENCY != "absent":
    ready["concurrency"] = int(CONCURRENCY)
send(ready)
while (req := read()) is not None:
    if dict(req["headers"]).get("x-juggler") == "crash":
        print("crashing on purpose", file=sys.stderr, flush=True)
        os._exit(3)
    with count_lock:
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        seen = in_flight
    threading.Thread(target=answer, args=(req, seen), daemon=True).start()
