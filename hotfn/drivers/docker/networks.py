"""Function networks: one bridge per app and node, named from its labels."""

from __future__ import annotations

import hashlib
from typing import Mapping

# Function networks: one bridge per app and node, its Linux interface named BRIDGE_PREFIX + a
# hash, so that scripts/ensure-sandbox's iptables rules (matching "hfn+") keep every function
# network away from the host's own addresses and from private networks. ICC off: containers on
# the same bridge cannot reach one another either.
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

