"""Rebuild the bundled ``natural`` test set from the shared media (not needed at run time).

Each clip is a short cut of a camera-captured source in ``../shared/media`` (see that
folder's README for origins and licences), stored losslessly as FFV1 (level 3, 4 slices,
large context, one GOP) in Matroska with bit-exact muxing, so a rebuild with the same FFmpeg
gives the same bytes. The frames written are exactly those ``codeclab.media.load_clip``
reads from the source; full-range sources are stored as their full-range planes with the
range flagged, so loading the cut converts them exactly as loading the source does. Every
file is checked: decoding it gives the source's frames bit for bit. Run from the repository
root::

    .venv/bin/python scripts/make_natural_set.py [--media ../shared/media] [--out DIR]

It prints each file's size, its sha256 (the pin in ``codeclab/evaluate/testsets.py``) and
the content hash of its frames (the pin in ``tests/test_testsets.py``).
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av

from codeclab.evaluate.testsets import NATURAL_DIR, file_sha256
from codeclab.frames import Frame
from codeclab.media import fps_fraction, frame_to_av, frames_sha256, load_clip

FRAMES = 16
FFV1_OPTIONS = {"level": "3", "slices": "4", "context": "1", "coder": "1", "g": str(FRAMES)}


class Cut(NamedTuple):
    """``FRAMES`` frames of ``source`` from frame ``start`` (0-based), stored as ``name``."""

    name: str
    source: str
    start: int


CUTS = [
    # the bundled sample's source (static camera); its first frames, as the sample starts
    Cut("cars_320x240_16f.mkv", "cars_320x240_30f.y4m", 0),
    # the 16 frames with the most luma change (window, hands, head)
    Cut("carphone_176x144_16f.mkv", "carphone_pristine_qcif_120f.mp4", 72),
    # a pan with growing camera motion, a cut after the 8th frame (source frame 75 to 76)
    Cut("bikes_640x272_16f.mkv", "bikes_640x272_250f.mp4", 68),
    # the whole source: 9 frames
    Cut("cisco_vt2people_320x192_9f.mkv", "cisco_vt2people_320x192_9f.y4m", 0),
    # the 16 frames with the most motion (the signing at the end)
    Cut("asl_book_640x480_16f.mkv", "asl_book_640x480_109f.mkv", 91),
    # cars crossing the road at full speed (the third car, the most motion in the source)
    Cut("car_detection_768x432_16f.mkv", "car_detection_768x432_377f.mp4", 327),
]


def full_range_planes(path: Path, start: int, count: int) -> list[Frame] | None:
    """A full-range source's own planes (``load_clip`` converts them to limited range on
    loading, so the cut is converted the same way); ``None`` for a limited-range source."""
    planes: list[Frame] = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if not (frame.format.name.startswith("yuvj") or frame.color_range == 2):
                return None
            if index >= start + count:
                break
            if index >= start:
                flat = frame.to_ndarray().ravel()  # yuvj420p: Y, U, V end to end
                luma, chroma = frame.width * frame.height, frame.width * frame.height // 4
                shape = (frame.height // 2, frame.width // 2)
                planes.append(
                    (
                        flat[:luma].reshape(frame.height, frame.width).copy(),
                        flat[luma : luma + chroma].reshape(shape).copy(),
                        flat[luma + chroma :].reshape(shape).copy(),
                    )
                )
    return planes


def write_ffv1(path: Path, frames: list[Frame], rate: Fraction, full_range: bool) -> None:
    """Lossless FFV1 in Matroska, bit-exact (no random segment id, no version strings)."""
    with av.open(str(path), "w", format="matroska", options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("ffv1", rate=rate)
        stream.width, stream.height = frames[0][0].shape[1], frames[0][0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = FFV1_OPTIONS
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        if full_range:
            stream.codec_context.color_range = 2
        for frame in frames:
            picture = frame_to_av(frame)
            if full_range:
                picture.color_range = 2
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def build(cut: Cut, media: Path, out_dir: Path) -> str:
    """Write one cut, check it decodes to the source's frames, and describe it."""
    source = load_clip(media / cut.source, max_frames=cut.start + FRAMES)
    expected = source.frames[cut.start :]
    full = full_range_planes(source.path, cut.start, FRAMES)
    target = out_dir / cut.name
    write_ffv1(target, full or expected, fps_fraction(source.fps), full is not None)
    stored = load_clip(target)
    if frames_sha256(stored.frames) != frames_sha256(expected):
        raise SystemExit(f"{target}: its decode differs from the frames of {source.path}")
    last = cut.start + len(expected) - 1
    return (
        f"{cut.name}: frames {cut.start}..{last} of {cut.source}, {target.stat().st_size} bytes"
        f"{', full range' if full else ''}, {stored.fps:g} fps\n"
        f"  file sha256 {file_sha256(target)}\n  frames sha256 {frames_sha256(stored.frames)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--out", type=Path, default=NATURAL_DIR)
    args = parser.parse_args(argv)
    if not args.media.is_dir():
        parser.error(f"{args.media}: no such folder (the shared media, with its README)")
    args.out.mkdir(parents=True, exist_ok=True)
    for cut in CUTS:
        print(build(cut, args.media, args.out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
