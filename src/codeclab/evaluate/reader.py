"""Read the two videos of ``codeclab metrics``: Y4M mapped straight into planes, else PyAV.

An 8-bit 4:2:0 Y4M file is raw planes behind short text headers, so its frames can be numpy
views of the memory-mapped file: no decoder, no copy. That is how scoring a 1080p pair keeps
pace with the ``ffmpeg`` command line. Any other file, and any Y4M this reader does not take
as is (another chroma layout or bit depth, full range), goes through
:func:`codeclab.media.load_clip`, which converts and names its conversions. The frames are
the same either way; a test checks that.
"""

from __future__ import annotations

import mmap
from fractions import Fraction
from pathlib import Path

import numpy as np

from codeclab.media import Clip, MediaError, load_clip

_PLAIN_420 = {None, "420", "420jpeg", "420mpeg2", "420paldv"}


def _header(path: Path, data: mmap.mmap) -> tuple[int, int, float, int] | None:
    """(width, height, fps, header length) of a Y4M this reader takes, else None."""
    end = data.find(b"\n", 0, 4096)
    if end < 0 or data[:10] != b"YUV4MPEG2 ":
        return None
    tokens = data[10:end].decode("ascii", errors="replace").split()
    fields: dict[str, str] = {}
    for token in tokens:
        fields.setdefault(token[0], token[1:])
    if fields.get("C") not in _PLAIN_420 or any(t.upper() == "XCOLORRANGE=FULL" for t in tokens):
        return None
    try:
        width, height = int(fields["W"]), int(fields["H"])
        numerator, denominator = (int(x) for x in fields.get("F", "25:1").split(":"))
        fps = float(Fraction(numerator, denominator))
    except (KeyError, ValueError, ZeroDivisionError) as exc:
        raise MediaError(f"{path}: bad Y4M header ({exc})") from None
    if width % 2 or height % 2:
        raise MediaError(
            f"{path}: {width}x{height} has an odd dimension; 4:2:0 needs even width and height"
        )
    return width, height, fps, end + 1


def _map_y4m(path: Path, max_frames: int | None) -> Clip | None:
    # MAP_POPULATE maps the whole (page-cached) file in one go: one fault per page while
    # scoring would cost more than the metrics of a 1080p frame
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    with open(path, "rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
        except ValueError:  # an empty file
            return None
    header = _header(path, data)
    if header is None:
        data.close()
        return None
    width, height, fps, offset = header
    luma, chroma = width * height, (width // 2) * (height // 2)
    buffer = np.frombuffer(data, dtype=np.uint8)
    frames = []
    while offset < len(data) and (max_frames is None or len(frames) < max_frames):
        line_end = data.find(b"\n", offset, offset + 4096)
        if line_end < 0 or data[offset : offset + 5] != b"FRAME":
            raise MediaError(f"{path}: no FRAME header at byte {offset}")
        start = line_end + 1
        if start + luma + 2 * chroma > len(data):
            break  # a truncated last frame is dropped, as FFmpeg drops it
        frames.append(
            (
                buffer[start : start + luma].reshape(height, width),
                buffer[start + luma : start + luma + chroma].reshape(height // 2, width // 2),
                buffer[start + luma + chroma : start + luma + 2 * chroma].reshape(
                    height // 2, width // 2
                ),
            )
        )
        offset = start + luma + 2 * chroma
    if not frames:
        raise MediaError(f"{path}: no frames decoded")
    return Clip(path, frames, fps)


def read_video(path: str | Path, *, max_frames: int | None = None) -> Clip:
    """The frames of any video as 8-bit 4:2:0 (read-only views for plain Y4M)."""
    path = Path(path)
    if path.suffix.lower() == ".y4m" and path.is_file():
        clip = _map_y4m(path, max_frames)
        if clip is not None:
            return clip
    return load_clip(path, max_frames=max_frames)
