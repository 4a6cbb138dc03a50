"""Run a codec program's encoder and decoder in separate, limited subprocesses.

This module alone is the "weak" isolation level: each side runs in a fresh process, in a fresh
temporary work directory, with resource limits, a scrubbed environment and a wall-clock
timeout that kills the whole process group. The decoder's directory holds only the program,
the child script and the bitstream, so it cannot see the source, but a program that gets past
the static policy still runs as the lab's user on the lab's file system. The strong level
(:mod:`codeclab.sandbox.bwrap`, bubblewrap namespaces) plugs in through :class:`Launcher`,
which builds the child's command line and may put a wrapper in front of it.

What a program returns never reaches the lab as Python objects: the child writes raw planes
and a small JSON file, and this module reads them back with numpy and checks their sizes. It
opens them without following links and refuses anything but a plain file, so a program
cannot make the lab read a host file (or block on a pipe) in its place.
"""

from __future__ import annotations

import ast
import ctypes
import functools
import json
import math
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from codeclab import scratch
from codeclab.contract import (
    FORBIDDEN_SUBMODULES,
    ContractError,
    Style,
    allowed_roots,
    detect_style,
)
from codeclab.frames import Frame, FrameMismatch, check_frames
from codeclab.sandbox import child

MiB = 1 << 20
ISOLATION = "weak"  # what this level records on an experiment; see Launcher for stronger
CHILD_SCRIPT = Path(child.__file__)
SEEDCOMPAT_SCRIPT = CHILD_SCRIPT.with_name("seedcompat.py")
MAX_RESULT_JSON_BYTES = 64 * 1024
READER_JOIN_SECONDS = 5.0
REAP_SECONDS = 5.0  # how long to wait for a killed child's processes to be gone
MAX_WATCHED_CHILDREN = 64
PR_SET_DUMPABLE = 4  # linux/prctl.h

# Calibration of Limits.for_clip: 30 frames of 320x240 get 60 CPU seconds.
_REFERENCE_PIXEL_FRAMES = 320 * 240 * 30
_BASE_CPU_SECONDS = 20
_SCALED_CPU_SECONDS = 40
_BASE_MEMORY_MB = 2048
_MEMORY_PER_PIXEL_FRAME = 64  # bytes


@dataclass
class Limits:
    """Resource limits of one sandboxed process; defaults suit a 30-frame 320x240 clip."""

    cpu_seconds: int = 60
    memory_mb: int = 2048  # RLIMIT_AS: address space, not resident memory
    file_size_mb: int = 16  # RLIMIT_FSIZE: largest file the child may write
    open_files: int = 64  # RLIMIT_NOFILE
    processes: int = 64  # RLIMIT_NPROC: counted per user, and not enforced at all for root
    wall_seconds: float = 130.0
    max_bitstream_bytes: int = 8 * MiB
    max_output_bytes: int = 16 * 1024  # captured stdout+stderr: first half and last half

    @classmethod
    def for_clip(cls, width: int, height: int, frames: int) -> Limits:
        """Limits that grow with pixels x frames, so a large clip is not failed for its size."""
        pixel_frames = width * height * frames
        cpu = math.ceil(
            _BASE_CPU_SECONDS + _SCALED_CPU_SECONDS * pixel_frames / _REFERENCE_PIXEL_FRAMES
        )
        raw_bytes = child.frame_bytes(width, height) * frames
        max_bitstream = 2 * raw_bytes + MiB
        return cls(
            cpu_seconds=cpu,
            memory_mb=_BASE_MEMORY_MB + math.ceil(pixel_frames * _MEMORY_PER_PIXEL_FRAME / MiB),
            file_size_mb=math.ceil(max(max_bitstream, raw_bytes) / MiB) + 1,
            wall_seconds=2.0 * cpu + 10.0,
            max_bitstream_bytes=max_bitstream,
        )

    def rlimits(self) -> dict[str, float]:
        """The limits the child sets on itself, keyed as ``child.RLIMITS`` expects."""
        return {key: value for key, value in asdict(self).items() if key in child.RLIMITS}


