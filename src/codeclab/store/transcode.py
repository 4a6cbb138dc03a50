"""Transcodes of an experiment's reconstructed video, made on demand and cached in the store.

The source is the lab's own decode: the top-quality bitstream of the first clip (the one
``reconstructed/{id}.mp4`` shows), decoded by the published decoder alone. ``y4m`` is that
decode, lossless; ``webm`` is VP9 and ``mp4`` H.264, both near-transparent. Cached at
``transcodes/{id}.{fmt}``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import av

from codeclab.media import fps_fraction, frame_to_av, write_mp4, write_y4m
from codeclab.record import ExperimentRecord
from codeclab.sandbox.isolate import Limits
from codeclab.store.artifacts import ArtifactError, ArtifactStore, bitstream_key, decoder_key
from codeclab.store.publish import DecoderMismatch, decode_published

FORMATS = ("webm", "mp4", "y4m")


def transcode_key(experiment_id: str, fmt: str) -> str:
    return f"transcodes/{experiment_id}.{fmt}"


def _write_webm(path: Path, frames, fps: float) -> Path:
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=fps_fraction(fps))
        stream.width, stream.height = frames[0][0].shape[1], frames[0][0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "15", "b": "0", "deadline": "good", "cpu-used": "4"}
        for frame in frames:
            for packet in stream.encode(frame_to_av(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def transcode(record: ExperimentRecord, store: ArtifactStore, fmt: str) -> str:
    """The location of ``transcodes/{id}.{fmt}``, made now unless already in the store."""

    if fmt not in FORMATS:
        raise ArtifactError(f"unknown transcode format {fmt!r}; choose from {', '.join(FORMATS)}")
    rid = record.experiment_id
    key = transcode_key(rid, fmt)
    if store.exists(key):
        return store.location(key)
    if not record.artifacts.decoder or not record.results:
        raise ArtifactError(f"experiment {rid} was not published: nothing to transcode")
    clip = record.clips[0]
    top = record.published_rung()
    decoder = store.get_bytes(decoder_key(rid)).decode()
    bitstream = store.get_bytes(bitstream_key(rid, top.clip, top.quality))
    limits = Limits.for_clip(clip.width, clip.height, clip.frames)
    try:
        frames = decode_published(decoder, bitstream, limits)
    except DecoderMismatch as exc:
        raise ArtifactError(f"cannot decode experiment {rid}: {exc}") from None
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / f"{rid}.{fmt}"
        if fmt == "y4m":
            return store.put_file(key, write_y4m(output, frames, clip.fps))
        if fmt == "webm":
            _write_webm(output, frames, clip.fps)
        else:
            write_mp4(output, frames, clip.fps)
        return store.put_file(key, output)
