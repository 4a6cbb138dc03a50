"""Seed compatibility: run a program written for the seed's per-picture BGR interface.

A seed-style program defines ``compress_video_frame(frame, frame_index, config) -> bytes`` and
``decompress_video_frame(compressed_data, frame_index, config) -> (H, W, 3) BGR``. The adapter
converts 4:2:0 frames to BGR and back (BT.601 limited range) and frames the per-picture
payloads in a small container that carries quality, width, height and count, so the decoder
learns them from the bitstream. This file needs only numpy and the standard library: the
sandbox copies it next to its child process, and published decoders include it verbatim
(so it has no ``from __future__`` import).
"""

import struct
from collections.abc import Sequence
from types import ModuleType

import numpy as np

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]

SEED_MAGIC = b"CLSD"
SEED_VERSION = 1
SEED_HEADER = struct.Struct("<4sBBIII")  # magic, version, quality, width, height, count
SEED_LENGTH = struct.Struct("<I")

# BT.601 limited range: (Y - 16, Cb - 128, Cr - 128) -> (R, G, B). The forward matrix is its
# exact inverse, so a round trip loses only rounding and the clipping of out-of-gamut colours.
YCBCR_TO_RGB = np.array(
    [[1.164383, 0.0, 1.596027], [1.164383, -0.391762, -0.812968], [1.164383, 2.017232, 0.0]]
)
RGB_TO_YCBCR = np.linalg.inv(YCBCR_TO_RGB)


class ProgramFault(Exception):
    """The program returned something the contract does not allow; the message says what."""


def yuv420_to_bgr(frame: Frame) -> np.ndarray:
    """An (H, W, 3) uint8 BGR picture; chroma is upsampled by repeating each sample 2x2."""
    y, u, v = (plane.astype(np.float32) for plane in frame)
    u = u.repeat(2, axis=0).repeat(2, axis=1)
    v = v.repeat(2, axis=0).repeat(2, axis=1)
    ycc = np.stack([y - 16.0, u - 128.0, v - 128.0], axis=-1)
    rgb = ycc @ YCBCR_TO_RGB.T.astype(np.float32)
    return _to_uint8(rgb[..., ::-1])


def bgr_to_yuv420(bgr: np.ndarray) -> Frame:
    """The 4:2:0 frame of a BGR picture; chroma is the mean of each 2x2 block."""
    height, width = bgr.shape[:2]
    rgb = bgr[..., ::-1].astype(np.float32)
    ycc = rgb @ RGB_TO_YCBCR.T.astype(np.float32)
    y = ycc[..., 0] + 16.0
    u, v = (
        (ycc[..., c] + 128.0).reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
        for c in (1, 2)
    )
    return _to_uint8(y), _to_uint8(u), _to_uint8(v)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def pack_seed_container(quality: int, width: int, height: int, payloads: list[bytes]) -> bytes:
    """Header (magic, version, quality, width, height, count), then length-prefixed payloads."""
    parts = [SEED_HEADER.pack(SEED_MAGIC, SEED_VERSION, quality, width, height, len(payloads))]
    for payload in payloads:
        parts += [SEED_LENGTH.pack(len(payload)), payload]
    return b"".join(parts)


def unpack_seed_container(bitstream: bytes) -> tuple[int, int, int, list[bytes]]:
    """Quality, width, height and the payloads of a seed container; ValueError if malformed."""
    if len(bitstream) < SEED_HEADER.size:
        raise ValueError("seed container is shorter than its header")
    magic, version, quality, width, height, count = SEED_HEADER.unpack_from(bitstream)
    if magic != SEED_MAGIC or version != SEED_VERSION:
        raise ValueError(f"not a version {SEED_VERSION} seed container")
    payloads = []
    offset = SEED_HEADER.size
    for index in range(count):
        if offset + SEED_LENGTH.size > len(bitstream):
            raise ValueError(f"seed container truncated before payload {index}")
        (length,) = SEED_LENGTH.unpack_from(bitstream, offset)
        offset += SEED_LENGTH.size
        if offset + length > len(bitstream):
            raise ValueError(f"seed container truncated inside payload {index}")
        payloads.append(bitstream[offset : offset + length])
        offset += length
    if offset != len(bitstream):
        raise ValueError(f"seed container has {len(bitstream) - offset} trailing bytes")
    return quality, width, height, payloads


def seed_encode(program: ModuleType, frames: Sequence[Frame], fps: float, quality: int) -> bytes:
    """Encode a clip with a seed-style program, one BGR picture at a time."""
    height, width = frames[0][0].shape
    payloads = []
    for index, frame in enumerate(frames):
        config = {"quality": quality, "width": width, "height": height, "fps": fps}
        payload = program.compress_video_frame(yuv420_to_bgr(frame), index, config)
        if not isinstance(payload, bytes | bytearray):
            raise ProgramFault(
                f"returned {type(payload).__name__} from compress_video_frame for frame "
                f"{index}, expected bytes"
            )
        payloads.append(bytes(payload))
    return pack_seed_container(quality, width, height, payloads)


def seed_decode(program: ModuleType, bitstream: bytes) -> list[Frame]:
    """Decode a seed container; the picture size comes from the container, not the lab."""
    quality, width, height, payloads = unpack_seed_container(bitstream)
    frames = []
    for index, payload in enumerate(payloads):
        config = {"quality": quality, "width": width, "height": height}
        bgr = program.decompress_video_frame(payload, index, config)
        expected = (height, width, 3)
        if not (isinstance(bgr, np.ndarray) and bgr.dtype == np.uint8 and bgr.shape == expected):
            raise ProgramFault(
                f"returned {describe(bgr)} from decompress_video_frame for frame {index}, "
                f"expected a ({height}, {width}, 3) uint8 array"
            )
        frames.append(bgr_to_yuv420(bgr))
    return frames


def describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.shape} {value.dtype} array"
    return type(value).__name__
