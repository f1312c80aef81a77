"""Bounds on what one tenant can take from a node, tried the way an attacker did (issue 20):
the sandbox under both runtimes, the async queue and the store's size, routes and /metrics
series per app, the cost of refused calls, and the function firewall's reach."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest
import trio

from hotfn.drivers.docker.networks import HOST_SUBNETS_CHAIN, connected_subnets, host_subnets_rules

pytestmark = pytest.mark.docker
ESCAPE = "hotfn-test/escape"
PROBE = "hotfn-test/probe"


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


# -- the function firewall: the host's own subnets ----------------------------------------------

class _Neighbour:
    """A "LAN neighbour" in public address space: a network namespace of the test's own, joined
    to the host by a veth pair on a /30 of 198.51.100.0/24 (TEST-NET-2), with a TCP service."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.netns, self.host_if, self.peer_if = f"hotfn-t-{tag}", f"hft{tag}a", f"hft{tag}b"
        base = 4 * secrets.randbelow(64)
        self.subnet = f"198.51.100.{base}/30"
        self.host_ip, self.peer_ip = f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"
        self.port = 8000 + secrets.randbelow(1000)
        self.listener: subprocess.Popen | None = None

    def __enter__(self) -> "_Neighbour":
        try:
            for args in (["netns", "add", self.netns],
                         ["link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if,
                          "netns", self.netns],
                         ["addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
                         ["link", "set", self.host_if, "up"],
                         ["-n", self.netns, "addr", "add", f"{self.peer_ip}/30", "dev", self.peer_if],
                         ["-n", self.netns, "link", "set", self.peer_if, "up"],
                         ["-n", self.netns, "link", "set", "lo", "up"]):
                subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)
            self.listener = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, sys.executable, "-c",
                 "import socket, sys\n"
                 "s = socket.create_server((sys.argv[1], int(sys.argv[2])))\n"
                 "while True:\n"
                 "    c, _ = s.accept(); c.sendall(b'neighbour\\n'); c.close()\n",
                 self.peer_ip, str(self.port)])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.listener is not None:
            self.listener.kill()
            self.listener.wait()
        # Deleting the namespace deletes its end of the pair, and so the host's end and route.
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=30)


async def _connect_from_host(host: str, port: int) -> bytes:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            return await stream.receive_some(100)


async def test_a_function_network_does_not_reach_the_hosts_public_lan(server):
    # As found: on a host whose LAN is public address space, a `network: true` function reached
    # its neighbours (only private ranges were dropped).
    with _Neighbour() as lan:
        with trio.fail_after(30):  # the service is up: the host itself reaches it
            while True:
                try:
                    assert await _connect_from_host(lan.peer_ip, lan.port) == b"neighbour\n"
                    break
                except OSError:
                    await trio.sleep(0.1)
        await server.create_app("net")
        await server.create_route("net", path="/probe", image=PROBE, format="hot", network=True)
        reply = await server.call("net", "/probe", method="GET",
                                  headers=[("x-connect", f"{lan.peer_ip}:{lan.port}")])
        assert reply.status == 200, reply
        assert reply.body.decode().startswith("refused"), reply.body
        chain = subprocess.run(["iptables", "-w", "-S", HOST_SUBNETS_CHAIN], capture_output=True,
                               text=True, check=True).stdout
        assert f"-d {lan.subnet} -j DROP" in chain
    # Gone from the host, gone from the chain at the next look.
    await server.server._driver.guard_host_subnets()
    chain = subprocess.run(["iptables", "-w", "-S", HOST_SUBNETS_CHAIN], capture_output=True,
                           text=True, check=True).stdout
    assert lan.subnet not in chain


def test_connected_subnets_are_read_from_the_routing_table():
    table = (
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"  # default via 192.0.2.1
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # 192.0.2.0/24
        "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"  # 172.17.0.0/16
        "eth1\t0064A8C0\t0A0A0A0A\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # via a gateway
        "eth2\t007133CB\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # down
        "hfn-0123456789a\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"  # ours
        "garbage\tzz\n"
    )
    assert connected_subnets(table) == ["172.17.0.0/16", "192.0.2.0/24"]
    rules = host_subnets_rules(["192.0.2.0/24"])
    assert f":{HOST_SUBNETS_CHAIN} - [0:0]" in rules and f"-A {HOST_SUBNETS_CHAIN} -d 192.0.2.0/24 -j DROP" in rules
