"""Local artifacts behind HMAC-signed, expiring links (S3 stores hand out presigned URLs)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from codeclab.store import links
from codeclab.store.artifacts import ArtifactError, LocalArtifactStore
from codeclab.web.context import Dashboard

CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".py": "text/x-python",
    ".zip": "application/zip",
}


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()

    @routes.get("/artifacts/{key:path}", summary="a local artifact behind a signed link")
    def artifact(key: str, expires: str = "", sig: str = "") -> FileResponse:
        artifacts = dash.artifacts
        if dash.secret is None or not isinstance(artifacts, LocalArtifactStore):
            raise HTTPException(404, "artifacts are served by the S3 store's presigned URLs")
        try:
            links.verify(key, expires, sig, dash.secret)
            path = artifacts.path(key)
        except (links.LinkError, ArtifactError) as exc:
            raise HTTPException(403, str(exc)) from None
        if not path.is_file():
            raise HTTPException(404, f"no artifact {key}")
        media_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        return FileResponse(path, media_type=media_type, filename=path.name)

    return routes
