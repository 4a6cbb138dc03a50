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

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
from av.bitstream import BitStreamFilterContext

from codeclab import scratch
from codeclab.evaluate import fork_server, metrics, vmaf
from codeclab.evaluate.metrics import score
from codeclab.evaluate.rd import LOSSLESS_PSNR_DB
from codeclab.frames import Frame
from codeclab.media import fps_fraction, frame_from_av, frame_to_av

PIX_FMT = "yuv420p"


class BaselineUnavailable(RuntimeError):
    """The encoder is not in this PyAV build; the message says which and why."""


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
    # A bitstream filter run on every packet before it is written (FFmpeg's syntax), for
    # units that carry no picture: what is left is what the rung's bitrate counts.
    units_filter: str = ""


KNOWN_ENCODERS: dict[str, Encoder] = {
    "x264": Encoder(
        codec="libx264",
        preset="medium",
        # one thread: with its frame threads libx264 gave other bytes for the same frames and
        # CRF on a busy machine (CRF 37 on a 160x128x8 clip: 1457 or 1466 bytes, even alone in
        # a fresh process); single-threaded it is reproducible, and a little stronger
        options={"threads": "1"},
        crf_ladder=(22, 27, 32, 37),
        crf_step=5,
        # CRF 0 is lossless in 8-bit x264: scored at 100 dB by convention, it is no point of
        # a lossy RD curve and would bend the BD-rate fit, so the ladder stops at 1
        crf_range=(1, 51),
        stream_format="h264",
        extension="h264",
        decoder="h264",
        # x264 has no switch for the SEI message in which it writes its version and every
        # option as text (684 bytes on each stream, a third of a 160x128x8 clip at CRF 37):
        # dropping SEI units (type 6; at CRF x264 writes no other) keeps that text out of
        # its bitrate, as info=0 does for x265. The decoded pictures are the same.
        units_filter="filter_units=remove_types=6",
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
    "aom": Encoder(
        codec="libaom-av1",
        preset="",  # libaom has no preset: cpu-used is its speed setting
        # b=0 makes crf a constant-quality target instead of a constrained-quality cap
        options={"cpu-used": "6", "row-mt": "1", "b": "0"},
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


def unavailable(encoder: str) -> str | None:
    """Why ``encoder`` cannot run with this PyAV build, or None when it can.

    PyAV's wheels bundle x264, x265 and SVT-AV1; libaom is in some FFmpeg builds only.
    """
    spec = KNOWN_ENCODERS[encoder]
    if spec.codec not in av.codecs_available:
        return (
            f"{spec.codec} is not in this PyAV build's FFmpeg (PyAV {av.__version__}): "
            f"no {encoder} baseline"
        )
    if spec.decoder not in av.codecs_available:
        return f"decoder {spec.decoder} is not in this PyAV build's FFmpeg: no {encoder} baseline"
    return None


ENCODERS: dict[str, Encoder] = {
    name: spec for name, spec in KNOWN_ENCODERS.items() if unavailable(name) is None
}
"""The baselines this build can run (``aom`` only where PyAV's FFmpeg has libaom)."""


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
    ms_ssim_y: float | None = None
    vmaf: float | None = None
    vmaf_reason: str | None = None


def encoder_version(encoder: str) -> str:
    """The encoder build: PyAV's wheel bundles FFmpeg and the encoder libraries together."""
    major, minor, micro = av.library_versions["libavcodec"]
    codec = KNOWN_ENCODERS[encoder].codec
    return f"{codec} (PyAV {av.__version__}, libavcodec {major}.{minor}.{micro})"


def settings(encoder: str) -> dict:
    """Every setting of ``encoder`` a record needs to state, except the CRF of a rung."""
    spec = KNOWN_ENCODERS[encoder]
    return {
        "codec": spec.codec,
        "preset": spec.preset or None,
        "options": dict(spec.options),
        "rate_control": "crf",
        "pix_fmt": PIX_FMT,
        "gop": "encoder default",
        "stream_format": spec.stream_format,
        "decoder": spec.decoder,
        "units_filter": spec.units_filter or None,
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
        preset = {"preset": spec.preset} if spec.preset else {}
        stream.options = {"crf": str(crf), **preset, **spec.options}
        units = (
            BitStreamFilterContext(spec.units_filter, stream.codec_context.codec)
            if spec.units_filter
            else None
        )

        def write(packets: list[av.Packet]) -> None:
            for packet in packets:
                container.mux(units.filter(packet) if units else packet)

        for index, frame in enumerate(frames):
            video_frame = frame_to_av(frame)
            video_frame.pts, video_frame.time_base = index, 1 / rate
            write(stream.encode(video_frame))
        write(stream.encode(None))
        if units:
            container.mux(units.filter(None))


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


def scoring(with_vmaf: bool) -> dict:
    """What scored a rung, part of the cache key: new metrics or a new VMAF re-score."""
    return {
        "metrics": metrics.VERSION,
        "with_vmaf": with_vmaf,
        "vmaf": vmaf.describe() if with_vmaf else None,
    }


def _make_rung(
    frames: Sequence[Frame],
    send: fork_server.Send,
    fps: float,
    encoder: str,
    crf: int,
    path: str,
    with_vmaf: bool,
) -> BaselineRung:
    """In a fresh fork of the encoder server: encode ``frames`` at ``crf`` to ``path``,
    decode that file back and score it: a rung of the curve.

    Its size and PSNR-Y are sent as soon as they are known (``("encoded", bytes, psnr_y)``):
    a ladder decides its next CRF on them while this fork computes the other metrics.
    """
    spec = ENCODERS[encoder]
    stream = Path(path)
    started = time.perf_counter()
    _encode(frames, fps_fraction(fps), spec, crf, stream)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded = _decode(stream, spec)
    decode_s = time.perf_counter() - started
    psnr_y = metrics.mean_or_none(
        [metrics.psnr(ref[0], dist[0]) for ref, dist in zip(frames, decoded, strict=True)]
    )
    size = stream.stat().st_size
    send(("encoded", size, psnr_y))
    scores = score(frames, decoded, with_vmaf=with_vmaf)
    if scores.psnr_y != psnr_y:  # the ladder's decisions must rest on the recorded value
        raise RuntimeError(f"PSNR-Y {scores.psnr_y} of the scores differs from {psnr_y}")
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
        kbps=_kbps(size, fps, count),
        bpp=size * 8 / (count * width * height),
        psnr_y=scores.psnr_y,
        psnr_u=scores.psnr_u,
        psnr_v=scores.psnr_v,
        psnr_yuv=scores.psnr_yuv,
        ssim_y=scores.ssim_y,
        encode_s=encode_s,
        decode_s=decode_s,
        bitstream=str(stream),
        ms_ssim_y=scores.ms_ssim_y,
        vmaf=scores.vmaf,
        vmaf_reason=scores.vmaf_reason,
    )


def _kbps(size: int, fps: float, count: int) -> float:
    return size * 8 * fps / count / 1000


PRELOAD = ("codeclab.evaluate.baselines",)
"""What the encoder server imports (av, numpy, the metrics) before it forks a rung."""


def _warm(frames: Sequence[Frame]) -> None:
    """In the encoder server: find FFmpeg (two probe runs) once, not in every fork."""
    vmaf.available()


def _session(
    frames: Sequence[Frame], with_vmaf: bool
) -> contextlib.AbstractContextManager[fork_server.Session]:
    return fork_server.session(PRELOAD, list(frames), _warm if with_vmaf else None)


def encode_rung(
    frames: Sequence[Frame],
    fps: float,
    encoder: str,
    crf: int,
    out_path: Path,
    *,
    with_vmaf: bool = False,
) -> BaselineRung:
    """Encode ``frames`` at ``crf`` to ``out_path``, decode that file back and score it, in a
    fresh fork of the encoder server (:mod:`codeclab.evaluate.fork_server`).

    The bitrate comes from the file's size; the metrics from decoding the file, so a
    baseline is exactly as real as a candidate's result.
    """
    with _session(frames, with_vmaf) as session:
        return session.run(_make_rung, fps, encoder, crf, str(out_path), with_vmaf)


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


SHARED_PREFIX = "cache/baselines"
"""Where baseline cache entries live in a shared artifact store (S3), one folder per entry."""


class SharedCache(Protocol):
    """The artifact-store calls a shared cache level needs (an S3 store on a cluster)."""

    def put_bytes(self, key: str, data: bytes) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...


def _fetch_shared(shared: SharedCache | None, entry: Path, key: dict) -> BaselineRung | None:
    """The entry another machine put in the shared store, copied into this machine's cache
    and checked like a local one (same key, whole bitstream); None when there is none."""
    if shared is None:
        return None
    from codeclab.store.artifacts import ArtifactError

    folder = f"{SHARED_PREFIX}/{entry.name}"
    try:
        record = json.loads(shared.get_bytes(f"{folder}/{RUNG_JSON}"))
        name = record["rung"]["bitstream"]
        if not isinstance(name, str) or name != Path(name).name or name.startswith("."):
            return None
        bitstream = shared.get_bytes(f"{folder}/{name}")
    except (ArtifactError, ValueError, KeyError, TypeError):
        return None
    temporary = scratch.make_dir(f".{entry.name}", entry.parent)  # swept if we are killed
    try:
        (temporary / name).write_bytes(bitstream)
        (temporary / RUNG_JSON).write_text(json.dumps(record, indent=2, sort_keys=True))
        if _load(temporary, key) is None:
            return None
        with contextlib.suppress(OSError):  # another process may have put it in place
            os.replace(temporary, entry)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return _load(entry, key)


def _share(shared: SharedCache | None, rung: BaselineRung) -> None:
    """Put a fresh local entry in the shared store. A rung is only fresh when the shared
    level had no usable copy, so this also replaces one that failed its checks."""
    if shared is None:
        return
    from codeclab.store.artifacts import ArtifactError

    bitstream = Path(rung.bitstream)
    folder = f"{SHARED_PREFIX}/{bitstream.parent.name}"
    try:
        shared.put_bytes(f"{folder}/{bitstream.name}", bitstream.read_bytes())
        # the record last: a reader that finds it finds the bitstream too
        shared.put_bytes(f"{folder}/{RUNG_JSON}", (bitstream.parent / RUNG_JSON).read_bytes())
    except (ArtifactError, OSError):
        pass  # the shared level is an optimisation: this machine's cache has the entry


@dataclass
class _Fresh:
    """A rung being made in a fork, in a private hidden directory next to its entry."""

    key: dict
    entry: Path
    temporary: Path
    name: str
    call: int
    bytes: int | None = None
    psnr_y: float | None = None
    rung: BaselineRung | None = None
    error: str | None = None
    ended: bool = False


def _store(fresh: _Fresh) -> BaselineRung:
    """Write the rung's record, then rename its directory into place in one step.

    A reader therefore sees a whole entry or none; a killed writer leaves only a hidden
    temporary directory. When another writer got there first its entry is used.
    """
    key, entry, temporary, name = fresh.key, fresh.entry, fresh.temporary, fresh.name
    rung = fresh.rung
    assert rung is not None  # a fork that ended without its rung raised in _Rungs._receive
    try:
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


ENCODES_AT_ONCE = 1
"""Fresh encodes run at once; forks scoring earlier rungs run beside them. Measured on the
loaded 2-core machine, two encodes at once gave the same analysis time and lengthened each
encode's measured time (``encode_s``, which records compare) 1.7 times."""


class _Rungs:
    """The rungs of one encoder's curve on one clip: from the cache, or made in forks of the
    encoder server, at most :data:`ENCODES_AT_ONCE` encoding at a time, in the order asked."""

    def __init__(
        self,
        session: fork_server.Session,
        frames: Sequence[Frame],
        fps: float,
        clip_sha256: str,
        encoder: str,
        cache_dir: Path,
        with_vmaf: bool,
        shared: SharedCache | None,
    ) -> None:
        self.session, self.frames, self.fps = session, frames, fps
        self.clip_sha256, self.encoder, self.cache_dir = clip_sha256, encoder, cache_dir
        self.with_vmaf, self.shared = with_vmaf, shared
        self.cached: dict[int, BaselineRung] = {}
        self.fresh: dict[int, _Fresh] = {}
        self.calls: dict[int, _Fresh] = {}
        self.queue: list[tuple[int, dict, Path]] = []

    def start(self, crf: int) -> None:
        """Ask for the rung at ``crf``: read from the cache, or queued for a fresh encode."""
        if crf in self.cached or crf in self.fresh or any(c == crf for c, _, _ in self.queue):
            return
        key = _key(self.frames, self.fps, self.clip_sha256, self.encoder, crf, self.with_vmaf)
        entry = _entry_dir(self.cache_dir, key)
        cached = _load(entry, key) or _fetch_shared(self.shared, entry, key)
        if cached is not None:
            self.cached[crf] = cached
            return
        self.queue.append((crf, key, entry))
        self._pump()

    def _pump(self) -> None:
        encoding = sum(f.bytes is None and not f.ended for f in self.fresh.values())
        while self.queue and encoding < ENCODES_AT_ONCE:
            self.encode(*self.queue.pop(0))
            encoding += 1

    def encode(self, crf: int, key: dict, entry: Path) -> None:
        """Start a fresh encode into a private hidden directory next to ``entry``."""
        temporary = scratch.make_dir(f".{entry.name}", entry.parent)  # swept if we are killed
        name = f"stream.{ENCODERS[self.encoder].extension}"
        call = self.session.submit(
            _make_rung, self.fps, self.encoder, crf, str(temporary / name), self.with_vmaf
        )
        self.fresh[crf] = self.calls[call] = _Fresh(key, entry, temporary, name, call)

    def _receive(self) -> None:
        call, kind, payload = self.session.receive()
        fresh = self.calls[call]
        if kind == "message":
            _, fresh.bytes, fresh.psnr_y = payload
        elif kind == "result":
            fresh.rung = payload
        elif kind == "error":
            fresh.error = payload
        else:
            fresh.ended = True
            if fresh.rung is None:
                fresh.error = fresh.error or f"the encoder's fork exited with code {payload}"
        if fresh.error is not None:
            crf = fresh.key["crf"]
            raise RuntimeError(f"{self.encoder} baseline at CRF {crf}: {fresh.error}")
        self._pump()

    def point(self, crf: int) -> tuple[float, float]:
        """The rung's kbps and PSNR-Y, as soon as its encode is scored for PSNR-Y."""
        self.start(crf)
        if crf in self.cached:
            return self.cached[crf].kbps, self.cached[crf].psnr_y
        while crf not in self.fresh or self.fresh[crf].bytes is None:
            self._receive()
        fresh = self.fresh[crf]
        return _kbps(fresh.bytes, self.fps, len(self.frames)), fresh.psnr_y

    def finish(self, crfs: list[int]) -> list[BaselineRung]:
        """The rungs at ``crfs``, the fresh ones stored in the cache (and the shared level)."""
        for crf in crfs:
            self.start(crf)
        while self.queue or any(not fresh.ended for fresh in self.fresh.values()):
            self._receive()
        for crf in crfs:
            if crf in self.fresh:
                self.cached[crf] = _store(self.fresh.pop(crf))
                _share(self.shared, self.cached[crf])
        return [self.cached[crf] for crf in crfs]

    def discard(self) -> None:
        """The hidden directories of rungs that were not stored (all forks have ended)."""
        for fresh in self.fresh.values():
            shutil.rmtree(fresh.temporary, ignore_errors=True)


def _key(
    frames: Sequence[Frame], fps: float, clip_sha256: str, encoder: str, crf: int, with_vmaf: bool
) -> dict:
    height, width = frames[0][0].shape
    return {
        "clip_sha256": clip_sha256,
        "frames": len(frames),
        "width": width,
        "height": height,
        "fps": fps,
        "encoder": encoder,
        "version": encoder_version(encoder),
        "settings": settings(encoder),
        "crf": crf,
        "scoring": scoring(with_vmaf),
    }


def cached_rung(
    frames: Sequence[Frame],
    fps: float,
    clip_sha256: str,
    encoder: str,
    crf: int,
    cache_dir: Path,
    *,
    with_vmaf: bool = False,
) -> BaselineRung:
    """One rung, from the cache when a whole entry for the same key is there.

    The key holds everything that shapes the rung: the clip's content hash, the encoder's
    version and settings, the CRF and what scored it (:func:`scoring`); so a second campaign
    on the same clips encodes nothing again.
    """
    return _make_rungs(
        frames, fps, clip_sha256, encoder, cache_dir, with_vmaf, None, lambda rungs: [crf]
    )[crf]


def _make_rungs(
    frames: Sequence[Frame],
    fps: float,
    clip_sha256: str,
    encoder: str,
    cache_dir: Path,
    with_vmaf: bool,
    shared: SharedCache | None,
    ladder: Callable[[_Rungs], list[int]],
) -> dict[int, BaselineRung]:
    """The rungs at the CRFs ``ladder`` chooses, by CRF; fresh ones made in one session."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _session(frames, with_vmaf) as session:
        rungs = _Rungs(session, frames, fps, clip_sha256, encoder, cache_dir, with_vmaf, shared)
        try:
            crfs = ladder(rungs)
            return dict(zip(crfs, rungs.finish(crfs), strict=True))
        except BaseException:
            with contextlib.suppress(fork_server.ServerLost, OSError):
                session.drain()  # no fork may still write where its directory is removed
            rungs.discard()
            raise


def _ladder(
    rungs: _Rungs,
    spec: Encoder,
    cover_kbps: tuple[float, float] | None,
    cover_psnr: tuple[float, float] | None,
) -> list[int]:
    """The CRFs of the curve: the default ladder, grown by the CRF step beyond its ends
    while it does not cover ``cover_kbps`` and ``cover_psnr``.

    The CRFs depend only on the rungs' values, so a warm cache gives the curve a cold one
    gave. A step is decided as soon as the last one's size and PSNR-Y are known; its fork
    computes the other metrics meanwhile.
    """
    crfs = list(spec.crf_ladder)
    for crf in crfs:
        rungs.start(crf)
    kbps_low, kbps_high = cover_kbps or (math.inf, -math.inf)
    psnr_low, psnr_high = cover_psnr or (math.inf, -math.inf)
    lowest_crf, highest_crf = spec.crf_range

    def worse_needed() -> bool:
        points = [rungs.point(crf) for crf in crfs]
        uncovered = min(k for k, _ in points) > kbps_low or min(p for _, p in points) > psnr_low
        return uncovered and max(crfs) < highest_crf

    def better_needed() -> bool:
        points = [rungs.point(crf) for crf in crfs]
        top = max(p for _, p in points)
        uncovered = max(k for k, _ in points) < kbps_high or top < psnr_high
        return uncovered and min(crfs) > lowest_crf and top < LOSSLESS_PSNR_DB

    while worse_needed():
        crfs.append(min(max(crfs) + spec.crf_step, highest_crf))
        rungs.start(crfs[-1])
    while better_needed():
        crfs.append(max(min(crfs) - spec.crf_step, lowest_crf))
        rungs.start(crfs[-1])
    return crfs


def baseline_curve(
    frames: Sequence[Frame],
    fps: float,
    clip_sha256: str,
    encoder: str,
    cache_dir: Path,
    *,
    cover_kbps: tuple[float, float] | None = None,
    cover_psnr: tuple[float, float] | None = None,
    with_vmaf: bool = False,
    shared: SharedCache | None = None,
) -> list[BaselineRung]:
    """The RD curve of ``encoder`` on a clip, sorted by kbps.

    With ``cover_kbps=(lo, hi)`` the ladder grows by the encoder's CRF step beyond its
    ends (within the valid CRF range) until the curve spans [lo, hi], so that BD-rate
    against a candidate's curve has overlap to integrate over; with ``cover_psnr=(lo, hi)``
    (the candidate's lowest and highest PSNR-Y) until its lowest PSNR-Y is at most lo and its
    highest at least hi. A rung at :data:`~codeclab.evaluate.rd.LOSSLESS_PSNR_DB` or above
    stops the growth upwards and is left out: a lossless rung is no point of a lossy curve.

    Rungs missing from the cache are encoded each in a fresh fork of the encoder server (a
    process that imported av but never encoded: libx264 gave different bytes for the same
    frames and CRF after other encodes in the same process, and a cached baseline must be
    reproducible), decoded and scored there, several at once.
    """
    reason = unavailable(encoder)
    if reason:
        raise BaselineUnavailable(reason)
    spec = ENCODERS[encoder]
    done = _make_rungs(
        frames,
        fps,
        clip_sha256,
        encoder,
        cache_dir,
        with_vmaf,
        shared,
        lambda rungs: _ladder(rungs, spec, cover_kbps, cover_psnr),
    )
    lossy = [rung for rung in done.values() if rung.psnr_y < LOSSLESS_PSNR_DB]
    return sorted(lossy, key=lambda rung: rung.kbps)
