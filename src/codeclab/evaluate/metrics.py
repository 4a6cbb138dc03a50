"""Trusted picture metrics: PSNR per plane, SSIM and MS-SSIM on luma, VMAF where available.

These numbers are the lab's verdict on a decode (DESIGN.md sections 1 and 4), so they are
computed here from the decoded planes and the source, never taken from a program. Each one
follows a named reference and is tested against it:

- PSNR is the 8-bit formula ``10*log10(255^2/MSE)`` (FFmpeg's ``psnr`` filter agrees);
- SSIM is FFmpeg's ``ssim`` filter (``libavfilter/vf_ssim.c``), bit-for-bit in its integer sums;
- MS-SSIM is Wang, Simoncelli and Bovik (2003), as in their ``msssim.m``: five scales,
  11x11 Gaussian windows of sigma 1.5 over the "valid" area, 2x2 averaging between scales,
  contrast-structure at scales 1-4 and full SSIM at scale 5, weighted by the published
  exponents;
- VMAF is libvmaf through an FFmpeg that has it (:mod:`codeclab.evaluate.vmaf`).

They run on every rung of every clip, so they are vectorised, reuse per-thread buffers
(fresh large arrays cost more in page faults than in arithmetic) and score frames in
parallel threads: numpy and BLAS release the GIL.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from threadpoolctl import ThreadpoolController

from codeclab.frames import SSIM_MIN_SIZE, Frame, check_frames

VERSION = "psnr<=100; ssim=vf_ssim; ms_ssim=wang2003-valid-avg2x2; 4"
"""Names what computes the scores; baseline rungs are cached under it, so a change to a
metric re-scores the cache instead of mixing old and new numbers."""

IDENTICAL_PSNR = 100.0
"""PSNR of a plane identical to its source, so that averages over frames stay finite, and the
most any plane scores, whatever its size."""

# vf_ssim's constants C1 = (0.01*255)^2 and C2 = (0.03*255)^2, scaled to its integer window
# sums and rounded exactly as FFmpeg does.
_SSIM_C1 = int(0.01 * 0.01 * 255 * 255 * 64 + 0.5)
_SSIM_C2 = int(0.03 * 0.03 * 255 * 255 * 64 * 63 + 0.5)

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Exponents of the five scales (Wang et al. 2003, table 1; they sum to 1.0001 as published)."""
MS_SSIM_WINDOW = 11
MS_SSIM_SIGMA = 1.5
MS_SSIM_MIN_SIZE = (MS_SSIM_WINDOW - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1
"""Smallest width and height (161) that leave an 11x11 window at the fifth scale."""
_MS_C1 = (0.01 * 255) ** 2
_MS_C2 = (0.03 * 255) ** 2
_CENTRE = 128.0  # MS-SSIM works on pixels minus 128: float32 sums of squares stay precise

_STRIP_ROWS = 128
"""Rows per pass of the SSIM/PSNR sums (a multiple of 4): strips keep temporaries in cache
and are few enough that Python's per-call cost stays small (measured on 1080p). A column of
255^2 squares over this many rows stays below 2^24, so float32 sums of it are exact."""
_MS_ROWS, _MS_COLS = 48, 32
"""Output rows and columns per BLAS product of the MS-SSIM filter: each product computes
(n + 10) / 11 times the taps it needs, and small products run slowly; measured best."""

MAX_THREADS = 4


def _gaussian_window() -> np.ndarray:
    taps = np.arange(MS_SSIM_WINDOW) - MS_SSIM_WINDOW // 2
    window = np.exp(-(taps**2) / (2 * MS_SSIM_SIGMA**2))
    return window / window.sum()  # separable: the 2-D window is its outer product (fspecial)


GAUSSIAN_1D = _gaussian_window()


def _band(size: int) -> np.ndarray:
    """A (size + 10, size) float32 matrix whose columns are the window shifted by one.

    ``x @ band`` filters the rows of ``x`` with the window over its "valid" span; BLAS does
    this several times faster than 11 shifted multiply-adds in numpy.
    """
    band = np.zeros((size + MS_SSIM_WINDOW - 1, size), dtype=np.float32)
    for column in range(size):
        band[column : column + MS_SSIM_WINDOW, column] = GAUSSIAN_1D
    return band


_BAND_COLS = _band(_MS_COLS)
_BAND_ROWS_T = np.ascontiguousarray(_band(_MS_ROWS).T)


class _Buffers(threading.local):
    """Scratch arrays reused across frames, one set per thread."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, str], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        size = math.prod(shape)
        key = (name, np.dtype(dtype).str)
        flat = self.arrays.get(key)
        if flat is None or flat.size < size:
            flat = self.arrays[key] = np.empty(size, dtype=dtype)
        return flat[:size].reshape(shape)


_buffers = _Buffers()


def _check_pair(ref: np.ndarray, dist: np.ndarray) -> None:
    # numpy would broadcast mismatched planes into a number that means nothing.
    if ref.shape != dist.shape or ref.ndim != 2:
        raise ValueError(f"planes differ or are not 2-D: {ref.shape} vs {dist.shape}")


def _psnr_from_sse(sse: int, pixels: int) -> float:
    """PSNR capped at :data:`IDENTICAL_PSNR`: one level off in one pixel of a 1080p picture
    would be 111 dB, more than the identical picture's 100 dB."""
    if sse == 0:
        return IDENTICAL_PSNR
    return min(IDENTICAL_PSNR, float(10.0 * np.log10(255.0**2 * pixels / sse)))


def _sse(ref: np.ndarray, dist: np.ndarray) -> int:
    """Exact sum of squared differences.

    In float32 strips: each column's sum over a strip of at most :data:`_STRIP_ROWS` rows is
    below 2^24, so exact; the strips' totals are added in float64, also exact.
    """
    total = 0.0
    for top in range(0, ref.shape[0], _STRIP_ROWS):
        strip_ref, strip_dist = ref[top : top + _STRIP_ROWS], dist[top : top + _STRIP_ROWS]
        difference = _buffers.get("sse_int16", strip_ref.shape, np.int16)
        a = _buffers.get("sse_a", strip_ref.shape, np.float32)
        columns = _buffers.get("sse_columns", strip_ref.shape[1:], np.float32)
        np.subtract(strip_ref, strip_dist, out=difference, dtype=np.int16)
        np.copyto(a, difference)
        np.einsum("ij,ij->j", a, a, out=columns)
        total += float(columns.sum(dtype=np.float64))
    return int(total)


def psnr(ref: np.ndarray, dist: np.ndarray) -> float:
    """8-bit PSNR of one plane; an identical plane scores :data:`IDENTICAL_PSNR`."""
    _check_pair(ref, dist)
    return _psnr_from_sse(_sse(ref, dist), ref.size)


_ONES_4 = np.ones(4, dtype=np.float32)


def _sum_4x4_into(
    x: np.ndarray, y: np.ndarray | None, rows_buf: np.ndarray, out: np.ndarray
) -> None:
    """``out`` = sums over 4x4 blocks of ``x * y`` (of ``x`` when ``y`` is None).

    einsum multiplies and adds four rows in one pass; a BLAS product with ones adds each
    group of four columns. Every partial sum is an integer below 2^24: exact in float32.
    """
    rows, width = x.shape
    x4 = x.reshape(rows // 4, 4, width)
    if y is None:
        np.einsum("rkw->rw", x4, out=rows_buf)
    else:
        np.einsum("rkw,rkw->rw", x4, y.reshape(rows // 4, 4, width), out=rows_buf)
    np.matmul(rows_buf.reshape(-1, 4), _ONES_4, out=out.reshape(-1))


def _block_sums(ref: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, ...]:
    """4x4-block sums of a, b, a*a + b*b and a*b over the plane's whole 4x4 blocks.

    Four passes instead of five: with p = a + b, sum b = sum p - sum a and
    sum (a*a + b*b) = sum p*p - 2 sum a*b. float32 holds every sum exactly (integers
    below 2^23).
    """
    height, width = (ref.shape[0] // 4) * 4, (ref.shape[1] // 4) * 4
    shape = (height // 4, width // 4)
    s1, s2, ss, s12 = (_buffers.get(f"blocks{i}", shape, np.float32) for i in range(4))
    for top in range(0, height, _STRIP_ROWS):
        rows = min(_STRIP_ROWS, height - top)
        a = _buffers.get("a", (rows, width), np.float32)
        b = _buffers.get("b", (rows, width), np.float32)
        rows_buf = _buffers.get("rows", (rows // 4, width), np.float32)
        np.copyto(a, ref[top : top + rows, :width])
        np.copyto(b, dist[top : top + rows, :width])
        block_rows = slice(top // 4, (top + rows) // 4)
        _sum_4x4_into(a, b, rows_buf, s12[block_rows])
        _sum_4x4_into(a, None, rows_buf, s1[block_rows])
        b += a  # b is p = a + b from here on
        _sum_4x4_into(b, None, rows_buf, s2[block_rows])
        _sum_4x4_into(b, b, rows_buf, ss[block_rows])
    s2 -= s1
    ss -= s12
    ss -= s12
    return s1, s2, ss, s12


def _ssim_from_blocks(sums: tuple[np.ndarray, ...]) -> float:
    """vf_ssim's window formula over every 8x8 window (2x2 blocks), on its integer sums.

    Windows are summed on the flattened block grid, where the four blocks of a window are
    contiguous slices; that also makes a window at each row's last block that wraps to the
    next row, which is computed and then left out of the mean.
    """
    rows, cols = sums[0].shape
    count = (rows - 1) * cols - 1  # window starts, the last wrapped one excluded
    windows = []
    for index, blocks in enumerate(sums):
        flat = blocks.reshape(-1)
        pairs = _buffers.get("window_pairs", (count + cols,), np.float32)
        np.add(flat[: count + cols], flat[1 : count + cols + 1], out=pairs)  # left + right
        total = _buffers.get(f"window_f{index}", (count,), np.float32)
        np.add(pairs[:count], pairs[cols : cols + count], out=total)  # top + bottom
        exact = _buffers.get(f"window_i{index}", (count,), np.int32)
        np.copyto(exact, total, casting="unsafe")  # integers below 2^24: exact
        windows.append(exact)
    s1, s2, ss, s12 = windows
    f32 = np.float32
    s1s2 = _buffers.get("s1s2", (count,), np.int32)
    squares = _buffers.get("s1_s2_squared", (count,), np.int32)
    np.multiply(s1, s2, out=s1s2)
    np.multiply(s1, s1, out=squares)
    np.multiply(s2, s2, out=s1)
    squares += s1
    # variances = ss * 64 - s1^2 - s2^2, covariance = s12 * 64 - s1 * s2 (int32 as in FFmpeg)
    ss *= 64
    ss -= squares
    s12 *= 64
    s12 -= s1s2
    numerator = _buffers.get("numerator", (count + 1,), f32)
    denominator = _buffers.get("denominator", (count + 1,), f32)
    factor = _buffers.get("factor", (count,), f32)
    s1s2 *= 2
    s1s2 += _SSIM_C1
    np.copyto(numerator[:count], s1s2)
    s12 *= 2
    s12 += _SSIM_C2
    np.copyto(factor, s12)
    numerator[:count] *= factor
    squares += _SSIM_C1
    np.copyto(denominator[:count], squares)
    ss += _SSIM_C2
    np.copyto(factor, ss)
    denominator[:count] *= factor
    numerator[:count] /= denominator[:count]
    numerator[count] = 0.0  # the wrapped window at the very end, never computed
    wrapped = numerator[cols - 1 :: cols]  # each row's window that wraps
    total = float(numerator.sum(dtype=np.float64)) - float(wrapped.sum(dtype=np.float64))
    return total / ((rows - 1) * (cols - 1))


def _luma_ssim_sse(ref_y: np.ndarray, dist_y: np.ndarray) -> tuple[float, int]:
    """SSIM as :func:`ssim` and the exact SSE of the plane, from one pass over the pixels.

    The SSE falls out of SSIM's block sums: sum (a - b)^2 = sum (a*a + b*b) - 2 sum a*b;
    rows and columns beyond a multiple of 4 are added directly.
    """
    _check_pair(ref_y, dist_y)
    height, width = (ref_y.shape[0] // 4) * 4, (ref_y.shape[1] // 4) * 4
    _check_ssim_size(ref_y)
    sums = _block_sums(ref_y, dist_y)
    # float64 sums of float32 integers below 2^21: exact
    sse = int(sums[2].sum(dtype=np.float64)) - 2 * int(sums[3].sum(dtype=np.float64))
    if height < ref_y.shape[0]:
        sse += _sse(ref_y[height:], dist_y[height:])
    if width < ref_y.shape[1]:
        sse += _sse(ref_y[:height, width:], dist_y[:height, width:])
    return _ssim_from_blocks(sums), sse


def _check_ssim_size(plane: np.ndarray) -> None:
    if min(plane.shape) < SSIM_MIN_SIZE:
        height, width = plane.shape
        raise ValueError(
            f"SSIM needs a plane of at least {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE}, got {width}x{height}"
        )


def ssim(ref_y: np.ndarray, dist_y: np.ndarray) -> float:
    """SSIM of one plane as FFmpeg's ``ssim`` filter computes it.

    vf_ssim sums pixels, squares and cross products over 4x4 blocks, evaluates SSIM on every
    8x8 window of 2x2 blocks (so windows overlap by half) and averages the windows. Rows and
    columns beyond a multiple of 4 are ignored, as there. The window formula runs on the same
    int32 sums and in float32, so the result agrees with FFmpeg's to about 1e-6.
    """
    return _luma_ssim_sse(ref_y, dist_y)[0]


class _FfmpegSsim(threading.local):
    """FFmpeg's own ``ssim`` filter on luma, in-process through PyAV: one filter graph per
    thread and picture size, fed the planes without a copy. FFmpeg's SIMD code runs with the
    GIL released, about 3x faster than :func:`ssim` in numpy (measured on 1080p); its value
    is the reference itself, printed with six decimals (within 5e-7 of :func:`ssim`)."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None
        self.pts = 0

    def _configure(self, width: int, height: int) -> None:
        graph = av.filter.Graph()
        graph.threads = 1  # frames run in parallel threads already
        main, ref = (
            graph.add_buffer(
                width=width, height=height, format="gray", time_base=_TIME_BASE, name=name
            )
            for name in ("main", "ref")
        )
        metric = graph.add("ssim")
        sink = graph.add("buffersink")
        main.link_to(metric, 0, 0)
        ref.link_to(metric, 0, 1)
        metric.link_to(sink)
        graph.configure()
        # the contexts hold their graph weakly: keep it alive with them
        self.graph, self.main, self.ref, self.sink = graph, main, ref, sink
        self.size = (width, height)

    def __call__(self, ref_y: np.ndarray, dist_y: np.ndarray) -> float:
        height, width = ref_y.shape
        if self.size != (width, height):
            self._configure(width, height)
        self.pts += 1
        for source, plane in ((self.main, dist_y), (self.ref, ref_y)):
            if plane.strides[1] != 1:
                plane = np.ascontiguousarray(plane)
            frame = av.VideoFrame.from_numpy_buffer(plane, format="gray")
            frame.pts, frame.time_base = self.pts, _TIME_BASE
            source.push(frame)
        return float(self.sink.pull().metadata["lavfi.ssim.Y"])


_TIME_BASE = Fraction(1, 25)
_ffmpeg_ssim = _FfmpegSsim()


# -- MS-SSIM ---------------------------------------------------------------------------------


def _downsample(plane: np.ndarray) -> np.ndarray:
    """2x2 averages, keeping every other result: ``imfilter(ones(2)/4, 'symmetric')`` then
    ``(1:2:end, 1:2:end)`` as in msssim.m. An odd last row or column is averaged with itself.
    Exact in float32: after k levels every value is a multiple of 4^-k below 2^8."""
    if plane.shape[0] % 2:
        plane = np.concatenate([plane, plane[-1:]], axis=0)
    if plane.shape[1] % 2:
        plane = np.concatenate([plane, plane[:, -1:]], axis=1)
    out = plane[0::2, 0::2] + plane[1::2, 0::2]
    out += plane[0::2, 1::2]
    out += plane[1::2, 1::2]
    out *= 0.25
    return out


def _scale_means(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean contrast-structure and mean SSIM over the valid 11x11 windows of one scale.

    ``a`` and ``b`` are float32 pixels minus 128. The four filtered maps (means, sum of
    squares, product) come from two BLAS products per strip of rows: a banded matrix
    filters columns, its transpose rows. Shifting the pixels does not change variances or
    covariance; the luminance term adds the 128 back.
    """
    height, width = a.shape
    pad = MS_SSIM_WINDOW - 1
    out_h, out_w = height - pad, width - pad
    cs_total = ssim_total = 0.0
    for top in range(0, out_h, _MS_ROWS):
        rows = min(_MS_ROWS, out_h - top)
        src = slice(top, top + rows + pad)
        maps = _buffers.get("ms_maps", (rows + pad, 4, width), np.float32)
        maps[:, 0] = a[src]
        maps[:, 1] = b[src]
        np.multiply(a[src], a[src], out=maps[:, 2])
        squares = _buffers.get("ms_sq", (rows + pad, width), np.float32)
        np.multiply(b[src], b[src], out=squares)
        maps[:, 2] += squares
        np.multiply(a[src], b[src], out=maps[:, 3])
        vertical = _buffers.get("ms_vertical", (rows, 4 * width), np.float32)
        np.matmul(
            _BAND_ROWS_T[:rows, : rows + pad], maps.reshape(rows + pad, 4 * width), out=vertical
        )
        vertical = vertical.reshape(rows * 4, width)
        filtered = _buffers.get("ms_filtered", (rows * 4, out_w), np.float32)
        for left in range(0, out_w, _MS_COLS):
            cols = min(_MS_COLS, out_w - left)
            np.matmul(
                vertical[:, left : left + cols + pad],
                _BAND_COLS[: cols + pad, :cols],
                out=filtered[:, left : left + cols],
            )
        filtered = filtered.reshape(rows, 4, out_w)
        mu_a, mu_b, sum_sq, prod = (filtered[:, i] for i in range(4))
        mu_ab = mu_a * mu_b
        mu_sq = mu_a * mu_a
        mu_sq += mu_b * mu_b
        # contrast-structure: (2 cov + C2) / (var_a + var_b + C2)
        cs = prod - mu_ab
        cs *= 2
        cs += _MS_C2
        denominator = sum_sq - mu_sq
        denominator += _MS_C2
        cs /= denominator
        # luminance with the 128 added back: mu = mu' + 128
        mu_sum = mu_a + mu_b
        luminance = mu_ab + _CENTRE * mu_sum
        luminance *= 2
        luminance += 2 * _CENTRE**2 + _MS_C1
        denominator = mu_sq + 2 * _CENTRE * mu_sum
        denominator += 2 * _CENTRE**2 + _MS_C1
        luminance /= denominator
        luminance *= cs
        cs_total += float(cs.sum(dtype=np.float64))
        ssim_total += float(luminance.sum(dtype=np.float64))
    count = out_h * out_w
    return cs_total / count, ssim_total / count


def ms_ssim(ref_y: np.ndarray, dist_y: np.ndarray) -> float:
    """Multi-scale SSIM of one plane (Wang, Simoncelli and Bovik, 2003).

    ``prod(cs_j ** w_j for j in 1..4) * ssim_5 ** w_5`` with the means of the contrast-
    structure and SSIM maps over each scale's valid 11x11 Gaussian windows. A negative mean
    (possible only for anti-correlated pictures) counts as 0, as in pytorch-msssim, instead
    of a complex power. Computed in float32 on pixels minus 128: within about 1e-6 of a
    float64 computation of the formula.
    """
    _check_pair(ref_y, dist_y)
    if min(ref_y.shape) < MS_SSIM_MIN_SIZE:
        raise ValueError(
            f"MS-SSIM needs a plane of at least {MS_SSIM_MIN_SIZE}x{MS_SSIM_MIN_SIZE} "
            f"(an {MS_SSIM_WINDOW}x{MS_SSIM_WINDOW} window at 1/16 size), got "
            f"{ref_y.shape[1]}x{ref_y.shape[0]}"
        )
    a = ref_y.astype(np.float32)
    b = dist_y.astype(np.float32)
    a -= _CENTRE
    b -= _CENTRE
    result = 1.0
    last = len(MS_SSIM_WEIGHTS) - 1
    for scale, weight in enumerate(MS_SSIM_WEIGHTS):
        cs, full = _scale_means(a, b)
        result *= max(full if scale == last else cs, 0.0) ** weight
        if scale < last:
            # averaging commutes with the shift by 128, so the centred planes downsample as is
            a, b = _downsample(a), _downsample(b)
    return float(result)


def ms_ssim_reason(width: int, height: int) -> str | None:
    """Why MS-SSIM is undefined for a picture size, or None when it is defined."""
    if min(width, height) >= MS_SSIM_MIN_SIZE:
        return None
    return (
        f"MS-SSIM needs at least {MS_SSIM_MIN_SIZE}x{MS_SSIM_MIN_SIZE} pictures "
        f"(five scales of an {MS_SSIM_WINDOW}x{MS_SSIM_WINDOW} window); this clip is "
        f"{width}x{height}"
    )


# -- per frame and per clip -------------------------------------------------------------------


@dataclass(frozen=True)
class FrameScores:
    """The metrics of one decoded frame against its source frame."""

    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float
    ssim_y: float
    ms_ssim_y: float | None = None
    vmaf: float | None = None


@dataclass(frozen=True)
class Scores:
    """Per-frame metrics and their averages over frames (as FFmpeg and AWCY report them).

    ``ms_ssim_y`` is None for pictures too small for five scales, ``vmaf`` when VMAF was not
    computed; ``ms_ssim_reason`` and ``vmaf_reason`` say why.
    """

    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float
    ssim_y: float
    ms_ssim_y: float | None
    vmaf: float | None
    per_frame: list[FrameScores]
    ms_ssim_reason: str | None = None
    vmaf_reason: str | None = field(default=None)


def score_frame(reference: Frame, distorted: Frame, *, with_ms_ssim: bool = True) -> FrameScores:
    """Metrics of one frame; PSNR-YUV weighs luma 6:1:1 as in DESIGN.md section 4.

    SSIM-Y is FFmpeg's ``ssim`` filter run in-process (:class:`_FfmpegSsim`); PSNR comes from
    the exact SSE of each plane, as :func:`psnr`."""
    _check_pair(reference[0], distorted[0])
    _check_ssim_size(reference[0])
    ssim_y = _ffmpeg_ssim(reference[0], distorted[0])
    psnr_y = psnr(reference[0], distorted[0])
    psnr_u = psnr(reference[1], distorted[1])
    psnr_v = psnr(reference[2], distorted[2])
    height, width = reference[0].shape
    multi = None
    if with_ms_ssim and ms_ssim_reason(width, height) is None:
        multi = ms_ssim(reference[0], distorted[0])
    return FrameScores(
        psnr_y=psnr_y,
        psnr_u=psnr_u,
        psnr_v=psnr_v,
        psnr_yuv=(6.0 * psnr_y + psnr_u + psnr_v) / 8.0,
        ssim_y=ssim_y,
        ms_ssim_y=multi,
    )


PARALLEL_MIN_PIXELS = 1 << 20
"""Frames smaller than this (about 1 MP) are scored in one thread: their per-frame work is
too short for a thread pool to pay for its hand-offs and the GIL (measured on 320x240)."""


def default_threads(pixels: int | None = None) -> int:
    """Threads for scoring frames of ``pixels`` luma samples (all usable cores, up to 4)."""
    if pixels is not None and pixels < PARALLEL_MIN_PIXELS:
        return 1
    return max(1, min(MAX_THREADS, len(os.sched_getaffinity(0))))


_blas: list[ThreadpoolController] = []


def _blas_controller() -> ThreadpoolController:
    if not _blas:
        _blas.append(ThreadpoolController())  # after numpy has loaded its BLAS
    return _blas[0]


def one_blas_thread():
    """Frames run in parallel threads, so BLAS must not start threads of its own: on a
    busy machine OpenBLAS's spinning workers made MS-SSIM 6x slower, not faster."""
    return _blas_controller().limit(limits=1, user_api="blas")


def blas_info() -> list[dict]:
    """The BLAS libraries numpy uses, as threadpoolctl describes them."""
    return [lib for lib in _blas_controller().info() if lib.get("user_api") == "blas"]


def score_frames(
    reference: Sequence[Frame],
    distorted: Sequence[Frame],
    *,
    with_ms_ssim: bool = True,
    threads: int | None = None,
) -> list[FrameScores]:
    """:func:`score_frame` over aligned frames, in parallel threads, in frame order."""
    pairs = list(zip(reference, distorted, strict=True))
    if threads is None:
        threads = default_threads(pairs[0][0][0].size if pairs else None)
    with one_blas_thread():
        if threads <= 1 or len(pairs) <= 1:
            return [score_frame(r, d, with_ms_ssim=with_ms_ssim) for r, d in pairs]
        with ThreadPoolExecutor(min(threads, len(pairs))) as pool:
            return list(pool.map(lambda pair: score_frame(*pair, with_ms_ssim=with_ms_ssim), pairs))


def mean_or_none(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def score(
    reference: Sequence[Frame],
    distorted: Sequence[Frame],
    *,
    with_vmaf: bool = False,
    threads: int | None = None,
) -> Scores:
    """Score a decode against its source, after checking it frame by frame.

    The check comes first so that a short or malformed decode raises
    :class:`~codeclab.frames.FrameMismatch` with its reason instead of being scored. With
    ``with_vmaf`` VMAF runs (in an FFmpeg process, alongside the other metrics) when an
    FFmpeg with libvmaf is available; otherwise ``vmaf`` is None and ``vmaf_reason`` says why.
    """
    from codeclab.evaluate import vmaf

    if not reference:
        raise ValueError("no reference frames to score against")
    height, width = reference[0][0].shape
    check_frames(distorted, count=len(reference), width=width, height=height)
    job, vmaf_reason = (None, "VMAF not requested")
    if with_vmaf:
        job, vmaf_reason = vmaf.start(reference, distorted)
    try:
        per_frame = score_frames(reference, distorted, threads=threads)
    finally:
        vmaf_values = None
        if job is not None:
            vmaf_values, vmaf_reason = job.result()
    if vmaf_values is not None:
        per_frame = [
            dataclasses.replace(f, vmaf=v) for f, v in zip(per_frame, vmaf_values, strict=True)
        ]

    def mean(name: str) -> float | None:
        return mean_or_none([getattr(f, name) for f in per_frame])

    return Scores(
        psnr_y=mean("psnr_y"),
        psnr_u=mean("psnr_u"),
        psnr_v=mean("psnr_v"),
        psnr_yuv=mean("psnr_yuv"),
        ssim_y=mean("ssim_y"),
        ms_ssim_y=mean("ms_ssim_y"),
        vmaf=mean("vmaf"),
        per_frame=per_frame,
        ms_ssim_reason=ms_ssim_reason(width, height),
        vmaf_reason=None if vmaf_values is not None else vmaf_reason,
    )
