"""The Python shim gives a handler the attempt it runs as (issue 21.13a): an async call that
fails on its first run and is run again sees ``request.attempt == 2``, through a real server."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
import trio

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIM = ROOT / "runtime-shims" / "python" / "hotfn_runtime"

HANDLER = '''
def handler(request):
    if request.attempt < 2:
        raise RuntimeError(f"attempt {request.attempt} fails on purpose")
    return {"attempt": request.attempt, "call_id": request.call_id}
'''


@pytest.fixture(scope="module")
def attempt_image(tmp_path_factory) -> str:
    """A function on this tree's shim: hotfn/python with its hotfn_runtime replaced by the one
    here, so the test checks the shim as it is now, whichever hotfn/python the engine holds."""
    from hotfn.functions import build_function

    directory = tmp_path_factory.mktemp("attempt-python")
    (directory / "func.py").write_text(HANDLER)
    shutil.copytree(SHIM, directory / "hotfn_runtime", ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "Dockerfile").write_text(
        "FROM hotfn/python\n"
        "COPY hotfn_runtime /opt/hotfn/python/hotfn_runtime\n"
        "RUN python3 -m compileall -q /opt/hotfn/python\n")
    return build_function(str(directory), tag="hotfn-test/attempt-python")


async def test_an_async_call_run_again_tells_the_python_handler_its_attempt(server_factory, images,
                                                                           attempt_image):
    server = await server_factory(async_retry_delay=0.1)
    await server.create_app("demo")
    await server.create_route(path="/job", image=attempt_image, format="hot", type="async",
                              max_attempts=3)
    reply = await server.call("demo", "/job", b"x")
    assert reply.status == 202, reply
    call_id = reply.json()["call_id"]
    with trio.fail_after(60):
        while True:
            record = (await server.req("GET", f"/v1/apps/demo/calls/{call_id}")).json()["call"]
            if record["status"] not in ("queued", "running"):
                break
            await trio.sleep(0.1)
    assert record["status"] == "success" and record["attempts"] == 2, record
    assert json.loads(record["result"]) == {"attempt": 2, "call_id": call_id}
