"""Check an experiment's stored artifacts again, and re-create what is missing.

Each stored bitstream is decoded anew by the experiment's published decoder, in the sandbox
(the program inside is still untrusted code), and the pictures' hash is compared with the
``decoded_sha256`` the lab recorded for that rung. The reconstructed video
(``reconstructed/{id}.mp4``: the first clip at its highest quality, as the lab publishes it)
is re-created from that decode when it is missing from the store, and only when the decode
matched the record. Nothing that exists is ever overwritten.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from codeclab.frames import Frame
from codeclab.media import frames_sha256, write_mp4
from codeclab.record import ClipInfo, ExperimentRecord, RungResult
from codeclab.sandbox.isolate import Limits
from codeclab.store.artifacts import (
    ArtifactError,
    ArtifactStore,
    bitstream_key,
    decoder_key,
    reconstructed_key,
)
from codeclab.store.publish import DecoderMismatch, decode_published

Found = Literal["match", "mismatch", "decode failed", "missing bitstream"]


class RungCheck(BaseModel):
    clip: str
    quality: int
    bitstream: str = Field(description="the bitstream's key in the artifact store")
    found: Found
    expected_sha256: str = Field(description="decoded_sha256 in the record")
    decoded_sha256: str | None = Field(None, description="what the decoder gave, if it decoded")
    detail: str | None = None


class Regeneration(BaseModel):
    experiment_id: str
    decoder: str = Field(description="the decoder's key in the artifact store")
    rungs: list[RungCheck]
    recreated: list[str] = Field(description="keys written because they were missing")
    notes: list[str] = Field(default_factory=list, description="what was not re-created, and why")


class NotPublished(ArtifactError):
    """The experiment has no published decoder to decode with."""


def regenerate(record: ExperimentRecord, store: ArtifactStore) -> Regeneration:
    """Re-decode every rung of ``record`` and re-create its reconstructed video if missing."""
    rid = record.experiment_id
    key = decoder_key(rid)
    if not record.artifacts.decoder or not store.exists(key):
        raise NotPublished(f"experiment {rid} has no published decoder ({key}): nothing to decode")
    decoder = store.get_bytes(key).decode()
    clips = {clip.sha256: clip for clip in record.clips}
    shown = record.published_rung()
    checks, shown_frames = [], None
    for rung in record.results:
        check, frames = _check(decoder, store, rid, rung, clips[rung.clip_sha256])
        checks.append(check)
        if rung is shown and check.found == "match":
            shown_frames = frames
    recreated, notes = [], []
    video = reconstructed_key(rid)
    if not record.artifacts.reconstructed:
        notes.append("no reconstructed video was published for this experiment")
    elif store.exists(video):
        notes.append(f"{video} is in the store: kept as it is")
    elif shown_frames is None:
        notes.append(
            f"{video} is missing and not re-created: its rung did not decode to the lab's pictures"
        )
    else:
        clip = clips[shown.clip_sha256]
        with tempfile.TemporaryDirectory() as tmp:
            store.put_file(
                video, write_mp4(Path(tmp) / "reconstructed.mp4", shown_frames, clip.fps)
            )
        recreated.append(video)
    return Regeneration(
        experiment_id=rid, decoder=key, rungs=checks, recreated=recreated, notes=notes
    )


def _check(
    decoder: str, store: ArtifactStore, rid: str, rung: RungResult, clip: ClipInfo
) -> tuple[RungCheck, list[Frame] | None]:
    key = bitstream_key(rid, rung.clip, rung.quality)
    check = RungCheck(
        clip=rung.clip,
        quality=rung.quality,
        bitstream=key,
        found="missing bitstream",
        expected_sha256=rung.decoded_sha256,
    )
    if not store.exists(key):
        return check, None
    limits = Limits.for_clip(clip.width, clip.height, clip.frames)
    try:
        frames = decode_published(decoder, store.get_bytes(key), limits)
    except DecoderMismatch as exc:
        return check.model_copy(update={"found": "decode failed", "detail": str(exc)}), None
    digest = frames_sha256(frames)
    found = "match" if digest == rung.decoded_sha256 else "mismatch"
    return check.model_copy(update={"found": found, "decoded_sha256": digest}), frames
