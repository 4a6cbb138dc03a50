"""Strong isolation: each sandboxed process runs in bubblewrap namespaces, as an unprivileged uid.

What a program sees: the system's ``/usr`` (read-only), the interpreter's prefix (read-only, at
its own path, with every site-packages directory in it hidden), the libraries the contract
allows and what they need at run time, each bound read-only under ``/opt/codeclab/site-packages``
(numpy, numpy.libs, scipy, scipy.libs, constriction, torch where installed: never codeclab, its
data or any other installed package), a fresh ``/proc`` of its own PID namespace, a minimal
``/dev``, private size-capped tmpfs at ``/tmp`` and ``/dev/shm``, and ONE writable work
directory at ``/sandbox``, itself a size-capped tmpfs. Not the data directory, the source
clips, any home directory, the project checkout, or another process's work directory. It has
no network (a private network namespace with only its own loopback), no System V IPC or
hostname shared with anyone, no capabilities, no new privileges, it cannot create user
namespaces, and a seccomp filter (:mod:`codeclab.sandbox.seccomp`) refuses the system calls
that reach state other sandboxes share (record locks on the read-only system files, flock,
inotify, keyrings, ptrace, mounts).

The sandbox is built in two stages:

1. bubblewrap builds the file system view, with new PID, network, IPC, UTS and cgroup
   namespaces (and a user namespace when the lab is not root). Its first process is a small
   shell, the sandbox's trusted init: it copies ``job.json`` into the work directory, runs
   stage 2 and, once every process of it has ended, copies the child's result files out to
   the lab's host directory (bound where stage 2 cannot see it, under ``/tmp``).
   As root, ``setpriv`` then drops to ``nobody`` (65534) with no capabilities, no new
   privileges and a parent-death signal (root can read what it binds, e.g. an interpreter
   under ``/root``, which an unprivileged uid cannot even traverse);
2. bubblewrap adds a user namespace (so ``RLIMIT_NPROC`` counts this sandbox's processes
   only, and is enforced: it is not for root), a PID namespace of its own, ``/proc``,
   ``/dev`` and the tmpfs mounts, forbids further user namespaces, loads the seccomp filter
   and starts the child.

The work directory: the lab's inputs (the program, the child scripts, the frames or the
bitstream) are bound read-only into it from the lab's host directory; everything written there
is memory of a tmpfs capped at the largest file the child may write plus
:data:`WORKDIR_SLACK_MB`, so no number of files fills the host's disk. The init copies out
only the result files (``bitstream.bin``, ``decoded.yuv``, ``decoded.json``, ``error.json``):
a link stays a link, anything but a plain file becomes a FIFO, and the lab refuses both. When
a failed child leaves the tmpfs full, the init writes ``error.json`` itself, so the reason
names the cap even when the child could not write its own.

In each PID namespace the first process is the init (``--as-pid-1``): the child itself
inside, so when it ends everything it started ends too, and its CPU time reaches the lab
through plain waits; the shell outside, so killing it empties the whole sandbox and the lab
can wait until no process of it is left. Whether any of this works is probed once per lab
process; where it does not (no ``bwrap``, or a container that forbids namespaces) the lab
falls back to the weak launcher and records ``isolation: weak``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from codeclab import scratch
from codeclab.contract import allowed_roots
from codeclab.sandbox import child
from codeclab.sandbox.isolate import SANDBOX_GID, SANDBOX_UID, WEAK, Launcher, Limits

STRONG = "strong"
WORKDIR = "/sandbox"  # where the process's work directory appears inside
HOST_IO = "/tmp/lab-io"  # the lab's host directory in stage 1; stage 2's /tmp hides it
SITE_PACKAGES = "/opt/codeclab/site-packages"  # where the allowed libraries appear inside
SCRATCH_BYTES = 64 << 20  # size cap of the private /tmp and /dev/shm (they are memory)
WORKDIR_SLACK_MB = 16  # work directory cap beyond the largest file: the small result files
FULL_BELOW_BYTES = 1 << 20  # a failed child that left less free than this filled the cap
SECCOMP_FILE = ".seccomp.bpf"  # written by the lab beside the inputs, read by the init
SECCOMP_FD = 3
PROBE_SECONDS = 30.0
BWRAP_STATUS_SIGNAL_BASE = 128  # bubblewrap reports death by signal N as exit status 128 + N
INSTALL_HINT = "install it as root with 'apt-get install -y bubblewrap' (scripts/bootstrap.sh does)"
RESULT_FILES = (child.BITSTREAM, child.DECODED, child.DECODED_META, child.ERROR)
_MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PROBE_PROGRAM = (
    "import os, numpy, scipy.fft\n"
    "assert os.getuid() != 0, 'runs as root'\n"
    "open('probe.txt', 'w').write(str(os.getuid()))\n"
)


@dataclass(frozen=True)
class Layout:
    """The host paths a sandboxed interpreter needs, each bound read-only: (host, inside)."""

    interpreter: str  # the real binary, not the virtual environment's symlink to it
    binds: tuple[tuple[str, str], ...]  # besides /usr: the interpreter's prefix, the libraries
    hidden: tuple[str, ...] = ()  # site-packages directories inside what is bound: emptied

    @classmethod
    def of_this_interpreter(cls) -> Layout:
        interpreter = os.path.realpath(sys.executable)
        prefix = os.path.realpath(sys.base_prefix)
        # The prefix (the standard library) stays at its own path: libpython is found
        # through an absolute rpath. The libraries move, so the sandbox does not even show
        # where the checkout or the virtual environment is.
        binds = [(prefix, prefix)]
        if not _inside(interpreter, prefix):
            binds.append((interpreter, interpreter))
        binds = [bind for bind in binds if not _inside(bind[0], "/usr")]
        entries = library_entries(allowed_roots(allow_torch=True))
        binds += [(path, f"{SITE_PACKAGES}/{name}") for name, path in sorted(entries.items())]
        trees = ["/usr", *(dest for _, dest in binds if not dest.startswith(SITE_PACKAGES))]
        return cls(interpreter, tuple(binds), _site_directories_within(trees))

    @property
    def pythonpath(self) -> str:
        return SITE_PACKAGES


def library_entries(roots: Iterable[str]) -> dict[str, str]:
    """Name -> host path of each top-level entry of the libraries that provide ``roots``.

    An entry is what a distribution installed at the top of site-packages (``numpy``,
    ``numpy.libs``, ``numpy-2.1.0.dist-info``); the distributions are those providing the
    allowed modules and, transitively, what they require at run time (extras left out).
    """
    provided = metadata.packages_distributions()
    names = [dist for root in roots for dist in provided.get(root, ())]
    entries: dict[str, str] = {}
    for dist in _with_requirements(names):
        for file in dist.files or ():
            top = file.parts[0] if file.parts else ""
            if top in ("", "..", "__pycache__") or file.is_absolute():
                continue
            entries.setdefault(top, os.path.realpath(str(dist.locate_file(top))))
    return entries


def _with_requirements(names: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions named, and those they require, each once."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist
        for requirement in dist.requires or ():
            spec, _, marker = requirement.partition(";")
            match = _REQUIREMENT_NAME.match(spec.strip())
            if match and "extra" not in marker:
                pending.append(match.group())
    return list(found.values())


def _site_directories_within(trees: Sequence[str]) -> tuple[str, ...]:
    """The interpreter's site-packages (and this lab's) that lie inside a bound tree."""
    candidates = [
        *site.getsitepackages([sys.base_prefix]),
        *(sysconfig.get_paths()[key] for key in ("purelib", "platlib")),
        str(Path(__file__).parents[1]),  # the codeclab package itself, wherever installed
    ]
    real = dict.fromkeys(os.path.realpath(path) for path in candidates)
    return tuple(
        path for path in real if os.path.isdir(path) and any(_inside(path, tree) for tree in trees)
    )


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

    ``privileged`` (default: running as root) drops to ``nobody`` between the stages, which
    needs ``setpriv``; otherwise stage 1 runs in a user namespace of the lab's own uid.
    """
    layout = layout or Layout.of_this_interpreter()
    privileged = os.geteuid() == 0 if privileged is None else privileged
    if privileged and not setpriv:
        raise ValueError("the sandbox as root needs setpriv (util-linux) to drop to nobody")
    drop = _drop_to_nobody(setpriv) if privileged and setpriv else []

    def wrapper(workdir: Path) -> list[str]:
        return _command(bwrap, layout, workdir, drop, privileged=privileged)

    return Launcher(
        python=layout.interpreter,
        wrapper=wrapper,
        isolation=STRONG,
        # -S: no site module, so no .pth file runs and the base interpreter's own
        # site-packages stays off sys.path; the lab's libraries come from PYTHONPATH.
        python_flags=("-s", "-P", "-S"),
        prepare=_write_seccomp_filter,
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
    try:
        _seccomp_filter()
    except (ImportError, RuntimeError, OSError) as exc:
        return Probe(WEAK, f"the seccomp filter cannot be compiled ({exc}); it needs libseccomp2")
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
    workdir = scratch.make_dir("probe")  # a full disk is no verdict on bubblewrap: raised
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
        # The init copies result files only: the probe's file stays in the tmpfs.
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else f"exit status {done.returncode}"
        return ""
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _seccomp_filter() -> bytes:
    from codeclab.sandbox import seccomp  # libseccomp is loaded on first use only

    return seccomp.compiled_filter()


def _write_seccomp_filter(workdir: Path) -> None:
    (workdir / SECCOMP_FILE).write_bytes(_seccomp_filter())


def _command(
    bwrap: str, layout: Layout, workdir: Path, drop: list[str], *, privileged: bool
) -> list[str]:
    """Stage 1, its init shell, the drop to nobody (as root) and stage 2, in front of python."""
    inputs = sorted(
        entry.name
        for entry in os.scandir(workdir)
        if entry.name not in (child.JOB, SECCOMP_FILE) and entry.is_file(follow_symlinks=False)
    )
    cap_mb = workdir_cap_mb(workdir)
    outer = [
        bwrap,
        *([] if privileged else ["--unshare-user"]),
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--as-pid-1",
        "--die-with-parent",
        "--hostname",
        "sandbox",
        *_file_system(layout, extra=(bwrap, *drop[:1])),
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
        HOST_IO,
        "--perms",
        "0777",
        "--size",
        str(cap_mb << 20),
        "--tmpfs",
        WORKDIR,
        *(arg for name in inputs for arg in ("--ro-bind", str(workdir / name), _in(name))),
    ]
    if privileged:
        caps = ("SETUID", "SETGID", "SETPCAP")
        outer += ["--cap-drop", "ALL", *(a for cap in caps for a in ("--cap-add", f"CAP_{cap}"))]
    init = ["/bin/sh", "-c", _init_script([n for n in RESULT_FILES if n not in inputs], cap_mb)]
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
        "--seccomp",
        str(SECCOMP_FD),
        "--ro-bind",
        "/",
        "/",
        *_private_mounts(layout),
    ]
    return [*outer, "--", *init, "init", *drop, *inner]


