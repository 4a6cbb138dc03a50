"""Experiment store on SQLAlchemy: programs with lineage, experiments, results, baselines, phases.

An experiment is written in one transaction when it has finished, so a campaign killed at
any moment leaves either the whole experiment or nothing. Figures live in typed columns
(one row per clip and quality), not in one opaque JSON string, so the dashboard can query them.

Beside each experiment the store writes a light summary row (``experiment_summaries``:
headline figures, leaderboard BD-rate, LLM spend) and its holdout BD-rate per baseline
(``holdout_bd_rates``), in the same transaction: lists, counts and the overview's aggregates
are indexed queries on those, never a load of every record (:mod:`codeclab.store.summary`).

The schema is kept by Alembic migrations (``codeclab/store/migrations``), run when a store
opens: a user upgrading keeps their data, and experiments written before summaries existed
(or under an older :data:`~codeclab.store.summary.SUMMARY_VERSION`) get them then. When
the database cannot be reached, a finished experiment is kept in a durable outbox (one JSON
file per experiment) and written, once, when the store is back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    create_engine,
    delete,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from codeclab.errors import one_line
from codeclab.record import (
    BdRate,
    ExperimentRecord,
    utcnow,
)
from codeclab.store.outbox import Outbox, default_outbox_dir
from codeclab.store.summary import (
    BASELINE_ENCODERS,
    SUMMARY_VERSION,
    Best,
    CampaignProgress,
    ExperimentSummary,
    LlmSpend,
    Overview,
    ProgramInfo,
    ProgramRun,
    ProgressPoint,
    holdout_bd_rates,
    summarize,
)

METRIC_COLUMNS = ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ssim_y", "ms_ssim_y", "vmaf")
RUNG_COLUMNS = (
    "clip",
    "bytes",
    "frames",
    "width",
    "height",
    "fps",
    "kbps",
    "bpp",
    "encode_s",
    "decode_s",
    "vmaf_reason",
    *METRIC_COLUMNS,
)


MIGRATIONS = Path(__file__).parent / "migrations"
SUMMARY_BATCH = 200  # experiments summarized per transaction when an older store opens
log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The experiment store cannot be reached or written."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or take a write now (down, connection lost, read-only):
    it may come back, so a campaign waits for it. ``kept``: where a failed save's
    experiment waits for the store (the outbox), if it was a save."""

    def __init__(self, message: str, kept: Path | None = None) -> None:
        super().__init__(message)
        self.kept = kept


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Program(Base):
    __tablename__ = "programs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    parent_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    designer: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    designer: Mapped[str] = mapped_column(String(40))
    seed: Mapped[int] = mapped_column(Integer)
    iterations: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Experiment(Base):
    __tablename__ = "experiments"
    # a campaign's iteration is written once: a resumed campaign cannot count one twice
    __table_args__ = (
        UniqueConstraint("campaign_id", "iteration"),
        # a program's newest runs (the version history) without sorting all its runs
        Index("ix_experiments_program_sha256_created_at", "program_sha256", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    iteration: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    phase: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    program_sha256: Mapped[str] = mapped_column(ForeignKey("programs.sha256"), index=True)
    designer: Mapped[str] = mapped_column(String(40))
    reasoning: Mapped[dict[str, Any]] = mapped_column(JSON)
    isolation: Mapped[str] = mapped_column(String(16))
    source_bytes: Mapped[int] = mapped_column(Integer)
    qualities: Mapped[list[Any]] = mapped_column(JSON)
    clips: Mapped[list[Any]] = mapped_column(JSON)
    bd_rate: Mapped[dict[str, Any]] = mapped_column(JSON)
    bd_rate_train: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    bd_rate_holdout: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    bd_rate_wide: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    test_set: Mapped[str | None] = mapped_column(String(200))
    holdout_is_train: Mapped[bool | None] = mapped_column(Boolean)
    stage: Mapped[str | None] = mapped_column(String(16))
    screen: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    target: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSON)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    program: Mapped[Program] = relationship()
    results: Mapped[list[Result]] = relationship(cascade="all, delete-orphan", order_by="Result.id")
    baseline_rungs: Mapped[list[BaselineRow]] = relationship(
        cascade="all, delete-orphan", order_by="BaselineRow.id"
    )
    phases: Mapped[list[Phase]] = relationship(cascade="all, delete-orphan", order_by="Phase.id")


class _RungColumns:
    clip: Mapped[str] = mapped_column(String(200))
    bytes: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float] = mapped_column(Float)
    kbps: Mapped[float] = mapped_column(Float)
    bpp: Mapped[float] = mapped_column(Float)
    encode_s: Mapped[float] = mapped_column(Float)
    decode_s: Mapped[float] = mapped_column(Float)
    psnr_y: Mapped[float] = mapped_column(Float)
    psnr_u: Mapped[float] = mapped_column(Float)
    psnr_v: Mapped[float] = mapped_column(Float)
    psnr_yuv: Mapped[float] = mapped_column(Float)
    ssim_y: Mapped[float] = mapped_column(Float)
    ms_ssim_y: Mapped[float | None] = mapped_column(Float)
    vmaf: Mapped[float | None] = mapped_column(Float)
    vmaf_reason: Mapped[str | None] = mapped_column(Text)


