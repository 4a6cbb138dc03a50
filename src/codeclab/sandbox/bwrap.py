"""Strong isolation: each sandboxed process runs in bubblewrap namespaces, as an unprivileged uid.

What a program sees: the system's ``/usr`` (read-only), the interpreter's prefix (read-only, at
its own path), the lab's site-packages (read-only, at ``/opt/codeclab/site-packages``), a
fresh ``/proc`` of its own PID namespace, a minimal ``/dev``, private size-capped tmpfs at
``/tmp`` and ``/dev/shm``, and ONE writable work directory at ``/sandbox``. Not the data
directory, the source clips, any home directory, the project checkout, or another process's
work directory. It has no network (a private network namespace with only its own loopback),
no System V IPC or hostname shared with anyone, no capabilities, no new privileges, and it
cannot create user namespaces.

Running as root, as the lab does on its machines, the sandbox is built in two stages, because
the interpreter may live under ``/root``, which an unprivileged uid cannot even traverse:

1. bubblewrap as root builds the file system view (root can read what it binds), with new PID,
   network, IPC, UTS and cgroup namespaces, then ``setpriv`` drops to ``nobody`` (65534) with no
   capabilities, no new privileges and a parent-death signal;
2. bubblewrap as ``nobody`` adds a user namespace (so ``RLIMIT_NPROC`` counts this sandbox's
   processes only, and is enforced: it is not for root), a PID namespace of its own, ``/proc``,
   ``/dev`` and the tmpfs mounts, forbids further user namespaces and starts the child.

In each PID namespace the first process is the init (``--as-pid-1``): the child itself
inside, so when it ends everything it started ends too, and its CPU time reaches the lab
through plain waits; stage 2's bubblewrap outside, so killing it empties the whole sandbox
and the lab can wait until no process of it is left. A lab that is not root runs one
unprivileged bubblewrap with all namespaces instead. Whether any of this works is probed once
per lab process; where it does not (no ``bwrap``, or a container that forbids namespaces) the
lab falls back to the weak launcher and records ``isolation: weak``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codeclab.sandbox.isolate import WEAK, Launcher

STRONG = "strong"
SANDBOX_UID = SANDBOX_GID = 65534  # nobody
WORKDIR = "/sandbox"  # where the process's work directory appears inside
SITE_PACKAGES = "/opt/codeclab/site-packages"  # where the lab's libraries appear inside
SCRATCH_BYTES = 64 << 20  # size cap of the private /tmp and /dev/shm (they are memory)
PROBE_SECONDS = 30.0
BWRAP_STATUS_SIGNAL_BASE = 128  # bubblewrap reports death by signal N as exit status 128 + N
INSTALL_HINT = "install it as root with 'apt-get install -y bubblewrap' (scripts/bootstrap.sh does)"
_MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_PROBE_PROGRAM = (
    "import os, numpy, scipy.fft\n"
    "assert os.getuid() != 0, 'runs as root'\n"
    "open('probe.txt', 'w').write(str(os.getuid()))\n"
)


@dataclass(frozen=True)
class Layout:
    """The host paths a sandboxed interpreter needs, each bound read-only: (host, inside)."""

    interpreter: str  # the real binary, not the virtual environment's symlink to it
    binds: tuple[tuple[str, str], ...]  # besides /usr: the interpreter's prefix, site-packages

    @classmethod
    def of_this_interpreter(cls) -> Layout:
        interpreter = os.path.realpath(sys.executable)
        prefix = os.path.realpath(sys.base_prefix)
        paths = sysconfig.get_paths()
        site = dict.fromkeys(os.path.realpath(paths[key]) for key in ("purelib", "platlib"))
        # The prefix stays at its own path (libpython is found through an absolute rpath);
        # site-packages moves, so the sandbox does not even show where the checkout is.
        binds = [(prefix, prefix)]
        if not _inside(interpreter, prefix):
            binds.append((interpreter, interpreter))
        binds = [bind for bind in binds if not _inside(bind[0], "/usr")]
        binds += [(path, f"{SITE_PACKAGES}{index or ''}") for index, path in enumerate(site)]
        return cls(interpreter, tuple(binds))

    @property
    def pythonpath(self) -> str:
        inside = (dest for _, dest in self.binds if dest.startswith(SITE_PACKAGES))
        return os.pathsep.join(inside)


@dataclass(frozen=True)
class Probe:
    """The launcher this lab process uses, and why strong isolation is off when it is."""

    launcher: Launcher
    reason: str = ""  # empty when the launcher is strong

    @property
    def strong(self) -> bool:
        return self.launcher.isolation == STRONG


def strong_launcher(
    bwrap: str,
    setpriv: str | None = None,
    layout: Layout | None = None,
    *,
    privileged: bool | None = None,
) -> Launcher:
    """A launcher that wraps the child in bubblewrap; no check that it works (see :func:`probe`).

    ``privileged`` (default: running as root) selects the two-stage sandbox, which needs
    ``setpriv``; otherwise one unprivileged bubblewrap builds everything.
    """
    layout = layout or Layout.of_this_interpreter()
    privileged = os.geteuid() == 0 if privileged is None else privileged
    if privileged and not setpriv:
        raise ValueError("the sandbox as root needs setpriv (util-linux) to drop to nobody")

    def wrapper(workdir: Path) -> list[str]:
        if privileged:
            assert setpriv is not None
            return _two_stage(bwrap, setpriv, layout, workdir)
        return _one_stage(bwrap, layout, workdir)

    return Launcher(
        python=layout.interpreter,
        wrapper=wrapper,
        isolation=STRONG,
        # -S: no site module, so no .pth file runs and the base interpreter's own
        # site-packages stays off sys.path; the lab's libraries come from PYTHONPATH.
        python_flags=("-s", "-P", "-S"),
        prepare=_hand_to_sandbox_user if privileged else None,
        supervisor=True,
        signal_status_base=BWRAP_STATUS_SIGNAL_BASE,
    )


@functools.cache
def probe() -> Probe:
    """The strongest launcher that actually works here; tried once per lab process."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Probe(WEAK, f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is None:
        return Probe(WEAK, "setpriv (util-linux) is missing, needed to drop root in the sandbox")
    launcher = strong_launcher(bwrap, setpriv)
    failure = _try(launcher)
    if failure:
        return Probe(
            WEAK,
            f"bubblewrap is installed but not usable here ({failure}); it needs user and PID "
            "namespaces, which some containers forbid",
        )
    return Probe(launcher)


