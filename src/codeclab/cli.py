"""The ``codeclab`` command line.

Exit codes: 0 when the command did its job (an experiment that failed honestly is a result),
2 with a one-line reason on bad usage or input. ``--json`` prints exactly one JSON document
on standard output; progress goes to standard error.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from codeclab.config import Settings, load_settings
from codeclab.errors import one_line as single_line
from codeclab.media import Clip, MediaError, load_clip, write_y4m
from codeclab.record import ExperimentRecord
from codeclab.store.artifacts import (
    ArtifactError,
    ArtifactStore,
    ArtifactUnavailable,
    LocalArtifactStore,
    decoder_key,
    linked_record,
    reconstructed_key,
)
from codeclab.store.db import ExperimentStore, StoreError
from codeclab.store.factory import open_artifact_store, open_experiment_store

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
out = Console()
err = Console(stderr=True)

ClipOpt = Annotated[
    list[Path] | None, typer.Option("--clip", help="source video (repeatable); default: sample")
]
FramesOpt = Annotated[int | None, typer.Option("--frames", help="use only the first N frames")]
TestSetOpt = Annotated[
    str | None,
    typer.Option("--test-set", help="natural (built in) or a [test_sets.NAME]; default: the clips"),
]
QualitiesOpt = Annotated[str | None, typer.Option(help="the quality ladder, e.g. 20,40,60,80")]
BaselinesOpt = Annotated[str | None, typer.Option(help="x264,x265,svtav1 or none")]
SizeOpt = Annotated[str | None, typer.Option("--size", help="WxH of raw .yuv clips, e.g. 352x288")]
FpsOpt = Annotated[float | None, typer.Option("--fps", help="frame rate of raw .yuv clips")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
AllowWeakOpt = Annotated[
    bool,
    typer.Option(
        "--allow-weak-isolation",
        help="run programs without bubblewrap (weak isolation); their records do not rank",
    ),
]


def fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@contextmanager
def user_errors():
    """Turn known bad-input errors into a one-line message (every line of it, joined) and
    exit code 2."""
    try:
        yield
    except (MediaError, StoreError, ArtifactError, ValueError, OSError) as exc:
        raise fail(single_line(exc)) from None


def settings_from(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise fail(f"bad configuration: {where}: {first['msg']}") from None


def require_strong_isolation(settings: Settings) -> None:
    """Refuse to run programs where bubblewrap does not work, unless weak is allowed: under
    weak isolation a program that escapes the policy can read the host and the lab."""
    if settings.allow_weak_isolation:
        return
    from codeclab.sandbox import bwrap

    probe = bwrap.probe()
    if not probe.strong:
        raise fail(
            f"strong isolation is required and {probe.reason}; --allow-weak-isolation "
            "(allow_weak_isolation = true) runs programs with weak isolation instead"
        )


def open_stores(settings: Settings) -> tuple[ExperimentStore, ArtifactStore]:
    """The experiment store and the artifact store (local, or S3 by ``artifacts_url``)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        artifacts = open_artifact_store(settings)
    except ArtifactUnavailable:
        raise  # it may come back: a campaign waits for it
    except ArtifactError as exc:
        raise fail(str(exc)) from None
    return open_experiment_store(settings.db_url, outbox_dir=settings.outbox_dir), artifacts


def load_clips(settings: Settings) -> list[Clip]:
    return [
        load_clip(
            path,
            max_frames=settings.max_frames,
            width=settings.raw_width,
            height=settings.raw_height,
            fps=settings.raw_fps,
        )
        for path in settings.clips
    ]


def load_test_clips(settings: Settings) -> list[Clip]:
    """The clips of the test set (``--test-set``, pins checked); default: the ``--clip``s."""
    from codeclab.evaluate.testsets import load_test_set

    return load_test_set(settings)[0]


def no_clips_with_test_set(clip: list[Path] | None, settings: Settings) -> None:
    if clip and settings.test_set:
        raise fail(
            f"--clip and the test set {settings.test_set!r} exclude each other: "
            "list the clips in the test set"
        )


def parse_size(text: str | None) -> dict[str, int | None]:
    """``--size 352x288`` as settings overrides for raw clips."""
    if text is None:
        return {}
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise fail(f"--size must look like 352x288, got {text!r}")
    return {"raw_width": int(width), "raw_height": int(height)}


