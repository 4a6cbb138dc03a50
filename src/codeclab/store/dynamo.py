"""Experiment store on Amazon DynamoDB, for deployments that follow the seed's AWS layout.

The same methods as :class:`codeclab.store.db.ExperimentStore`, over one table in a
single-table design; docs/dynamodb.md describes the keys, the indexes and the queries they
serve. In short:

- ``PK=EXP#<id>, SK=HEADER``: the experiment's fields as attributes (nested models as maps,
  floats as numbers); written last, in a transaction: the header is what makes an
  experiment visible, so a reader never sees half of one.
- ``PK=EXP#<id>, SK=RESULT#<wid>#<n>`` / ``BASELINE#<wid>#<n>`` / ``PHASE#<wid>#<n>``: one
  item per result (clip and quality), per baseline curve and per phase. ``wid`` names the
  write: a reader takes only the children whose ``wid`` is the header's.
- ``PK=PROGRAM#<sha256>, SK=PROGRAM``: a program's source and lineage (``parent_sha256``);
  ``SK=RUN#<created_at>#<experiment id>``: an experiment that ran it (version histories).
- ``PK=CAMPAIGN#<id>, SK=META``: a campaign; ``SK=ITER#<n>`` claims an iteration once.
- ``PK=EXP#<id>, SK=RANK#<figure>``: a successful experiment's place in a ranking (its
  holdout BD-rate per baseline, its leaderboard BD-rate, its bitrate at x265's quality),
  sorted in ``GSI2`` so a best value or a top ten is one Query.
- ``PK=STATS, SK=TOTALS`` / ``SK=CAMPAIGN#<id>``: counters (experiments by status, LLM
  spend) that each save adds to in its transaction: counts without reading every header.

Credentials come only from the standard AWS chain (environment, config files, instance
roles); nothing here prints or stores them. Importing this module needs boto3 (the
``aws`` extra): the store factory reads an ImportError as "DynamoDB not available".

When DynamoDB cannot take a finished experiment (the endpoint is unreachable, requests
are throttled after botocore's retries, the service fails or refuses the request), the
experiment is kept in the outbox (:mod:`codeclab.store.outbox`) and written, once, when
the store is back; a request DynamoDB calls invalid is an error, not kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    WaiterError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from codeclab.record import (
    BaselineCurve,
    ExperimentRecord,
    FrameMetrics,
    PhaseRecord,
    RungResult,
    utcnow,
)
from codeclab.store.db import StoreError, StoreUnavailable
from codeclab.store.outbox import Outbox, default_outbox_dir
from codeclab.store.summary import (
    BASELINE_ENCODERS,
    STATUSES,
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

ENDPOINT_ENV = "CODECLAB_DYNAMODB_ENDPOINT_URL"
TABLE_SUFFIX = "codeclab"
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's limit for TransactWriteItems
MAX_TRANSACTION_BYTES = 3_500_000  # under the 4 MB limit, leaving room for our size estimate
MAX_PER_FRAME_BYTES = 300_000  # items are limited to 400 KB; larger per-frame data is packed
INDEXES = {  # index name -> (partition key, sort key); every key attribute is a string
    "GSI1": ("GSI1PK", "GSI1SK"),  # all experiments / campaigns / programs by time
    "GSI2": ("GSI2PK", "GSI2SK"),  # a campaign's experiments by iteration; a program's children
    "GSI3": ("GSI3PK", "GSI3SK"),  # experiments by status, by time
    "GSI4": ("GSI4PK", "GSI4SK"),  # experiments by id prefix
}
ID_BUCKET = 2  # characters of the id in GSI4PK: prefixes at least this long are one Query
FRAME_FIELDS = tuple(FrameMetrics.model_fields)
SUMMARY_ATTRIBUTES = tuple(ExperimentSummary.model_fields)
PROGRESS_ATTRIBUTES = (
    *("experiment_id", "iteration", "status", "program_name", "created_at"),
    *("headline_kbps", "headline_psnr_y", "headline_bd_rate_x265"),
    *("leaderboard_bd_rate", "leaderboard_anchor", "stage"),
)
RUNG_ATTRIBUTES = ("clip", "clip_sha256", "quality", "kbps", "psnr_y")  # a frontier's rung
COUNTERS = ("llm_calls", "llm_input_tokens", "llm_output_tokens", "llm_cost_usd")
CONFLICT_RETRIES = 4  # a transaction cancelled by a concurrent one (the shared counters)
STATS = "STATS"  # the partition of the counters and of the summaries' version marker
# error codes that say the service, not this request, is the problem (after retries)
DOWN_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalFailure",
        # credentials that stopped working stop every write alike
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "AccessDeniedException",
        "MissingAuthenticationTokenException",
    }
)
# error codes that say this request is wrong: retrying it cannot help, so nothing is kept
INVALID_CODES = frozenset({"ValidationException", "SerializationException"})


@dataclass
class DynamoCampaign:
    """A campaign as ``latest_campaign`` returns it (the attributes the SQL row has)."""

    id: str
    designer: str
    seed: int
    iterations: int
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


# --- values -------------------------------------------------------------------------------


def to_dynamo(value: Any) -> Any:
    """A Python value as boto3's serializer takes it: numbers as Decimal, tuples as lists.

    Floats go through ``repr`` so they come back bit for bit; DynamoDB has no NaN or
    infinity, which are kept as ``{"__float__": "nan"}``.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, dict):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    raise StoreError(f"cannot store a value of type {type(value).__name__} in DynamoDB")


