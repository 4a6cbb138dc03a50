"""The picture format every part of the lab agrees on: 8-bit 4:2:0 planes.

A frame is a ``(Y, U, V)`` tuple of ``uint8`` arrays shaped ``(H, W)``, ``(H/2, W/2)``,
``(H/2, W/2)`` with H and W even (DESIGN.md section 2). Checking a decode against this
shape *before* scoring is an honesty invariant: a short or malformed decode must fail with
a reason, never be padded or scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]

SSIM_MIN_SIZE = 8
"""Smallest width and height SSIM is defined for: one 8x8 window (FFmpeg's ssim filter
averages over none below it). Clips smaller than this are refused when they are loaded."""


class FrameMismatch(ValueError):
    """Decoded frames do not match the source in count, shape or dtype."""


def plane_shapes(width: int, height: int) -> tuple[tuple[int, int], ...]:
    """Shapes of the Y, U and V planes of a ``width`` x ``height`` 4:2:0 picture."""
    return (height, width), (height // 2, width // 2), (height // 2, width // 2)


def check_frames(frames: Sequence[Frame], *, count: int, width: int, height: int) -> None:
    """Raise :class:`FrameMismatch` naming the first way ``frames`` differ from the source."""
    if len(frames) != count:
        raise FrameMismatch(f"decoder returned {len(frames)} frames, source has {count} frames")
    shapes = plane_shapes(width, height)
    for index, frame in enumerate(frames):
        if not isinstance(frame, tuple | list) or len(frame) != 3:
            raise FrameMismatch(f"frame {index}: expected a (Y, U, V) tuple of three planes")
        for name, plane, shape in zip("YUV", frame, shapes, strict=True):
            if not isinstance(plane, np.ndarray):
                raise FrameMismatch(f"frame {index} plane {name}: not a numpy array")
            if plane.dtype != np.uint8:
                raise FrameMismatch(
                    f"frame {index} plane {name}: dtype {plane.dtype}, expected uint8"
                )
            if plane.shape != shape:
                raise FrameMismatch(
                    f"frame {index} plane {name}: shape {plane.shape}, expected {shape}"
                )
