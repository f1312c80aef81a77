"""A function container that breaks the protocol on purpose, as ROGUE_MODE (route config) says.

Speaks frames by hand (no shim) so that it can do what no shim would.
"""
import json
import os
import struct
import sys
import time

import msgpack

MODE = os.environ.get("ROGUE_MODE", "echo")
out = sys.stdout.buffer
inp = sys.stdin.buffer


def send(obj):
    payload = msgpack.packb(obj, use_bin_type=True)
    out.write(struct.pack(">I", len(payload)) + payload)
    out.flush()


def read():
    prefix = inp.read(4)
    if len(prefix) < 4:
        sys.exit(0)
    (n,) = struct.unpack(">I", prefix)
    return msgpack.unpackb(inp.read(n), raw=False)


if MODE == "no-ready":
    time.sleep(3600)
if MODE == "exit-before-ready":
    print("cannot load the handler: ImportError: no module named 'missing'", file=sys.stderr, flush=True)
    sys.exit(1)
if MODE == "slow-start":
    time.sleep(float(os.environ.get("ROGUE_DELAY", "2")))
send({"type": "ready", "version": 2 if MODE == "bad-version" else 1, "runtime": "rogue"})
if MODE == "unsolicited":
    time.sleep(0.2)
    send({"type": "response", "call_id": "nobody", "status": 200, "headers": [], "body": b""})
served = 0
while True:
    req = read()
    served += 1
    if MODE == "garbage":
        out.write(b"this is not a frame at all\n" * 10)
        out.flush()
        time.sleep(3600)
    elif MODE == "oversized":
        out.write(struct.pack(">I", 0x7FFFFFFF))
        out.flush()
        time.sleep(3600)
    elif MODE == "wrong-call-id":
        send({"type": "response", "call_id": "not-" + req["call_id"], "status": 200, "headers": [], "body": b""})
    elif MODE == "close-stdout":
        out.close()
        os.close(1)
        time.sleep(3600)
    elif MODE == "die-after-one" and served > 1:
        os._exit(7)
    elif MODE == "answer":
        # The request body says what to answer: {"status", "headers": [[k, v]...], "body"}.
        spec = json.loads(req["body"])
        send({"type": "response", "call_id": req["call_id"], "status": spec["status"],
              "headers": spec.get("headers", []), "body": spec.get("body", "").encode()})
    else:
        body = req["body"]
        send({"type": "response", "call_id": req["call_id"], "status": 200,
              "headers": [["x-served", str(served)], ["x-pid", str(os.getpid())]], "body": body})
