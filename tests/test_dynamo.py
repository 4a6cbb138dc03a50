"""The DynamoDB experiment store against moto's server, over real HTTP."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import timedelta

import pytest

pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from botocore.exceptions import ClientError  # noqa: E402
from botocore.exceptions import ConnectionError as BotoConnectionError  # noqa: E402

from codeclab.config import Settings  # noqa: E402
from codeclab.evaluate import rd  # noqa: E402
from codeclab.record import FrameMetrics, PhaseRecord, RungResult  # noqa: E402
from codeclab.store.db import ExperimentStore, StoreError, StoreUnavailable  # noqa: E402
from codeclab.store.dynamo import ENDPOINT_ENV, DynamoStore  # noqa: E402
from codeclab.store.factory import open_experiment_store  # noqa: E402
from tests.test_store import METRICS, RUNG, lab_of_records, make_record, scored  # noqa: E402
from tests.weblab import client_for  # noqa: E402

SECRET = "SECRETdoNotPrint0123456789"


@pytest.fixture(scope="session")
def moto_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials, and nothing from this machine's own AWS configuration."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def store(moto_endpoint, aws_env, tmp_path):
    aws_env.setenv(ENDPOINT_ENV, moto_endpoint)
    url = f"dynamodb://t{uuid.uuid4().hex[:12]}?region=eu-west-1"
    return DynamoStore.from_url(url, outbox_dir=tmp_path / "outbox")


def dumped(record):
    return record.model_dump(exclude={"created_at"})


def test_record_round_trips(store):
    record = make_record()
    store.save(record, "def encode(f, fps, q): ...")
    again = DynamoStore.from_url(store.url).get(record.experiment_id)
    assert again is not None
    assert dumped(again) == dumped(record)
    assert again.created_at == record.created_at
    assert store.source(record.program_sha256) == "def encode(f, fps, q): ..."
    assert store.source("00" * 32) is None
    assert store.get("no-such-experiment") is None
    assert store.region == "eu-west-1" and "eu-west-1" in store.url


def test_values_dynamodb_cannot_hold_come_back(store):
    record = make_record()
    frames = [FrameMetrics(**(METRICS | {"psnr_y": float("inf"), "vmaf": None}))]
    record.results[0].per_frame = frames
    record.reasoning.llm_usage = {"cost": 0.1 + 0.2, "tiny": 1e-120, "nested": [1, 2.5]}
    store.save(record, "src")
    again = store.get(record.experiment_id)
    assert again.results[0].per_frame[0].psnr_y == float("inf")
    assert again.reasoning.llm_usage == {"cost": 0.1 + 0.2, "tiny": 1e-120, "nested": [1, 2.5]}
    assert dumped(again) == dumped(record)


def test_lookup_by_prefix_and_listing_order(store):
    first, second = make_record("aaaa1111-x"), make_record("aaaa2222-y")
    second.created_at = first.created_at + timedelta(seconds=1)
    third = make_record("b0000000-z")
    third.created_at = first.created_at + timedelta(seconds=2)
    for record in (second, third, first):
        store.save(record, "src")
    assert store.get("aaaa2").experiment_id == second.experiment_id
    assert store.get("aaaa") is None  # ambiguous prefix
    assert store.get("a") is None  # ambiguous, shorter than the indexed bucket
    assert store.get("b").experiment_id == third.experiment_id  # scanned, unique
    assert store.get("c0") is None
    assert [r.experiment_id for r in store.list()] == ["aaaa1111-x", "aaaa2222-y", "b0000000-z"]
    assert [r.experiment_id for r in store.list(limit=2)] == ["aaaa1111-x", "aaaa2222-y"]
    newest = store._query_index("GSI1", "EXP", newest_first=True, limit=1)
    assert [item["experiment_id"] for item in newest] == ["b0000000-z"]
    failed = make_record("f0000000-f")
    failed.status = "failed"
    store.save(failed, "src")
    by_status = store._query_index("GSI3", "STATUS#failed")
    assert [item["experiment_id"] for item in by_status] == ["f0000000-f"]


def test_campaign_listing_is_by_iteration(store):
    store.add_campaign("camp-1", "evolve", 7, 3, {"qualities": [20, 80]})
    records = []
    for n, iteration in enumerate((2, 0, 1)):
        record = make_record(f"c{n}")
        record.campaign_id, record.iteration = "camp-1", iteration
        records.append(record)
        store.save(record, "src")
    store.save(make_record("elsewhere"), "src")
    assert [r.iteration for r in store.list(campaign_id="camp-1")] == [0, 1, 2]
    assert len(store.list()) == 4


def test_an_iteration_is_written_once(store):
    store.add_campaign("camp-1", "evolve", 7, 3, {})
    first, other = make_record("one"), make_record("two")
    for record in (first, other):
        record.campaign_id, record.iteration = "camp-1", 1
    store.save(first, "src")
    with pytest.raises(StoreError, match="already has iteration 1"):
        store.save(other, "src")
    store.save(first, "src")  # the same experiment again is fine
    assert [r.experiment_id for r in store.list(campaign_id="camp-1")] == ["one"]
    assert store.get("two") is None


def test_saving_twice_keeps_one_experiment(store):
    store.save(make_record(), "src")
    store.save(make_record(), "src")
    changed = make_record()
    changed.status = "failed"
    store.save(changed, "other source")  # a second save never overwrites the first
    assert len(store.list()) == 1
    assert store.get(changed.experiment_id).status == "ok"
    assert store.source(changed.program_sha256) == "src"


def test_races_lost_at_the_final_write_are_handled(store, monkeypatch):
    """Another writer commits between our checks and our transaction."""
    store.add_campaign("camp-1", "evolve", 7, 3, {})
    first, rival = make_record("one"), make_record("two")
    for record in (first, rival):
        record.campaign_id, record.iteration = "camp-1", 1
    store.save(first, "src")
    real = store._get_item
    blind = {"calls": 0}

    def misses_the_first_checks(pk, sk):
        blind["calls"] += 1
        return None if blind["calls"] <= 2 else real(pk, sk)

    monkeypatch.setattr(store, "_get_item", misses_the_first_checks)
    store.save(first, "src")  # the header's condition fails: it was saved, nothing to do
    blind["calls"] = 0
    with pytest.raises(StoreError, match="already has iteration 1"):
        store.save(rival, "src")
    monkeypatch.setattr(store, "_get_item", real)
    assert [r.experiment_id for r in store.list()] == ["one"]
    assert dumped(store.get("one")) == dumped(first)


def test_programs_keep_lineage(store):
    child = make_record("child")
    store.save(child, "child source")
    program = store._get_item(f"PROGRAM#{child.program_sha256}", "PROGRAM")
    assert program["parent_sha256"] == child.parent_sha256
    children = store._query_index("GSI2", f"PARENT#{child.parent_sha256}")
    assert [item["sha256"] for item in children] == [child.program_sha256]


def test_latest_campaign(store):
    assert store.latest_campaign() is None
    store.add_campaign("first", "evolve", 1, 5, {"iterations": 5, "ratio": 0.5})
    store.add_campaign("second", "llm", 2, 9, {"iterations": 9, "qualities": [20, 80]})
    store.add_campaign("first", "evolve", 1, 6, {"iterations": 6})  # updated, not restarted
    latest = store.latest_campaign()
    assert (latest.id, latest.designer, latest.seed, latest.iterations) == ("second", "llm", 2, 9)
    assert latest.settings == {"iterations": 9, "qualities": [20, 80]}


def many_results_record():
    record = make_record("big-experiment")
    record.results = [
        RungResult(
            **RUNG,
            quality=q,
            clip_sha256=f"{n:064x}",
            bitstream_sha256="1" * 64,
            decoded_sha256="2" * 64,
            per_frame=[FrameMetrics(**METRICS)] * 4,
        )
        for n in range(51)  # 102 results, a baseline curve and 7 phases: over 100 items
        for q in (20, 80)
    ]
    record.phases = [PhaseRecord(name=f"p{n}", status="ok", seconds=n / 10) for n in range(7)]
    return record


def test_a_large_experiment_appears_all_at_once(store, monkeypatch):
    record = many_results_record()
    seen = []
    real = store._transact

    def watching(items):
        seen.append((len(items), store.get(record.experiment_id), store.list()))
        real(items)

    monkeypatch.setattr(store, "_transact", watching)
    store.save(record, "src")
    assert len(seen) >= 3 and all(n <= 100 for n, _, _ in seen)
    assert all(got is None and listed == [] for _, got, listed in seen)  # nothing half-written
    again = store.get(record.experiment_id)
    assert dumped(again) == dumped(record)
    assert [r.experiment_id for r in store.list()] == [record.experiment_id]


def test_a_large_write_killed_before_its_header_leaves_nothing_visible(store, monkeypatch):
    record = many_results_record()
    real = store._transact

    def dies_at_the_header(items):
        if any("HEADER" in str(item) for item in items):
            raise KeyboardInterrupt  # the campaign is killed
        real(items)

    monkeypatch.setattr(store, "_transact", dies_at_the_header)
    with pytest.raises(KeyboardInterrupt):
        store.save(record, "src")
    assert store.get(record.experiment_id) is None and store.list() == []
    monkeypatch.setattr(store, "_transact", real)
    store.save(record, "src")  # the resumed campaign writes it again
    assert dumped(store.get(record.experiment_id)) == dumped(record)


def test_long_per_frame_data_is_packed(store):
    record = make_record()
    record.results[0].per_frame = [
        FrameMetrics(**(METRICS | {"psnr_y": 30 + n / 7})) for n in range(5000)
    ]
    store.save(record, "src")
    assert dumped(store.get(record.experiment_id)) == dumped(record)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_down_is_a_clear_error(aws_env):
    aws_env.setenv(ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match="cannot open the experiment store") as caught:
        DynamoStore.from_url("dynamodb://lab?region=eu-west-1")
    message = str(caught.value)
    assert "lab-codeclab" in message and "127.0.0.1" in message
    assert SECRET not in message and "testing" not in message


def test_urls_are_checked(aws_env):
    aws_env.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(StoreError, match="no AWS region"):
        DynamoStore.from_url("dynamodb://lab")
    with pytest.raises(StoreError, match="not a DynamoDB store URL"):
        DynamoStore.from_url("sqlite:///x.db")


# --- outages: the outbox ---------------------------------------------------------------------


@pytest.fixture
def own_moto(aws_env):
    """A moto server of the test's own, which it may stop and start again on the same port.

    moto keeps its tables in this process, so what was written survives a restart.
    """

    class Server:
        def start(self):
            self.server = moto_server.ThreadedMotoServer(
                ip_address="127.0.0.1", port=self.port, verbose=False
            )
            self.server.start()
            self.running = True

        def stop(self):
            self.server.stop()
            self.running = False

    server = Server()
    server.port = free_port()
    server.start()
    aws_env.setenv(ENDPOINT_ENV, f"http://127.0.0.1:{server.port}")
    yield server
    if server.running:
        server.stop()


def outage_store(tmp_path):
    url = f"dynamodb://t{uuid.uuid4().hex[:12]}?region=eu-west-1"
    return DynamoStore.from_url(url, outbox_dir=tmp_path / "outbox")


def test_a_save_while_dynamodb_is_down_is_kept_and_written_once_later(own_moto, tmp_path):
    store = outage_store(tmp_path)
    store.save(make_record("ffff0001"), "first")

    own_moto.stop()
    with pytest.raises(StoreUnavailable) as down:
        store.save(make_record("ffff0002"), "second")
    message = str(down.value)
    kept = tmp_path / "outbox" / "ffff0002.json"
    assert store.table in message and f"127.0.0.1:{own_moto.port}" in message
    assert "ffff0002" in message and str(kept) in message and "when the store is back" in message
    assert SECRET not in message
    assert isinstance(down.value.__cause__, BotoConnectionError)  # unreachable, after retries
    entry = json.loads(kept.read_text())
    assert entry["record"]["experiment_id"] == "ffff0002" and entry["source"] == "second"
    assert store.pending() == [kept]
    assert store.flush_outbox() == 0 and store.pending() == [kept]  # still down: quiet
    with pytest.raises(StoreError, match="cannot read the experiment store") as reading:
        store.latest_campaign()
    assert not isinstance(reading.value, StoreUnavailable)

    own_moto.start()
    store.save(make_record("ffff0003"), "third")  # writes the kept experiment first
    assert store.pending() == [] and not kept.exists()
    assert [r.experiment_id for r in store.list()] == ["ffff0001", "ffff0002", "ffff0003"]
    assert store.get("ffff0002").experiment_id == "ffff0002"
    assert store.source(make_record("ffff0002").program_sha256) == "first"  # shared by hash
    assert store.flush_outbox() == 0
    store.save(make_record("ffff0002"), "second")  # offered again: still one
    assert [r.experiment_id for r in store.list()] == ["ffff0001", "ffff0002", "ffff0003"]


def test_kept_experiments_are_written_by_flush_and_by_a_resume(own_moto, tmp_path):
    store = outage_store(tmp_path)
    store.add_campaign("camp-1", "evolve", 7, 3, {})
    records = [make_record(f"cccc000{n}") for n in (1, 2)]
    for n, record in enumerate(records, start=1):
        record.campaign_id, record.iteration = "camp-1", n

    own_moto.stop()
    for record in records:
        with pytest.raises(StoreUnavailable, match=record.experiment_id):
            store.save(record, "src")
    assert len(store.pending()) == 2

    own_moto.start()
    # a fresh process resuming the campaign: latest_campaign writes what was kept
    again = DynamoStore.from_url(store.url, outbox_dir=tmp_path / "outbox")
    assert again.latest_campaign().id == "camp-1"
    assert again.pending() == []
    assert [r.iteration for r in again.list(campaign_id="camp-1")] == [1, 2]
    assert again.flush_outbox() == 0

    own_moto.stop()
    third = make_record("cccc0003")
    with pytest.raises(StoreUnavailable):
        store.save(third, "src")
    own_moto.start()
    assert store.flush_outbox() == 1
    assert [r.experiment_id for r in store.list()] == ["cccc0001", "cccc0002", "cccc0003"]


def test_a_kept_experiment_whose_iteration_was_taken_is_set_aside(store, tmp_path):
    store.add_campaign("camp-1", "evolve", 7, 3, {})
    first = make_record("one")
    first.campaign_id, first.iteration = "camp-1", 1
    store.save(first, "src")
    clash = first.model_copy(update={"experiment_id": "two"})
    store.outbox.keep(clash, "src", "a test")
    assert store.flush_outbox() == 0
    assert (tmp_path / "outbox" / "rejected" / "two.json").exists() and store.pending() == []
    assert [r.experiment_id for r in store.list()] == ["one"]


def aws_error(code):
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code} {SECRET}"}}, "TransactWriteItems"
    )


def test_throttling_is_kept_and_an_invalid_request_is_not(store, tmp_path, monkeypatch):
    failure = {"code": "ProvisionedThroughputExceededException"}

    def fails(items):
        raise aws_error(failure["code"])

    monkeypatch.setattr(store, "_transact", fails)
    with pytest.raises(StoreUnavailable, match="ProvisionedThroughputExceeded") as throttled:
        store.save(make_record("throttled"), "src")
    assert SECRET not in str(throttled.value)
    assert [p.name for p in store.pending()] == ["throttled.json"]

    failure["code"] = "ValidationException"
    with pytest.raises(StoreError, match="ValidationException") as invalid:
        store.save(make_record("invalid"), "src")
    assert not isinstance(invalid.value, StoreUnavailable) and SECRET not in str(invalid.value)
    assert [p.name for p in store.pending()] == ["throttled.json"]  # the flush stopped: down

    monkeypatch.undo()
    assert store.flush_outbox() == 1
    assert [r.experiment_id for r in store.list()] == ["throttled"]


def test_the_outbox_defaults_to_the_data_directory(store, aws_env, tmp_path):
    aws_env.setenv("CODECLAB_HOME", str(tmp_path / "lab"))
    again = DynamoStore.from_url(store.url)
    assert again.outbox_dir == tmp_path / "lab" / "outbox"
    opened = open_experiment_store(store.url, outbox_dir=tmp_path / "elsewhere")
    assert opened.outbox_dir == tmp_path / "elsewhere"


def rank_items_without_rungs(store) -> None:
    """Make the leaderboard's rank items look as they were before they carried rungs."""
    for item in store._query_index("GSI2", "RANK#leaderboard"):
        store.client.update_item(
            TableName=store.table,
            Key=store._ser({"PK": item["PK"], "SK": item["SK"]}),
            UpdateExpression="REMOVE rungs",
        )