Wrapper = Callable[[Path], Sequence[str]]


@dataclass(frozen=True)
class Launcher:
    """How a child starts: the interpreter, and an optional wrapper command in front of it.

    ``wrapper`` receives the work directory and returns an argv prefix (bubblewrap's command
    line, for :mod:`codeclab.sandbox.bwrap`, which sets ``isolation="strong"``). ``prepare``
    runs on the filled work directory before the start (e.g. to hand it to the sandbox's
    uid). A ``supervisor`` wrapper stays the child's parent, reaps it and exits when it does
    (bubblewrap does; ``env`` does not, it becomes the child). One that reports the child's
    death by signal N as exit status base + N sets ``signal_status_base``, so the lab still
    names the signal.
    """

    python: str = sys.executable
    wrapper: Wrapper | None = None
    isolation: str = ISOLATION
    # -s -P are the parts of -I that matter here; -I would also imply -E, which drops
    # PYTHONHASHSEED, and the environment is built from scratch anyway.
    python_flags: tuple[str, ...] = ("-s", "-P")
    prepare: Callable[[Path], None] | None = None
    supervisor: bool = False
    signal_status_base: int | None = None
    # The child's audit hook (see codeclab.sandbox.child); off only to test the outer wall.
    audit: bool = True

    def argv(self, workdir: Path, mode: str) -> list[str]:
        prefix = list(self.wrapper(workdir)) if self.wrapper else []
        return [*prefix, self.python, *self.python_flags, CHILD_SCRIPT.name, mode]

    def exit_code(self, status: int) -> int:
        """The child's exit code as :mod:`subprocess` words it: -N for death by signal N."""
        base = self.signal_status_base
        if base is not None and base < status <= base + signal.NSIG:
            return base - status
        return status


SANDBOX_UID = SANDBOX_GID = 65534  # nobody


def hand_to_sandbox_user(workdir: Path) -> None:
    """Give the filled work directory to the sandbox's uid, so the child may write there."""
    os.chown(workdir, SANDBOX_UID, SANDBOX_GID)
    for entry in os.scandir(workdir):
        os.chown(entry.path, SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)


def _as_nobody(setpriv: str) -> Wrapper:
    """``setpriv`` in front of the child: uid nobody, keeping only CAP_DAC_READ_SEARCH.

    That capability lets it reach the interpreter where root installed it (under /root,
    which nobody cannot traverse), as a root child could. Being another uid without
    CAP_SYS_PTRACE, it cannot read the lab's processes (/proc/<pid>/environ, the keys in
    it), signal them, or write the lab's files.
    """
    only = "-all,+dac_read_search"
    argv = [
        setpriv,
        f"--reuid={SANDBOX_UID}",
        f"--regid={SANDBOX_GID}",
        "--clear-groups",
        f"--inh-caps={only}",
        f"--ambient-caps={only}",
        f"--bounding-set={only}",
        "--no-new-privs",
        "--",
    ]
    return lambda workdir: argv


def _weak_launcher() -> Launcher:
    """As root the weak child runs as nobody; otherwise the lab hides its own process."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv:
        return Launcher(wrapper=_as_nobody(setpriv), prepare=hand_to_sandbox_user)
    return Launcher()


WEAK = _weak_launcher()


class SandboxError(Exception):
    """A sandboxed phase failed; ``reason`` is one line a person understands."""

    def __init__(self, phase: str, reason: str, detail: str = "") -> None:
        self.phase = phase
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}\n{detail}" if detail else reason)


@dataclass(frozen=True)
class EncodeResult:
    """A checked bitstream, with what the encoder cost and printed."""

    bitstream: bytes
    seconds: float  # wall clock of the encoder process, interpreter start included
    stdout_tail: str  # captured stdout+stderr, capped to Limits.max_output_bytes
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class DecodeResult:
    """Frames read back from the decoder's raw planes, not yet compared with the source."""

    frames: list[Frame]
    seconds: float
    stdout_tail: str = ""
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class _Outcome:
    returncode: int
    timed_out: bool
    seconds: float
    cpu_seconds: float
    output: str = field(repr=False)


