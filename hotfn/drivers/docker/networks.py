"""Function networks: one bridge per app and node, named from its labels."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import subprocess
from typing import Callable, Mapping

log = logging.getLogger(__name__)

# Function networks: one bridge per app and node, its Linux interface named BRIDGE_PREFIX + a
# hash, so that scripts/ensure-sandbox's iptables rules (matching "hfn+") keep every function
# network away from the host's own addresses and from private networks (and HostSubnetGuard, below,
# from the subnets the host is connected to). ICC off: containers on the same bridge cannot reach
# one another either.
NETWORK_LABEL = "hotfn.network"
BRIDGE_PREFIX = "hfn-"
BRIDGE_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}


def network_names(labels: Mapping[str, str]) -> tuple[str, str]:
    """(Docker network name, bridge interface name) of the network carrying ``labels``."""
    key = "\0".join(f"{k}={v}" for k, v in sorted(labels.items()))
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    app = labels.get("hotfn.app", "")
    # Linux caps interface names at 15 bytes: "hfn-" and 11 hex digits.
    return f"hotfn-{app[:40]}-{digest[:12]}", f"{BRIDGE_PREFIX}{digest[:11]}"


class _NetworkUse:
    """How many of our live containers are on a network, and since when none are."""

    def __init__(self) -> None:
        self.users = 0
        self.idle_since = 0.0



# -- the host's own subnets ------------------------------------------------------------------
# scripts/ensure-sandbox's rules drop private and special ranges. A host whose LAN is public
# address space (a hosting provider's, a university's) would leave its neighbours reachable from
# a function with `network: true`: so the subnets the host is directly connected to are dropped
# too, in a chain of our own on Docker's DOCKER-USER, refilled whenever they change.

HOST_SUBNETS_CHAIN = "HOTFN-HOSTNETS"
ROUTE_TABLE = "/proc/net/route"
_RTF_UP, _RTF_GATEWAY = 0x1, 0x2


def connected_subnets(route_table: str) -> list[str]:
    """The IPv4 subnets of the main routing table's connected routes (up, no gateway, not the
    default route, not a function network's bridge), as CIDR text, sorted: ``route_table`` is
    /proc/net/route's text."""
    subnets = set()
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[0].startswith(BRIDGE_PREFIX):
            continue  # (function networks' own subnets: Docker keeps them apart already)
        try:
            destination, gateway = int(fields[1], 16), int(fields[2], 16)
            flags, mask = int(fields[3], 16), int(fields[7], 16)
        except ValueError:
            continue
        if not flags & _RTF_UP or flags & _RTF_GATEWAY or gateway or not mask:
            continue
        # The kernel writes these in host byte order, little-endian on every Linux we run on.
        net = ipaddress.IPv4Network((int.from_bytes(destination.to_bytes(4, "little"), "big"),
                                     bin(mask).count("1")), strict=False)
        subnets.add(net)
    return [str(n) for n in sorted(subnets)]


def host_subnets_rules(subnets: list[str]) -> str:
    """iptables-restore input that (re)fills HOST_SUBNETS_CHAIN at once: a reader never sees it
    half filled, and several servers on one host may write it side by side."""
    lines = ["*filter", f":{HOST_SUBNETS_CHAIN} - [0:0]",
             f"-A {HOST_SUBNETS_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"]
    lines += [f"-A {HOST_SUBNETS_CHAIN} -d {net} -j DROP" for net in subnets]
    return "\n".join(lines + ["COMMIT", ""])


class HostSubnetGuard:
    """Keeps function networks off the host's connected subnets. ``sync`` blocks (it reads the
    routing table and runs iptables): run it in a thread. It does nothing while the subnets
    are those it last wrote, and says once why it could not write them."""

    def __init__(self, route_table: str = ROUTE_TABLE,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
        self._route_table = route_table
        self._run = run
        self.written: list[str] | None = None
        self._failure: str | None = None

    def sync(self) -> None:
        try:
            with open(self._route_table) as f:
                subnets = connected_subnets(f.read())
        except OSError as exc:
            self._failed(f"cannot read {self._route_table}: {exc}")
            return
        jump = ["DOCKER-USER", "-i", f"{BRIDGE_PREFIX[:-1]}+", "-j", HOST_SUBNETS_CHAIN]
        try:
            # The same subnets, and the jump still there (a firewall reload removes it): done.
            jumps = self._run(["iptables", "-w", "-C", *jump], capture_output=True, timeout=30)
            if subnets == self.written and jumps.returncode == 0:
                return
            restore = self._run(["iptables-restore", "-w", "--noflush"],
                                input=host_subnets_rules(subnets), capture_output=True,
                                text=True, timeout=30)
            if restore.returncode == 0 and jumps.returncode != 0:
                restore = self._run(["iptables", "-w", "-I", *jump[:1], "1", *jump[1:]],
                                    capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            self._failed(str(exc))
            return
        if restore.returncode != 0:
            self._failed((restore.stderr or "").strip()[:300] or f"exit status {restore.returncode}")
            return
        log.info("function networks kept off the host's own subnets: %s", ", ".join(subnets) or "none")
        self.written, self._failure = subnets, None

    def _failed(self, why: str) -> None:
        if why != self._failure:
            log.warning("could not keep function networks off the host's own subnets (%s): "
                        "functions with network: true may reach the host's neighbours; run "
                        "hotfn as root, or scripts/ensure-sandbox after every change of them", why)
        self._failure = why
