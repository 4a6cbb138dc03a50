"""The experiment page: everything the lab knows about one experiment.

The page is rendered here; its pictures and video come from :mod:`codeclab.web.visuals` and
its charts' data from :mod:`codeclab.web.charts`. JavaScript only draws the charts and
drives what a person plays with (the comparison player, the frame stepper).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from codeclab.record import ExperimentRecord, PhaseRecord
from codeclab.store.transcode import FORMATS, transcode_key
from codeclab.web.charts import frame_order, frame_rung
from codeclab.web.context import Dashboard
from codeclab.web.framecache import FrameCache, Unavailable
from codeclab.web.lineage import Lineage, lineage
from codeclab.web.pictures import HEAT_MAX, legend_gradient
from codeclab.web.sourcecode import change_html, program_html
from codeclab.web.visuals import KINDS

TRANSCODES = {
    "webm": "WebM, VP9 (CRF 15), lossy",
    "mp4": "MP4, H.264 (CRF 12), lossy",
    "y4m": "Y4M, lossless",
}


def timeline(phases: list[PhaseRecord]) -> list[dict[str, Any]]:
    """Each phase with its share of the experiment's time, for a bar per phase."""
    total = sum(p.seconds for p in phases)
    return [
        {"phase": p, "percent": 100 * p.seconds / total if total else 100 / len(phases)}
        for p in phases
    ]


def parent_change(dash: Dashboard, record: ExperimentRecord, source: str | None) -> dict:
    """The diff from the parent program, or why there is none."""
    if record.parent_sha256 is None:
        return {"note": "No parent: this program did not come from another one."}
    parent = dash.store.source(record.parent_sha256)
    if parent is None or source is None:
        return {"note": "The parent's or this program's source is not stored: no diff."}
    diff = change_html(parent, source, record.parent_sha256, record.program_sha256)
    if not diff:
        return {"note": "Identical to its parent."}
    return {"diff": diff}


def comparison(record: ExperimentRecord, links: dict, sources: dict[str, str | None]) -> dict:
    """The player's two videos: the source clip and the published reconstruction of its top
    rung (the first clip at the highest quality, as the lab publishes it), or why not."""
    if not record.clips or not record.results:
        return {"reason": "No results: nothing to compare."}
    clip = record.clips[0]
    if not links["reconstructed"]:
        return {"reason": "No published reconstructed video (see the publish-policy phase)."}
    if sources[clip.sha256]:
        return {"reason": sources[clip.sha256]}
    return {
        "clip": clip,
        "quality": max(record.qualities),
        "source": f"/experiments/{record.experiment_id}/source/{quote(clip.name, safe='')}.mp4",
        "decoded": links["reconstructed"],
    }


def stepper(record: ExperimentRecord, sources: dict[str, str | None]) -> dict | None:
    """The rungs the stepper offers (in the frames API's order), starting on the published
    one, whose frames alone the page shows (the browser asks the frames API for the rest)."""
    rungs = frame_order(record.results)
    if not rungs:
        return None
    top = (record.clips[0].name, max(record.qualities))
    start = next((n for n, r in enumerate(rungs) if (r.clip, r.quality) == top), 0)
    rung = frame_rung(record.experiment_id, rungs[start])
    return {
        "rungs": rungs,
        "start": start,
        "rung": rung,
        "metrics": rung.frames[0] if rung.frames else None,
        "images": {kind: rung.images.format(index=0, kind=kind) for kind in KINDS},
        "source_reason": sources.get(rung.clip_sha256),
    }


def compare_links(
    dash: Dashboard, record: ExperimentRecord, family: Lineage, revision: int
) -> list[dict]:
    """Where "compare with ..." leads: the parent's newest run, the best experiment, and
    each baseline encoder this experiment ran against."""
    found = []
    parent = family.ancestors[1] if len(family.ancestors) > 1 else None
    if parent and parent.runs:
        found.append({"label": "Compare with parent", "a": parent.runs[0].experiment_id})
    best = dash.memo.get("best", revision, lambda: dash.store.leaderboard(1))
    if best and best[0].experiment_id != record.experiment_id:
        found.append({"label": "Compare with the best", "a": best[0].experiment_id})
    found += [{"label": f"Compare with {e}", "a": e} for e in record.baselines]
    me = quote(record.experiment_id, safe="")
    return [{**f, "href": f"/compare?a={quote(f['a'], safe='')}&b={me}"} for f in found]


def router(dash: Dashboard) -> APIRouter:
    routes = APIRouter()
    cache = FrameCache(dash.settings, dash.store, dash.artifacts)

    def source_reason(clip) -> str | None:
        """Why the clip's source pictures cannot be shown (None: they can, hash-checked)."""
        try:
            cache.source(clip)
        except Unavailable as exc:
            return exc.reason
        return None

    @routes.get(
        "/experiments/{experiment_id}", response_class=HTMLResponse, summary="one experiment"
    )
    def experiment(request: Request, experiment_id: str) -> Response:
        # transcodes are what the lab adds to an experiment after saving it: part of the key
        transcoded = tuple(dash.artifacts.exists(transcode_key(experiment_id, f)) for f in FORMATS)
        key = ("experiment", experiment_id, transcoded)
        return dash.page(request, key, lambda revision: page(request, experiment_id, revision))

    def page(request: Request, experiment_id: str, revision: int) -> HTMLResponse:
        record = dash.get_record(experiment_id)
        links = dash.downloads(record)
        sources = {clip.sha256: source_reason(clip) for clip in record.clips}
        # a program's history changes only when experiments are added: shared by its runs
        family = dash.memo.get(
            ("lineage", record.program_sha256, record.parent_sha256),
            revision,
            lambda: lineage(dash.store, record),
        )
        context = {
            **dash.summary(record),
            "links": links,
            "ancestors": family,
            "compare_with": compare_links(dash, record, family, revision),
            "sources": sources,
            "compare": comparison(record, links, sources),
            "stepper": stepper(record, sources),
            "heat": {"max": HEAT_MAX, "gradient": legend_gradient()},
            "timeline": timeline(record.phases),
            "transcodes": [
                (TRANSCODES.get(fmt, fmt), link)
                for fmt in FORMATS
                if (link := dash.link_for(transcode_key(record.experiment_id, fmt)))
            ],
        }
        return dash.templates.TemplateResponse(request, "experiment.html", context)

    @routes.get(
        "/experiments/{experiment_id}/program",
        response_class=HTMLResponse,
        summary="the program highlighted, and its change from the parent",
    )
    def program(request: Request, experiment_id: str) -> HTMLResponse:
        """Its own page, framed lazily by the experiment page: a program's highlighted text
        is most of that page's bytes, and many readers never scroll down to it."""
        record = dash.get_record(experiment_id)
        source = dash.store.source(record.program_sha256)
        context = {
            "record": record,
            "source": program_html(source) if source is not None else None,
            "parent": parent_change(dash, record, source),
        }
        return dash.templates.TemplateResponse(request, "program.html", context)

    return routes