class Result(_RungColumns, Base):
    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("experiment_id", "clip_sha256", "quality"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), index=True)
    clip_sha256: Mapped[str] = mapped_column(String(64), index=True)
    quality: Mapped[int] = mapped_column(Integer)
    bitstream_sha256: Mapped[str] = mapped_column(String(64))
    decoded_sha256: Mapped[str] = mapped_column(String(64))
    per_frame: Mapped[list[Any]] = mapped_column(JSON)


class BaselineRow(_RungColumns, Base):
    __tablename__ = "baseline_rungs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), index=True)
    encoder: Mapped[str] = mapped_column(String(20))
    version: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    clip_sha256: Mapped[str] = mapped_column(String(64), index=True)
    crf: Mapped[int] = mapped_column(Integer)


class Phase(Base):
    __tablename__ = "phases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), index=True)
    name: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    seconds: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class Summary(Base):
    """One light row per experiment: what lists, the leaderboard and the overview read."""

    __tablename__ = "experiment_summaries"
    __table_args__ = (  # each ranking's index ends with the time: ties go to the earlier
        Index("ix_experiment_summaries_status_created_at", "status", "created_at"),
        Index("ix_experiment_summaries_campaign_id_created_at", "campaign_id", "created_at"),
        Index("ix_experiment_summaries_leaderboard", "leaderboard_bd_rate", "created_at"),
        Index("ix_experiment_summaries_x265_quality", "x265_quality_kbps", "created_at"),
    )
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(String(36))
    iteration: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    program_name: Mapped[str] = mapped_column(String(200))
    designer: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    headline_kbps: Mapped[float | None] = mapped_column(Float)
    headline_psnr_y: Mapped[float | None] = mapped_column(Float)
    headline_ssim_y: Mapped[float | None] = mapped_column(Float)
    headline_ms_ssim_y: Mapped[float | None] = mapped_column(Float)
    headline_bd_rate_x265: Mapped[float | None] = mapped_column(Float)
    leaderboard_bd_rate: Mapped[float | None] = mapped_column(Float)
    leaderboard_anchor: Mapped[str | None] = mapped_column(String(20))
    x265_quality_kbps: Mapped[float | None] = mapped_column(Float)
    x265_quality_clip: Mapped[str | None] = mapped_column(String(200))
    llm_calls: Mapped[int] = mapped_column(Integer, index=True)  # spend sums rows with calls
    llm_input_tokens: Mapped[int] = mapped_column(Integer)
    llm_output_tokens: Mapped[int] = mapped_column(Integer)
    llm_cost_usd: Mapped[float] = mapped_column(Float)
    llm_cost_known: Mapped[bool] = mapped_column(Boolean)
    summary_version: Mapped[int] = mapped_column(Integer, index=True)


class HoldoutBdRate(Base):
    """A successful experiment's leaderboard BD-rate (holdout, PSNR-Y) against one baseline."""

    __tablename__ = "holdout_bd_rates"
    __table_args__ = (Index("ix_holdout_bd_rates_ranking", "encoder", "bd_rate", "created_at"),)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), primary_key=True)
    encoder: Mapped[str] = mapped_column(String(20), primary_key=True)
    bd_rate: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# what a summary shows: the light row, and the few fields of the experiment a post needs