def best_launcher() -> Launcher:
    """The strong launcher where bubblewrap works, else the weak one."""
    return probe().launcher


def _try(launcher: Launcher) -> str:
    """Run a tiny program the way the lab runs children; an empty string means it worked."""
    workdir = Path(tempfile.mkdtemp(prefix="codeclab-probe-"))
    try:
        if launcher.prepare:
            launcher.prepare(workdir)
        argv = [*launcher.argv(workdir, "probe")[:-2], "-c", _PROBE_PROGRAM]
        done = subprocess.run(
            argv,
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_SECONDS,
        )
        if done.returncode != 0 or not (workdir / "probe.txt").is_file():
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else f"exit status {done.returncode}"
        return ""
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _two_stage(bwrap: str, setpriv: str, layout: Layout, workdir: Path) -> list[str]:
    """Root builds the view and the shared-nothing namespaces; nobody adds the rest."""
    outer = [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--as-pid-1",
        "--die-with-parent",
        "--hostname",
        "sandbox",
        *_file_system(layout, extra=(bwrap, setpriv)),
        "--dev",
        "/dev",
        # The host's /proc, only so that stage 2 may mount a /proc of its own namespace (the
        # kernel requires a fully visible one); stage 2 mounts its own on top before the
        # child starts.
        "--bind",
        "/proc",
        "/proc",
        "--dir",
        "/tmp",
        "--bind",
        str(workdir),
        WORKDIR,
        "--cap-drop",
        "ALL",
        *(arg for cap in ("SETUID", "SETGID", "SETPCAP") for arg in ("--cap-add", f"CAP_{cap}")),
        "--",
        setpriv,
        f"--reuid={SANDBOX_UID}",
        f"--regid={SANDBOX_GID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        # Changing uid clears the parent-death signal bubblewrap set; set it again.
        "--pdeathsig=SIGKILL",
        "--",
    ]
    inner = [
        bwrap,
        "--unshare-user",
        "--disable-userns",
        "--unshare-pid",
        "--as-pid-1",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        *_private_mounts(WORKDIR, layout),
    ]
    return outer + inner


def _one_stage(bwrap: str, layout: Layout, workdir: Path) -> list[str]:
    """One unprivileged bubblewrap (the lab is not root): the interpreter is readable already."""
    return [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--as-pid-1",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        *_file_system(layout, extra=()),
        *_private_mounts(str(workdir), layout),
    ]


def _file_system(layout: Layout, extra: Sequence[str]) -> list[str]:
    """Read-only system, interpreter and libraries; parents created traversable (0755)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _MERGED_USR_LINKS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    binds = [*layout.binds]
    binds += [(p, p) for p in map(os.path.realpath, extra) if not _inside(p, "/usr")]
    made: set[str] = set()
    for source, dest in dict.fromkeys(binds):
        for parent in reversed(Path(dest).parents[:-1]):  # outermost first, "/" excluded
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", source, dest]
    return args


def _private_mounts(workdir_source: str, layout: Layout) -> list[str]:
    """What each process gets for itself: /proc, /dev, scratch tmpfs, the work dir, the env."""
    size = str(SCRATCH_BYTES)
    return [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        size,
        "--tmpfs",
        "/tmp",
        "--size",
        size,
        "--tmpfs",
        "/dev/shm",
        "--remount-ro",
        "/dev",  # not recursive: /dev/shm stays writable, the rest of /dev does not
        "--bind",
        workdir_source,
        WORKDIR,
        "--chdir",
        WORKDIR,
        "--setenv",
        "HOME",
        WORKDIR,
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--setenv",
        "PYTHONPATH",
        layout.pythonpath,
        "--",
    ]


def _hand_to_sandbox_user(workdir: Path) -> None:
    """Give the work directory and what the lab put in it to the sandbox's uid."""
    os.chown(workdir, SANDBOX_UID, SANDBOX_GID)
    for entry in os.scandir(workdir):
        os.chown(entry.path, SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")
