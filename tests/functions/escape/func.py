"""Tries what a function should not be able to do from its sandbox: make a user namespace
(in which it would hold every capability), open a raw socket in it, and fill /dev/shm."""
import ctypes
import os
import socket


CLONE_NEWUSER = 0x10000000


def _unshare_user():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) == 0:
        return "made"
    return "refused: " + os.strerror(ctypes.get_errno())


def _raw_socket():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        return "opened"
    except OSError as exc:
        return f"refused: {exc}"


def _fill_shm(limit=64 * 1024 * 1024):
    """Bytes written to /dev/shm before it refused more (or ``limit``)."""
    written = 0
    chunk = b"\0" * 65536
    try:
        with open(f"/dev/shm/fill-{os.getpid()}", "wb", buffering=0) as f:
            while written < limit:
                written += f.write(chunk)
    except OSError:
        pass
    finally:
        try:
            os.unlink(f"/dev/shm/fill-{os.getpid()}")
        except OSError:
            pass
    return written


def handler(request):
    # The raw socket is tried in the user namespace, as the attacker did (where unshare works).
    unshare = _unshare_user()
    return {"unshare": unshare, "raw_socket": _raw_socket(), "shm_bytes": _fill_shm()}
