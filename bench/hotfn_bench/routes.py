"""What one route change costs as routes accumulate: this tree against an earlier one (``--ref``,
default ``main``), side by side in one run.

    bench/routes [--routes 1000] [--ref main]

Each side is a real ``hotfn serve`` process (its own SQLite file and node id) into which one app
and ``--routes`` cold routes are created, one POST at a time, over a keep-alive connection; the
report gives the time per creation for the first and the last hundred. The routes are cold,
so that no container starts and the figure is the control plane's alone. The earlier tree is ``git archive``d into a temporary
directory (the worktree is left alone).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from .server import free_port, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "hotfn/python"


def measure(source: str, routes: int, label: str) -> dict:
    workdir = tempfile.mkdtemp(prefix="hotfn-bench-routes-")
    port = free_port()
    node = f"bench-routes-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, PYTHONPATH=source)
    process = subprocess.Popen(
        [sys.executable, "-m", "hotfn", "serve", "--port", str(port), "--node-id", node,
         "--db", os.path.join(workdir, "routes.db"), "--log-level", "warning", "--io-dir", ""],
        cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def post(target: str, payload: dict) -> None:
            conn.request("POST", target, json.dumps(payload), {"content-type": "application/json"})
            reply = conn.getresponse()
            body = reply.read()
            if reply.status not in (200, 201):  # IronFunctions' 200 since the compat work
                raise RuntimeError(f"{label}: POST {target}: {reply.status} {body[:200]!r}")

        def up() -> bool:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            probe.request("GET", "/health")
            return probe.getresponse().status == 200

        wait_for(up, 30, what=f"{label} server")
        post("/v1/apps", {"app": {"name": "many"}})
        times = []
        for i in range(routes):
            started = time.perf_counter()
            post("/v1/apps/many/routes", {"route": {"path": f"/r{i:05d}", "image": IMAGE}})
            times.append(time.perf_counter() - started)
        return {"label": label, "routes": routes,
                "first_100_ms": statistics.mean(times[:100]) * 1000,
                "last_100_ms": statistics.mean(times[-100:]) * 1000,
                "last_100_p99_ms": sorted(times[-100:])[98] * 1000,
                "total_s": sum(times)}
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--ref", default="main", help="git ref of the tree to compare with")
    args = parser.parse_args()
    earlier = tempfile.mkdtemp(prefix="hotfn-bench-ref-")
    try:
        archive = subprocess.run(["git", "-C", REPO, "archive", args.ref], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", earlier], input=archive, check=True)
        rows = [measure(earlier, args.routes, args.ref), measure(REPO, args.routes, "this tree")]
    finally:
        shutil.rmtree(earlier, ignore_errors=True)
    print(f"| tree | routes | ms per route, first 100 | ms per route, last 100 | p99 last 100 | total s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['label']} | {r['routes']} | {r['first_100_ms']:.1f} | {r['last_100_ms']:.1f} "
              f"| {r['last_100_p99_ms']:.1f} | {r['total_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
