"""An experiment's pictures: frames as PNG and the source clip as a browser-playable video.

Every picture is refused (with the reason) rather than replaced: "source" is the clip's
frames as recorded, "decoded" the lab's decode of that rung, both hash-checked by
:class:`~codeclab.web.framecache.FrameCache`. Nothing in a path is built from the request:
clip names and qualities are looked up in the record.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

from codeclab.media import write_mp4
from codeclab.record import ClipInfo, ExperimentRecord, RungResult
from codeclab.store.artifacts import ArtifactError
from codeclab.web.context import Dashboard
from codeclab.web.framecache import FrameCache, Unavailable
from codeclab.web.pictures import HEAT_MAX, heatmap, png, rgb

KINDS = ("source", "decoded", "heatmap")
PNG = {200: {"content": {"image/png": {}}, "description": "a lossless PNG"}}


def source_key(clip: ClipInfo) -> str:
    """Where the browser-playable copy of a verified source clip is kept (by content)."""
    return f"sources/{clip.sha256}.mp4"


def find_rung(record: ExperimentRecord, clip: str, quality: int) -> tuple[ClipInfo, RungResult]:
    """The clip and result of rung (``clip``, ``quality``) of ``record``, else a 404."""
    for result in record.results:
        if result.clip == clip and result.quality == quality:
            for info in record.clips:
                if info.sha256 == result.clip_sha256:
                    return info, result
    raise HTTPException(404, f"no rung {clip!r} quality {quality} in this experiment")


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()
    cache = FrameCache(dash.settings, dash.store, dash.artifacts)

    @routes.get(
        "/experiments/{experiment_id}/frames/{clip}/{quality}/{index}/{kind}.png",
        summary="one frame of a rung: source, decoded or error heatmap (PNG)",
        description="``index`` counts from 0. ``source``: the clip's frame as recorded; "
        "``decoded``: the lab's decode of the rung (re-run in the sandbox once, checked "
        "against the record's sha256); ``heatmap``: |source − decoded| of luma on the "
        f"inferno scale, 0 to {HEAT_MAX} (saturating).",
        response_class=Response,
        responses=PNG,
    )
    def frame_png(experiment_id: str, clip: str, quality: int, index: int, kind: str) -> Response:
        if kind not in KINDS:
            raise HTTPException(404, f"no picture kind {kind!r}; choose from {', '.join(KINDS)}")
        record = dash.get_record(experiment_id)
        info, result = find_rung(record, clip, quality)
        if not 0 <= index < result.frames:
            raise HTTPException(
                404, f"no frame {index}: the rung's frames are 0-{result.frames - 1}"
            )
        try:
            if kind == "source":
                picture = rgb(cache.source(info)[index])
            elif kind == "decoded":
                picture = rgb(cache.decoded(record, info, result)[index])
            else:
                picture = heatmap(
                    cache.source(info)[index], cache.decoded(record, info, result)[index]
                )
        except Unavailable as exc:
            raise HTTPException(exc.status, exc.reason) from None
        return Response(png(picture), media_type="image/png")

    @routes.get(
        "/experiments/{experiment_id}/source/{clip}.mp4",
        summary="the source clip as browser-playable H.264 (redirects to its artifact link)",
        description="Made on demand from the clip's frames after they hash to the recorded "
        "sha256 (a near-transparent CRF 12 transcode, for display) and kept in the artifact "
        "store at ``sources/{sha256}.mp4``. 410 when the clip is gone, 409 when it changed.",
        response_class=RedirectResponse,
        status_code=307,
    )
    def source_video(experiment_id: str, clip: str) -> RedirectResponse:
        record = dash.get_record(experiment_id)
        info = next((c for c in record.clips if c.name == clip), None)
        if info is None:
            raise HTTPException(404, f"no clip {clip!r} in this experiment")
        key = source_key(info)
        try:
            frames = cache.source(info)
            if not dash.artifacts.exists(key):
                with tempfile.TemporaryDirectory() as tmp:
                    video = write_mp4(Path(tmp) / "source.mp4", frames, info.fps)
                    dash.artifacts.put_file(key, video)
        except Unavailable as exc:
            raise HTTPException(exc.status, exc.reason) from None
        except ArtifactError as exc:
            raise HTTPException(503, f"artifact store: {exc}") from None
        link = dash.link_for(key)
        if link is None:
            raise HTTPException(503, "the artifact store gives no link to the source video")
        return RedirectResponse(link, status_code=307)

    return routes
