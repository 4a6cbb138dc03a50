"""Frames as PNG pictures: lossless, so what a person inspects is what was scored.

Colour pictures are converted from limited-range 4:2:0 with the BT.601 matrix (FFmpeg's
default, as for the lab's clips). The error heatmap maps the absolute luma difference
|source − decode| linearly onto the inferno colour scale, 0 to :data:`HEAT_MAX` (larger
differences saturate), so that frames and rungs are drawn on one scale.
"""

from __future__ import annotations

import av
import numpy as np

from codeclab.frames import Frame
from codeclab.media import frame_to_av

HEAT_MAX = 16
INFERNO = (  # matplotlib's inferno, ten stops as Plotly ships it
    "#000004",
    "#1b0c41",
    "#4a0c6b",
    "#781c6d",
    "#a52c60",
    "#cf4446",
    "#ed6925",
    "#fb9b06",
    "#f7d13d",
    "#fcffa4",
)


def _lookup_table() -> np.ndarray:
    """256 RGB colours: entry ``d`` is the colour of a luma difference ``d``."""
    stops = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in INFERNO], float)
    where = np.linspace(0, HEAT_MAX, len(INFERNO))
    levels = np.minimum(np.arange(256), HEAT_MAX)
    return (
        np.stack([np.interp(levels, where, stops[:, k]) for k in range(3)], axis=1)
        .round()
        .astype(np.uint8)
    )


LUT = _lookup_table()


def legend_gradient() -> str:
    """The heatmap's colour scale as a CSS gradient, for its legend."""
    return f"linear-gradient(to right, {', '.join(INFERNO)})"


def rgb(frame: Frame) -> np.ndarray:
    """An (H, W, 3) RGB picture of a 4:2:0 frame, for display."""
    return frame_to_av(frame).to_ndarray(format="rgb24")


def heatmap(source: Frame, decoded: Frame) -> np.ndarray:
    """|source − decoded| of luma, colour-mapped: (H, W, 3) RGB at the luma's size."""
    difference = np.abs(source[0].astype(np.int16) - decoded[0].astype(np.int16))
    return LUT[difference]


def png(picture: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 RGB picture as PNG bytes (FFmpeg's PNG encoder, through PyAV)."""
    height, width = picture.shape[:2]
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "rgb24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])
