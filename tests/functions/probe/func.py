"""Reports what a function can see of its sandbox: who it runs as, what it may do, which kernel
it talks to, what reaps its orphans, and whether it can open a TCP connection somewhere."""
import json
import os
import socket
import subprocess
import threading
import time

from hotfn_runtime import Response


def _status_fields(*names):
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in names:
                fields[key] = value.strip()
    return fields


def _kernel():
    with open("/proc/version") as version:
        text = version.read().strip()
    try:  # gVisor's dmesg says "Starting gVisor..."; a host kernel's is closed to uid 1000
        dmesg = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
    except OSError:
        dmesg = ""
    return text, dmesg[:300]


def _zombies():
    """Orphans left as zombies: a child that forks a grandchild and exits at once leaves the
    grandchild to pid 1; only an init that reaps makes it go away once it exits."""
    if os.fork() == 0:
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.wait()
    time.sleep(0.3)
    zombies = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    zombies += 1
        except OSError:
            pass
    return zombies


def _connect(target):
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2) as conn:
            conn.settimeout(2)
            return "connected: " + conn.recv(64).decode("utf-8", "replace")
    except OSError as exc:
        return f"refused: {type(exc).__name__}: {exc}"


_listening = {}


def _listen(port):
    """A TCP service in this (hot) container, for other functions to try to reach."""
    if port not in _listening:
        server = socket.create_server(("0.0.0.0", port))
        banner = f"hello from {os.environ.get('APP_NAME')}{os.environ.get('ROUTE')}\n".encode()

        def serve():
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(banner)

        threading.Thread(target=serve, daemon=True).start()
        _listening[port] = server
    return "listening"


def handler(request):
    if request.header("x-listen"):
        return Response(200, {"content-type": "text/plain"}, _listen(int(request.header("x-listen"))))
    target = request.header("x-connect")
    if target:
        return Response(200, {"content-type": "text/plain"}, _connect(target))
    status = _status_fields("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs")
    version, dmesg = _kernel()
    with open("/proc/1/cmdline", "rb") as cmdline:
        init = cmdline.read().split(b"\0")[0].decode()
    writable = {}
    for path in ("/tmp", os.environ.get("HOME", "/"), "/function"):
        writable[path] = os.access(path, os.W_OK)
    return {
        "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(), "groups": os.getgroups(),
        "status": status, "kernel": version, "dmesg": dmesg, "pid1": init,
        "zombies": _zombies(), "writable": writable,
        "interfaces": sorted(os.listdir("/sys/class/net")),
    }