def workdir_cap_mb(workdir: Path) -> int:
    """The work directory's total size: the largest file the child may write, and slack."""
    try:
        file_size_mb = json.loads((workdir / child.JOB).read_text())["limits"]["file_size_mb"]
    except (OSError, ValueError, KeyError, TypeError):
        file_size_mb = Limits().file_size_mb
    return int(file_size_mb) + WORKDIR_SLACK_MB


def _init_script(results: Sequence[str], cap_mb: int) -> str:
    """Stage 1's init: job in, stage 2 ("$@"), results out, the cap named if it was hit."""
    io, job = shlex.quote(HOST_IO), shlex.quote(_in(child.JOB))
    error = shlex.quote(f"{HOST_IO}/{child.ERROR}")
    full = json.dumps({"kind": "workdir_full", "size": cap_mb << 20})
    return "\n".join(
        [
            f"cp {io}/{child.JOB} {job} 2>/dev/null || true",
            f"exec {SECCOMP_FD}<{io}/{SECCOMP_FILE} || exit 125",
            '"$@"',
            "status=$?",
            f"for name in {' '.join(map(shlex.quote, results))}; do",
            f'  inside={shlex.quote(WORKDIR)}/"$name"',
            '  if [ -L "$inside" ] || [ -f "$inside" ]; then cp -P "$inside" ' + io + '/"$name"',
            '  elif [ -e "$inside" ]; then mkfifo ' + io + '/"$name"',  # the lab refuses it
            "  fi",
            "done",
            f"set -- $(stat -f -c '%a %S' {shlex.quote(WORKDIR)})",
            f'if [ "$status" -ne 0 ] && [ $(($1 * $2)) -lt {FULL_BELOW_BYTES} ]; then',
            f"  rm -f {error} && printf '%s\\n' {shlex.quote(full)} > {error}",
            "fi",
            'exit "$status"',
        ]
    )


def _drop_to_nobody(setpriv: str) -> list[str]:
    return [
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


def _in(name: str) -> str:
    return f"{WORKDIR}/{name}"


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
    for path in layout.hidden:
        args += ["--perms", "0755", "--size", "4096", "--tmpfs", path, "--remount-ro", path]
    return args


def _private_mounts(layout: Layout) -> list[str]:
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
        WORKDIR,
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


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")