SUMMARY_COLUMNS = (
    *(
        getattr(Summary, name)
        for name in ExperimentSummary.model_fields
        if name in Summary.__table__.columns
    ),
    Experiment.phase,
    Experiment.error,
    Experiment.program_sha256,
    Experiment.reasoning,
    Experiment.artifacts,
)


# what ``ExperimentStore._load`` reads: the experiment with its program, then its children
RECORD_QUERIES = (
    select(Experiment.__table__, Program.name, Program.parent_sha256)
    .join(Program, Program.sha256 == Experiment.program_sha256)
    .where(Experiment.id == bindparam("id")),
    *(
        select(table.__table__).where(table.experiment_id == bindparam("id")).order_by(table.id)
        for table in (Result, BaselineRow, Phase)
    ),
)

# how many experiments: the dashboard's version of what it shows, counted on every page
# (built once: building the statement took as long as running it on 10,000 experiments)
COUNT_ALL = select(func.count()).select_from(Summary)


def _summary_rows(record: ExperimentRecord) -> list[Base]:
    """The summary row and holdout BD-rates written with ``record``."""
    rows: list[Base] = [
        Summary(
            experiment_id=record.experiment_id,
            campaign_id=record.campaign_id,
            iteration=record.iteration,
            status=record.status,
            program_name=record.program_name,
            designer=record.designer,
            created_at=record.created_at,
            **summarize(record),
        )
    ]
    rows += [
        HoldoutBdRate(
            experiment_id=record.experiment_id,
            encoder=encoder,
            bd_rate=value,
            created_at=record.created_at,
        )
        for encoder, value in holdout_bd_rates(record).items()
    ]
    return rows


def _rung_values(rung: Any) -> dict[str, Any]:
    return {name: getattr(rung, name) for name in RUNG_COLUMNS}


def _bd_json(table: dict[str, dict[str, BdRate]]) -> dict[str, Any]:
    return {e: {m: b.model_dump() for m, b in by.items()} for e, by in table.items()}