def parse_qualities(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(q) for q in text.split(",") if q.strip()]
    except ValueError:
        raise fail(f"--qualities must be integers separated by commas, got {text!r}") from None


def parse_baselines(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [] if text.strip() == "none" else [b.strip() for b in text.split(",") if b.strip()]


STATUS_STYLE = {
    "ok": "[green]ok[/green]",
    "rejected": "[yellow]rejected[/yellow]",
    "failed": "[red]failed[/red]",
}


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_table(records: list[ExperimentRecord], title: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        caption="BD x265: BD-rate (PSNR-Y) on the holdout clips over x265's standard range "
        "(its PSNR-Y span at CRF 22..37); kbps, PSNR-Y, SSIM-Y: means over the rungs",
        caption_justify="left",
    )
    table.add_column("iter", justify="right")
    table.add_column("id", no_wrap=True)
    table.add_column("program", overflow="fold")
    table.add_column("status")
    for column in ("kbps", "PSNR-Y", "SSIM-Y", "BD x265"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in records:
        h = r.headline()
        table.add_row(
            "-" if r.iteration is None else str(r.iteration),
            r.experiment_id[:8],
            r.program_name,
            STATUS_STYLE[r.status],
            fmt(h["kbps"], ".1f"),
            fmt(h["psnr_y"], ".2f"),
            fmt(h["ssim_y"], ".4f"),
            fmt(h["bd_rate_x265"], "+.1f") + ("%" if h["bd_rate_x265"] is not None else ""),
        )
    return table


def one_line(record: ExperimentRecord) -> str:
    """A finished experiment in one line, for the campaign's running log."""
    h = record.headline()
    if record.status != "ok":
        error = single_line(record.error or "")
        return f"{record.program_name}: {record.status} in {record.phase}: {error}"
    bd = "n/a" if h["bd_rate_x265"] is None else f"{h['bd_rate_x265']:+.1f}%"
    return (
        f"{record.program_name}: ok, {h['kbps']:.0f} kbps, PSNR-Y {h['psnr_y']:.2f} dB, "
        f"BD-rate vs x265 {bd}"
    )


def print_where(settings: Settings, store: ExperimentStore) -> None:
    err.print(f"records:   {store.url}")
    err.print(f"artifacts: {settings.artifacts_dir.resolve()}")
    err.print("inspect:   codeclab list  |  codeclab show ID")
    err.print("dashboard: .venv/bin/codeclab serve, then open http://127.0.0.1:8000/")


def _run_with_progress(
    settings: Settings,
    clips: list[Clip],
    store: ExperimentStore,
    artifacts: LocalArtifactStore,
    resume_id: str | None,
):
    from codeclab.campaign import Callbacks, run_campaign

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        overall = progress.add_task("campaign", total=settings.iterations)
        step = progress.add_task("", total=None)

        def started(iteration: int, name: str) -> None:
            progress.update(overall, description=f"iteration {iteration}: {name}")

        def done(record: ExperimentRecord) -> None:
            progress.advance(overall)
            say(f"  {record.iteration}: {one_line(record)}")  # err: the progress's console

        callbacks = Callbacks(
            on_experiment=started,
            on_step=lambda message: progress.update(step, description=f"  {message}"),
            on_done=done,
            on_wait=say,
            on_fault=say,
        )
        return run_campaign(
            settings, clips, store, artifacts, resume_id=resume_id, callbacks=callbacks
        )


@app.command()
def run(
    clip: ClipOpt = None,
    iterations: Annotated[int | None, typer.Option(help="experiments to run")] = None,
    designer: Annotated[str | None, typer.Option(help="evolve (offline) or llm")] = None,
    llm_provider: Annotated[str | None, typer.Option(help="anthropic or openai")] = None,
    llm_model: Annotated[str | None, typer.Option(help="the model's name")] = None,
    llm_base_url: Annotated[
        str | None, typer.Option(help="an OpenAI-compatible server (Ollama, vLLM, llama.cpp)")
    ] = None,
    llm_repairs: Annotated[int | None, typer.Option(help="repairs per proposal")] = None,
    llm_budget_usd: Annotated[float | None, typer.Option(help="stop at this spend")] = None,
    seed: Annotated[int | None, typer.Option(help="designer's random seed")] = None,
    workers: Annotated[int | None, typer.Option(help="experiments evaluated in parallel")] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="where evaluations run: local (processes here) or ray (a cluster)"),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="join this Ray cluster (HOST:PORT); default: start a local one"),
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue the last campaign here")] = False,
    frames: FramesOpt = None,
    size: SizeOpt = None,
    fps: FpsOpt = None,
    qualities: QualitiesOpt = None,
    baselines: BaselinesOpt = None,
    test_set: TestSetOpt = None,
    forever: Annotated[
        bool, typer.Option(help="an unattended lab: a campaign every --interval")
    ] = False,
    interval: Annotated[str, typer.Option(help="pause between campaigns, e.g. 30m, 6h")] = "6h",
    allow_weak_isolation: AllowWeakOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a campaign: the designer proposes programs, the lab measures each one."""
    from codeclab.campaign import CampaignError, directory_lock
    from codeclab.executors import ExecutorError
    from codeclab.scratch import DiskFull
    from codeclab.store.retry import GaveUp, StoreWait

    settings = settings_from(
        test_set=test_set,
        clips=clip or None,
        iterations=iterations,
        designer=designer,
        llm_provider=llm_provider,
        llm_model=llm_model,
        llm_base_url=llm_base_url,
        llm_repairs=llm_repairs,
        llm_budget_usd=llm_budget_usd,
        seed=seed,
        workers=workers,
        executor=executor,
        ray_address=ray_address,
        max_frames=frames,
        raw_fps=fps,
        **parse_size(size),
        qualities=parse_qualities(qualities),
        baselines=parse_baselines(baselines),
        allow_weak_isolation=allow_weak_isolation or None,
    )
    no_clips_with_test_set(clip, settings)
    require_strong_isolation(settings)
    if ray_address and settings.executor != "ray":
        raise fail("--ray-address joins a Ray cluster: add --executor ray")
    # where to run is not part of a campaign: a resumed one may move to (or off) a cluster
    where = {"executor": executor, "ray_address": ray_address}
    given = {key: value for key, value in where.items() if value is not None}
    pause = parse_duration(interval) if forever else 0.0
    # Ctrl-C (SIGINT) stops the lab however it was started: a shell starts a background job
    # (`codeclab run --forever &`) with SIGINT ignored, and Python then keeps it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    wait = StoreWait.for_settings(settings, say)
    stores: tuple[ExperimentStore, ArtifactStore] | None = None
    try:
        with directory_lock(settings.home), user_errors():
            while True:
                try:
                    stores = stores or wait.call(open_stores, settings)
                    chosen, resume_id = settings, None
                    if resume:
                        latest = wait.call(stores[0].latest_campaign)
                        chosen, resume_id = to_resume(settings, latest, given)
                        resume = False  # once: the next campaigns of a --forever lab are new
                    report(chosen, *stores, resume_id, as_json)
                except (GaveUp, DiskFull) as exc:  # an unattended lab outlives an outage
                    if not forever:  # or a full disk: its next campaign starts after a pause
                        raise
                    say(f"the campaign stopped: {single_line(exc)}")
                if not forever:
                    break
                err.print(f"next campaign in {interval} (Ctrl-C stops the lab)")
                time.sleep(pause)
    except (CampaignError, ExecutorError, GaveUp) as exc:
        raise fail(single_line(exc)) from None
    except KeyboardInterrupt:
        err.print("stopped: the lab is idle; finished experiments are kept (--resume continues)")


def say(message: str) -> None:
    """A line of the lab's running log on standard error, never wrapped: a log reads it
    whole."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def to_resume(settings: Settings, campaign: Any, given: dict[str, Any]) -> tuple[Settings, str]:
    """The settings and id of the campaign to resume (what is given on the command line,
    where to run, replaces the campaign's own)."""
    from codeclab.campaign import CampaignError

    if campaign is None:
        raise CampaignError(f"no campaign to resume in {settings.home}")
    resumed = settings.resumed(campaign.settings, **given)
    err.print(f"resuming campaign {campaign.id} ({resumed.iterations} iterations)")
    return resumed, campaign.id


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``10m``, ``6h`` or ``1d`` in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise fail(f"--interval must look like 30s, 10m or 6h, got {text!r}") from None
    if seconds < 0:
        raise fail("--interval cannot be negative")
    return seconds


def report(
    settings: Settings,
    store: ExperimentStore,
    artifacts: LocalArtifactStore,
    resume_id: str | None,
    as_json: bool,
) -> None:
    """Run one campaign (or the rest of one) and print its summary."""
    started = time.perf_counter()
    clips = load_test_clips(settings)
    result = _run_with_progress(settings, clips, store, artifacts, resume_id)
    wall = time.perf_counter() - started
    best = result.best
    if result.stopped:
        err.print(f"[yellow]campaign stopped early:[/yellow] {result.stopped}", highlight=False)
    if as_json:
        fields = {
            "experiment_id",
            "iteration",
            "status",
            "phase",
            "error",
            "program_name",
            "program_sha256",
            "results",
            "bd_rate",
            "bd_rate_train",
            "bd_rate_holdout",
            "test_set",
            "holdout_is_train",
            "target",
        }
        print(
            json.dumps(
                {
                    "campaign_id": result.campaign_id,
                    "experiments": [
                        r.model_dump(mode="json", include=fields) for r in result.experiments
                    ],
                    "best": best.experiment_id if best else None,
                    "stopped": result.stopped,
                    "families": [dataclasses.asdict(f) for f in result.families()],
                    "wall_s": round(wall, 2),
                }
            ),
            flush=True,
        )
        return
    out.print(summary_table(result.experiments, f"campaign {result.campaign_id}"))
    print_families(result.families())
    if best:
        from codeclab.ranking import leaderboard_entry

        anchor, value = leaderboard_entry(best)
        out.print(
            f"best: {best.experiment_id[:8]} {best.program_name}, holdout BD-rate (PSNR-Y) "
            f"vs {anchor} {value:+.1f}% over {anchor}'s standard range (CRF 22..37)"
        )
    out.print(f"wall time: {wall:.1f} s")
    print_where(settings, store)


@app.command("evaluate")
def evaluate_command(
    program: Annotated[Path, typer.Argument(help="a codec program (.py)")],
    clip: ClipOpt = None,
    frames: FramesOpt = None,
    size: SizeOpt = None,
    fps: FpsOpt = None,
    qualities: QualitiesOpt = None,
    baselines: BaselinesOpt = None,
    timeout: Annotated[float | None, typer.Option(help="seconds per sandboxed process")] = None,
    memory_mb: Annotated[int | None, typer.Option(help="memory cap per process, MB")] = None,
    test_set: TestSetOpt = None,
    allow_weak_isolation: AllowWeakOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate, run, score and publish one program (phases 2 to 7)."""
    from codeclab.runner import Job, evaluate

    settings = settings_from(
        test_set=test_set,
        clips=clip or None,
        max_frames=frames,
        raw_fps=fps,
        **parse_size(size),
        qualities=parse_qualities(qualities),
        baselines=parse_baselines(baselines),
        timeout_s=timeout,
        memory_mb=memory_mb,
        allow_weak_isolation=allow_weak_isolation or None,
    )
    no_clips_with_test_set(clip, settings)
    require_strong_isolation(settings)
    with user_errors():
        source = program.read_text()
        store, artifacts = open_stores(settings)
        clips = load_test_clips(settings)
    with err.status("evaluating") as status:
        record = evaluate(
            Job(
                source=source,
                name=program.stem,
                clips=clips,
                settings=settings,
                store=store,
                artifacts=artifacts,
                on_step=lambda message: status.update(message),
            )
        )
    show_record(record, as_json, artifacts)


def print_families(families: list) -> None:
    """Each program family's convex hull over its configurations, per clip."""
    if not any(f.programs > 1 for f in families):
        return
    table = Table(title="program families: convex hull of all configurations", title_justify="left")
    for column in ("family", "clip", "programs", "hull points", "BD x265 (hull)"):
        table.add_column(column)
    for f in families:
        bd = "-" if f.bd_rate_x265 is None else f"{f.bd_rate_x265:+.1f}%"
        points = ", ".join(f"{p.kbps:.0f}:{p.psnr_y:.2f}" for p in f.points)
        table.add_row(f.family, f.clip, str(f.programs), points, bd)
    out.print(table)


def show_record(
    record: ExperimentRecord, as_json: bool, artifacts: ArtifactStore | None = None
) -> None:
    if as_json:
        shown = linked_record(record, artifacts) if artifacts is not None else record
        print(shown.model_dump_json())
        return
    out.print(summary_table([record], f"experiment {record.experiment_id}"))
    if record.error:
        out.print(f"[red]{record.status} in {record.phase}:[/red] {record.error}", highlight=False)
    if record.test_set:
        splits = ", ".join(f"{c.name}: {c.split}" for c in record.clips)
        same = " (the holdout is the train set)" if record.holdout_is_train else ""
        out.print(f"  test set {record.test_set}{same}: {splits}", highlight=False)
    for r in record.results:
        extra = f", MS-SSIM-Y {r.ms_ssim_y:.4f}" if r.ms_ssim_y is not None else ""
        extra += f", VMAF {r.vmaf:.2f}" if r.vmaf is not None else ""
        out.print(
            f"  {r.clip} q{r.quality}: {r.bytes} bytes, {r.kbps:.1f} kbps, "
            f"PSNR-Y {r.psnr_y:.2f} dB, SSIM-Y {r.ssim_y:.4f}{extra}"
        )
    tables = [("", record.bd_rate)]
    if record.test_set and not record.holdout_is_train:
        tables += [(" (train)", record.bd_rate_train), (" (holdout)", record.bd_rate_holdout)]
    tables.append(("", record.bd_rate_wide))
    for label, table in tables:
        for encoder, metrics in table.items():
            for metric, bd in metrics.items():
                value = f"{bd.value:+.2f}%" if bd.value is not None else f"n/a ({bd.reason})"
                over = f" [{bd.integrated_over}]" if bd.integrated_over else ""
                out.print(f"  BD-rate{label} {metric} vs {encoder}{over}: {value}", highlight=False)
    if record.target:
        t = record.target
        out.print(
            f"  target {t.target_kbps:.0f} kbps: {'achieved' if t.achieved else 'not achieved'}"
            + (f" ({t.reason})" if t.reason else ""),
            highlight=False,
        )
        if t.kbps is not None:
            reference = fmt(t.x265_psnr_y_at_kbps, ".2f")
            out.print(
                f"    rate: {t.kbps:.1f} kbps <= {t.target_kbps:.0f}? "
                f"{'yes' if t.kbps <= t.target_kbps else 'no'};  quality: PSNR-Y "
                f"{fmt(t.psnr_y, '.2f')} dB vs x265's {reference} dB at that rate"
                + (f" (holdout clip {t.clip})" if t.clip else ""),
                highlight=False,
            )
    for name, value in record.artifacts.model_dump().items():
        if value:
            out.print(f"  {name}: {value if isinstance(value, str) else f'{len(value)} files'}")


@app.command("list")
def list_command(as_json: JsonOpt = False) -> None:
    """List the experiments in the store, oldest first."""
    settings = settings_from()
    with user_errors():
        store, _ = open_stores(settings)
        records = store.list()
    if as_json:
        print(
            json.dumps(
                {
                    "experiments": [
                        {
                            "experiment_id": r.experiment_id,
                            "campaign_id": r.campaign_id,
                            "iteration": r.iteration,
                            "status": r.status,
                            "program_name": r.program_name,
                            **r.headline(),
                        }
                        for r in records
                    ]
                }
            )
        )
        return
    out.print(summary_table(records, f"{len(records)} experiments in {store.url}"))


@app.command()
def show(
    experiment_id: Annotated[str, typer.Argument(help="an experiment id or a unique prefix")],
    as_json: JsonOpt = False,
) -> None:
    """Show one experiment's full record."""
    settings = settings_from()
    with user_errors():
        store, artifacts = open_stores(settings)
        record = store.get(experiment_id)
    if record is None:
        raise fail(f"no experiment {experiment_id!r} (or the prefix is not unique)")
    with user_errors():
        show_record(record, as_json, artifacts)


ARTIFACT_KINDS = ("reconstructed", "decoder", "package", "program")


def artifact_key(record: ExperimentRecord, artifact: str) -> str:
    """The store key of ARTIFACT: a kind of ``ARTIFACT_KINDS`` or a bitstream's name."""
    rid = record.experiment_id
    keys = {
        "reconstructed": reconstructed_key(rid),
        "decoder": decoder_key(rid),
        "package": f"packages/{rid}.zip",
        "program": f"programs/{record.program_sha256}.py",
    }
    if artifact in keys:
        if artifact != "program" and not getattr(record.artifacts, artifact):
            raise fail(f"experiment {rid[:8]} has no {artifact} (it was not published)")
        return keys[artifact]
    names = [f"{r.clip}_q{r.quality}" for r in record.results]
    name = artifact.removesuffix(".bin")
    if name not in names:
        choices = ", ".join([*ARTIFACT_KINDS, *names])
        raise fail(f"unknown artifact {artifact!r}; choose from {choices}")
    return f"bitstreams/{rid}/{name}.bin"


def find_record(experiment_id: str) -> tuple[ExperimentRecord, ArtifactStore]:
    settings = settings_from()
    with user_errors():
        store, artifacts = open_stores(settings)
        record = store.get(experiment_id)
    if record is None:
        raise fail(f"no experiment {experiment_id!r} (or the prefix is not unique)")
    return record, artifacts


@app.command()
def url(
    experiment_id: Annotated[str, typer.Argument(help="an experiment id or a unique prefix")],
    artifact: Annotated[
        str,
        typer.Argument(help="reconstructed, decoder, package, program or a bitstream's name"),
    ],
    ttl: Annotated[
        str | None, typer.Option(help="lifetime: seconds or e.g. 12h, 7d; default link_ttl")
    ] = None,
) -> None:
    """Print a fresh expiring link to an artifact (S3: presigned; local: HMAC-signed)."""
    from codeclab.store.links import parse_ttl

    record, artifacts = find_record(experiment_id)
    key = artifact_key(record, artifact)
    with user_errors():
        seconds = parse_ttl(ttl) if ttl is not None else None
        if not artifacts.exists(key):
            raise ArtifactError(f"artifact {key} is missing from the store")
        print(artifacts.link(key, seconds))


@app.command("transcode")
def transcode_command(
    experiment_id: Annotated[str, typer.Argument(help="an experiment id or a unique prefix")],
    fmt: Annotated[str, typer.Option("--format", help="webm (VP9), mp4 (H.264) or y4m")] = "webm",
) -> None:
    """Transcode the reconstructed video (cached in the store) and print its location."""
    from codeclab.store.transcode import transcode

    record, artifacts = find_record(experiment_id)
    with user_errors(), err.status(f"transcoding to {fmt}"):
        print(transcode(record, artifacts, fmt))


@app.command()
def decode(
    bitstream: Annotated[Path, typer.Argument(help="a bitstream (.bin)")],
    decoder: Annotated[Path, typer.Option(help="a program or published decoder (.py)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the .y4m to write")],
    fps: Annotated[float, typer.Option(help="frame rate written to the y4m")] = 30.0,
) -> None:
    """Decode a bitstream with a program's decoder, in the sandbox, to Y4M."""
    from codeclab.sandbox import bwrap, isolate
    from codeclab.store.publish import program_from_decoder

    with user_errors():
        data = bitstream.read_bytes()
        source = program_from_decoder(decoder.read_text())
    limits = isolate.Limits.for_clip(1920, 1080, 300)
    try:
        decoded = isolate.run_decode(source, data, limits, bwrap.best_launcher())
    except isolate.SandboxError as exc:
        raise fail(str(exc)) from None
    write_y4m(output, decoded.frames, fps)
    height, width = decoded.frames[0][0].shape
    err.print(f"{len(decoded.frames)} frames of {width}x{height} written to {output}")


@app.command()
def baseline(
    clip: Annotated[Path, typer.Option(help="source video")],
    encoder: Annotated[str, typer.Option(help="x264, x265 or svtav1")] = "x265",
    frames: FramesOpt = None,
    size: SizeOpt = None,
    fps: FpsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Encode a clip with a baseline encoder over its CRF ladder and score each rung."""
    from codeclab.evaluate import baselines

    if encoder in baselines.KNOWN_ENCODERS and encoder not in baselines.ENCODERS:
        raise fail(baselines.unavailable(encoder) or f"{encoder} is unavailable")
    if encoder not in baselines.ENCODERS:
        raise fail(f"unknown encoder {encoder!r}; choose from {', '.join(baselines.ENCODERS)}")
    settings = settings_from(clips=[clip], max_frames=frames, raw_fps=fps, **parse_size(size))
    with user_errors():
        (source,) = load_clips(settings)
    with err.status(f"encoding {source.name} with {encoder}"):
        rungs = baselines.baseline_curve(
            source.frames,
            source.fps,
            source.sha256,
            encoder,
            settings.cache_dir / "baselines",
            with_vmaf=settings.vmaf,
        )
    payload = {
        "clip": source.name,
        "clip_sha256": source.sha256,
        "encoder": encoder,
        "version": baselines.encoder_version(encoder),
        "settings": baselines.settings(encoder),
        "rungs": [vars(r) for r in rungs],
    }
    if as_json:
        print(json.dumps(payload, default=str))
        return
    out.print(f"{encoder} {payload['version']} {payload['settings']} on {source.name}")
    for r in rungs:
        out.print(
            f"  crf {r.crf}: {r.bytes} bytes, {r.kbps:.1f} kbps, PSNR-Y {r.psnr_y:.2f} dB, "
            f"SSIM-Y {r.ssim_y:.4f}"
        )


@app.command("metrics")
def metrics_command(
    reference: Annotated[Path, typer.Argument(help="the source video")],
    distorted: Annotated[Path, typer.Argument(help="the video to score against it")],
    frames: FramesOpt = None,
    vmaf: Annotated[bool, typer.Option(help="VMAF too, when FFmpeg has libvmaf")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Score any two videos frame by frame: PSNR Y/U/V/YUV, SSIM-Y, MS-SSIM-Y, VMAF."""
    from codeclab.evaluate.compare import compare_files

    with user_errors():
        result = compare_files(reference, distorted, frames=frames, with_vmaf=vmaf)
    if as_json:
        print(json.dumps(result))
        return
    means = result["metrics"]
    out.print(
        f"{result['frames']} frames of {result['reference']['width']}x"
        f"{result['reference']['height']}: {distorted} against {reference}",
        highlight=False,
    )
    for name in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ssim_y", "ms_ssim_y", "vmaf"):
        value = means[name]
        reason = means.get(name.replace("_y", "") + "_reason") if value is None else None
        shown = "n/a" + (f" ({reason})" if reason else "") if value is None else f"{value:.6f}"
        out.print(f"  {name:9s} {shown}", highlight=False)


@app.command()
def bench(as_json: JsonOpt = False) -> None:
    """Measure the lab's evaluation speed here: metrics vs the ffmpeg CLI, sandbox, overhead."""
    from codeclab.evaluate.bench import run as run_bench

    settings = settings_from()
    with user_errors(), err.status("benchmarking (about a minute)"):
        result = run_bench(settings.cache_dir)
    if as_json:
        print(json.dumps(result))
        return
    m = result["machine"]
    out.print(
        f"machine: {m['cpu']}, {m['usable_cores']} cores, {m['memory_gb']} GB, load "
        f"{m['load_average']}",
        highlight=False,
    )
    for key in (
        "metrics_fps_1080p",
        "ffmpeg_cli_fps_1080p",
        "metrics_vs_ffmpeg",
        "ms_ssim_fps_1080p",
        "sandbox_launch_ms",
        "eval_overhead_ratio",
        "eval_overhead_ratio_warm",
        "baseline_encodes_second_run",
    ):
        out.print(f"  {key:28s} {result.get(key)}", highlight=False)
    for goal, met in result["goals"].items():
        out.print(f"  goal {goal}: {'met' if met else 'NOT met' if met is False else 'n/a'}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind (127.0.0.1: this machine only)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="server processes (more serve more people at once)")
    ] = 1,
) -> None:
    """Serve the dashboard: overview, blog, experiment pages and the JSON API."""
    import uvicorn

    from codeclab.web.app import create_app

    settings = settings_from()
    with user_errors():
        application = create_app(settings)
    err.print(f"dashboard on http://{host}:{port}/ (data in {settings.home})")
    if workers == 1:
        uvicorn.run(application, host=host, port=port)
        return
    from codeclab.web import serving

    with user_errors():  # each process builds the app from the same configuration
        try:
            serving.serve(host, port, workers)
        except RuntimeError as exc:
            raise fail(str(exc)) from None
