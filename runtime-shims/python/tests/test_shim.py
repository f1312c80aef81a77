"""The Python shim: its codec against the shared vectors, and its process, hot and cold."""

import base64
import json
import os
import pathlib
import struct
import subprocess
import sys
import time

import pytest

from hotfn_runtime import frames
from hotfn_runtime.lambda_adapter import LambdaContext, adapt, from_result, to_event
from hotfn_runtime.runner import request_from_env
from hotfn_runtime.types import Request, Response, to_response

HERE = pathlib.Path(__file__).parent
VECTORS = json.loads((HERE.parent.parent.parent / "docs" / "protocol-vectors.json").read_text())
SHIM = HERE.parent


def from_json(value):
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


class Trickle:
    """A stream that hands out one byte per read, like the slowest pipe."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int) -> bytes:
        chunk, self.data = self.data[:1], self.data[1:]
        return chunk


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_reader_decodes_valid_vectors_byte_by_byte(vector):
    reader = frames.FrameReader(Trickle(bytes.fromhex(vector["bytes"])), VECTORS["max_frame_size"])
    assert reader.read_frame() == from_json(vector["frame"])
    assert reader.read_frame() is None


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_reader_refuses_invalid_vectors(vector):
    reader = frames.FrameReader(Trickle(bytes.fromhex(vector["bytes"])), VECTORS["max_frame_size"])
    if vector["error"] == "malformed" and vector["name"].startswith(("unknown", "request", "response")):
        pytest.skip("field-level checks are the runner's (it reads only request frames)")
    with pytest.raises(frames.ProtocolError) as info:
        reader.read_frame()
    assert isinstance(info.value, frames.FrameTooLarge) == (vector["error"] == "oversized")


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_encoder_output_decodes_back(vector):
    frame = from_json(vector["frame"])
    wire = frames.encode(frame)
    assert frames.decode_payload(wire[4:]) == frame


def test_response_conversions():
    assert to_response("é").body == "é".encode() and to_response("é").headers == [
        ("content-type", "text/plain; charset=utf-8")]
    assert to_response(None).body == b""
    assert json.loads(to_response({"a": 1}).body) == {"a": 1}
    assert to_response(Response(201, {"x": "y"}, b"b")).headers == [("x", "y")]
    with pytest.raises(TypeError):
        to_response(42)
    with pytest.raises(ValueError):
        to_response(Response(700))


def test_cold_request_from_environment():
    env = {"METHOD": "PUT", "REQUEST_URL": "http://h/r/app/users/7?a=1&a=2", "APP_NAME": "app",
           "ROUTE": "/users/:id", "CALL_ID": "c", "DEADLINE": "99", "HEADER_X_TOKEN": "t",
           "PARAM_ID": "7"}
    request = request_from_env(env, b"body")
    assert (request.method, request.path, request.query) == ("PUT", "/users/7", [("a", "1"), ("a", "2")])
    assert request.header("X-Token") == "t" and request.params == {"id": "7"}
    assert (request.deadline, request.call_id, request.body) == (99, "c", b"body")
    assert request.attempt == 1  # no HOTFN_ATTEMPT: a first run, as from an older hotfn
    assert request_from_env({**env, "HOTFN_ATTEMPT": "3"}, b"").attempt == 3
    assert request_from_env({**env, "HOTFN_ATTEMPT": "zero"}, b"").attempt == 1


class Process:
    """The shim as hotfn runs it: python -m hotfn_runtime, hot, frames on stdin and stdout."""

    def __init__(self, handler: str = "func:handler", **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotfn_runtime"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=SHIM,
            env={**os.environ, "PYTHONPATH": str(SHIM), "HOTFN_FORMAT": "hot",
                 "HOTFN_FUNCTION_DIR": str(HERE / "fixtures"), "HOTFN_HANDLER": handler, **env})
        self.reader = frames.FrameReader(self.proc.stdout)

    def call(self, body: bytes = b"", headers=(), call_id: str = "c1", **extra) -> dict:
        frame = {"type": "request", "call_id": call_id, "method": "POST",
                 "url": "http://h/r/a/p/1", "path": "/p/1", "query": [], "headers": [list(h) for h in headers],
                 "body": body, "deadline": 0, "app": "a", "route": "/p/:n", "params": {"n": "1"},
                 **extra}
        self.proc.stdin.write(frames.encode(frame))
        self.proc.stdin.flush()
        answer = self.reader.read_frame()
        assert answer["call_id"] == call_id
        return answer

    def finish(self) -> tuple[int, bytes]:
        self.proc.stdin.close()
        code = self.proc.wait(timeout=10)
        return code, self.proc.stderr.read()


def test_hot_loop_serves_answers_and_survives_errors():
    p = Process()
    assert p.reader.read_frame()["type"] == "ready"
    assert p.call(bytes(range(256)))["body"] == bytes(range(256))
    failed = p.call(headers=[("x-kind", "raise")])
    assert (failed["type"], failed["error_type"], failed["message"]) == ("error", "ValueError", "bad input")
    assert "Traceback" in failed["trace"]
    assert p.call(headers=[("x-kind", "bad-return")])["type"] == "error"
    assert p.call(b"x", headers=[("x-kind", "print")])["body"] == b"x"
    assert p.call(b"a", headers=[("x-kind", "async")])["body"] == b"async a"
    status = p.call(headers=[("x-kind", "status")])
    assert status["status"] == 404 and status["headers"] == [["x-a", "1"], ["x-a", "2"]]
    assert json.loads(p.call(headers=[("x-kind", "json")])["body"]) == {"path": "/p/1", "params": {"n": "1"}}
    code, stderr = p.finish()
    assert code == 0 and b"user output" in stderr


def test_the_handler_gets_the_attempt_the_frame_carries_and_1_without_it():
    p = Process()
    assert p.reader.read_frame()["type"] == "ready"
    kind = [("x-kind", "attempt")]
    first = p.call(headers=kind, call_id="a1")
    assert json.loads(first["body"]) == {"attempt": 1, "call_id": "a1"}
    again = p.call(headers=kind, call_id="a1", attempt=2)
    assert json.loads(again["body"]) == {"attempt": 2, "call_id": "a1"}
    # A handler that never looks at it is served as before.
    assert p.call(b"old", call_id="a2", attempt=3)["body"] == b"old"
    code, stderr = p.finish()
    assert code == 0, stderr


@pytest.mark.parametrize("attempt", [0, -1, "2", True, 1.5])
def test_a_request_frame_with_a_bad_attempt_is_a_protocol_error(attempt):
    p = Process()
    assert p.reader.read_frame()["type"] == "ready"
    frame = {"type": "request", "call_id": "c", "method": "POST", "url": "http://h/r/a/p",
             "path": "/p", "query": [], "headers": [], "body": b"", "deadline": 0, "app": "a",
             "route": "/p", "params": {}, "attempt": attempt}
    p.proc.stdin.write(frames.encode(frame))
    p.proc.stdin.flush()
    code, stderr = p.finish()
    assert code == 2 and b"attempt must be an int" in stderr


def test_hot_oversized_request_exits_and_oversized_response_is_an_error_frame():
    p = Process(HOTFN_MAX_FRAME_SIZE=str(1024 * 1024))
    p.reader.read_frame()
    big = p.call(headers=[("x-kind", "big")])
    assert big["type"] == "error" and "exceeds" in big["message"]
    p.proc.stdin.write(struct.pack(">I", 2 * 1024 * 1024))
    p.proc.stdin.flush()
    code, stderr = p.finish()
    assert code != 0 and b"exceeds" in stderr


def test_handler_that_cannot_load_exits_before_ready():
    p = Process(handler="no_such_module:handler")
    code, stderr = p.finish()
    assert code == 1 and b"no_such_module" in stderr
    assert p.proc.stdout.read() == b""


def test_lambda_adapter_runs_a_lambda_handler_hot():
    p = Process(handler="func:lambda_handler", HOTFN_ADAPTER="lambda")
    p.reader.read_frame()
    answer = p.call(b"\xff\x00binary")
    assert answer["status"] == 201
    assert ["x-method", "POST"] in answer["headers"]
    assert [h for h in answer["headers"] if h[0] == "set-cookie"] == [["set-cookie", "a=1"], ["set-cookie", "b=2"]]
    assert answer["body"] == b"\xff\x00binary"  # base64 in, base64 out
    p.finish()


def test_lambda_event_shape():
    request = Request("GET", "http://h/r/a/u/7?x=1&x=2", "/u/7", [("x", "1"), ("x", "2")],
                      [("content-type", "application/json"), ("accept", "a"), ("accept", "b")],
                      b'{"k": 1}', "cid", 0, "a", "/u/:id", {"id": "7"})
    event = to_event(request)
    assert event["httpMethod"] == "GET" and event["path"] == "/u/7" and event["resource"] == "/u/:id"
    assert event["queryStringParameters"] == {"x": "2"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["multiValueHeaders"]["accept"] == ["a", "b"]
    assert event["pathParameters"] == {"id": "7"}
    assert event["body"] == '{"k": 1}' and event["isBase64Encoded"] is False
    assert LambdaContext(request).aws_request_id == "cid"
    assert from_result({"statusCode": 200, "body": base64.b64encode(b"\x00").decode(),
                        "isBase64Encoded": True}).body == b"\x00"
    assert adapt(lambda e, c: "plain")(request).body == "plain"


# -- many calls per container (docs/protocol.md 2.2.1): raw frames, answers matched by call id


def _send_sleepy(p: Process, call_id: str, ms: int, kind: str = "") -> None:
    frame = {"type": "request", "call_id": call_id, "method": "POST", "url": "http://h/r/a/p",
             "path": "/p", "query": [], "headers": [["x-sleep-ms", str(ms)], ["x-kind", kind]],
             "body": b"", "deadline": 0, "app": "a", "route": "/p", "params": {}}
    p.proc.stdin.write(frames.encode(frame))
    p.proc.stdin.flush()


def _burst(p: Process, waits: list[int], prefix: str) -> tuple[list[dict], float]:
    start = time.perf_counter()
    for i, ms in enumerate(waits):
        _send_sleepy(p, f"{prefix}{i}", ms)
    answers = [p.reader.read_frame() for _ in waits]
    return answers, (time.perf_counter() - start) * 1000


@pytest.mark.parametrize("handler", ["func:sleepy", "func:sleepy_sync"])
def test_sixteen_calls_in_flight_answered_in_one_wait_by_call_id_in_any_order(handler):
    p = Process(handler, HOTFN_CONCURRENCY="16")
    assert p.reader.read_frame()["concurrency"] == 16
    # c0 waits longest: it must come back after the calls sent after it.
    answers, _ = _burst(p, [600] + [50] * 15, "c")
    assert answers[-1]["call_id"] == "c0"
    assert sorted(a["call_id"] for a in answers) == sorted(f"c{i}" for i in range(16))
    assert all(a["type"] == "response" and a["body"] == b"body " + a["call_id"].encode() for a in answers)
    _, elapsed = _burst(p, [50] * 16, "d")
    assert elapsed < 400, f"16 calls of 50 ms took {elapsed:.0f} ms (one at a time: >= 800 ms)"
    code, stderr = p.finish()
    assert code == 0, stderr


def test_concurrency_is_one_by_default_and_calls_stay_in_order():
    p = Process("func:sleepy")
    assert "concurrency" not in p.reader.read_frame()
    answers, _ = _burst(p, [40, 1], "o")
    assert [a["call_id"] for a in answers] == ["o0", "o1"]
    p.finish()


def test_no_more_than_concurrency_calls_run_at_once():
    p = Process("func:sleepy", HOTFN_CONCURRENCY="4")
    p.reader.read_frame()
    _, elapsed = _burst(p, [50] * 8, "q")
    assert elapsed >= 95, f"8 calls of 50 ms, 4 at a time, took only {elapsed:.0f} ms"
    p.finish()


def test_eof_with_calls_in_flight_answers_them_all_then_exits_0():
    p = Process("func:sleepy", HOTFN_CONCURRENCY="4")
    p.reader.read_frame()
    for i in range(4):
        _send_sleepy(p, f"e{i}", 30)
    p.proc.stdin.close()
    assert {p.reader.read_frame()["call_id"] for _ in range(4)} == {f"e{i}" for i in range(4)}
    assert p.proc.wait(timeout=10) == 0


def test_a_crash_mid_flight_ends_the_process_leaving_only_whole_frames():
    p = Process("func:sleepy", HOTFN_CONCURRENCY="16")
    p.reader.read_frame()
    for i in range(16):
        _send_sleepy(p, f"x{i}", 5 if i == 8 else 5 + (i % 3) * 20, "exit" if i == 8 else "")
    answers = []
    while (frame := p.reader.read_frame()) is not None:  # a torn frame raises ProtocolError
        answers.append(frame)
    assert p.proc.wait(timeout=10) == 3
    assert len(answers) < 16 and all(a["type"] == "response" for a in answers)


def test_a_bad_concurrency_setting_serves_one_at_a_time_and_says_so():
    p = Process(HOTFN_CONCURRENCY="lots")
    assert "concurrency" not in p.reader.read_frame()
    assert p.call(b"x")["body"] == b"x"
    code, stderr = p.finish()
    assert code == 0 and b"HOTFN_CONCURRENCY=lots" in stderr