def alembic_config(connection: Any = None, url: str | None = None) -> Any:
    """An Alembic configuration for the package's migrations; no alembic.ini needed.

    Developers make a new revision (after changing the models) with::

        python -c "from alembic import command; from codeclab.store.db import alembic_config;
        command.revision(alembic_config(url='sqlite:///scratch.db'), 'what changed',
        autogenerate=True)"

    on a scratch database upgraded to the current head, then check the script by hand.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@cache
def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (``alembic upgrade head``).

    A database made before migrations existed (by ``create_all``, without an
    ``alembic_version`` table) is adopted by the first revision, which keeps its rows.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == _head_revision():
            return  # the usual case: nothing to do, and no scripts to load
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # one migrator at a time
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(5318008)")
        command.upgrade(alembic_config(connection), "head")


def _reason(exc: BaseException) -> str:
    """The driver's reason in one line: never SQLAlchemy's text, which quotes the statement
    and its parameters (a program's source among them)."""
    return one_line(getattr(exc, "orig", None) or exc)


def _unavailable(exc: BaseException) -> bool:
    """A failure that may go away by itself: server down, connection lost, write refused.

    Integrity errors (a conflicting row) are answers, not outages: retrying cannot help.
    """
    if isinstance(exc, IntegrityError):
        return False
    return isinstance(exc, DBAPIError | OSError)


def _outage(exc: BaseException) -> bool:
    """The server is unreachable, the connection broke, or the database takes no writes now
    (read-only: a standby during a failover); not: this write was refused for its content."""
    return isinstance(exc, OperationalError | InterfaceError | InternalError) or bool(
        getattr(exc, "connection_invalidated", False)
    )


def _default_outbox(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).resolve().parent / "outbox"  # the data directory
    return default_outbox_dir()


class ExperimentStore:
    """Reads and writes experiment records; the only code that knows the table layout."""

    def __init__(self, url: str, *, outbox_dir: Path | str | None = None) -> None:
        self.url = make_url(url).render_as_string(hide_password=True)  # safe to print
        try:
            self.outbox_dir = Path(outbox_dir) if outbox_dir else _default_outbox(url)
            self.outbox = Outbox(self.outbox_dir, self.url)
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
            migrate(self.engine)
            self._summarize_old()
        except (SQLAlchemyError, OSError, ImportError) as exc:
            failure = StoreUnavailable if _outage(exc) else StoreError
            raise failure(f"cannot open the experiment store {self.url}: {_reason(exc)}") from exc
        except Exception as exc:  # Alembic's own errors (e.g. a revision newer than this code)
            raise StoreError(f"cannot open the experiment store {self.url}: {exc}") from exc

    def add_campaign(
        self, campaign_id: str, designer: str, seed: int, iterations: int, settings: dict[str, Any]
    ) -> None:
        self.flush_outbox()
        with (
            self._errors(f"cannot record campaign {campaign_id}"),
            Session(self.engine) as session,
            session.begin(),
        ):
            session.merge(
                Campaign(
                    id=campaign_id,
                    designer=designer,
                    seed=seed,
                    iterations=iterations,
                    settings=settings,
                )
            )

    def latest_campaign(self) -> Campaign | None:
        """The most recently started campaign, to resume (its kept experiments written first)."""
        self.flush_outbox()
        with self._errors("cannot read campaigns"), Session(self.engine) as session:
            query = select(Campaign).order_by(Campaign.created_at.desc()).limit(1)
            return session.scalars(query).first()

    def save(self, record: ExperimentRecord, source: str) -> None:
        """Write the program (once, by hash) and the whole experiment in one transaction.

        Idempotent: an experiment already stored is skipped. When the store is down or
        refuses the write, the experiment is kept in the outbox and it is written by the next
        ``save`` (or ``flush_outbox``) that gets through; the error says where it is kept:
        :class:`StoreUnavailable` for an outage (waiting may help), else :class:`StoreError`.
        """
        self.flush_outbox()
        try:
            try:
                self._write(record, source)
            except IntegrityError:  # a concurrent writer added the program (or this experiment)
                self._write(record, source)
        except SQLAlchemyError as exc:
            if not _unavailable(exc):
                raise StoreError(
                    f"the experiment store {self.url} refused experiment "
                    f"{record.experiment_id}: {_reason(exc)}"
                ) from exc
            kept = self._keep(record, source, exc)
            message = (
                f"cannot write to the experiment store {self.url}: {_reason(exc)}; experiment "
                f"{record.experiment_id} is kept in {kept} and will be written when the "
                "store is back"
            )
            if _outage(exc):
                raise StoreUnavailable(message, kept=kept) from exc
            raise StoreError(message) from exc

    # -- the outbox -------------------------------------------------------------------------

    def _keep(self, record: ExperimentRecord, source: str, exc: BaseException) -> Path:
        try:
            return self.outbox.keep(record, source, _reason(exc))
        except OSError as io_error:
            raise StoreError(
                f"cannot write to the experiment store {self.url} ({_reason(exc)}) nor keep "
                f"experiment {record.experiment_id} in {self.outbox_dir}: {io_error}"
            ) from exc

    def pending(self) -> list[Path]:
        """Experiments kept in the outbox, waiting for the store."""
        return self.outbox.pending()

    def flush_outbox(self) -> int:
        """Write the experiments kept in the outbox; returns how many were written.

        Stops quietly at the first one the store still cannot take (the caller's own read
        or write then reports the outage). An experiment the store rejects for good (its
        campaign iteration was written again meanwhile) moves to ``outbox/rejected``.
        """
        return self.outbox.flush(
            self._write_kept,
            failures=SQLAlchemyError,
            is_down=_outage,
            rejected=StoreError,
            describe=_reason,
        )

    def _write_kept(self, record: ExperimentRecord, source: str) -> None:
        try:
            self._write(record, source)
        except IntegrityError:
            if not self._exists(record.experiment_id):  # not a concurrent flush of it
                raise

    def _exists(self, experiment_id: str) -> bool:
        with Session(self.engine) as session:
            return session.get(Experiment, experiment_id) is not None

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Database failures as :class:`StoreError` naming the store (password hidden);
        :class:`StoreUnavailable` when it cannot be reached."""
        try:
            yield
        except SQLAlchemyError as exc:
            failure = StoreUnavailable if _outage(exc) else StoreError
            raise failure(
                f"{doing}: the experiment store {self.url} failed: {_reason(exc)}"
            ) from exc

    def _write(self, record: ExperimentRecord, source: str) -> None:
        with Session(self.engine) as session, session.begin():
            if session.get(Experiment, record.experiment_id) is not None:
                return  # idempotent: a resumed campaign may offer the same experiment again
            if (
                record.campaign_id is not None
                and session.scalars(
                    select(Experiment.id).where(
                        Experiment.campaign_id == record.campaign_id,
                        Experiment.iteration == record.iteration,
                    )
                ).first()
            ):
                raise StoreError(
                    f"campaign {record.campaign_id} already has iteration {record.iteration}"
                )
            if session.get(Program, record.program_sha256) is None:  # programs are shared
                session.add(
                    Program(
                        sha256=record.program_sha256,
                        name=record.program_name,
                        source=source,
                        parent_sha256=record.parent_sha256,
                        designer=record.designer,
                    )
                )
            session.add(self._to_row(record))
            session.flush()  # the experiment's row first: the summary rows refer to it
            session.add_all(_summary_rows(record))

    def _summarize_old(self) -> None:
        """Write the summaries of experiments stored without one (before summaries existed)
        or under an older summary version. Usually one indexed query that finds none."""
        stale = (
            select(Experiment.id)
            .outerjoin(Summary, Summary.experiment_id == Experiment.id)
            .where(or_(Summary.experiment_id.is_(None), Summary.summary_version < SUMMARY_VERSION))
        )
        with Session(self.engine) as session:
            ids = session.scalars(stale).all()
        if ids:
            log.warning("summarizing %d experiments written before their summaries", len(ids))
        for start in range(0, len(ids), SUMMARY_BATCH):
            batch = ids[start : start + SUMMARY_BATCH]
            with Session(self.engine) as session, session.begin():
                for table in (Summary, HoldoutBdRate):
                    session.execute(delete(table).where(table.experiment_id.in_(batch)))
                for row in session.scalars(select(Experiment).where(Experiment.id.in_(batch))):
                    session.add_all(_summary_rows(self._to_record(row)))

    def _to_row(self, r: ExperimentRecord) -> Experiment:
        row = Experiment(
            id=r.experiment_id,
            campaign_id=r.campaign_id,
            iteration=r.iteration,
            status=r.status,
            phase=r.phase,
            error=r.error,
            program_sha256=r.program_sha256,
            designer=r.designer,
            reasoning=r.reasoning.model_dump(),
            isolation=r.isolation,
            source_bytes=r.source_bytes,
            qualities=r.qualities,
            clips=[c.model_dump() for c in r.clips],
            bd_rate=_bd_json(r.bd_rate),
            bd_rate_train=_bd_json(r.bd_rate_train),
            bd_rate_holdout=_bd_json(r.bd_rate_holdout),
            bd_rate_wide=_bd_json(r.bd_rate_wide),
            test_set=r.test_set,
            holdout_is_train=r.holdout_is_train,
            stage=r.stage,
            screen=r.screen.model_dump() if r.screen else None,
            gate=r.gate.model_dump() if r.gate else None,
            target=r.target.model_dump() if r.target else None,
            artifacts=r.artifacts.model_dump(),
            versions=r.versions,
            created_at=r.created_at,
        )
        row.results = [
            Result(
                **_rung_values(x),
                clip_sha256=x.clip_sha256,
                quality=x.quality,
                bitstream_sha256=x.bitstream_sha256,
                decoded_sha256=x.decoded_sha256,
                per_frame=[f.model_dump() for f in x.per_frame],
            )
            for x in r.results
        ]
        row.baseline_rungs = [
            BaselineRow(
                **_rung_values(rung),
                encoder=curve.encoder,
                version=curve.version,
                settings=curve.settings,
                clip_sha256=curve.clip_sha256,
                crf=rung.crf,
            )
            for curves in r.baselines.values()
            for curve in curves
            for rung in curve.rungs
        ]
        row.phases = [
            Phase(name=p.name, status=p.status, seconds=p.seconds, error=p.error) for p in r.phases
        ]
        return row

    def get(self, experiment_id: str) -> ExperimentRecord | None:
        """The record by id, or by a unique id prefix (as people type them)."""
        with self._errors("cannot read experiments"), self.engine.connect() as connection:
            record = self._load(connection, experiment_id)
            if record is None:
                matches = connection.scalars(
                    select(Experiment.id).where(Experiment.id.startswith(experiment_id)).limit(2)
                ).all()
                record = self._load(connection, matches[0]) if len(matches) == 1 else None
            return record

    def _load(self, connection: Any, experiment_id: str) -> ExperimentRecord | None:
        """One record in four Core queries (the dashboard reads one per page: the ORM's
        lazy loads took half as long again), through the same :meth:`_to_record`."""
        head = connection.execute(RECORD_QUERIES[0], {"id": experiment_id}).mappings().first()
        if head is None:
            return None
        results, baseline_rungs, phases = (
            connection.execute(query, {"id": experiment_id}).all() for query in RECORD_QUERIES[1:]
        )
        row = SimpleNamespace(
            **{k: v for k, v in head.items() if k not in ("name", "parent_sha256")},
            program=SimpleNamespace(name=head["name"], parent_sha256=head["parent_sha256"]),
            results=results,
            baseline_rungs=baseline_rungs,
            phases=phases,
        )
        return self._to_record(row)  # type: ignore[arg-type]

    def source(self, program_sha256: str) -> str | None:
        with self._errors("cannot read programs"), Session(self.engine) as session:
            program = session.get(Program, program_sha256)
            return program.source if program else None

    def program(self, program_sha256: str) -> ProgramInfo | None:
        """A program's name and parent, without its source (lineage walks)."""
        query = select(Program.sha256, Program.name, Program.parent_sha256).where(
            Program.sha256 == program_sha256
        )
        with self._errors("cannot read programs"), self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return ProgramInfo.model_validate(dict(row)) if row else None

    def runs(self, program_sha256: str, limit: int = 5) -> list[ProgramRun]:
        """The newest ``limit`` experiments that ran the program, newest first."""
        query = (
            select(
                Experiment.id.label("experiment_id"),
                Experiment.campaign_id,
                Experiment.iteration,
                Experiment.status,
                Summary.program_name,
                Experiment.created_at,
            )
            .join(Summary, Summary.experiment_id == Experiment.id)
            .where(Experiment.program_sha256 == program_sha256)
            .order_by(Experiment.created_at.desc())
            .limit(limit)
        )
        with self._errors("cannot read experiments"), self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [ProgramRun.model_validate(dict(row)) for row in rows]

    def list(
        self, *, campaign_id: str | None = None, limit: int | None = None
    ) -> list[ExperimentRecord]:
        """Experiments, oldest first (iteration order within a campaign)."""
        query = select(Experiment).order_by(Experiment.created_at)
        if campaign_id:
            query = query.where(Experiment.campaign_id == campaign_id)
        if limit:
            query = query.limit(limit)
        with self._errors("cannot read experiments"), Session(self.engine) as session:
            return [self._to_record(row) for row in session.scalars(query)]

    # -- the dashboard's queries: summary rows, never whole records -------------------------

    def page(
        self,
        *,
        status: str | None = None,
        campaign_id: str | None = None,
        offset: int = 0,
        limit: int = 10,
    ) -> tuple[int, list[ExperimentSummary]]:
        """(how many match, the summaries of ``limit`` of them from ``offset``), newest first."""
        where = []
        if status:
            where.append(Summary.status == status)
        if campaign_id:
            where.append(Summary.campaign_id == campaign_id)
        with self._errors("cannot read experiments"), self.engine.connect() as connection:
            total = connection.scalar(
                select(func.count()).select_from(Summary).where(*where) if where else COUNT_ALL
            )
            if limit <= 0:  # a count alone (the dashboard's on every page): no page to build
                return total or 0, []
            newest = (Summary.created_at.desc(), Summary.experiment_id.desc())
            chosen = select(Summary.experiment_id).where(*where).order_by(*newest)
            query = (  # the page's ids on the narrow table first: deep pages join ten rows only
                select(*SUMMARY_COLUMNS)
                .join(Experiment, Experiment.id == Summary.experiment_id)
                .where(Summary.experiment_id.in_(chosen.offset(offset).limit(limit)))
                .order_by(*newest)
            )
            rows = connection.execute(query).mappings().all()
        return total or 0, [ExperimentSummary.model_validate(dict(row)) for row in rows]

    def leaderboard(self, limit: int = 10) -> list[ExperimentSummary]:
        """The successful experiments with the lowest leaderboard BD-rate (holdout clips)."""
        query = (
            select(*SUMMARY_COLUMNS)
            .join(Experiment, Experiment.id == Summary.experiment_id)
            .where(Summary.leaderboard_bd_rate.is_not(None))
            .order_by(Summary.leaderboard_bd_rate, Summary.created_at)
            .limit(limit)
        )
        with self._errors("cannot read experiments"), self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [ExperimentSummary.model_validate(dict(row)) for row in rows]

    def overview(self) -> Overview:
        """Counts by status, the best holdout BD-rate per baseline, the lowest bitrate at
        x265's quality and the LLM spend, each one aggregate query."""
        spend = select(
            func.coalesce(func.sum(Summary.llm_calls), 0),
            func.coalesce(func.sum(Summary.llm_input_tokens), 0),
            func.coalesce(func.sum(Summary.llm_output_tokens), 0),
            func.coalesce(func.sum(Summary.llm_cost_usd), 0.0),
            func.coalesce(func.sum(case((Summary.llm_cost_known == false(), 1), else_=0)), 0),
        ).where(Summary.llm_calls > 0)  # the index skips a designer that calls no model
        quality = (
            select(
                Summary.x265_quality_kbps,
                Summary.experiment_id,
                Summary.program_name,
                Summary.x265_quality_clip,
            )
            .where(Summary.x265_quality_kbps.is_not(None))
            .order_by(Summary.x265_quality_kbps, Summary.created_at)
            .limit(1)
        )
        with self._errors("cannot read experiments"), self.engine.connect() as connection:
            by_status = dict(
                connection.execute(
                    select(Summary.status, func.count()).group_by(Summary.status)
                ).all()
            )
            calls, inputs, outputs, cost, unknown = connection.execute(spend).one()
            best = {
                encoder: self._best_bd_rate(connection, encoder) for encoder in BASELINE_ENCODERS
            }
            lowest = connection.execute(quality).first()
        return Overview(
            total=sum(by_status.values()),
            by_status=by_status,
            best_bd_rate=best,
            best_x265_quality_kbps=_best(lowest),
            llm=LlmSpend(
                calls=calls,
                input_tokens=inputs,
                output_tokens=outputs,
                cost_usd=cost,
                cost_known=not unknown,
            ),
        )

    def ranked_rungs(self) -> list[dict[str, Any]]:
        """Every rung (clip, quality, kbps, PSNR-Y) of the experiments on the leaderboard,
        with the experiment's id and program: the overview's RD frontier, in one query."""
        query = (
            select(
                Result.experiment_id,
                Summary.program_name,
                Result.clip,
                Result.clip_sha256,
                Result.quality,
                Result.kbps,
                Result.psnr_y,
            )
            .join(Summary, Summary.experiment_id == Result.experiment_id)
            .where(Summary.leaderboard_bd_rate.is_not(None))
            .order_by(Summary.created_at.desc())
        )
        with self._errors("cannot read experiments"), self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    @staticmethod
    def _best_bd_rate(connection: Any, encoder: str) -> Best | None:
        query = (
            select(HoldoutBdRate.bd_rate, HoldoutBdRate.experiment_id, Summary.program_name)
            .join(Summary, Summary.experiment_id == HoldoutBdRate.experiment_id)
            .where(HoldoutBdRate.encoder == encoder)
            .order_by(HoldoutBdRate.bd_rate, HoldoutBdRate.created_at)
            .limit(1)
        )
        return _best(connection.execute(query).first())

    def progress(
        self, *, campaign_id: str | None = None, campaigns: int = 10
    ) -> list[CampaignProgress]:
        """Per campaign (the ``campaigns`` started last, or one), its experiments' headline
        figures in iteration order: the overview's charts."""
        started = select(Campaign.id, Campaign.created_at).order_by(Campaign.created_at.desc())
        started = (
            started.where(Campaign.id == campaign_id) if campaign_id else started.limit(campaigns)
        )
        with self._errors("cannot read experiments"), self.engine.connect() as connection:
            chosen = dict(connection.execute(started).all())
            if campaign_id:
                chosen.setdefault(campaign_id, None)
            points = connection.execute(
                select(
                    Summary.campaign_id,
                    Summary.experiment_id,
                    Summary.iteration,
                    Summary.status,
                    Summary.program_name,
                    Summary.created_at,
                    Summary.headline_kbps.label("kbps"),
                    Summary.headline_psnr_y.label("psnr_y"),
                    Summary.headline_bd_rate_x265.label("bd_rate_x265"),
                    Summary.leaderboard_bd_rate,
                    Summary.leaderboard_anchor,
                    Experiment.stage,
                )
                .join(Experiment, Experiment.id == Summary.experiment_id)
                .where(Summary.campaign_id.in_(chosen))
                .order_by(Summary.iteration, Summary.created_at)
            ).mappings()
            series: dict[str, list[ProgressPoint]] = {key: [] for key in chosen}
            for point in points:
                series[point["campaign_id"]].append(ProgressPoint.model_validate(dict(point)))
        return [
            CampaignProgress(campaign_id=key, started_at=chosen[key], points=series[key])
            for key in chosen
        ]

    @staticmethod
    def _to_record(row: Experiment) -> ExperimentRecord:
        """The record from its rows, validated once as a whole: pydantic-core builds the
        nested models (rungs, frames, curves) from plain values, a quarter faster than
        building each one in Python (0.20 against 0.26 ms a record); the dashboard reads
        one or two records a page."""
        curves: dict[tuple[str, str], dict[str, Any]] = {}
        for b in row.baseline_rungs:
            curve = curves.setdefault(
                (b.encoder, b.clip_sha256),
                {
                    "encoder": b.encoder,
                    "version": b.version,
                    "settings": b.settings,
                    "clip_sha256": b.clip_sha256,
                    "rungs": [],
                },
            )
            curve["rungs"].append({**_rung_values(b), "crf": b.crf})
        baselines: dict[str, list[dict[str, Any]]] = {}
        for (encoder, _), curve in curves.items():
            baselines.setdefault(encoder, []).append(curve)
        return ExperimentRecord.model_validate(
            {
                "experiment_id": row.id,
                "campaign_id": row.campaign_id,
                "iteration": row.iteration,
                "status": row.status,
                "phase": row.phase,
                "error": row.error,
                "program_sha256": row.program_sha256,
                "program_name": row.program.name,
                "parent_sha256": row.program.parent_sha256,
                "designer": row.designer,
                "reasoning": row.reasoning,
                "isolation": row.isolation,
                "source_bytes": row.source_bytes,
                "qualities": row.qualities,
                "clips": row.clips,
                "results": [
                    {
                        **_rung_values(x),
                        "quality": x.quality,
                        "clip_sha256": x.clip_sha256,
                        "bitstream_sha256": x.bitstream_sha256,
                        "decoded_sha256": x.decoded_sha256,
                        "per_frame": x.per_frame,
                    }
                    for x in row.results
                ],
                "baselines": baselines,
                "bd_rate": row.bd_rate or {},
                "bd_rate_train": row.bd_rate_train or {},
                "bd_rate_holdout": row.bd_rate_holdout or {},
                "bd_rate_wide": row.bd_rate_wide or {},
                "test_set": row.test_set,
                "holdout_is_train": bool(row.holdout_is_train),
                "stage": row.stage,
                "screen": row.screen or None,
                "gate": row.gate or None,
                "target": row.target or None,
                "phases": [
                    {"name": p.name, "status": p.status, "seconds": p.seconds, "error": p.error}
                    for p in row.phases
                ],
                "artifacts": row.artifacts,
                "versions": row.versions,
                "created_at": row.created_at,
            }
        )


def _best(row: Any) -> Best | None:
    """A (value, experiment id, program name[, clip]) row as :class:`Best`."""
    if row is None:
        return None
    return Best(
        value=row[0],
        experiment_id=row[1],
        program_name=row[2],
        clip=row[3] if len(row) > 3 else None,
    )
