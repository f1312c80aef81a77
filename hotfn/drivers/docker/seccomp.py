"""The seccomp profile of a gVisor container.

Under runc a container gets Docker's default profile: an allow-list that refuses the rest with
EPERM, and ``clone3`` with ENOSYS, so that glibc (2.34 and later) falls back to ``clone``, whose
namespace flags a filter can see. runsc (with ``--oci-seccomp``) applies a profile too, but turns
every refusal into EPERM whatever the profile's ``errnoRet`` says (gVisor issue 14688, open in
2026): glibc then takes the EPERM from ``clone3`` as final, and no thread starts (a JVM or node
dies at once). So a gVisor container gets this profile instead: it lets ``clone3`` through to
gVisor, which has no such call and answers ENOSYS itself, and refuses what Docker's profile
refuses a container without capabilities where it matters inside gVisor's kernel: new
namespaces (no ``unshare``, ``setns`` or namespace flags to ``clone``: a user namespace is where
a process gets capabilities back, raw sockets with them), mounts, keys, BPF, perf, tracing
other processes' memory, the kernel log and the clock.

Everything else gVisor serves itself, from its own kernel in user space: its syscall table is
the boundary a function meets (docs: README, *Sandboxing functions*).
"""

from __future__ import annotations

import json

# Refused whatever their arguments. (x86-64 names, as runsc's table has them.)
_REFUSED = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "open_by_handle_at", "name_to_handle_at",
    "add_key", "keyctl", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "syslog", "acct", "quotactl", "swapon", "swapoff", "reboot", "sethostname", "setdomainname",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "iopl", "ioperm", "mbind", "set_mempolicy", "move_pages", "migrate_pages",
    "lookup_dcookie", "io_uring_setup", "io_uring_enter", "io_uring_register",
)
# clone's flags that make a namespace (CLONE_NEWNS ... CLONE_NEWNET, CLONE_NEWCGROUP, and
# CLONE_NEWTIME): each refused on its own, as a filter can only compare masked values.
_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                    0x40000000, 0x00000080)


def gvisor_profile() -> dict:
    rules: list[dict] = [{"names": list(_REFUSED), "action": "SCMP_ACT_ERRNO"}]
    for flag in _NAMESPACE_FLAGS:
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": flag, "valueTwo": flag,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}


# As Docker's --security-opt takes it.
GVISOR_SECCOMP = "seccomp=" + json.dumps(gvisor_profile(), separators=(",", ":"))
