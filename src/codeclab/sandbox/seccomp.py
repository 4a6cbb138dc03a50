"""The system-call filter of the strong sandbox: no state shared with another sandbox.

Namespaces give each sandbox its own processes, network, IPC and file system view, but some
kernel state hangs off objects every sandbox sees: POSIX record locks and leases on the
read-only system files (two sandboxes at once moved 512 bytes through ``F_SETLK``/``F_GETLK``
on ``/usr/bin/env``), ``flock``, inotify watches on those files, the kernel keyrings. A codec
needs none of them, nor a debugger's or an administrator's calls; each is refused with
``EPERM`` before the program starts. bubblewrap loads the compiled filter (``--seccomp FD``)
just before it starts the child, so it binds the child and all it starts. libseccomp
compiles it (through ``pyseccomp``, ctypes over ``libseccomp.so.2``, which Debian's ``apt``
itself depends on): it resolves the numbers of each architecture and kills a process that
makes a system call through another architecture's entry point (32-bit ``int 0x80``).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import tempfile

import pyseccomp

# fcntl commands that reach locks, leases or notifications on a file other sandboxes see.
SHARED_FCNTL = (
    fcntl.F_GETLK,
    fcntl.F_SETLK,
    fcntl.F_SETLKW,
    fcntl.F_OFD_GETLK,
    fcntl.F_OFD_SETLK,
    fcntl.F_OFD_SETLKW,
    fcntl.F_SETLEASE,
    fcntl.F_GETLEASE,
    fcntl.F_NOTIFY,
)
REFUSED_CALLS = (
    "flock",
    # System V and POSIX IPC (the IPC namespace is private; refused all the same)
    *("msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semctl"),
    *("shmget", "shmat", "shmdt", "shmctl"),
    *("mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr"),
    # kernel keyrings are per user, not per namespace
    *("keyctl", "add_key", "request_key"),
    # watching shared files, other processes' memory, the kernel's own channels
    *("inotify_init", "inotify_init1", "inotify_add_watch", "fanotify_init", "fanotify_mark"),
    *("userfaultfd", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    *("perf_event_open", "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register"),
    *("personality", "syslog", "acct", "quotactl", "lookup_dcookie"),
    *("name_to_handle_at", "open_by_handle_at"),
    # namespaces and mounts
    *("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr"),
    *("move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick"),
)
FCNTL_CALLS = ("fcntl", "fcntl64")  # fcntl64 exists on 32-bit architectures only


@functools.cache
def compiled_filter() -> bytes:
    """The BPF program bubblewrap loads: allow by default, EPERM for what is listed."""
    rules = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    denied = pyseccomp.ERRNO(errno.EPERM)
    for name in REFUSED_CALLS:
        _add(rules, denied, name)
    for name in FCNTL_CALLS:
        for command in SHARED_FCNTL:
            _add(rules, denied, name, pyseccomp.Arg(1, pyseccomp.EQ, command))
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


def _add(rules: pyseccomp.SyscallFilter, action: int, name: str, *args: pyseccomp.Arg) -> None:
    """Add a rule, skipping a call this architecture does not have."""
    try:
        number = pyseccomp.resolve_syscall(pyseccomp.system_arch(), name)
    except (OSError, ValueError):
        return
    if number < 0:
        return
    rules.add_rule(action, name, *args)
