"""What the token check of a call costs (issue 21.13c), side by side for several checkouts.

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.tokencheck \
        --variant new=. --variant old=/tmp/hotfn-old [--rounds 5] [--calls 20000] [--db URL]

Per round and variant, in alternation: a process run from that checkout (its ``hotfn``) makes a
store (a new SQLite file, or ``--db``: a PostgreSQL database, which it empties of its token),
creates an invoke token, and times ``Authenticator.check_route`` of an ``auth: "token"`` route
``calls`` times in a tight loop (the hash, and the store's lookup or the cache). Microseconds
per check: median over rounds, and the range. 127.0.0.1 only; bounded by rounds x calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile

from .functions import PYTHON, REPO_DIR

MEASURE = r"""
import json, os, sys, tempfile, time
import trio
from hotfn.access import Authenticator
from hotfn.models import new_token
from hotfn.store import open_store

async def main(calls, db):
    store = open_store(db or os.path.join(tempfile.mkdtemp(prefix="hotfn-bench-tokencheck-"), "t.db"))
    token, secret = new_token({"name": "bench-tokencheck", "scope": "invoke", "apps": ["bench"]})
    await store.create_token(token)
    try:
        auth = Authenticator(store, admin_token=None, enabled=False)
        headers = [("authorization", f"Bearer {secret}")]
        for _ in range(200):  # warm-up
            await auth.check_route(headers, "bench", "token", "")
        started = time.perf_counter()
        for _ in range(calls):
            await auth.check_route(headers, "bench", "token", "")
        print(json.dumps((time.perf_counter() - started) / calls * 1e6))
    finally:
        await store.delete_token(token.id)
        await store.close()

trio.run(main, int(sys.argv[1]), sys.argv[2])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", metavar="NAME=DIR")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--db", default="", help="a PostgreSQL URL (default: a SQLite file)")
    args = parser.parse_args()
    variants = [(v.partition("=")[0], os.path.abspath(v.partition("=")[2] or REPO_DIR))
                for v in (args.variant or ["new=."])]
    results: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(args.rounds):
        for name, source in variants:
            out = subprocess.run([PYTHON, "-c", MEASURE, str(args.calls), args.db], cwd=source,
                                 capture_output=True, text=True, timeout=600,
                                 env={**os.environ, "PYTHONPATH": source})
            if out.returncode != 0:
                raise SystemExit(f"{name}: {out.stderr}")
            results[name].append(json.loads(out.stdout))
            print(name, round(results[name][-1], 2), flush=True)
    print(json.dumps({"args": vars(args), "us_per_check": results}))
    store = "PostgreSQL" if args.db else "SQLite"
    print(f"\n| variant | µs per token check ({store}; median of {args.rounds}, range) |")
    print("| --- | --- |")
    for name, _ in variants:
        r = results[name]
        print(f"| {name} | {statistics.median(r):.1f} ({min(r):.1f}–{max(r):.1f}) |")


if __name__ == "__main__":
    main()
