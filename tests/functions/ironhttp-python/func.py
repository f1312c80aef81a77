"""A hot function written the way IronFunctions' hot-function docs show: read an HTTP/1.1
request from stdin (Content-Length says where its body ends), answer with an HTTP/1.1 response
with Content-Length on stdout, and loop. No hotfn shim.

What it does is chosen by the request's X-Mode header, so the tests can make it misbehave.
Without FN_FORMAT=http (a cold route) it runs once, IronFunctions' default format: body on
stdin, answer on stdout, and shows the environment it was given.
"""
import json
import os
import sys
import time

inp = sys.stdin.buffer
out = sys.stdout.buffer


def read_request():
    line = inp.readline()
    if not line:
        sys.exit(0)  # stdin closed: hotfn is done with this container
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        line = inp.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = inp.read(int(headers.get("content-length", "0")))
    return method, target, headers, body


def answer(status, body, headers=(), reason="OK"):
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    out.write(head.encode("latin-1") + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    out.flush()


if os.environ.get("FN_FORMAT") != "http":
    body = sys.stdin.buffer.read()
    names = ("DB_URL", "PLAIN", "MIXED_CASE_KEY", "METHOD", "ROUTE", "REQUEST_URL", "HEADER_X_ONE",
             "PARAM_ID")
    json.dump({"env": {n: os.environ.get(n) for n in names}, "body": body.decode()}, sys.stdout)
    sys.exit(0)

time.sleep(float(os.environ.get("SLOW_START", "0")))  # a slow runtime's start-up
served = 0
while True:
    method, target, headers, body = read_request()
    served += 1
    mode = headers.get("x-mode", "info")
    print(f"call {headers.get('task-id')} mode {mode}", file=sys.stderr, flush=True)
    if mode == "garbage":
        out.write(b"this is not an HTTP response\r\n\r\n")
        out.flush()
    elif mode == "no-length":
        out.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nand where does it end?")
        out.flush()
    elif mode == "sleep":
        time.sleep(float(headers.get("x-seconds", "60")))
        answer(200, b"woke up")
    elif mode == "close":
        answer(200, b"last one", [("Connection", "close")])
        sys.exit(0)
    elif mode == "status":
        answer(201, b"made", [("X-Id", "42"), ("Content-Type", "text/plain")], reason="Created")
    elif mode == "exit":
        sys.exit(3)
    elif mode == "echo":
        answer(200, body, [("Content-Type", "application/octet-stream")])
    else:
        info = {"pid": os.getpid(), "served": served, "method": method, "target": target,
                "headers": headers, "body": body.decode("utf-8", "replace"),
                "env": {n: os.environ.get(n) for n in ("DB_URL", "PLAIN", "APP_NAME", "FN_FORMAT")}}
        answer(200, json.dumps(info).encode(), [("Content-Type", "application/json")])
