"""Baselines: x264, x265 and SVT-AV1 encoding the same source frames, scored by the same code.

A baseline number is never typed in: the lab encodes the clip with the encoder PyAV's wheel
bundles, writes the bitstream to its cache, decodes that file back and scores the decode with
:func:`codeclab.evaluate.metrics.score` (DESIGN.md sections 1 and 4). Each encoder writes its
raw elementary stream (H.264/HEVC Annex B, AV1 low-overhead OBUs), so the bytes on disk are
the codec's bitstream with no container around it, and the bitrate counts exactly those.
x264 always writes its version and settings in an SEI message (about 650 bytes a stream,
which libx264 has no option to drop); x265's is switched off (``info=0``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from codeclab.evaluate.metrics import score
from codeclab.frames import Frame
from codeclab.media import fps_fraction, frame_from_av, frame_to_av

PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class Encoder:
    """How one baseline encoder is run: every setting that shapes its bitstream."""

    codec: str
    preset: str
    options: dict[str, str]
    crf_ladder: tuple[int, ...]
    crf_step: int
    crf_range: tuple[int, int]
    stream_format: str
    extension: str
    decoder: str


ENCODERS: dict[str, Encoder] = {
    "x264": Encoder(
        codec="libx264",
        preset="medium",
        options={},
        crf_ladder=(22, 27, 32, 37),
        crf_step=5,
        crf_range=(0, 51),
        stream_format="h264",
        extension="h264",
        decoder="h264",
    ),
    "x265": Encoder(
        codec="libx265",
        preset="medium",
        # info=0: no SEI carrying x265's version and settings (about 2.3 KB a stream),
        # text that would inflate x265's bitrate on short clips and flatter a candidate.
        options={"x265-params": "log-level=error:info=0"},
        crf_ladder=(22, 27, 32, 37),
        crf_step=5,
        crf_range=(0, 51),
        stream_format="hevc",
        extension="hevc",
        decoder="hevc",
    ),
    "svtav1": Encoder(
        codec="libsvtav1",
        preset="8",
        options={},
        crf_ladder=(30, 38, 46, 54),
        crf_step=8,
        crf_range=(1, 63),
        stream_format="obu",
        extension="obu",
        decoder="libdav1d",
    ),
}
"""Baseline encoders with their presets and default CRF ladders; GOP and everything not
named here are each encoder's defaults."""


@dataclass
class BaselineRung:
    """One point of a baseline's RD curve, in the record's fields (DESIGN.md section 8)."""

    encoder: str
    crf: int
    bytes: int
    frames: int
    width: int
    height: int
    fps: float
    kbps: float
    bpp: float
    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float
    ssim_y: float
    encode_s: float
    decode_s: float
    bitstream: str


def encoder_version(encoder: str) -> str:
    """The encoder build: PyAV's wheel bundles FFmpeg and the encoder libraries together."""
    major, minor, micro = av.library_versions["libavcodec"]
    return f"{ENCODERS[encoder].codec} (PyAV {av.__version__}, libavcodec {major}.{minor}.{micro})"


def settings(encoder: str) -> dict:
    """Every setting of ``encoder`` a record needs to state, except the CRF of a rung."""
    spec = ENCODERS[encoder]
    return {
        "codec": spec.codec,
        "preset": spec.preset,
        "options": dict(spec.options),
        "rate_control": "crf",
        "pix_fmt": PIX_FMT,
        "gop": "encoder default",
        "stream_format": spec.stream_format,
        "decoder": spec.decoder,
    }


