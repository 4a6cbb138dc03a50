"""The lab's scratch space: temporary directories a later sweep can clean, and a full disk.

Each temporary directory (a sandbox's work directory, a baseline encode's, a VMAF run's) and
each half-written artifact carries its maker in its name: the pid and the process's start
time (so a reused pid is not taken for it). A lab that starts after a ``kill -9`` removes
what dead processes left (:func:`remove_dead`) and never what a live one, of this data
directory or another, still uses.

A full disk (ENOSPC, or a quota: EDQUOT) is the machine's fault, never a program's: it
surfaces as :class:`DiskFull`, an OSError whose text is ``no space left on device: WHERE``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
MIN_FREE_BYTES = 1 << 20
"""Less room than this left after a sandboxed run, and its results may have been cut short
while they were copied out: the run is not trusted."""
_OWNED = re.compile(r"-(\d+)\.(\d+)-[a-z0-9_]{8}$")  # mkdtemp's 8 random chars


class DiskFull(OSError):
    """The disk under ``where`` is full (or over its quota): the lab's fault, not a program's."""

    def __init__(self, where: Path | str, code: int = errno.ENOSPC) -> None:
        words = "disk quota exceeded" if code == errno.EDQUOT else "no space left on device"
        super().__init__(code, words, str(where))

    def __str__(self) -> str:
        return f"{self.strerror}: {self.filename}"


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


@contextmanager
def reported(where: Path | str) -> Iterator[None]:
    """Turn a full disk met inside the block into :class:`DiskFull` naming ``where``."""
    try:
        yield
    except DiskFull:
        raise
    except OSError as exc:
        if is_full(exc):
            raise DiskFull(where, exc.errno) from exc
        raise


def check_room(where: Path) -> None:
    """Raise :class:`DiskFull` when the file system of ``where`` is (nearly) full."""
    try:
        info = os.statvfs(where)
    except OSError:
        return
    blocks = info.f_bfree if os.geteuid() == 0 else info.f_bavail  # root may use the reserve
    if blocks * info.f_frsize < MIN_FREE_BYTES:
        raise DiskFull(where)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[1].split()[19]


def owner() -> str:
    """This process as scratch names carry it: ``PID.STARTTIME``."""
    pid = os.getpid()
    return f"{pid}.{_start_time(pid) or 0}"


def owner_of(name: str) -> str | None:
    """The ``PID.STARTTIME`` a scratch name carries, or None for a name made otherwise."""
    found = _OWNED.search(name)
    return f"{found[1]}.{found[2]}" if found else None


def is_dead(tag: str) -> bool:
    """Whether the process ``tag`` names has ended (False where /proc cannot tell)."""
    pid, _, start = tag.partition(".")
    if not (pid.isdigit() and start.isdigit()) or not Path("/proc/self/stat").exists():
        return False
    return _start_time(int(pid)) != start


def root() -> Path:
    """The lab's temporary root, ``$TMPDIR/codeclab-UID``: searchable by the sandbox's uid,
    listable by this user only."""
    path = Path(tempfile.gettempdir()) / f"codeclab-{os.getuid()}"
    with reported(path):
        path.mkdir(mode=0o711, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{path} is not a directory of this user; remove it")
    return path


def make_dir(kind: str, parent: Path | None = None) -> Path:
    """A fresh private directory named for this process (in :func:`root` by default)."""
    where = parent or root()
    with reported(where):
        return Path(tempfile.mkdtemp(prefix=f"{kind}-{owner()}-", dir=where))


def make_file(parent: Path, kind: str = ".tmp") -> tuple[int, Path]:
    """A fresh file in ``parent`` named for this process: its descriptor and path."""
    with reported(parent):
        handle, name = tempfile.mkstemp(prefix=f"{kind}-{owner()}-", dir=parent)
    return handle, Path(name)


def size_of(path: Path) -> int:
    """Bytes under ``path`` (a file or a tree), links not followed."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(
        (Path(folder) / name).lstat().st_size
        for folder, _, names in os.walk(path)
        for name in names
    )


def remove(path: Path) -> int:
    """Remove a file or a tree; the bytes it held. FileNotFoundError: there was none."""
    size = size_of(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return size


def remove_dead(parent: Path, prefix: str = "") -> tuple[int, int]:
    """Remove the entries of ``parent`` (named ``prefix...``) that dead processes made.

    Returns how many and their bytes. Entries of live processes, and names this module did
    not make, stay.
    """
    count = size = 0
    try:
        entries = list(os.scandir(parent))
    except (FileNotFoundError, NotADirectoryError):
        return 0, 0
    for entry in entries:
        tag = owner_of(entry.name) if entry.name.startswith(prefix) else None
        if tag is not None and is_dead(tag):
            try:
                size += remove(Path(entry.path))
            except (OSError, RecursionError):  # rmtree recurses: a very deep tree stays
                continue  # gone meanwhile, or not ours to remove: leave it
            count += 1
    return count, size
