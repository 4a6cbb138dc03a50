"""Hash-checked pictures for the experiment page: the source clip and the lab's decodes.

What the page calls "source" or "decoded" must be exactly the pictures the lab scored, so each
is kept as a lossless Y4M under ``cache_dir/web``, named by its content sha256 and written only
after its frames hashed to the recorded value: the source re-read from the clip's path
(``ClipInfo.sha256``), a decode re-run in the sandbox from the stored program and bitstream
(``RungResult.decoded_sha256``). A cached file is hashed again before its first use in a
process (and whenever it changes), so an altered cache is refused too.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from codeclab.config import Settings
from codeclab.frames import Frame
from codeclab.media import MediaError, frames_sha256, load_clip, write_y4m
from codeclab.record import ClipInfo, ExperimentRecord, RungResult
from codeclab.sandbox import isolate
from codeclab.sandbox.bwrap import best_launcher
from codeclab.store.artifacts import ArtifactError, ArtifactStore, bitstream_name

SHA256 = re.compile(r"[0-9a-f]{64}")
FRAME_MARKER = b"FRAME\n"

_verified: dict[Path, tuple[int, int]] = {}  # cached file -> (size, mtime_ns) when it hashed right
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


class Unavailable(Exception):
    """Pictures the page cannot show: ``reason`` is what a person reads, ``status`` the HTTP one."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Y4mFrames(Sequence[Frame]):
    """The frames of a Y4M written by :func:`codeclab.media.write_y4m`, read one at a time,
    so that neither hashing nor showing one frame holds a whole clip in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as file:
            header = file.readline()
        fields = {token[:1]: token[1:] for token in header.decode("ascii", "replace").split()}
        try:
            self.width, self.height = int(fields["W"]), int(fields["H"])
        except (KeyError, ValueError):
            raise Unavailable(500, f"{path.name} is not a Y4M written by the lab") from None
        if not header.startswith(b"YUV4MPEG2 ") or fields.get("C", "420jpeg")[:3] != "420":
            raise Unavailable(500, f"{path.name} is not a 4:2:0 Y4M written by the lab")
        self.start = len(header)
        self.frame_bytes = self.width * self.height * 3 // 2
        count, rest = divmod(path.stat().st_size - self.start, len(FRAME_MARKER) + self.frame_bytes)
        if rest:
            raise Unavailable(500, f"{path.name} is truncated")
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Frame:  # type: ignore[override]
        if not 0 <= index < self.count:
            raise IndexError(index)
        width, height = self.width, self.height
        with open(self.path, "rb") as file:
            file.seek(self.start + index * (len(FRAME_MARKER) + self.frame_bytes))
            if file.read(len(FRAME_MARKER)) != FRAME_MARKER:
                raise Unavailable(500, f"{self.path.name}: frame {index} has no FRAME marker")
            data = np.frombuffer(file.read(self.frame_bytes), dtype=np.uint8)
        luma, chroma = width * height, (width // 2) * (height // 2)
        return (
            data[:luma].reshape(height, width),
            data[luma : luma + chroma].reshape(height // 2, width // 2),
            data[luma + chroma :].reshape(height // 2, width // 2),
        )


@contextmanager
def _only_one(path: Path) -> Iterator[None]:
    """One request at a time makes a given file; the others wait and then use it."""
    with _locks_guard:
        lock = _locks.setdefault(path, threading.Lock())
    with lock:
        yield


def _write_once(path: Path, frames: list[Frame], fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".y4m")
    os.close(fd)
    try:
        write_y4m(tmp, frames, fps)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _checked(path: Path, sha256: str, what: str) -> Y4mFrames:
    """``path``'s frames, after they hashed to ``sha256`` (once per process and file version);
    a file that does not is removed, to be made again from the source or the bitstream."""
    stat = path.stat()
    version = (stat.st_size, stat.st_mtime_ns)
    try:
        frames = Y4mFrames(path)
        good = _verified.get(path) == version or (
            len(frames) > 0 and frames_sha256(frames) == sha256
        )
    except Unavailable:
        good = False
    if not good:
        path.unlink(missing_ok=True)
        raise Unavailable(409, f"the cached {what} no longer matches its sha256: removed")
    _verified[path] = version
    return frames


class FrameCache:
    """Source and decoded frames of experiments, each checked against the record's sha256."""

    def __init__(self, settings: Settings, store, artifacts: ArtifactStore) -> None:
        self.root = settings.cache_dir / "web"
        self.settings = settings
        self.store = store
        self.artifacts = artifacts

    def source(self, clip: ClipInfo) -> Y4mFrames:
        """The clip's frames as recorded; refused when the file is gone or holds other pictures."""
        if not SHA256.fullmatch(clip.sha256):
            raise Unavailable(500, "the record's clip sha256 is malformed")
        path = self.root / "sources" / f"{clip.sha256}.y4m"
        with _only_one(path):
            if not path.is_file():
                _write_once(path, self._read_clip(clip), clip.fps)
            return _checked(path, clip.sha256, f"source of {clip.name}")

    def _read_clip(self, clip: ClipInfo) -> list[Frame]:
        if not Path(clip.path).is_file():
            raise Unavailable(410, f"the source clip {clip.path} is gone: it cannot be shown")
        try:
            loaded = load_clip(
                clip.path,
                max_frames=clip.frames,
                width=clip.width,
                height=clip.height,
                fps=clip.fps,
            )
        except MediaError as exc:
            raise Unavailable(409, f"the source clip cannot be read now: {exc}") from None
        if loaded.sha256 != clip.sha256:
            raise Unavailable(
                409,
                f"the source clip {clip.path} has changed (its frames hash to "
                f"{loaded.sha256[:12]}…, the record says {clip.sha256[:12]}…): the lab will not "
                "show other pictures as the source",
            )
        return loaded.frames

    def decoded(self, record: ExperimentRecord, clip: ClipInfo, result: RungResult) -> Y4mFrames:
        """The lab's decode of one rung, re-run in the sandbox once and checked bit for bit."""
        if not SHA256.fullmatch(result.decoded_sha256):
            raise Unavailable(500, "the record's decoded sha256 is malformed")
        path = self.root / "decoded" / f"{result.decoded_sha256}.y4m"
        with _only_one(path):
            if not path.is_file():
                _write_once(path, self._decode(record, result, clip), clip.fps)
            return _checked(path, result.decoded_sha256, f"decode of {result.clip}")

    def _decode(self, record: ExperimentRecord, result: RungResult, clip: ClipInfo) -> list[Frame]:
        program = self.store.source(record.program_sha256)
        if program is None:
            raise Unavailable(404, "the program's source is not stored: it cannot decode here")
        bitstream = self._bitstream(record, result)
        launcher = best_launcher()
        if not self.settings.allow_weak_isolation and launcher.isolation != "strong":
            raise Unavailable(503, "strong isolation is required and bubblewrap does not work")
        limits = isolate.Limits.for_clip(clip.width, clip.height, clip.frames)
        try:
            frames = isolate.run_decode(program, bitstream, limits, launcher).frames
        except isolate.SandboxError as exc:
            raise Unavailable(409, f"the decode failed in the sandbox: {exc.reason}") from None
        digest = frames_sha256(frames) if frames else ""
        if digest != result.decoded_sha256:
            raise Unavailable(
                409,
                f"the decode now gives other pictures (sha256 {digest[:12]}…) than the lab "
                f"scored ({result.decoded_sha256[:12]}…): not shown",
            )
        return frames

    def _bitstream(self, record: ExperimentRecord, result: RungResult) -> bytes:
        name = bitstream_name(result.clip, result.quality)
        for location in record.artifacts.bitstreams:
            try:
                key = self.artifacts.key_of(location)
                if key.rsplit("/", 1)[-1] != name:
                    continue
                data = self.artifacts.get_bytes(key)
            except (ArtifactError, ValueError):
                continue
            if hashlib.sha256(data).hexdigest() != result.bitstream_sha256:
                raise Unavailable(409, f"the stored bitstream {name} differs from the recorded one")
            return data
        raise Unavailable(404, f"the bitstream {name} is not stored")