def _guard_job(launcher: Launcher) -> dict[str, object]:
    """What the child's audit hook needs: whether it is on, and the contract's import lists."""
    return {
        "audit": launcher.audit,
        # the policy decides torch; a published decoder file imports hashlib itself
        "allowed_imports": sorted(allowed_roots(allow_torch=True) | {"hashlib"}),
        "forbidden_modules": sorted(FORBIDDEN_SUBMODULES),
    }


def scrubbed_env(workdir: Path) -> dict[str, str]:
    """An environment built from nothing, so no secret of the lab's can reach a program."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",  # so a killed program's last words are not lost in a buffer
    }


def run_encode(
    program_source: str,
    frames: Sequence[Frame],
    fps: float,
    quality: int,
    limits: Limits,
    launcher: Launcher = WEAK,
) -> EncodeResult:
    """Encode ``frames`` in a fresh sandboxed process and return the checked bitstream."""
    style = _style(program_source)
    height, width = frames[0][0].shape
    check_frames(frames, count=len(frames), width=width, height=height)
    job = {
        "style": style,
        "limits": limits.rlimits(),
        "max_bitstream_bytes": limits.max_bitstream_bytes,
        "width": width,
        "height": height,
        "count": len(frames),
        "fps": float(fps),
        "quality": int(quality),
        **_guard_job(launcher),
    }
    with _workdir(program_source, job) as workdir:
        child.write_planes(workdir / child.FRAMES, frames)
        outcome = _run_child("encode", workdir, limits, launcher)
        bitstream = _read_bitstream(workdir, limits)
    return EncodeResult(bitstream, outcome.seconds, outcome.output, outcome.cpu_seconds)


def run_decode(
    program_source: str,
    bitstream: bytes,
    limits: Limits,
    launcher: Launcher = WEAK,
    style: Style | None = None,
) -> DecodeResult:
    """Decode ``bitstream`` in a fresh sandboxed process that sees nothing of the source.

    The frames are returned as decoded; comparing their count and shapes with the source is
    the caller's job (:func:`codeclab.frames.check_frames`). ``style`` skips the contract's
    detection, for a published decoder file, which decodes but does not encode.
    """
    # Only the program's style and the limits travel: nothing about the source. (The limits
    # scale with pixels x frames, so a program that escapes the policy could read that
    # product back from getrlimit; never the width, height or count.)
    job = {
        "style": style or _style(program_source),
        "limits": limits.rlimits(),
        **_guard_job(launcher),
    }
    with _workdir(program_source, job) as workdir:
        (workdir / child.BITSTREAM).write_bytes(bitstream)
        outcome = _run_child("decode", workdir, limits, launcher)
        frames = _read_decoded(workdir)
    return DecodeResult(frames, outcome.seconds, outcome.output, outcome.cpu_seconds)


def smoke_run(
    program_source: str,
    frames: Sequence[Frame],
    fps: float,
    quality: int,
    limits: Limits,
    launcher: Launcher = WEAK,
) -> None:
    """Encode and decode a tiny clip; raise :class:`SandboxError` if the round trip fails."""
    encoded = run_encode(program_source, frames, fps, quality, limits, launcher)
    decoded = run_decode(program_source, encoded.bitstream, limits, launcher)
    height, width = frames[0][0].shape
    try:
        check_frames(decoded.frames, count=len(frames), width=width, height=height)
    except FrameMismatch as exc:
        raise SandboxError("validation", str(exc)) from None


PARSING = threading.RLock()  # reentrant: a parse may call code that parses
"""Held while this process parses a program: CPython 3.11's ``ast.parse`` is not thread-safe
(a spurious SystemError, python/cpython#106905); rungs run in threads, and experiments on the
Ray executor share a process. One lock for every parse here (the runner's too)."""


@functools.lru_cache(maxsize=16)
def _parsed_style(program_source: str) -> Style:
    """The contract's style of a program, parsed once: every rung's encode and decode asks,
    and parsing an 80 kB program costs 40 to 75 ms of the lab's CPU each time."""
    with PARSING:
        return detect_style(ast.parse(program_source))


def _style(program_source: str) -> Style:
    try:
        return _parsed_style(program_source)
    except SyntaxError as exc:
        raise SandboxError("validation", f"line {exc.lineno}: syntax error: {exc.msg}") from None
    except ContractError as exc:
        raise SandboxError("validation", str(exc)) from None


@contextmanager
def _workdir(program_source: str, job: dict[str, object]) -> Iterator[Path]:
    """A fresh private directory with the child, the program and the job; removed after.

    It lives in the lab's temporary root, named for this process, so a sweep removes it if
    the lab is killed. A full disk there raises :class:`scratch.DiskFull`, also when the run
    merely left it (nearly) full: the results copied out of the sandbox may then be cut
    short, and the failure is the machine's, not the program's.
    """
    workdir = scratch.make_dir("sandbox")
    try:
        with scratch.reported(workdir):
            for script in (CHILD_SCRIPT, SEEDCOMPAT_SCRIPT):
                shutil.copyfile(script, workdir / script.name)
            (workdir / child.PROGRAM).write_text(program_source, encoding="utf-8")
            (workdir / child.JOB).write_text(json.dumps(job))
            try:
                yield workdir
            finally:
                scratch.check_room(workdir)
    finally:
        _remove_tree(workdir)


_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _remove_tree(root: Path) -> None:
    """Remove a work directory however deep the program nested it, never following a link.

    ``shutil.rmtree`` recurses and holds a descriptor per level: 3000 nested directories end
    in RecursionError. Here every subdirectory is first moved up to the root, so the tree is
    flat and two descriptors suffice. What cannot be removed is left, as rmtree's
    ``ignore_errors`` would.
    """
    with suppress(OSError):
        root_fd = os.open(root, _OPEN_DIRECTORY)
        try:
            pending = _empty_directory(root_fd, root_fd, set())
            moved = set(pending)
            while pending:
                name = pending.pop()
                with suppress(OSError):
                    fd = os.open(name, _OPEN_DIRECTORY, dir_fd=root_fd)
                    try:
                        pending += _empty_directory(fd, root_fd, moved)
                    finally:
                        os.close(fd)
                    os.rmdir(name, dir_fd=root_fd)
        finally:
            os.close(root_fd)
        os.rmdir(root)


def _empty_directory(fd: int, root_fd: int, taken: set[str]) -> list[str]:
    """Unlink what ``fd`` holds and move its subdirectories into the root; their new names.

    ``taken``: names already in use in the root, kept up to date (for the root itself, the
    subdirectories stay where they are).
    """
    subdirectories = []
    with os.scandir(fd) as entries:
        listed = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_dir in listed:
        with suppress(OSError):
            if not is_dir:
                os.unlink(name, dir_fd=fd)
            elif fd == root_fd:
                subdirectories.append(name)
            else:
                flat = _free_name(taken)
                os.rename(name, flat, src_dir_fd=fd, dst_dir_fd=root_fd)
                subdirectories.append(flat)
    return subdirectories


def _free_name(taken: set[str]) -> str:
    name = f"flat-{len(taken)}"
    while name in taken:
        name += "+"
    taken.add(name)
    return name


def _run_child(mode: str, workdir: Path, limits: Limits, launcher: Launcher) -> _Outcome:
    """Run the child to completion or timeout; raise :class:`SandboxError` if it failed."""
    capture = _OutputCapture(limits.max_output_bytes)
    if launcher.prepare:
        launcher.prepare(workdir)
    if launcher.isolation == ISOLATION:
        _hide_lab_process()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            launcher.argv(workdir, mode),
            cwd=workdir,
            env=scrubbed_env(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise SandboxError(mode, f"could not start the {mode}r: {exc}") from None
    assert proc.stdout is not None
    reader = threading.Thread(target=capture.drain, args=(proc.stdout,), daemon=True)
    reader.start()
    exited = False
    try:
        exited = _wait_for_exit(proc.pid, limits.wall_seconds)
    finally:
        if not exited:
            _kill_tree(proc.pid, launcher)
        # Kill the group while the leader is still unreaped, so its id cannot be reused yet.
        _kill_group(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join(READER_JOIN_SECONDS)
    timed_out = not exited
    outcome = _Outcome(
        returncode=launcher.exit_code(proc.returncode) if exited else proc.returncode,
        timed_out=timed_out,
        seconds=time.perf_counter() - start,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        output=capture.text(),
    )
    if outcome.timed_out or outcome.returncode != 0:
        reason, detail = _failure(mode, outcome, _read_error(workdir), limits)
        if outcome.output:
            detail = f"{detail}\noutput:\n{outcome.output}".strip()
        raise SandboxError(mode, reason, detail)
    return outcome


@functools.cache
def _hide_lab_process() -> None:
    """Make the lab's process non-dumpable before a child of its own uid starts.

    The kernel then gives /proc/<lab>/environ, mem and the rest to root and refuses them to
    a same-uid process without CAP_SYS_PTRACE (ptrace access mode checks), so a weak child
    cannot read the lab's keys from its parent. (It also ends core dumps and same-uid
    debuggers attaching to the lab.) Root children are run as another uid instead.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether the process exited within ``timeout`` seconds (it is left unreaped)."""
    fd = os.pidfd_open(pid)
    try:
        return _poll_exit(fd, timeout)
    finally:
        os.close(fd)


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_tree(leader: int, launcher: Launcher) -> None:
    """End a child that outlived its wall clock, with what it started; the group comes next.

    Without a supervisor the leader is the child itself: stop it first, so that its children's
    ids are not reaped and reused while we look, then kill them all. Under bubblewrap the
    leader's child is the init of the sandbox's PID namespace, which ends only once every
    process inside has (setsid()'d grandchildren included); kill it and let bubblewrap reap
    it and exit by itself, so nothing is left for the system's init to reap.
    """
    supervised = launcher.supervisor
    if not supervised:
        with suppress(ProcessLookupError):
            os.kill(leader, signal.SIGSTOP)
    children = _children(leader)[:MAX_WATCHED_CHILDREN]  # the group kill gets any others
    pidfds = [fd for pid in children if (fd := _child_pidfd(pid, leader)) is not None]
    if not supervised:
        _kill_group(leader)
    deadline = time.monotonic() + REAP_SECONDS
    for fd in pidfds:
        with suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        _poll_exit(fd, deadline - time.monotonic())
    for fd in pidfds:
        os.close(fd)
    if supervised and pidfds:
        _wait_for_exit(leader, max(deadline - time.monotonic(), 0))


def _child_pidfd(pid: int, parent: int) -> int | None:
    """A pidfd for ``pid`` if it is still ``parent``'s child once opened (not a reused id)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if _parent_of(pid) != parent:
        os.close(fd)
        return None
    return fd


def _poll_exit(pidfd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(timeout, 0) * 1000))


def _children(pid: int) -> list[int]:
    """Ids of the processes whose parent is ``pid``, from /proc."""
    with os.scandir("/proc") as entries:
        ids = [int(entry.name) for entry in entries if entry.name.isdigit()]
    return [child for child in ids if _parent_of(child) == pid]


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            return int(stat_file.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _failure(mode: str, outcome: _Outcome, error: dict | None, limits: Limits) -> tuple[str, str]:
    """A one-line reason and a detail (traceback tail) for a failed child."""
    actor = f"{mode}r"
    if outcome.timed_out:
        return f"{actor} timed out after {limits.wall_seconds:g} s (wall clock)", ""
    if error is not None:
        return _error_reason(actor, error, limits)
    code = outcome.returncode
    cpu_limit_hit = code == -signal.SIGXCPU or (
        code == -signal.SIGKILL and outcome.cpu_seconds >= limits.cpu_seconds
    )
    if cpu_limit_hit:
        return f"{actor} exceeded CPU limit of {limits.cpu_seconds} s", ""
    if code == -signal.SIGXFSZ:
        return _file_size_reason(actor, limits), ""
    if code == -signal.SIGKILL:
        return f"{actor} was killed (SIGKILL), likely by the system's out-of-memory killer", ""
    if code < 0:
        return (
            f"{actor} crashed with {_signal_name(-code)} (a native crash; running out of memory "
            f"in native code, limit {limits.memory_mb} MB, can look like this)",
            "",
        )
    return f"{actor} exited with status {code} without a result", ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_ERROR_KINDS = frozenset({"too_big", "file_size", "contract", "memory", "raised", "workdir_full"})
_ERROR_TEXTS = ("type", "message", "traceback")


def _read_error(workdir: Path) -> dict | None:
    """The child's error record, or None when it is absent or not shaped as the child writes
    it: a program can write error.json itself and exit, so no field is trusted to be there
    or to have its type."""
    error = _read_json(workdir / child.ERROR)
    if error is None:
        return None
    texts = [error.get(key, "") for key in _ERROR_TEXTS]
    size = error.get("size", 0)
    well_formed = (
        all(isinstance(value, str) for value in [error.get("kind"), *texts])
        and error["kind"] in _ERROR_KINDS
        and type(size) is int
        and size >= 0
    )
    return error if well_formed else None


def _error_reason(actor: str, error: dict, limits: Limits) -> tuple[str, str]:
    """Word the child's error record (checked by :func:`_read_error`); program-chosen text is
    cut to one short line, the traceback to the child's own cap."""
    kind = error["kind"]
    message = _one_line(error.get("message", ""))
    traceback_tail = error.get("traceback", "")[-child.MAX_TRACEBACK_CHARS :]
    if kind == "too_big":
        return _too_big(error.get("size", 0), limits.max_bitstream_bytes), ""
    if kind == "file_size":
        return _file_size_reason(actor, limits), traceback_tail
    if kind == "contract":
        return f"{actor} {message}", ""
    if kind == "memory":
        return f"{actor} ran out of memory (limit {limits.memory_mb} MB)", traceback_tail
    if kind == "workdir_full":  # written by the strong sandbox's init, size: the cap
        cap = error.get("size", 0) / MiB
        return f"{actor} filled its work directory: the total size cap is {cap:.0f} MB", ""
    return f"{actor} raised {_one_line(error.get('type', '?'))}: {message}", traceback_tail


def _one_line(text: object, limit: int = 300) -> str:
    lines = str(text).splitlines() or [""]
    cut = lines[0][:limit]
    return cut + " ..." if len(lines) > 1 or len(lines[0]) > limit else cut


def _file_size_reason(actor: str, limits: Limits) -> str:
    return f"{actor} exceeded the file size limit of {limits.file_size_mb} MB"


def _too_big(size: int, cap: int) -> str:
    return f"bitstream is {size / MiB:.1f} MB, over the cap of {cap / MiB:.1f} MB"


class _NotAPlainFile(Exception):
    """A file the child left is a link, a pipe, a directory or a device."""


@contextmanager
def _open_output(path: Path) -> Iterator[tuple[BinaryIO, int] | None]:
    """A file the child wrote, opened for reading with its size; None if it is absent.

    The work directory belongs to the program while it runs: never follow a link out of it
    (to a host file the sandbox cannot see), never block on a pipe, refuse hard links.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        fd = None
    except OSError as exc:  # ELOOP: a symbolic link
        raise _NotAPlainFile(path.name) from exc
    if fd is None:
        yield None
        return
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise _NotAPlainFile(path.name)
        yield stream, info.st_size


def _not_plain(actor: str, name: str) -> str:
    return f"{actor} left {name} as a link or special file, not a plain file"


def _read_json(path: Path) -> dict | None:
    """A small JSON object the child wrote, or None if absent, odd, huge or malformed."""
    try:
        with _open_output(path) as opened:
            if opened is None or opened[1] > MAX_RESULT_JSON_BYTES:
                return None
            value = json.loads(opened[0].read(MAX_RESULT_JSON_BYTES).decode("utf-8"))
    except (_NotAPlainFile, OSError, ValueError, RecursionError):  # RecursionError: nesting
        return None
    return value if isinstance(value, dict) else None


def _read_bitstream(workdir: Path, limits: Limits) -> bytes:
    try:
        with _open_output(workdir / child.BITSTREAM) as opened:
            if opened is None:
                raise SandboxError("encode", "encoder exited without writing a bitstream")
            stream, size = opened
            if size > limits.max_bitstream_bytes:
                raise SandboxError("encode", _too_big(size, limits.max_bitstream_bytes))
            bitstream = stream.read(size + 1)
    except _NotAPlainFile as exc:
        raise SandboxError("encode", _not_plain("encoder", str(exc))) from None
    if len(bitstream) != size:
        raise SandboxError("encode", "encoder's bitstream changed size while the lab read it")
    return bitstream


def _read_decoded(workdir: Path) -> list[Frame]:
    """Frames from the raw planes the child wrote, after checking the sizes agree exactly."""
    meta = _read_json(workdir / child.DECODED_META)
    try:
        with _open_output(workdir / child.DECODED) as opened:
            if meta is None or opened is None:
                raise SandboxError("decode", "decoder exited without writing its frames")
            return _planes(meta, *opened)
    except _NotAPlainFile as exc:
        raise SandboxError("decode", _not_plain("decoder", str(exc))) from None


def _planes(meta: dict, stream: BinaryIO, size: int) -> list[Frame]:
    count, width, height = (meta.get(key) for key in ("count", "width", "height"))
    if not all(type(value) is int and value >= 0 for value in (count, width, height)):
        raise SandboxError("decode", f"decoder wrote malformed frame geometry: {meta!r:.200}")
    if width % 2 or height % 2 or (count > 0 and width * height == 0):
        raise SandboxError("decode", f"decoder wrote impossible 4:2:0 geometry {width}x{height}")
    expected = count * child.frame_bytes(width, height)
    if size != expected:
        raise SandboxError(
            "decode",
            f"decoder wrote {size} bytes of planes, {count} frames of {width}x{height} "
            f"need {expected}",
        )
    buffer = np.fromfile(stream, dtype=np.uint8, count=expected)
    if buffer.size != expected:
        raise SandboxError("decode", "decoder's planes changed size while the lab read them")
    return child.split_planes(buffer, count, width, height)


class _OutputCapture:
    """Keeps the first and last halves of a byte budget of what the child prints."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def drain(self, stream: BinaryIO) -> None:
        with stream:
            while chunk := stream.read1(64 * 1024):  # type: ignore[attr-defined]
                self._add(chunk)

    def _add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        excess = len(self.tail) - self.half
        if excess > 0:
            del self.tail[:excess]

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {omitted} bytes omitted ...]\n" if omitted else ""
        return self.head.decode(errors="replace") + middle + self.tail.decode(errors="replace")
