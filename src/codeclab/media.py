"""Video in and out through PyAV: any file FFmpeg reads becomes 8-bit 4:2:0 limited-range frames.

A clip is decoded once, identified by a content hash of its planes (not of the file, so the
same pictures in another container are the same clip), and every conversion applied on the
way in (full range to limited, 10-bit to 8-bit, another chroma layout to 4:2:0) is named in
``Clip.conversions`` so a person can see what was scored.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from codeclab.frames import SSIM_MIN_SIZE, Frame

RAW_SUFFIXES = {".yuv", ".raw", ".i420"}


class MediaError(ValueError):
    """A clip cannot be used: unreadable, wrong geometry, no frames, unsupported format."""


@dataclass
class Clip:
    """Decoded source frames plus what is needed to reproduce and cite them."""

    path: Path
    frames: list[Frame]
    fps: float
    conversions: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return int(self.frames[0][0].shape[1])

    @property
    def height(self) -> int:
        return int(self.frames[0][0].shape[0])

    @property
    def name(self) -> str:
        return self.path.stem

    @functools.cached_property
    def sha256(self) -> str:
        """Hashed once: the runner compares it for every rung, clip and baseline (5 ms a call
        on a 768x432x16 clip); a clip's frames are never changed after it is made."""
        return frames_sha256(self.frames)

    def head(self, count: int) -> Clip:
        """The first ``count`` frames as a clip of their own (its hash changes with them)."""
        return Clip(self.path, self.frames[:count], self.fps, list(self.conversions))


def frames_sha256(frames: list[Frame]) -> str:
    """Content hash of the pictures: geometry, frame count, then every plane's bytes."""
    digest = hashlib.sha256()
    height, width = frames[0][0].shape
    digest.update(f"yuv420p8 {width}x{height} {len(frames)}\n".encode())
    for frame in frames:
        for plane in frame:
            digest.update(np.ascontiguousarray(plane).tobytes())
    return digest.hexdigest()


def fps_fraction(fps: float) -> Fraction:
    """A container-friendly rational rate: 29.97 becomes 30000/1001."""
    return Fraction(fps).limit_denominator(1001)


def frame_from_av(frame: av.VideoFrame) -> Frame:
    """Split a PyAV frame (converted to yuv420p if needed) into contiguous Y, U, V planes."""
    flat = frame.to_ndarray(format="yuv420p").ravel()
    width, height = frame.width, frame.height
    luma, chroma = width * height, (width // 2) * (height // 2)
    return (
        flat[:luma].reshape(height, width).copy(),
        flat[luma : luma + chroma].reshape(height // 2, width // 2).copy(),
        flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2).copy(),
    )


def frame_to_av(frame: Frame) -> av.VideoFrame:
    """Build a yuv420p PyAV frame: its array is the three planes end to end in rows of W."""
    packed = np.concatenate([plane.ravel() for plane in frame]).reshape(-1, frame[0].shape[1])
    return av.VideoFrame.from_ndarray(packed, format="yuv420p")


def _describe_conversion(frame: av.VideoFrame) -> list[str]:
    notes = []
    name = frame.format.name
    full_range = (
        name.startswith("yuvj") or frame.color_range == av.video.reformatter.ColorRange.JPEG
    )
    if full_range:
        notes.append(f"full-range {name} converted to limited-range yuv420p")
    elif name != "yuv420p":
        notes.append(f"{name} converted to yuv420p")
    return notes


def _to_yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    if frame.format.name == "yuv420p" and frame.color_range != 2:
        return frame
    full = frame.format.name.startswith("yuvj") or frame.color_range == 2
    return frame.reformat(
        format="yuv420p",
        src_color_range="JPEG" if full else None,
        dst_color_range="MPEG",
        interpolation="BICUBIC",
    )


def _open(path: Path, width: int | None, height: int | None, fps: float | None):
    if path.suffix.lower() in RAW_SUFFIXES:
        if not (width and height):
            raise MediaError(f"{path}: raw YUV needs its geometry: give its size (--size WxH)")
        options = {
            "video_size": f"{width}x{height}",
            "pixel_format": "yuv420p",
            "framerate": str(fps_fraction(fps or 30.0)),
        }
        return av.open(str(path), format="rawvideo", options=options)
    return av.open(str(path))


def load_clip(
    path: str | Path,
    *,
    max_frames: int | None = None,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
) -> Clip:
    """Decode ``path`` into a :class:`Clip`; raise :class:`MediaError` with the reason."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    try:
        container = _open(path, width, height, fps)
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: FFmpeg cannot read it ({exc})") from exc
    frames: list[Frame] = []
    conversions: list[str] = []
    with container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        stream = container.streams.video[0]
        rate = fps or (float(stream.average_rate) if stream.average_rate else None)
        try:
            for decoded in container.decode(stream):
                _check_picture_size(path, decoded, frames)
                if not conversions:
                    conversions = _describe_conversion(decoded)
                frames.append(frame_from_av(_to_yuv420p(decoded)))
                if max_frames and len(frames) >= max_frames:
                    break
        except MediaError:
            raise
        except av.FFmpegError as exc:
            raise MediaError(f"{path}: decoding failed after {len(frames)} frames ({exc})") from exc
        except ValueError as exc:
            raise MediaError(f"{path}: unsupported pixel format ({exc})") from exc
    if not frames:
        raise MediaError(f"{path}: no frames decoded")
    if not rate or rate <= 0:
        raise MediaError(f"{path}: no frame rate in the file; give --fps")
    return Clip(path, frames, rate, conversions)


def _check_picture_size(path: Path, decoded: av.VideoFrame, frames: list[Frame]) -> None:
    """Refuse a picture the lab cannot score: an odd or tiny size, or one that differs from
    the clip's first picture (every frame is compared with its source at one size)."""
    width, height = decoded.width, decoded.height
    if frames:
        first_height, first_width = frames[0][0].shape
        if (width, height) != (first_width, first_height):
            raise MediaError(
                f"{path}: the picture size changes from {first_width}x{first_height} to "
                f"{width}x{height} at frame {len(frames)}; a clip must keep one size"
            )
        return
    if width % 2 or height % 2:
        raise MediaError(
            f"{path}: {width}x{height} has an odd dimension; 4:2:0 needs even width and height "
            "(crop it first)"
        )
    if min(width, height) < SSIM_MIN_SIZE:
        raise MediaError(
            f"{path}: {width}x{height} pictures are too small: SSIM (FFmpeg's ssim filter, "
            f"8x8 windows) needs at least {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE}"
        )


def write_y4m(path: str | Path, frames: list[Frame], fps: float) -> Path:
    """Write lossless YUV4MPEG2 (4:2:0, 8-bit), the format every codec tool reads."""
    path = Path(path)
    rate = fps_fraction(fps)
    height, width = frames[0][0].shape
    with open(path, "wb") as out:
        rate_text = f"F{rate.numerator}:{rate.denominator}"
        header = f"YUV4MPEG2 W{width} H{height} {rate_text} Ip A1:1 C420jpeg"
        out.write(header.encode() + b"\n")
        for frame in frames:
            out.write(b"FRAME\n")
            for plane in frame:
                out.write(np.ascontiguousarray(plane, dtype=np.uint8).tobytes())
    return path


def write_mp4(path: str | Path, frames: list[Frame], fps: float, *, crf: int = 12) -> Path:
    """Write browser-playable H.264 (yuv420p, faststart) at a near-transparent CRF."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps_fraction(fps))
        stream.width = frames[0][0].shape[1]
        stream.height = frames[0][0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(frame_to_av(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