def from_dynamo(value: Any) -> Any:
    """The inverse of :func:`to_dynamo`: integral numbers as int, others as float.

    DynamoDB normalises numbers (``30.0`` comes back as ``30``); the record's models turn
    such ints back into floats where a float is declared.
    """
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if hasattr(value, "value") and type(value).__name__ == "Binary":
        return bytes(value.value)
    return value


def _size(item: dict[str, Any]) -> int:
    """A generous estimate of an item's size as DynamoDB counts it."""
    return len(json.dumps(item, default=str)) + 100


def _time_key(created_at: datetime, unique: str) -> str:
    return f"{created_at.isoformat()}#{unique}"


def _sortable(value: float) -> str:
    """A finite float as 16 hex digits that sort as the numbers do (index keys are strings):
    the IEEE 754 bits, with the sign bit flipped for positives and every bit for negatives."""
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | 1 << 63
    return f"{bits:016x}"


def _rankings(
    record: ExperimentRecord, summary: dict[str, Any]
) -> dict[str, tuple[float, str | None]]:
    """The rankings a record enters: name -> (value, clip); lower is better in each."""
    ranks: dict[str, tuple[float, str | None]] = {
        f"bd#{encoder}": (value, None) for encoder, value in holdout_bd_rates(record).items()
    }
    if summary["leaderboard_bd_rate"] is not None:
        ranks["leaderboard"] = (summary["leaderboard_bd_rate"], None)
    if summary["x265_quality_kbps"] is not None:
        ranks["x265-quality-kbps"] = (summary["x265_quality_kbps"], summary["x265_quality_clip"])
    return {name: rank for name, rank in ranks.items() if math.isfinite(rank[0])}


# --- the store -----------------------------------------------------------------------------