def test_frontier_rungs_and_progress_stages_are_the_sql_stores(store, tmp_path):
    """The overview's frontier and progress read the same figures from DynamoDB as from
    SQL: the ranked rungs, newest experiment first, and the cascade stage of each point."""
    sql = ExperimentStore(f"sqlite:///{tmp_path / 'lab.db'}")
    screened = scored("e7", 7, campaign="camp-b", iteration=3, bd={"x264": -1.0})
    screened = screened.model_copy(update={"stage": "screen"})  # stopped: it does not rank
    for target in (store, sql):
        lab_of_records(target)
        target.save(screened, "source of e7")
    expected = sql.ranked_rungs()
    assert {r["experiment_id"] for r in expected} == {"e1", "e2", "e4", "e6"}

    def order(rungs: list[dict]) -> list[str]:
        return list(dict.fromkeys(r["experiment_id"] for r in rungs))

    def key(rung: dict) -> tuple:
        return tuple(sorted(rung.items()))

    for _ in ("rank items with rungs", "rank items written before rungs"):
        found = store.ranked_rungs()
        assert order(found) == order(expected) == ["e6", "e4", "e2", "e1"]
        assert sorted(map(key, found)) == sorted(map(key, expected))
        rank_items_without_rungs(store)
    points = [c.points for c in store.progress()]
    assert points == [c.points for c in sql.progress()]
    assert {p.experiment_id: p.stage for ps in points for p in ps}["e7"] == "screen"
    assert {p.stage for ps in points for p in ps} == {"full", "screen"}


def test_the_dashboard_draws_the_frontier_and_stages_from_dynamodb(store, tmp_path):
    lab_of_records(store)
    settings = Settings(home=tmp_path / "lab", database_url=store.url)
    with client_for(settings) as client:
        (clip,) = client.get("/api/frontier").json()
        progress = client.get("/api/progress").json()
    rungs = [(r["kbps"], r["psnr_y"]) for r in store.ranked_rungs()]
    assert [(p["kbps"], p["psnr_y"]) for p in clip["frontier"]] == rd.convex_hull(
        rungs, log_rate=True
    )
    assert clip["experiments"] == 4 and clip["baselines"][0]["name"].startswith("x265")
    assert {p["stage"] for c in progress for p in c["points"]} == {"full"}
