"""Bounds on what one tenant can take from a node, tried the way an attacker did (issue 20):
the sandbox under both runtimes, the async queue and the store's size, routes and /metrics
series per app, the cost of refused calls, and the function firewall's reach."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker
ESCAPE = "hotfn-test/escape"


# -- the sandbox: seccomp under gVisor too, a tiny /dev/shm ------------------------------------

@pytest.mark.parametrize("isolation", ["container", "gvisor"])
async def test_no_user_namespace_no_raw_socket_and_a_tiny_dev_shm(server, gvisor, isolation):
    # As found: under runsc, Docker's seccomp profile was not applied: unshare(CLONE_NEWUSER)
    # worked and a raw socket opened inside the namespace; /dev/shm took 64 MiB under both.
    await server.create_app("demo")
    await server.create_route(path="/escape", image=ESCAPE, format="hot", isolation=isolation)
    reply = await server.call("demo", "/escape", method="GET")
    assert reply.status == 200, reply
    seen = reply.json()
    assert seen["unshare"].startswith("refused"), seen
    assert seen["raw_socket"].startswith("refused"), seen
    assert seen["shm_bytes"] <= 1024 * 1024, seen
