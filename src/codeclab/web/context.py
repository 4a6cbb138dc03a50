"""What every dashboard route shares: the stores, the templates and artifact links."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from codeclab.config import Settings
from codeclab.evaluate.bdrate import describe_range
from codeclab.record import ExperimentRecord
from codeclab.store import links
from codeclab.store.artifacts import (
    ArtifactError,
    ArtifactStore,
    LocalArtifactStore,
)
from codeclab.store.db import ExperimentStore
from codeclab.store.factory import open_artifact_store, open_experiment_store
from codeclab.store.summary import ExperimentSummary
from codeclab.web.campaigns import CampaignProcess

HERE = Path(__file__).parent
PAGE_SIZE = 10
Listed = ExperimentRecord | ExperimentSummary  # what lists, posts and the page show
DOWNLOADS = ("reconstructed", "decoder", "package", "program")


def better_worse(value: float | None) -> str:
    """A BD-rate in words: negative means fewer bits than the baseline for the same quality."""
    if value is None:
        return ""
    if value < 0:
        return "better"
    if value > 0:
        return "worse"
    return "equal"


def bd_note(value: float | None, encoder: str) -> str:
    """A BD-rate in a sentence that cannot be misread: which way, and how many bits."""
    if value is None:
        return "no BD-rate"
    over = f"over the {describe_range(encoder)}"
    if value < 0:
        return f"better: {-value:.2f}% fewer bits than {encoder} for the same PSNR-Y, {over}"
    if value > 0:
        return f"worse: {value:.2f}% more bits than {encoder} for the same PSNR-Y, {over}"
    return f"equal: as many bits as {encoder} for the same PSNR-Y, {over}"


def fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:{spec}}{suffix}"


def pages_for(total: int) -> int:
    return max(1, math.ceil(total / PAGE_SIZE))


def _trim(kept: OrderedDict, size: int) -> None:
    """Drop the entries made longest ago beyond ``size`` (threads share ``kept``)."""
    while len(kept) > size:
        with contextlib.suppress(KeyError):  # another thread emptied it meanwhile
            kept.popitem(last=False)


@dataclass
class Memo:
    """Query results kept while the store holds as many experiments as when they were made.

    Experiments are only ever added, so their count (one cheap query) says when the
    overview's figures, a blog page or a program's history are stale; ``max_age`` bounds
    what the count cannot see (an artifact deleted or re-created, links drawing near their
    expiry). The entries made longest ago go first when ``size`` is reached.
    """

    max_age: float = 30.0
    size: int = 256
    _kept: OrderedDict[Hashable, tuple[int, float, Any]] = field(default_factory=OrderedDict)

    def get(self, key: Hashable, version: int, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[0] == version and now - kept[1] < self.max_age:
            return kept[2]
        value = compute()
        self._kept.pop(key, None)
        self._kept[key] = (version, now, value)  # last: the newest
        _trim(self._kept, self.size)
        return value


@dataclass
class Records:
    """Parsed records by experiment id, the ``size`` used last. A stored experiment never
    changes, and one page view reads its record several times (the page, its charts' JSON,
    the program frame, each picture of the stepper), as comparisons read the best experiment
    or a parent again and again; reading one from the store took about 1 ms. Records are
    shared between requests: nothing may change one."""

    size: int = 32  # a record with many clips and frames holds a few MB of metrics
    _kept: OrderedDict[str, ExperimentRecord] = field(default_factory=OrderedDict)

    def get(
        self, experiment_id: str, load: Callable[[str], ExperimentRecord | None]
    ) -> ExperimentRecord | None:
        """The record ``experiment_id`` names (a full id, or a prefix ``load`` resolves)."""
        record = self._kept.get(experiment_id)
        if record is not None:
            with contextlib.suppress(KeyError):  # another thread dropped it meanwhile
                self._kept.move_to_end(experiment_id)
            return record
        record = load(experiment_id)
        if record is not None:  # kept by its full id: a prefix may name another one later
            self._kept[record.experiment_id] = record
            _trim(self._kept, self.size)
        return record


@dataclass
class Page:
    """A rendered page, its ETag, and the revision of the store it was made from."""

    body: bytes
    etag: str
    revision: int
    made: float


@dataclass
class PageCache:
    """Rendered pages, kept while the store's revision (its count of experiments) stays the
    same: a stored experiment never changes, so its page, a comparison or a page of the
    blog only goes stale when experiments are added, or through what the count cannot see
    (artifacts published or removed later, links nearing their expiry), which ``max_age``
    bounds. Each page has an ETag: a browser that has it gets ``304 Not Modified``."""

    max_age: float = 30.0
    size: int = 512  # pages of 10-20 kB: a few MB per server process
    _kept: OrderedDict[Hashable, Page] = field(default_factory=OrderedDict)

    def respond(
        self, request: Request, key: Hashable, revision: int, render: Callable[[int], Response]
    ) -> Response:
        """The kept page for ``key`` (rendered now, for ``revision``, when missing or stale),
        or a 304."""
        now = time.monotonic()
        page = self._kept.get(key)
        if page is None or page.revision != revision or now - page.made >= self.max_age:
            body = bytes(render(revision).body)
            etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
            page = Page(body, etag, revision, now)
            self._kept.pop(key, None)
            self._kept[key] = page
            _trim(self._kept, self.size)
        headers = {"ETag": page.etag, "Cache-Control": "no-cache"}  # revalidate each time
        if page.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(page.body, media_type="text/html", headers=headers)


@dataclass
class Dashboard:
    settings: Settings
    store: ExperimentStore
    artifacts: ArtifactStore
    templates: Jinja2Templates
    secret: bytes | None  # the HMAC key of local links; None with S3 (presigned URLs)
    campaigns: CampaignProcess
    memo: Memo = field(default_factory=Memo)
    pages: PageCache = field(default_factory=PageCache)
    records: Records = field(default_factory=Records)

    @classmethod
    def open(cls, settings: Settings) -> Dashboard:
        settings.home.mkdir(parents=True, exist_ok=True)
        store = open_experiment_store(settings.db_url, outbox_dir=settings.outbox_dir)
        artifacts = open_artifact_store(settings)
        secret: bytes | None = None
        if isinstance(artifacts, LocalArtifactStore):
            configured = settings.link_secret.get_secret_value() if settings.link_secret else None
            # the secret LocalArtifactStore.link signs with: configured, else home's link-secret
            secret = links.load_secret(artifacts.root.parent, configured)
            artifacts._secret = secret
        env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            auto_reload=False,  # no stat of every template file on every page
        )
        # filters, not globals: Jinja calls a global through Context.call, twice as slow
        env.filters.update(fmt=fmt, better_worse=better_worse, bd_note=bd_note)
        templates = Jinja2Templates(env=env)
        return cls(settings, store, artifacts, templates, secret, CampaignProcess(settings))

    def count(self) -> int:
        """How many experiments the store holds: the version of everything derived from them."""
        return self.store.page(limit=0)[0]

    def page(self, request: Request, key: Hashable, render: Callable[[int], Response]) -> Response:
        """A page from :class:`PageCache`, checked against the count of experiments (which
        ``render`` gets, to key what it reads from the store by)."""
        return self.pages.respond(request, key, self.count(), render)

    def newest(
        self, page: int = 1, status: str | None = None, campaign: str | None = None
    ) -> tuple[int, list[ExperimentSummary]]:
        """(how many, the summaries of page ``page``), newest first: one indexed query."""
        return self.store.page(
            status=status or None,
            campaign_id=campaign or None,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )

    def get_record(self, experiment_id: str) -> ExperimentRecord:
        record = self.records.get(experiment_id, self.store.get)
        if record is None:
            raise HTTPException(404, f"no experiment {experiment_id!r}")
        return record

    def key_for(self, record: Listed, kind: str) -> str | None:
        """The store key of an artifact of ``record`` (``None`` when it was not published)."""
        location = getattr(record.artifacts, kind)
        if location:
            try:
                return self.artifacts.key_of(location)
            except (ArtifactError, ValueError):
                return None
        if kind == "program":
            return f"programs/{record.program_sha256}.py"
        return None

    def link_for(self, key: str | None) -> str | None:
        """An expiring link to the artifact ``key``; None when it is not in the store."""
        if key is None:
            return None
        try:
            if not self.artifacts.exists(key):
                return None
            if self.secret is not None:  # local: exists() checked the key as link() would
                # again (a path resolved per check: the experiment page resolves dozens)
                return links.local_url(key, self.settings.link_ttl, self.secret)
            return self.artifacts.link(key)
        except (ArtifactError, links.LinkError):
            return None

    def downloads(
        self, record: Listed, kinds: tuple[str, ...] = DOWNLOADS, bitstreams: bool = True
    ) -> dict[str, Any]:
        """Expiring links to the record's artifacts that are in the store (None: absent)."""
        found: dict[str, Any] = {kind: self.link_for(self.key_for(record, kind)) for kind in kinds}
        found["bitstreams"] = self._bitstream_links(record) if bitstreams else []
        found["expires"] = datetime.fromtimestamp(time.time() + self.settings.link_ttl, UTC)
        return found

    def _bitstream_links(self, record: Listed) -> list[tuple[str, str | None]]:
        bitstreams = []
        for location in record.artifacts.bitstreams:
            try:
                key = self.artifacts.key_of(location)
            except (ArtifactError, ValueError):
                continue
            bitstreams.append((key.rsplit("/", 1)[-1], self.link_for(key)))
        return bitstreams

    @staticmethod
    def summary(record: Listed) -> dict[str, Any]:
        return {"record": record, "head": record.headline()}