def _encode(frames: Sequence[Frame], rate: Fraction, spec: Encoder, crf: int, path: Path) -> None:
    height, width = frames[0][0].shape
    if spec.codec == "libsvtav1":
        # SVT-AV1 logs its banner to stderr on every encode; keep errors only, as x265's
        # log-level=error does, unless the user asked for a level.
        os.environ.setdefault("SVT_LOG", "1")
    with av.open(str(path), "w", format=spec.stream_format) as container:
        stream = container.add_stream(spec.codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
        stream.codec_context.time_base = 1 / rate
        stream.options = {"crf": str(crf), "preset": spec.preset, **spec.options}
        for index, frame in enumerate(frames):
            video_frame = frame_to_av(frame)
            video_frame.pts, video_frame.time_base = index, 1 / rate
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


def _decode(path: Path, spec: Encoder) -> list[Frame]:
    with av.open(str(path), format=spec.stream_format) as container:
        stream = container.streams.video[0]
        codec = av.CodecContext.create(spec.decoder, "r")
        if stream.codec_context.extradata:
            codec.extradata = stream.codec_context.extradata
        decoded = []
        for packet in container.demux(stream):
            # The demuxer's last, empty packet flushes the decoder.
            decoded.extend(codec.decode(packet if packet.size else None))
    return [frame_from_av(video_frame) for video_frame in decoded]


def encode_rung(
    frames: Sequence[Frame], fps: float, encoder: str, crf: int, out_path: Path
) -> BaselineRung:
    """Encode ``frames`` at ``crf`` to ``out_path``, decode that file back and score it.

    The bitrate comes from the file's size; the metrics from decoding the file, so a
    baseline is exactly as real as a candidate's result.
    """
    spec = ENCODERS[encoder]
    out_path = Path(out_path)
    rate = fps_fraction(fps)
    started = time.perf_counter()
    _encode(frames, rate, spec, crf, out_path)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded = _decode(out_path, spec)
    decode_s = time.perf_counter() - started
    scores = score(frames, decoded)
    size = out_path.stat().st_size
    height, width = frames[0][0].shape
    count = len(frames)
    return BaselineRung(
        encoder=encoder,
        crf=crf,
        bytes=size,
        frames=count,
        width=width,
        height=height,
        fps=fps,
        kbps=size * 8 * fps / count / 1000,
        bpp=size * 8 / (count * width * height),
        psnr_y=scores.psnr_y,
        psnr_u=scores.psnr_u,
        psnr_v=scores.psnr_v,
        psnr_yuv=scores.psnr_yuv,
        ssim_y=scores.ssim_y,
        encode_s=encode_s,
        decode_s=decode_s,
        bitstream=str(out_path),
    )


RUNG_JSON = "rung.json"


def _entry_dir(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return cache_dir / f"{key['encoder']}-crf{key['crf']}-{digest[:24]}"


def _load(entry: Path, key: dict) -> BaselineRung | None:
    """The cached rung at ``entry``, or None unless its record and bitstream are whole."""
    try:
        record = json.loads((entry / RUNG_JSON).read_text())
        rung = BaselineRung(**record["rung"])
        bitstream = entry / rung.bitstream
        if record["key"] != key or bitstream.stat().st_size != rung.bytes:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    rung.bitstream = str(bitstream)
    return rung


def _store(
    frames: Sequence[Frame], fps: float, key: dict, entry: Path, extension: str
) -> BaselineRung:
    """Encode into a private directory, then rename it into place in one step.

    A reader therefore sees a whole entry or none; a killed writer leaves only a hidden
    temporary directory. When another writer got there first its entry is used.
    """
    temporary = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        name = f"stream.{extension}"
        rung = encode_rung(frames, fps, key["encoder"], key["crf"], temporary / name)
        record = {"key": key, "rung": {**dataclasses.asdict(rung), "bitstream": name}}
        (temporary / RUNG_JSON).write_text(json.dumps(record, indent=2, sort_keys=True))
        if entry.exists():
            finished = _load(entry, key)  # another writer may have finished meanwhile
            if finished is not None:
                return finished
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.replace(temporary, entry)
        except OSError:
            winner = _load(entry, key)
            if winner is None:
                raise
            return winner
        rung.bitstream = str(entry / name)
        return rung
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def cached_rung(
    frames: Sequence[Frame], fps: float, clip_sha256: str, encoder: str, crf: int, cache_dir: Path
) -> BaselineRung:
    """One rung, from the cache when a whole entry for the same key is there."""
    height, width = frames[0][0].shape
    key = {
        "clip_sha256": clip_sha256,
        "frames": len(frames),
        "width": width,
        "height": height,
        "fps": fps,
        "encoder": encoder,
        "version": encoder_version(encoder),
        "settings": settings(encoder),
        "crf": crf,
    }
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    entry = _entry_dir(cache_dir, key)
    rung = _load(entry, key)
    if rung is None:
        rung = _store(frames, fps, key, entry, ENCODERS[encoder].extension)
    return rung


def baseline_curve(
    frames: Sequence[Frame],
    fps: float,
    clip_sha256: str,
    encoder: str,
    cache_dir: Path,
    *,
    cover_kbps: tuple[float, float] | None = None,
) -> list[BaselineRung]:
    """The RD curve of ``encoder`` on a clip, sorted by kbps.

    With ``cover_kbps=(lo, hi)`` the ladder grows by the encoder's CRF step beyond its
    ends (within the valid CRF range) until the curve spans [lo, hi], so that BD-rate
    against a candidate's curve has overlap to integrate over.
    """
    spec = ENCODERS[encoder]
    rungs = {
        crf: cached_rung(frames, fps, clip_sha256, encoder, crf, cache_dir)
        for crf in spec.crf_ladder
    }
    if cover_kbps is not None:
        low, high = cover_kbps
        lowest_crf, highest_crf = spec.crf_range
        while min(r.kbps for r in rungs.values()) > low and max(rungs) < highest_crf:
            crf = min(max(rungs) + spec.crf_step, highest_crf)
            rungs[crf] = cached_rung(frames, fps, clip_sha256, encoder, crf, cache_dir)
        while max(r.kbps for r in rungs.values()) < high and min(rungs) > lowest_crf:
            crf = max(min(rungs) - spec.crf_step, lowest_crf)
            rungs[crf] = cached_rung(frames, fps, clip_sha256, encoder, crf, cache_dir)
    return sorted(rungs.values(), key=lambda rung: rung.kbps)
