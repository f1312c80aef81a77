"""A SIGTERM while the disk is still full (issue 21.11): the call records the store could not take
are counted in an ERROR line and kept in a spill file, which the next start writes to the store
once the disk allows. The full disk is a small tmpfs of the test's own, holding the database
and the spill directory both (the spill file is written in room reserved at start).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3

import pytest
import trio

from conftest import new_node_id
from test_robustness import ECHO, _fill, small_file_system
from test_server_process import serve_process

pytestmark = pytest.mark.docker


@pytest.fixture
def small_disk(tmp_path):
    with small_file_system(tmp_path, 16) as mount:
        yield mount


def _saved(db: str, ids: list[str]) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute(
            f"SELECT id FROM calls WHERE id IN ({','.join('?' * len(ids))})", ids)}


async def test_records_a_sigterm_cannot_save_on_a_full_disk_are_counted_kept_and_saved_at_the_next_start(
        images, tmp_path, small_disk):
    db = str(small_disk / "hotfn.db")
    spill_dir = small_disk / "spill"  # on the disk that fills up
    node_id = new_node_id()
    options = ("--spill-dir", str(spill_dir), "--no-access-log")
    async with serve_process(tmp_path, 10, *options, db=db, node_id=node_id) as (process, server):
        await server.create_app("demo")
        await server.create_route(path="/hot", image=ECHO, format="hot")
        before = await server.call("demo", "/hot", b"before")
        assert before.status == 200
        with trio.fail_after(10):  # saved: what follows is all the recorder will hold
            while _saved(db, [before.header("hotfn-call-id")]) == set():
                await trio.sleep(0.05)
        _fill(small_disk)
        ids = []
        for i in range(40):
            reply = await server.call("demo", "/hot", b"during %d" % i)
            assert reply.status == 200, reply
            ids.append(reply.header("hotfn-call-id"))
        # The recorder has met the full disk (so the records are still buffered).
        with trio.fail_after(30):
            while "could not save call records" not in server.log_path.read_text():
                await trio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            await process.wait()
        log = server.log_path.read_text()
    assert not _saved(db, ids)
    counted = re.search(r"ERROR hotfn\.calls: could not save (\d+) call record\(s\) and (\d+) "
                        r"log\(s\) at shutdown .*: kept in (\S+),", log)
    assert counted, log[-3000:]
    assert int(counted[1]) == len(ids)
    spill = spill_dir / f"{node_id}.calls"
    assert counted[3] == str(spill) and spill.exists()
    spilled = [json.loads(line) for line in spill.read_text().splitlines()]
    assert {e["call"]["id"] for e in spilled if "call" in e} == set(ids)

    # Once the disk has room again, the next start writes them and removes the file.
    os.remove(small_disk / "filler")
    async with serve_process(tmp_path, 10, *options, db=db, node_id=node_id) as (process, server):
        assert "loaded 40 call record(s)" in server.log_path.read_text()
        with trio.fail_after(30):
            while _saved(db, ids) != set(ids):
                await trio.sleep(0.1)
        with trio.fail_after(10):
            while spill.exists():
                await trio.sleep(0.1)
        record = await server.req("GET", f"/v1/apps/demo/calls/{ids[0]}")
        assert record.status == 200 and record.json()["call"]["status"] == "success"
    # A clean stop gives the reserved room back.
    assert list(spill_dir.iterdir()) == []


async def test_a_hostile_spill_file_is_checked_line_by_line(images, tmp_path):
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir(mode=0o700)
    node_id = new_node_id()
    good = {"id": "01GOOD", "app": "demo", "route": "/x", "mode": "hot", "type": "sync",
            "status": "success", "created_at": 1.0}
    lines = [json.dumps({"call": good}), "not json", json.dumps({"call": {**good, "id": 5}}),
             json.dumps({"call": {**good, "id": "01EVIL", "extra": 1}}),
             json.dumps({"call": {**good, "id": "01NEST", "error": {"a": 1}}}),
             json.dumps({"log": ["01GOOD", "demo", "!!not base64"]}), json.dumps([1, 2])]
    spill = spill_dir / f"{node_id}.calls"
    spill.write_text("\n".join(lines) + "\n")
    spill.chmod(0o600)
    db = str(tmp_path / "s.db")
    async with serve_process(tmp_path, 10, "--spill-dir", str(spill_dir), db=db,
                             node_id=node_id) as (process, server):
        with trio.fail_after(30):
            while spill.exists():
                await trio.sleep(0.1)
        log = server.log_path.read_text()
        assert "has 6 line(s) that are not call records; skipped" in log, log
        assert _saved(db, ["01GOOD", "01EVIL", "01NEST"]) == {"01GOOD"}
        assert process.returncode is None


def test_a_spill_file_that_is_not_this_users_alone_is_not_loaded(tmp_path, caplog):
    from hotfn.invoke import CallRecorder

    record = json.dumps({"call": {"id": "01X", "app": "a", "route": "/r", "mode": "hot",
                                  "type": "sync", "status": "success"}}) + "\n"
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # as /var/tmp: anyone may put a file here
    (shared / "n.calls").write_text(record)
    (shared / "n.calls").chmod(0o600)
    assert CallRecorder(None, spill_path=str(shared / "n.calls"))._read_spill() == ([], [])
    assert "not a directory of this user's alone" in caplog.text
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    (own / "n.calls").write_text(record)
    (own / "n.calls").chmod(0o666)
    assert CallRecorder(None, spill_path=str(own / "n.calls"))._read_spill() == ([], [])
    assert "not this user's alone" in caplog.text
    (own / "n.calls").chmod(0o600)
    calls, logs = CallRecorder(None, spill_path=str(own / "n.calls"))._read_spill()
    assert [c.id for c in calls] == ["01X"] and logs == []
