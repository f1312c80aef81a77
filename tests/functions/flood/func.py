"""Writes more than anyone should, as its headers say: x-flood stdout (an answer of x-mb MiB,
or endless), stderr (x-mb MiB of log), sleep (x-seconds). With FLOOD_STARTUP=forge (route config
flood-startup) it writes a forged server log line and terminal escapes, and dies, at start-up."""
import os
import sys
import time

if os.environ.get("FLOOD_STARTUP") == "forge":
    sys.stderr.write("cannot start\n2026-01-01 00:00:00,000 WARNING hotfn.server: forged line\n"
                     "\x1b[2J\x1b[31mred\x1b[0m\n")
    sys.stderr.flush()
    sys.exit(1)

from hotfn_runtime import Response  # noqa: E402

MIB = b"x" * (1024 * 1024)


def handler(request):
    flood = request.header("x-flood", "")
    mb = int(request.header("x-mb", "1"))
    if flood == "stdout":
        if mb < 0:  # endless: the answer is never complete
            while True:
                os.write(1, MIB)
        return Response(200, {}, MIB * mb)
    if flood == "stderr":
        for _ in range(mb):
            sys.stderr.buffer.write(MIB)
        sys.stderr.buffer.write(b"\nend of flood\n")
        sys.stderr.flush()
        return "flooded"
    if flood == "sleep":
        time.sleep(float(request.header("x-seconds", "1")))
        return "slept"
    return "ok"
