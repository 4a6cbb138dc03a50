"""Actions that change the lab: regenerate or transcode an experiment's artifacts, start and
stop a campaign.

Every action needs ``Authorization: Bearer <CODECLAB_ADMIN_TOKEN>``, compared in constant
time. With no token configured the dashboard is read-only: actions are refused (403), so a
dashboard exposed by mistake cannot start work; a missing or wrong token is 401. The token
never appears in a response, a log line or the environment of a campaign.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from codeclab.store.artifacts import ArtifactError
from codeclab.store.regenerate import NotPublished, Regeneration, regenerate
from codeclab.store.transcode import FORMATS, transcode, transcode_key
from codeclab.web.campaigns import Busy, CampaignState, Idle
from codeclab.web.context import Dashboard

Format = Literal[FORMATS]  # type: ignore[valid-type]
bearer = HTTPBearer(
    auto_error=False,
    description="the dashboard's admin token (CODECLAB_ADMIN_TOKEN); without one configured, "
    "every action is refused",
)


class TranscodeRequest(BaseModel):
    formats: list[Format] = Field(default=["webm"], min_length=1)


class Transcoded(BaseModel):
    format: str
    key: str
    link: str | None = Field(description="an expiring link to the file")


class Transcodes(BaseModel):
    experiment_id: str
    transcodes: list[Transcoded]
    expires: datetime = Field(description="when the links expire")


class CampaignStart(BaseModel):
    iterations: int = Field(4, ge=1, le=10_000, description="experiments to run (a new campaign)")
    resume: bool = Field(
        False, description="continue the last campaign instead (codeclab run --resume)"
    )


def router(dash: Dashboard) -> APIRouter:
    def admin(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        token = dash.settings.admin_token
        expected = token.get_secret_value().encode() if token else b""
        if not expected:
            raise HTTPException(
                403,
                "dashboard actions are disabled: no admin token is configured "
                "(set CODECLAB_ADMIN_TOKEN where the dashboard runs)",
            )
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401,
                "this action needs the header Authorization: Bearer <admin token>"
                + (": the token given is wrong" if credentials else ""),
                headers={"WWW-Authenticate": "Bearer"},
            )

    routes = APIRouter(prefix="/api")
    guarded = APIRouter(dependencies=[Depends(admin)])

    @guarded.post(
        "/experiments/{experiment_id}/regenerate",
        summary="re-decode the stored bitstreams; re-create a missing reconstructed video",
    )
    def api_regenerate(experiment_id: str) -> Regeneration:
        record = dash.get_record(experiment_id)
        try:
            return regenerate(record, dash.artifacts)
        except NotPublished as exc:
            raise HTTPException(409, str(exc)) from None
        except ArtifactError as exc:
            raise HTTPException(502, f"artifact store: {exc}") from None

    @guarded.post(
        "/experiments/{experiment_id}/transcode",
        summary="transcode the reconstructed video (cached); links to the files",
    )
    def api_transcode(experiment_id: str, request: TranscodeRequest) -> Transcodes:
        record = dash.get_record(experiment_id)
        made = []
        for fmt in dict.fromkeys(request.formats):
            try:
                transcode(record, dash.artifacts, fmt)
            except ArtifactError as exc:
                raise HTTPException(409, str(exc)) from None
            key = transcode_key(record.experiment_id, fmt)
            made.append(Transcoded(format=fmt, key=key, link=dash.link_for(key)))
        expires = datetime.now(UTC) + timedelta(seconds=dash.settings.link_ttl)
        return Transcodes(experiment_id=record.experiment_id, transcodes=made, expires=expires)

    @routes.get("/campaigns/current", summary="whether a campaign runs in the data directory")
    def api_current() -> CampaignState:
        return dash.campaigns.state()

    @guarded.post("/campaigns", status_code=202, summary="start a campaign (codeclab run)")
    def api_start(request: CampaignStart) -> CampaignState:
        try:
            return dash.campaigns.start(request.iterations, request.resume)
        except Busy as exc:
            raise HTTPException(409, str(exc)) from None

    @guarded.post("/campaigns/stop", summary="stop the dashboard's campaign (SIGTERM)")
    def api_stop() -> CampaignState:
        try:
            return dash.campaigns.stop()
        except (Busy, Idle) as exc:
            raise HTTPException(409, str(exc)) from None

    routes.include_router(guarded)
    return routes
