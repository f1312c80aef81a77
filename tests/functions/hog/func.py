"""Misbehaves inside the limits hotfn puts on containers: memory, processes, files, network."""
import os

from hotfn_runtime import Response


def handler(request):
    test = request.header("x-hog", "")
    if test == "memory":
        hog = []
        while True:  # until the memory limit kills us
            hog.append(bytearray(16 * 1024 * 1024))
    if test == "fork":
        children = 0
        try:
            while children < 10000:
                if os.fork() == 0:
                    import time
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError as exc:
            return Response(200, {}, f"fork refused after {children} children: {exc.strerror}")
        return Response(500, {}, f"forked {children} children unchecked")
    if test == "write-root":
        try:
            with open("/etc/hotfn-was-here", "w") as f:
                f.write("x")
            return Response(500, {}, "root filesystem is writable")
        except OSError as exc:
            with open("/tmp/scratch", "w") as f:  # /tmp is a tmpfs and must work
                f.write("ok")
            return Response(200, {}, f"root read-only ({exc.strerror}); /tmp writable")
    if test == "network":
        # Look, don't touch: the interfaces tell whether a network is attached.
        return Response(200, {}, ",".join(sorted(os.listdir("/sys/class/net"))))
    return "ok"
