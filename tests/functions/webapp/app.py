"""A small WSGI web app: several paths, JSON, a binary body, a 418, all in one process."""

import json
import os

served = 0


def application(environ, start_response):
    global served
    served += 1
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    if path == "/api/hello":
        name = environ["QUERY_STRING"].partition("name=")[2] or "world"
        return _reply(start_response, "200 OK", "text/plain", f"hello {name}".encode())
    if path.startswith("/api/items/") and method == "GET":
        item = {"id": path.rsplit("/", 1)[1], "served": served, "pid": os.getpid()}
        return _reply(start_response, "200 OK", "application/json", json.dumps(item).encode())
    if path == "/api/echo" and method == "POST":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        return _reply(start_response, "200 OK", "application/octet-stream", body[::-1])
    if path == "/api/teapot":
        return _reply(start_response, "418 I'm a teapot", "text/plain", b"short and stout")
    return _reply(start_response, "404 Not Found", "text/plain", f"no page {path}".encode())


def _reply(start_response, status, content_type, body):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