class DynamoStore:
    """Reads and writes experiment records in one DynamoDB table (created when missing)."""

    def __init__(
        self,
        table_prefix: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        outbox_dir: Path | str | None = None,
    ) -> None:
        if not table_prefix:
            raise StoreError("a DynamoDB store needs a table prefix: dynamodb://PREFIX")
        self.table = f"{table_prefix}-{TABLE_SUFFIX}"
        session = boto3.session.Session(region_name=region)
        self.region = session.region_name
        if not self.region:
            raise StoreError(
                "no AWS region for the DynamoDB store: add ?region=... to the URL "
                "or set AWS_DEFAULT_REGION"
            )
        self.endpoint_url = endpoint_url
        where = f" at {endpoint_url}" if endpoint_url else ""
        self.url = f"dynamodb://{table_prefix}?region={self.region}"  # safe to print
        self._where = f"DynamoDB table {self.table} ({self.region}{where})"
        self.outbox_dir = Path(outbox_dir) if outbox_dir else default_outbox_dir()
        self.outbox = Outbox(self.outbox_dir, self.url)
        self._serializer, self._deserializer = TypeSerializer(), TypeDeserializer()
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
        )
        self._session = session
        try:
            self.client = session.client("dynamodb", endpoint_url=endpoint_url, config=config)
        except Exception as exc:  # botocore raises several unrelated types here
            raise StoreError(f"cannot open the experiment store {self._where}: {exc}") from exc
        with self._errors("cannot open the experiment store"):
            self._ensure_table()
            self._summarize_old()

    @classmethod
    def from_url(cls, url: str, *, outbox_dir: Path | str | None = None) -> DynamoStore:
        """``dynamodb://TABLE_PREFIX?region=eu-west-1``; the endpoint may come from
        ``CODECLAB_DYNAMODB_ENDPOINT_URL`` (moto, DynamoDB Local).

        ``outbox_dir`` keeps experiments DynamoDB could not take (by default
        ``$CODECLAB_HOME/outbox``)."""
        parts = urlsplit(url)
        if parts.scheme != "dynamodb":
            raise StoreError(f"not a DynamoDB store URL: {parts.scheme}://...")
        query = parse_qs(parts.query)
        region = query.get("region", [None])[0]
        endpoint = os.environ.get(ENDPOINT_ENV) or None
        return cls(
            parts.netloc + parts.path.rstrip("/"),
            region=region,
            endpoint_url=endpoint,
            outbox_dir=outbox_dir,
        )

    # --- errors ------------------------------------------------------------------------

    def _scrub(self, message: str) -> str:
        """The message without any part of the credentials in use, should AWS echo one."""
        try:
            credentials = self._session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials else None
        except Exception:  # noqa: BLE001 - a message is being built for another error
            frozen = None
        for secret in (frozen.access_key, frozen.secret_key, frozen.token) if frozen else ():
            if secret:
                message = message.replace(secret, "***")
        return message

    def _errors(self, doing: str) -> _ErrorScope:
        return _ErrorScope(self, doing)

    # --- table ---------------------------------------------------------------------------

    def _ensure_table(self) -> None:
        client = self.client
        try:
            description = client.describe_table(TableName=self.table)["Table"]
        except client.exceptions.ResourceNotFoundException:
            description = None
        if description is None:
            attributes = [("PK", "S"), ("SK", "S")] + [
                (key, "S") for keys in INDEXES.values() for key in keys
            ]
            # ResourceInUse: another process created it a moment ago
            with contextlib.suppress(client.exceptions.ResourceInUseException):
                client.create_table(
                    TableName=self.table,
                    BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[
                        {"AttributeName": name, "AttributeType": kind} for name, kind in attributes
                    ],
                    KeySchema=[
                        {"AttributeName": "PK", "KeyType": "HASH"},
                        {"AttributeName": "SK", "KeyType": "RANGE"},
                    ],
                    GlobalSecondaryIndexes=[
                        {
                            "IndexName": name,
                            "KeySchema": [
                                {"AttributeName": pk, "KeyType": "HASH"},
                                {"AttributeName": sk, "KeyType": "RANGE"},
                            ],
                            "Projection": {"ProjectionType": "ALL"},
                        }
                        for name, (pk, sk) in INDEXES.items()
                    ],
                )
            client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 2, "MaxAttempts": 90}
            )
            description = client.describe_table(TableName=self.table)["Table"]
        present = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
        missing = sorted(set(INDEXES) - present)
        if missing:
            raise StoreError(
                f"{self._where} exists but lacks the indexes {', '.join(missing)} "
                "(see docs/dynamodb.md)"
            )

    # --- low level -----------------------------------------------------------------------

    def _ser(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._serializer.serialize(to_dynamo(v)) for k, v in item.items()}

    def _de(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: from_dynamo(self._deserializer.deserialize(v)) for k, v in item.items()}

    def _get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table, Key=self._ser({"PK": pk, "SK": sk}), ConsistentRead=True
        )
        return self._de(response["Item"]) if "Item" in response else None

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item a Query returns, following its pages."""
        kwargs = {"TableName": self.table, **kwargs}
        while True:
            response = self.client.query(**kwargs)
            for item in response.get("Items", []):
                yield self._de(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _query_index(
        self,
        index: str,
        partition: str,
        *,
        newest_first: bool = False,
        sort_prefix: str | None = None,
        limit: int | None = None,
        attributes: tuple[str, ...] = (),
        status: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Items of one partition of an index, in sort-key order (the dashboard's queries):
        only ``attributes`` when given, only experiments of ``status`` when given."""
        pk, sk = INDEXES[index]
        condition = "#pk = :pk"
        names, values = {"#pk": pk}, {":pk": partition}
        if sort_prefix is not None:
            condition += " AND begins_with(#sk, :sk)"
            names["#sk"], values[":sk"] = sk, sort_prefix
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ScanIndexForward": not newest_first,
        }
        if attributes:
            projected = {f"#p{n}": name for n, name in enumerate(attributes)}
            names |= projected
            kwargs["ProjectionExpression"] = ", ".join(projected)
        if status is not None:  # applied after Limit by DynamoDB: we stop at ``limit`` ourselves
            names["#status"], values[":status"] = "status", status
            kwargs["FilterExpression"] = "#status = :status"
        elif limit:
            kwargs["Limit"] = limit
        kwargs |= {
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": self._ser(values),
        }
        for n, item in enumerate(self._query(**kwargs), start=1):
            yield item
            if limit and n >= limit:
                return

    def _transact(self, items: list[dict[str, Any]]) -> None:
        self.client.transact_write_items(TransactItems=items)

    # --- campaigns -----------------------------------------------------------------------

    def add_campaign(
        self, campaign_id: str, designer: str, seed: int, iterations: int, settings: dict[str, Any]
    ) -> None:
        """Create the campaign, or update its settings (its start time stays the first)."""
        self.flush_outbox()
        now = utcnow()
        update = _update_expression(
            {
                "type": "campaign",
                "id": campaign_id,
                "designer": designer,
                "seed": seed,
                "iterations": iterations,
                "settings": settings,
                "GSI1PK": "CAMPAIGN",
            },
            keep_first={"created_at": now.isoformat(), "GSI1SK": _time_key(now, campaign_id)},
        )
        with self._errors("cannot write to the experiment store"):
            self.client.update_item(
                TableName=self.table,
                Key=self._ser({"PK": f"CAMPAIGN#{campaign_id}", "SK": "META"}),
                UpdateExpression=update["UpdateExpression"],
                ExpressionAttributeNames=update["ExpressionAttributeNames"],
                ExpressionAttributeValues=self._ser(update["ExpressionAttributeValues"]),
            )

    def latest_campaign(self) -> DynamoCampaign | None:
        """The most recently started campaign, to resume (its kept experiments written first)."""
        self.flush_outbox()
        with self._errors("cannot read the experiment store"):
            for item in self._query_index("GSI1", "CAMPAIGN", newest_first=True, limit=1):
                return DynamoCampaign(
                    id=item["id"],
                    designer=item["designer"],
                    seed=item["seed"],
                    iterations=item["iterations"],
                    settings=item.get("settings") or {},
                    created_at=datetime.fromisoformat(item["created_at"]),
                )
        return None

    # --- writing -------------------------------------------------------------------------

    def save(self, record: ExperimentRecord, source: str) -> None:
        """Write the program (once, by hash) and the whole experiment, visible all at once.

        Idempotent by experiment id; a second experiment for a campaign's iteration is
        refused with :class:`StoreError`. When DynamoDB is unreachable or cannot take the
        write, the experiment is kept in the outbox and :class:`StoreUnavailable` says where;
        it is written by the next ``save`` (or ``flush_outbox``) that gets through.
        """
        self.flush_outbox()
        try:
            self._save(record, source)
        except (ClientError, BotoCoreError) as exc:
            if not _unavailable(exc):
                with self._errors("cannot write to the experiment store"):
                    raise
            reason = self._scrub(_reason(exc))
            try:
                kept = self.outbox.keep(record, source, reason)
            except OSError as io_error:
                raise StoreError(
                    f"cannot write to the experiment store {self._where} ({reason}) nor keep "
                    f"experiment {record.experiment_id} in {self.outbox_dir}: {io_error}"
                ) from exc
            raise StoreUnavailable(
                f"cannot write to the experiment store {self._where}: {reason}; experiment "
                f"{record.experiment_id} is kept in {kept} and will be written when the "
                "store is back"
            ) from exc

    # --- the outbox ----------------------------------------------------------------------

    def pending(self) -> list[Path]:
        """Experiments kept in the outbox, waiting for the store."""
        return self.outbox.pending()

    def flush_outbox(self) -> int:
        """Write the experiments kept in the outbox; returns how many were written.

        Stops quietly while DynamoDB is still away (the caller's own request then reports
        it). An experiment the store rejects for good (its campaign iteration was taken
        meanwhile) moves to ``outbox/rejected``.
        """
        return self.outbox.flush(
            self._save, failures=(ClientError, BotoCoreError), is_down=_down, rejected=StoreError
        )

    def _save(self, record: ExperimentRecord, source: str) -> None:
        pk = f"EXP#{record.experiment_id}"
        if self._get_item(pk, "HEADER") is not None:
            return  # idempotent: a resumed campaign may offer the same experiment again
        claim = self._claim_key(record)
        if claim is not None:
            holder = self._get_item(*claim)
            if holder is not None:
                if holder.get("experiment_id") == record.experiment_id:
                    return
                raise StoreError(
                    f"campaign {record.campaign_id} already has iteration {record.iteration}"
                )
        wid = hashlib.sha256(record.model_dump_json().encode()).hexdigest()[:16]
        children = self._children(record, pk, wid)
        final = [self._program_update(record, source)]
        if claim is not None:
            final.append(
                self._put(
                    {
                        "PK": claim[0],
                        "SK": claim[1],
                        "type": "iteration",
                        "experiment_id": record.experiment_id,
                    }
                )
            )
        header = self._header(record, pk, wid, children)
        final.append(self._put(header))
        final += self._summary_writes(record, header)
        sizes = [_size(c) for c in children]
        if (
            len(final) + len(children) <= MAX_TRANSACTION_ITEMS
            and sum(sizes) + _size(header) + len(source) <= MAX_TRANSACTION_BYTES
        ):
            batches: list[list[dict[str, Any]]] = []
            final = [{"Put": {"TableName": self.table, "Item": self._ser(c)}} for c in children] + (
                final
            )
        else:  # children first, in as many transactions as it takes; the header last
            batches = [[]]
            batch_bytes = 0
            for child, size in zip(children, sizes, strict=True):
                if batches[-1] and (
                    len(batches[-1]) >= MAX_TRANSACTION_ITEMS
                    or batch_bytes + size > MAX_TRANSACTION_BYTES
                ):
                    batches.append([])
                    batch_bytes = 0
                batches[-1].append({"Put": {"TableName": self.table, "Item": self._ser(child)}})
                batch_bytes += size
        for batch in batches:
            self._transact(batch)
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                self._transact(final)
                return
            except self.client.exceptions.TransactionCanceledException as exc:
                if not _conflict(exc) or attempt == CONFLICT_RETRIES:
                    self._after_cancel(record, pk, wid, claim, children if batches else [], exc)
                    return
                time.sleep(0.05 * 2**attempt)  # another save updated the counters meanwhile

    def _after_cancel(
        self,
        record: ExperimentRecord,
        pk: str,
        wid: str,
        claim: tuple[str, str] | None,
        written: list[dict[str, Any]],
        exc: Exception,
    ) -> None:
        """A conditional write failed: someone saved this experiment, or took its iteration."""
        header = self._get_item(pk, "HEADER")
        if header is not None:
            if header.get("wid") != wid:
                self._delete(written)
            return  # saved meanwhile by another writer: nothing to do
        holder = self._get_item(*claim) if claim else None
        if holder is not None and holder.get("experiment_id") != record.experiment_id:
            self._delete(written)
            raise StoreError(
                f"campaign {record.campaign_id} already has iteration {record.iteration}"
            ) from exc
        raise exc

    def _delete(self, children: list[dict[str, Any]]) -> None:
        """Remove the children of a write that lost (best effort: they are invisible anyway)."""
        for child in children:
            try:
                self.client.delete_item(
                    TableName=self.table, Key=self._ser({"PK": child["PK"], "SK": child["SK"]})
                )
            except Exception:  # noqa: BLE001,S112 - orphans are harmless, see docs
                continue

    @staticmethod
    def _claim_key(record: ExperimentRecord) -> tuple[str, str] | None:
        if record.campaign_id is None or record.iteration is None:
            return None
        return f"CAMPAIGN#{record.campaign_id}", f"ITER#{record.iteration:010d}"

    def _put(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": self._ser(item),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    def _program_update(self, record: ExperimentRecord, source: str) -> dict[str, Any]:
        """Programs are shared by hash: the first writer's fields stay (no overwrite)."""
        sha, now = record.program_sha256, record.created_at
        values: dict[str, Any] = {
            "type": "program",
            "sha256": sha,
            "name": record.program_name,
            "source": source,
            "designer": record.designer,
            "created_at": now.isoformat(),
            "GSI1PK": "PROGRAM",
            "GSI1SK": _time_key(now, sha),
        }
        if record.parent_sha256 is not None:
            values |= {
                "parent_sha256": record.parent_sha256,
                "GSI2PK": f"PARENT#{record.parent_sha256}",
                "GSI2SK": _time_key(now, sha),
            }
        update = _update_expression({}, keep_first=values)
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._ser({"PK": f"PROGRAM#{sha}", "SK": "PROGRAM"}),
                "UpdateExpression": update["UpdateExpression"],
                "ExpressionAttributeNames": update["ExpressionAttributeNames"],
                "ExpressionAttributeValues": self._ser(update["ExpressionAttributeValues"]),
            }
        }

    def _header(
        self, r: ExperimentRecord, pk: str, wid: str, children: list[dict[str, Any]]
    ) -> dict[str, Any]:
        fields = r.model_dump(mode="python", exclude={"results", "baselines", "phases"})
        fields["created_at"] = r.created_at.isoformat()
        time_key = _time_key(r.created_at, r.experiment_id)
        header = {
            **fields,
            "PK": pk,
            "SK": "HEADER",
            "type": "experiment",
            "wid": wid,
            "children": len(children),
            "baseline_encoders": sorted(r.baselines),
            **summarize(r),
            "GSI1PK": "EXP",
            "GSI1SK": time_key,
            "GSI3PK": f"STATUS#{r.status}",
            "GSI3SK": time_key,
            "GSI4PK": f"IDP#{r.experiment_id[:ID_BUCKET]}",
            "GSI4SK": r.experiment_id,
        }
        if r.campaign_id is not None:
            order = f"{r.iteration:010d}" if r.iteration is not None else f"~{time_key}"
            header |= {"GSI2PK": f"CAMPAIGN#{r.campaign_id}", "GSI2SK": f"ITER#{order}"}
        return header

    def _summary_writes(
        self,
        record: ExperimentRecord,
        summary: dict[str, Any],
        previous: dict[str, Any] | None = None,
        stale_ranks: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        """The rank items and counter updates that go with a summary, in its transaction.

        ``previous``: the summary the header had (re-summarizing), already counted: only
        the change is added. ``stale_ranks``: rank items of that summary to delete.
        """
        pk = f"EXP#{record.experiment_id}"
        time_key = _time_key(record.created_at, record.experiment_id)
        ranks = _rankings(record, summary)
        writes: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": self._ser(
                        {
                            "PK": pk,
                            "SK": f"RANK#{name}",
                            "type": "rank",
                            "experiment_id": record.experiment_id,
                            "program_name": record.program_name,
                            "value": value,
                            "clip": clip,
                            "GSI2PK": f"RANK#{name}",
                            "GSI2SK": f"{_sortable(value)}#{time_key}",
                            **({"rungs": _rungs(record)} if name == "leaderboard" else {}),
                        }
                    ),
                }
            }
            for name, (value, clip) in ranks.items()
        ]
        writes += [
            {"Delete": {"TableName": self.table, "Key": self._ser({"PK": pk, "SK": sk})}}
            for sk in stale_ranks
            if sk.removeprefix("RANK#") not in ranks
        ]
        writes.append(  # the program's partition lists the experiments that ran it
            {
                "Put": {
                    "TableName": self.table,
                    "Item": self._ser(
                        {
                            "PK": f"PROGRAM#{record.program_sha256}",
                            "SK": f"RUN#{time_key}",
                            "type": "run",
                            "experiment_id": record.experiment_id,
                            "campaign_id": record.campaign_id,
                            "iteration": record.iteration,
                            "status": record.status,
                            "program_name": record.program_name,
                            "created_at": record.created_at.isoformat(),
                        }
                    ),
                }
            }
        )
        counts = _counts(summary, record.status)
        if previous is not None:
            before = _counts(previous, record.status)
            counts = {name: counts[name] - before[name] for name in counts}
        for sk in ("TOTALS", *([f"CAMPAIGN#{record.campaign_id}"] if record.campaign_id else [])):
            update = _add_expression(counts)
            writes.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": self._ser({"PK": STATS, "SK": sk}),
                        **update,
                        "ExpressionAttributeValues": self._ser(update["ExpressionAttributeValues"]),
                    }
                }
            )
        return writes

    # --- summaries of experiments written before them ------------------------------------

    def _summarize_old(self) -> None:
        """Summarize the experiments written before summaries existed (or under an older
        version), once per table: a marker item says it is done."""
        marker = self._get_item(STATS, "SUMMARIES")
        if marker is not None and marker.get("version", 0) >= SUMMARY_VERSION:
            return
        headers = self._query_index("GSI1", "EXP", attributes=("experiment_id", "summary_version"))
        for item in list(headers):
            if (item.get("summary_version") or 0) < SUMMARY_VERSION:
                self._resummarize(item["experiment_id"])
        self.client.put_item(
            TableName=self.table,
            Item=self._ser({"PK": STATS, "SK": "SUMMARIES", "version": SUMMARY_VERSION}),
        )

    def _resummarize(self, experiment_id: str) -> None:
        pk = f"EXP#{experiment_id}"
        header, record = self._get_item(pk, "HEADER"), self._load(experiment_id)
        if header is None or record is None:
            return
        summary = summarize(record)
        old_version = header.get("summary_version")
        stale = tuple(
            item["SK"]
            for item in self._query(
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :rank)",
                ExpressionAttributeNames={"#pk": "PK", "#sk": "SK"},
                ExpressionAttributeValues=self._ser({":pk": pk, ":rank": "RANK#"}),
                ProjectionExpression="#sk",
            )
        )
        update = _update_expression(summary)
        names = update["ExpressionAttributeNames"] | {"#version": "summary_version"}
        values = update["ExpressionAttributeValues"]
        condition = "attribute_exists(PK) AND attribute_not_exists(#version)"
        if old_version is not None:
            condition = "attribute_exists(PK) AND #version = :old_version"
            values = values | {":old_version": old_version}
        header_update = {
            "Update": {
                "TableName": self.table,
                "Key": self._ser({"PK": pk, "SK": "HEADER"}),
                "UpdateExpression": update["UpdateExpression"],
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": self._ser(values),
            }
        }
        previous = header if old_version is not None else None
        writes = [header_update, *self._summary_writes(record, summary, previous, stale)]
        # cancelled: another process summarized it meanwhile
        with contextlib.suppress(self.client.exceptions.TransactionCanceledException):
            self._transact(writes)

    # --- the dashboard's queries: summaries, never whole records --------------------------

    def page(
        self,
        *,
        status: str | None = None,
        campaign_id: str | None = None,
        offset: int = 0,
        limit: int = 10,
    ) -> tuple[int, list[ExperimentSummary]]:
        """(how many match, the summaries of ``limit`` of them from ``offset``), newest first
        (within a campaign: by iteration, last first). Counts come from the counters."""
        if campaign_id:
            index, partition = "GSI2", f"CAMPAIGN#{campaign_id}"
        elif status:
            index, partition = "GSI3", f"STATUS#{status}"
        else:
            index, partition = "GSI1", "EXP"
        with self._errors("cannot read the experiment store"):
            counts = self._get_item(STATS, f"CAMPAIGN#{campaign_id}" if campaign_id else "TOTALS")
            items = self._query_index(
                index,
                partition,
                newest_first=True,
                limit=offset + limit,
                attributes=SUMMARY_ATTRIBUTES,
                status=status if campaign_id else None,
            )
            summaries = [_summary(item) for item in list(items)[offset:]] if limit > 0 else []
        total = (counts or {}).get(f"status_{status}" if status else "experiments", 0)
        return int(total), summaries

    def leaderboard(self, limit: int = 10) -> list[ExperimentSummary]:
        """The successful experiments with the lowest leaderboard BD-rate (holdout clips)."""
        with self._errors("cannot read the experiment store"):
            ranked = self._query_index("GSI2", "RANK#leaderboard", limit=limit)
            return self._summaries([item["experiment_id"] for item in ranked])

    def _summaries(self, experiment_ids: list[str]) -> list[ExperimentSummary]:
        """The headers' summaries, in the order of ``experiment_ids`` (BatchGetItem)."""
        found: dict[str, dict[str, Any]] = {}
        names = {f"#s{n}": name for n, name in enumerate(SUMMARY_ATTRIBUTES)}
        for start in range(0, len(experiment_ids), 100):
            keys = [
                self._ser({"PK": f"EXP#{experiment_id}", "SK": "HEADER"})
                for experiment_id in experiment_ids[start : start + 100]
            ]
            request = {
                self.table: {
                    "Keys": keys,
                    "ProjectionExpression": ", ".join(names),
                    "ExpressionAttributeNames": names,
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    header = self._de(item)
                    found[header["experiment_id"]] = header
                request = response.get("UnprocessedKeys") or {}
        return [_summary(found[i]) for i in experiment_ids if i in found]

    def overview(self) -> Overview:
        """The counters, and the head of each ranking (one Query each)."""
        with self._errors("cannot read the experiment store"):
            totals = self._get_item(STATS, "TOTALS") or {}
            best = {encoder: self._best(f"bd#{encoder}") for encoder in BASELINE_ENCODERS}
            lowest = self._best("x265-quality-kbps")
        by_status = {s: int(totals.get(f"status_{s}", 0)) for s in STATUSES}
        return Overview(
            total=int(totals.get("experiments", 0)),
            by_status={s: n for s, n in by_status.items() if n},
            best_bd_rate=best,
            best_x265_quality_kbps=lowest,
            llm=LlmSpend(
                calls=totals.get("llm_calls", 0),
                input_tokens=totals.get("llm_input_tokens", 0),
                output_tokens=totals.get("llm_output_tokens", 0),
                cost_usd=totals.get("llm_cost_usd", 0.0),
                cost_known=not totals.get("llm_cost_unknown", 0),
            ),
        )

    def ranked_rungs(self) -> list[dict[str, Any]]:
        """Every rung (clip, quality, kbps, PSNR-Y) of the experiments on the leaderboard,
        newest experiment first, with the experiment's id and program: the overview's RD
        frontier. One Query of the leaderboard's rank items, which carry their experiment's
        rungs; an item written before they did costs a Query of its experiment's results."""
        with self._errors("cannot read the experiment store"):
            ranked = sorted(
                self._query_index("GSI2", "RANK#leaderboard"),
                key=lambda item: item["GSI2SK"].split("#", 1)[1],  # the time key
                reverse=True,
            )
            return [
                {"experiment_id": item["experiment_id"], "program_name": item["program_name"]}
                | rung
                for item in ranked
                for rung in (
                    item["rungs"] if "rungs" in item else self._stored_rungs(item["experiment_id"])
                )
            ]

    def _stored_rungs(self, experiment_id: str) -> list[dict[str, Any]]:
        """:data:`RUNG_ATTRIBUTES` of an experiment's result items, in the record's order."""
        names = {f"#r{n}": name for n, name in enumerate(("PK", "SK", "wid", *RUNG_ATTRIBUTES))}
        items = list(
            self._query(
                KeyConditionExpression="#r0 = :pk",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=self._ser({":pk": f"EXP#{experiment_id}"}),
                ProjectionExpression=", ".join(names),
            )
        )
        wid = next((i.get("wid") for i in items if i["SK"] == "HEADER"), None)
        results = sorted((i for i in items if i["SK"].startswith(f"RESULT#{wid}#")), key=_sk)
        return [{name: item[name] for name in RUNG_ATTRIBUTES} for item in results]

    def _best(self, ranking: str) -> Best | None:
        for item in self._query_index("GSI2", f"RANK#{ranking}", limit=1):
            return Best(
                value=item["value"],
                experiment_id=item["experiment_id"],
                program_name=item["program_name"],
                clip=item.get("clip"),
            )
        return None

    def progress(
        self, *, campaign_id: str | None = None, campaigns: int = 10
    ) -> list[CampaignProgress]:
        """Per campaign (the ``campaigns`` started last, or one), its experiments' headline
        figures in iteration order: the overview's charts."""
        with self._errors("cannot read the experiment store"):
            if campaign_id:
                meta = self._get_item(f"CAMPAIGN#{campaign_id}", "META") or {}
                chosen = [(campaign_id, meta.get("created_at"))]
            else:
                started = self._query_index("GSI1", "CAMPAIGN", newest_first=True, limit=campaigns)
                chosen = [(item["id"], item["created_at"]) for item in started]
            return [
                CampaignProgress(
                    campaign_id=key,
                    started_at=started_at,
                    points=[
                        _point(item)
                        for item in self._query_index(
                            "GSI2", f"CAMPAIGN#{key}", attributes=PROGRESS_ATTRIBUTES
                        )
                    ],
                )
                for key, started_at in chosen
            ]

    @staticmethod
    def _children(r: ExperimentRecord, pk: str, wid: str) -> list[dict[str, Any]]:
        children: list[dict[str, Any]] = []
        for n, result in enumerate(r.results):
            item = result.model_dump(mode="python", exclude={"per_frame"})
            frames = [f.model_dump() for f in result.per_frame]
            columns = {name: [f[name] for f in frames] for name in FRAME_FIELDS}
            item |= {"PK": pk, "SK": f"RESULT#{wid}#{n:05d}", "type": "result", "wid": wid}
            item["per_frame_count"] = len(frames)
            if _size(columns) <= MAX_PER_FRAME_BYTES:
                item["per_frame"] = columns
            else:  # too large for one item as numbers: packed, still one attribute
                item["per_frame_zlib"] = zlib.compress(json.dumps(frames).encode(), 9)
            children.append(item)
        curves = [(encoder, curve) for encoder, curves in r.baselines.items() for curve in curves]
        for n, (encoder, curve) in enumerate(curves):
            item = curve.model_dump(mode="python")
            item |= {
                "PK": pk,
                "SK": f"BASELINE#{wid}#{n:05d}",
                "type": "baseline",
                "wid": wid,
                "encoder_key": encoder,
            }
            children.append(item)
        for n, phase in enumerate(r.phases):
            item = phase.model_dump(mode="python")
            item |= {"PK": pk, "SK": f"PHASE#{wid}#{n:05d}", "type": "phase", "wid": wid}
            children.append(item)
        return children

    # --- reading -------------------------------------------------------------------------

    def get(self, experiment_id: str) -> ExperimentRecord | None:
        """The record by id, or by a unique id prefix (as people type them)."""
        with self._errors("cannot read the experiment store"):
            record = self._load(experiment_id)
            if record is not None:
                return record
            matches = self._ids_with_prefix(experiment_id, 2)
            return self._load(matches[0]) if len(matches) == 1 else None

    def _ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        if len(prefix) >= ID_BUCKET:
            items = self._query_index(
                "GSI4", f"IDP#{prefix[:ID_BUCKET]}", sort_prefix=prefix, limit=limit
            )
            return [item["experiment_id"] for item in items]
        # shorter than the bucket: a scan of the headers (documented; people rarely type 1 char)
        found: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "GSI4",
            "FilterExpression": "begins_with(GSI4SK, :p)",
            "ExpressionAttributeValues": self._ser({":p": prefix}),
        }
        while len(found) < limit:
            response = self.client.scan(**kwargs)
            found += [self._de(i)["experiment_id"] for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found[:limit]

    def _load(self, experiment_id: str) -> ExperimentRecord | None:
        """One experiment: its partition, read consistently; nothing without a header."""
        items = list(
            self._query(
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": "PK"},
                ExpressionAttributeValues=self._ser({":pk": f"EXP#{experiment_id}"}),
                ConsistentRead=True,
            )
        )
        header = next((i for i in items if i["SK"] == "HEADER"), None)
        if header is None:
            return None
        wid = header["wid"]
        mine = sorted((i for i in items if i.get("wid") == wid and i is not header), key=_sk)
        if len(mine) != header.get("children", len(mine)):
            raise StoreError(
                f"experiment {experiment_id} in {self._where} has {len(mine)} of its "
                f"{header['children']} items"
            )
        results, baselines, phases = [], {}, []
        for item in mine:
            if item["type"] == "result":
                results.append(_result(item))
            elif item["type"] == "baseline":
                encoder = item.pop("encoder_key")
                baselines.setdefault(encoder, []).append(BaselineCurve.model_validate(item))
            elif item["type"] == "phase":
                phases.append(PhaseRecord.model_validate(item))
        for encoder in header.get("baseline_encoders", []):
            baselines.setdefault(encoder, [])
        fields = {k: header[k] for k in ExperimentRecord.model_fields if k in header}
        fields["created_at"] = datetime.fromisoformat(header["created_at"])
        return ExperimentRecord.model_validate(
            fields | {"results": results, "baselines": baselines, "phases": phases}
        )

    def source(self, program_sha256: str) -> str | None:
        with self._errors("cannot read the experiment store"):
            program = self._get_item(f"PROGRAM#{program_sha256}", "PROGRAM")
            return program["source"] if program else None

    def program(self, program_sha256: str) -> ProgramInfo | None:
        """A program's name and parent, without its source (lineage walks)."""
        with self._errors("cannot read the experiment store"):
            item = self._get_item(f"PROGRAM#{program_sha256}", "PROGRAM")
        if item is None:
            return None
        return ProgramInfo(
            sha256=program_sha256, name=item["name"], parent_sha256=item.get("parent_sha256")
        )

    def runs(self, program_sha256: str, limit: int = 5) -> list[ProgramRun]:
        """The newest ``limit`` experiments that ran the program: the run items of the
        program's partition, newest first."""
        with self._errors("cannot read the experiment store"):
            items = self._query(
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :run)",
                ExpressionAttributeNames={"#pk": "PK", "#sk": "SK"},
                ExpressionAttributeValues=self._ser(
                    {":pk": f"PROGRAM#{program_sha256}", ":run": "RUN#"}
                ),
                ScanIndexForward=False,
                Limit=limit,
            )
            return [ProgramRun.model_validate(item) for item in itertools.islice(items, limit)]

    def list(
        self, *, campaign_id: str | None = None, limit: int | None = None
    ) -> list[ExperimentRecord]:
        """Experiments, oldest first (iteration order within a campaign)."""
        with self._errors("cannot read the experiment store"):
            if campaign_id:
                items = self._query_index("GSI2", f"CAMPAIGN#{campaign_id}", limit=limit)
            else:
                items = self._query_index("GSI1", "EXP", limit=limit)
            records = (self._load(item["experiment_id"]) for item in items)
            return [r for r in records if r is not None]


def _update_expression(
    values: dict[str, Any], keep_first: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An UpdateItem's SET clause: ``values`` are set, ``keep_first`` only where absent.

    Every name goes through a placeholder, so DynamoDB's reserved words cannot collide.
    """
    names: dict[str, str] = {}
    bound: dict[str, Any] = {}
    clauses = []
    for n, (name, value) in enumerate([*values.items(), *(keep_first or {}).items()]):
        names[f"#a{n}"], bound[f":a{n}"] = name, value
        if n < len(values):
            clauses.append(f"#a{n} = :a{n}")
        else:
            clauses.append(f"#a{n} = if_not_exists(#a{n}, :a{n})")
    return {
        "UpdateExpression": "SET " + ", ".join(clauses),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": bound,
    }


def _add_expression(counts: dict[str, int | float]) -> dict[str, Any]:
    """An UpdateItem's ADD clause: each counter grows by its value (created at 0)."""
    names = {f"#c{n}": name for n, name in enumerate(counts)}
    return {
        "UpdateExpression": "ADD " + ", ".join(f"#c{n} :c{n}" for n in range(len(counts))),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {f":c{n}": value for n, value in enumerate(counts.values())},
    }


def _counts(summary: dict[str, Any], status: str) -> dict[str, int | float]:
    """What one experiment adds to the counters."""
    return {
        "experiments": 1,
        f"status_{status}": 1,
        **{name: summary.get(name) or 0 for name in COUNTERS},
        "llm_cost_unknown": int(not summary.get("llm_cost_known", True)),
    }


def _rungs(record: ExperimentRecord) -> list[dict[str, Any]]:
    """The record's rungs as the frontier reads them (:data:`RUNG_ATTRIBUTES`)."""
    return [{name: getattr(r, name) for name in RUNG_ATTRIBUTES} for r in record.results]


def _summary(item: dict[str, Any]) -> ExperimentSummary:
    return ExperimentSummary.model_validate({k: item[k] for k in SUMMARY_ATTRIBUTES if k in item})


def _point(item: dict[str, Any]) -> ProgressPoint:
    figures = {name: item.get(f"headline_{name}") for name in ("kbps", "psnr_y", "bd_rate_x265")}
    return ProgressPoint.model_validate(item | figures)


def _conflict(exc: BaseException) -> bool:
    """Cancelled only because a concurrent transaction touched one of its items."""
    reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
    codes = {reason.get("Code") for reason in reasons} - {"None", None}
    return codes == {"TransactionConflict"}


def _code(exc: BaseException) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}"
    return str(exc)


def _down(exc: BaseException) -> bool:
    """DynamoDB is away for every request: unreachable, throttling, failing, or our
    credentials no longer work (botocore has already retried what it retries)."""
    if isinstance(exc, BotoConnectionError | HTTPClientError | NoCredentialsError):
        return True
    return _code(exc) in DOWN_CODES


def _unavailable(exc: BaseException) -> bool:
    """DynamoDB could not take this write now: keep the experiment and write it later.

    Everything from AWS but a request it calls invalid (retrying that cannot help): the
    service down or throttling, a transaction cancelled by a conflicting one, a table
    that is being changed, credentials that expired.
    """
    if isinstance(exc, ClientError):
        return _code(exc) not in INVALID_CODES
    return isinstance(exc, BotoCoreError) and not isinstance(exc, WaiterError)


def _sk(item: dict[str, Any]) -> str:
    return item["SK"]


def _result(item: dict[str, Any]) -> RungResult:
    count = item.pop("per_frame_count", 0)
    if "per_frame_zlib" in item:
        frames = json.loads(zlib.decompress(item.pop("per_frame_zlib")))
    else:
        columns = item.pop("per_frame", {}) or {}
        frames = [
            {name: columns.get(name, [None] * count)[n] for name in columns} for n in range(count)
        ]
    return RungResult.model_validate(item | {"per_frame": frames})


class _ErrorScope:
    """Turns AWS failures into :class:`StoreError` with a message safe to print."""

    def __init__(self, store: DynamoStore, doing: str) -> None:
        self.store, self.doing = store, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, StoreError):
            return False
        if isinstance(exc, ClientError | BotoCoreError | WaiterError):
            message = f"{self.doing} {self.store._where}: {_reason(exc)}"
            raise StoreError(self.store._scrub(message)) from exc
        return False
