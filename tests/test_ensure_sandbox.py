"""scripts/ensure-sandbox, run for real (scripts/setup runs it before the suite): idempotent,
and it merges its runtime into daemon.json without touching what else is there."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import GVISOR_UNAVAILABLE, ROOT

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.geteuid() != 0, reason="installs packages and firewall rules: needs root"),
]
SCRIPT = str(ROOT / "scripts" / "ensure-sandbox")


def run(env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def rules() -> str:
    return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout


def test_running_it_again_changes_nothing():
    assert run().returncode == 0
    before, mtime = rules(), os.stat("/etc/docker/daemon.json").st_mtime_ns
    again = run()
    assert again.returncode == 0, again.stderr
    assert rules() == before and os.stat("/etc/docker/daemon.json").st_mtime_ns == mtime
    assert before.count("-A INPUT -i hfn+ -j HOTFN-INPUT") == 1
    assert before.count("-A DOCKER-USER -i hfn+ -j HOTFN-FORWARD") == 1
    assert "-A HOTFN-INPUT -j DROP" in before
    runtimes = json.loads(subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}"],
                                         capture_output=True, text=True, check=True).stdout)
    assert "runsc" in runtimes or GVISOR_UNAVAILABLE.exists()


def test_daemon_json_is_merged_not_clobbered_and_bad_json_is_left_alone(tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text(json.dumps({"log-level": "warn", "runtimes": {"other": {"path": "/bin/true"}}}))
    done = run({"HOTFN_DOCKER_DAEMON_JSON": str(daemon_json)})
    assert done.returncode == 0, done.stderr
    merged = json.loads(daemon_json.read_text())
    assert merged["log-level"] == "warn" and merged["runtimes"]["other"] == {"path": "/bin/true"}
    assert merged["runtimes"]["runsc"]["path"] == "/usr/bin/runsc"
    assert "--network=none" in merged["runtimes"]["runsc"]["runtimeArgs"]
    assert "--oci-seccomp" in merged["runtimes"]["runsc"]["runtimeArgs"]
    daemon_json.write_text("{not json")
    refused = run({"HOTFN_DOCKER_DAEMON_JSON": str(daemon_json)})
    assert refused.returncode == 1 and "is not valid JSON" in refused.stderr
    assert daemon_json.read_text() == "{not json"
