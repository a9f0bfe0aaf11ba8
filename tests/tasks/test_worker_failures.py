"""`conductor start` when records fail: NOOP, THROW, the dead-letter topic, RETRY through an
Elasticsearch outage, and a consumer-group rebalance while a batch waits to be retried, end to end
against the real Kafka and Elasticsearch.

Layout of the small topics: one partition, ten good readings (offsets 0-9), one bad record
(offset 10), ten good readings (offsets 11-20). Good reading n sits at offset n, so with
`PK sensor_id` its document id is sensor-00nn, and without a PK it is <topic>-0-<offset>.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch
from support.outages import create_unwritable_index, make_writable
from support.pipeline import (
    assert_gave_up_after_one_restart,
    assert_names_reason,
    committed_offsets,
    create_topic,
    end_offsets,
    es_count,
    produce,
    read_partition,
    reading,
    unique,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.servers

TS = 1_767_000_000_000  # a fixed record timestamp (Dec 2025)
BAD_OFFSET = 10
GOOD_BEFORE = 10
GOOD_AFTER = 10
END_OFFSET = GOOD_BEFORE + 1 + GOOD_AFTER  # 21
GOOD_OFFSETS = [n for n in range(END_OFFSET) if n != BAD_OFFSET]

# kind -> (the bad record's value, substrings its error must name). "malformed" cannot be decoded
# (errors.tolerance governs it); the store refuses the others (the error policy governs them).
BAD_RECORDS: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "malformed": (b'{"reading_id": 10, "sensor_id": "sensor-0010", "celsius": ,}', ("not valid JSON",)),
    "missing_pk": (
        orjson.dumps({"reading_id": 10, "celsius": 16.0, "timestamp": TS}),
        ("sensor_id", "missing"),
    ),
    "rejected": (
        orjson.dumps({"reading_id": 10, "sensor_id": "sensor-0010", "celsius": "hot", "timestamp": TS}),
        ("document_parsing_exception",),
    ),
}
BAD_KEY = b"bad-record-key"

CONTEXT_HEADERS = (
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
    "__connect.errors.exception.stacktrace",
)


# -- helpers ------------------------------------------------------------------------------------


def good_and_bad(bad_value: bytes) -> list[tuple[bytes, bytes, int]]:
    records = [(f"sensor-{n:04d}".encode(), reading(n, TS + n), TS + n) for n in range(GOOD_BEFORE)]
    records.append((BAD_KEY, bad_value, TS + BAD_OFFSET))
    records += [
        (f"sensor-{n:04d}".encode(), reading(n, TS + n), TS + n) for n in range(GOOD_BEFORE + 1, END_OFFSET)
    ]
    return records


def create_index_with_float_celsius(url: str, index: str) -> None:
    client = Elasticsearch(url)
    try:
        client.indices.create(index=index, mappings={"properties": {"celsius": {"type": "float"}}})
    finally:
        client.close()


def es_ids(url: str, index: str) -> set[str]:
    client = Elasticsearch(url)
    try:
        client.indices.refresh(index=index)
        hits = client.search(index=index, size=1000, query={"match_all": {}}, source=False)["hits"]["hits"]
        return {hit["_id"] for hit in hits}
    finally:
        client.close()


def log_digest(conductor, most: int = 80) -> str:
    """conductor's own log lines (no client-library chatter), for failure messages."""
    lines = [
        line
        for line in conductor.full_log().splitlines()
        if " conductor." in line and "unknown key" not in line
    ]
    return "\n".join(line[:300] for line in lines[-most:])


@pytest.fixture
def index(elasticsearch: str):
    name = unique("failures").replace("-", "_")
    yield name
    # Deleted even when the cluster is red: a test that failed while its index was unwritable
    # (unassigned) leaves it red, and a red cluster fails the next session's server check.
    client = Elasticsearch(elasticsearch, request_timeout=10)
    try:
        client.indices.delete(index=name, ignore_unavailable=True, allow_no_indices=True)
    except Exception as exc:
        print(f"could not delete index {name}: {exc}")
    finally:
        client.close()


# -- NOOP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_noop_skips_the_bad_record_and_commits_the_whole_batch(
    kind, kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    bad_value, reasons = BAD_RECORDS[kind]
    topic = create_topic(kafka, partitions=1, prefix=f"noop-{kind.replace('_', '-')}")
    create_index_with_float_celsius(elasticsearch, index)
    produce(kafka, topic, good_and_bad(bad_value))
    name = unique(f"noop-{kind.replace('_', '-')}")
    # A record that cannot be decoded is skipped only under errors.tolerance=all, as in Kafka Connect.
    tolerance = "all" if kind == "malformed" else "none"
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id",
        connect__elastic__error__policy="NOOP",
        errors__tolerance=tolerance,
    )
    conductor = conductors(config, workers=1)

    wait_for(
        lambda: committed_offsets(kafka, f"connect-{name}") == {0: END_OFFSET},
        60,
        f"offset {END_OFFSET} committed (the bad record skipped, not blocking)",
    )
    assert es_count(elasticsearch, index) == len(GOOD_OFFSETS)
    assert es_ids(elasticsearch, index) == {f"sensor-{n:04d}" for n in GOOD_OFFSETS}
    wait_for(lambda: conductor.total("skipped") == 1, 30, "the worker's state to count 1 skipped record")
    assert conductor.total("dead_lettered") == 0
    assert conductor.process.poll() is None, f"NOOP must keep the task running; log:\n{conductor.output()}"
    last_errors = [state.get("last_error") or "" for state in conductor.states()]
    assert any(f"{topic}-0@{BAD_OFFSET}" in error for error in last_errors), last_errors
    assert_names_reason(" ".join(last_errors), reasons, ignore_case=True)
    log = conductor.full_log()
    assert f"{topic}-0@{BAD_OFFSET}" in log, "the skipped record is logged"
    assert_names_reason(log, reasons, ignore_case=True)

    assert conductor.stop() == 0
    assert committed_offsets(kafka, f"connect-{name}") == {0: END_OFFSET}


# -- the dead-letter topic --------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_dead_letter_topic_takes_the_bad_record_with_context_headers(
    kind, kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    bad_value, reasons = BAD_RECORDS[kind]
    topic = create_topic(kafka, partitions=1, prefix=f"dlq-src-{kind.replace('_', '-')}")
    dlq = unique(f"dlq-{kind.replace('_', '-')}")  # conductor creates it, as Kafka Connect does
    create_index_with_float_celsius(elasticsearch, index)
    produce(kafka, topic, good_and_bad(bad_value))
    name = unique(f"dlq-{kind.replace('_', '-')}")
    # errors.tolerance=all sends what is skipped to the dead-letter topic: the record that cannot
    # be decoded, and those the NOOP policy skips.
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id",
        connect__elastic__error__policy="NOOP",
        errors__tolerance="all",
        errors__deadletterqueue__topic__name=dlq,
        errors__deadletterqueue__topic__replication__factor=1,
        errors__deadletterqueue__context__headers__enable="true",
    )
    conductor = conductors(config, workers=1)

    wait_for(
        lambda: committed_offsets(kafka, f"connect-{name}") == {0: END_OFFSET},
        60,
        f"offset {END_OFFSET} committed (the bad record dead-lettered)",
    )
    assert es_count(elasticsearch, index) == len(GOOD_OFFSETS)
    assert es_ids(elasticsearch, index) == {f"sensor-{n:04d}" for n in GOOD_OFFSETS}
    # The commit comes after the dead-letter write was acknowledged: the DLQ is complete now.
    assert end_offsets(kafka, dlq) == {0: 1}, "exactly the one bad record is dead-lettered"
    (dead,) = read_partition(kafka, dlq, 1)
    assert dead.value == bad_value, "the dead-lettered value is the original bytes"
    assert dead.key == BAD_KEY
    headers = {key: value.decode() for key, value in dead.headers}
    missing = [header for header in CONTEXT_HEADERS if header not in headers]
    assert not missing, f"context headers missing: {missing}; got {sorted(headers)}"
    assert headers["__connect.errors.topic"] == topic
    assert headers["__connect.errors.partition"] == "0"
    assert headers["__connect.errors.offset"] == str(BAD_OFFSET)
    assert headers["__connect.errors.stage"] == ("VALUE_CONVERTER" if kind == "malformed" else "TASK_PUT")
    assert headers["__connect.errors.exception.class.name"].strip()
    assert_names_reason(headers["__connect.errors.exception.message"], reasons, ignore_case=True)
    assert headers["__connect.errors.exception.stacktrace"].strip()
    assert f"created dead-letter topic {dlq} (1 partition, replication factor 1)" in conductor.full_log()

    wait_for(lambda: conductor.total("dead_lettered") == 1, 30, "the worker's state to count 1 dead-lettered")
    assert conductor.process.poll() is None, (
        f"a dead-lettered record must not stop the task; log:\n{conductor.output()}"
    )
    assert all(state.get("state") == "running" for state in conductor.states()), conductor.states()
    assert conductor.stop() == 0
    assert committed_offsets(kafka, f"connect-{name}") == {0: END_OFFSET}


# -- errors.tolerance and the policy, each in its own lane -----------------------------------------


def stops_at_the_bad_record(conductor, kafka: str, name: str) -> None:
    """restart.max=0: the failed task is not restarted, the supervisor exits 1, and exactly the
    records before the bad one are committed."""
    assert conductor.wait(60) == 1, f"the task fails; log:\n{conductor.output()}"
    assert committed_offsets(kafka, f"connect-{name}") == {0: BAD_OFFSET}
    assert "task failed:" in conductor.full_log()


@pytest.mark.parametrize("with_dlq", [False, True], ids=["no-dlq", "dlq"])
def test_tolerance_none_stops_at_a_record_that_cannot_be_decoded_whatever_the_policy(
    with_dlq, kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    """Kafka Connect's default: NOOP covers what the store refuses, not what cannot be decoded.
    A dead-letter topic needs errors.tolerance=all; with none it is reported and left empty."""
    bad_value, reasons = BAD_RECORDS["malformed"]
    topic = create_topic(kafka, partitions=1, prefix="tolerance-none")
    dlq = create_topic(kafka, partitions=1, prefix="unused-dlq")
    produce(kafka, topic, good_and_bad(bad_value))
    name = unique("tolerance-none")
    dead_letter = {"errors__deadletterqueue__topic__name": dlq} if with_dlq else {}
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic}",
        connect__elastic__error__policy="NOOP",
        conductor__restart__max=0,
        **dead_letter,
    )
    conductor = conductors(config, workers=1)
    stops_at_the_bad_record(conductor, kafka, name)
    (worker,) = conductor.states()
    assert "errors.tolerance is none" in worker["last_error"]
    assert_names_reason(worker["last_error"], (f"{topic}-0@{BAD_OFFSET}", *reasons), ignore_case=True)
    assert end_offsets(kafka, dlq) == {0: 0}
    unused = "errors.deadletterqueue.topic.name has no effect here: errors.tolerance is none"
    assert (unused in conductor.full_log()) is with_dlq


def test_tolerance_all_without_a_dead_letter_topic_skips_what_cannot_be_decoded(
    kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    """The THROW policy does not govern decoding: errors.tolerance=all lets the record through."""
    bad_value, _ = BAD_RECORDS["malformed"]
    topic = create_topic(kafka, partitions=1, prefix="tolerance-all")
    produce(kafka, topic, good_and_bad(bad_value))
    name = unique("tolerance-all")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic}",
        connect__elastic__error__policy="THROW",
        errors__tolerance="all",
        errors__log__enable="true",
        errors__log__include__messages="true",
    )
    conductor = conductors(config, workers=1)
    wait_for(
        lambda: committed_offsets(kafka, f"connect-{name}") == {0: END_OFFSET}, 60, "every offset committed"
    )
    assert es_count(elasticsearch, index) == len(GOOD_OFFSETS)
    wait_for(lambda: conductor.total("skipped") == 1, 30, "1 skipped record in the worker's state")
    log = conductor.full_log()
    assert "skipped (errors.tolerance=all)" in log
    # errors.log.enable: Kafka Connect's line, with the record when include.messages is on
    assert (
        f"Error encountered in task {name}-0. Executing stage 'VALUE_CONVERTER' (decoding), where consumed "
        f"record is {{topic='{topic}', partition=0, offset={BAD_OFFSET}, timestamp={TS + BAD_OFFSET}}}: "
    ) in log
    assert conductor.stop() == 0


def test_with_a_dead_letter_topic_throw_still_stops_at_a_record_the_store_refused(
    kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    """The dead-letter topic takes what is skipped; it does not overrule the THROW the user chose."""
    bad_value, _ = BAD_RECORDS["rejected"]
    topic = create_topic(kafka, partitions=1, prefix="throw-dlq")
    dlq = create_topic(kafka, partitions=1, prefix="throw-dlq-dlq")
    create_index_with_float_celsius(elasticsearch, index)
    produce(kafka, topic, good_and_bad(bad_value))
    name = unique("throw-dlq")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id",
        connect__elastic__error__policy="THROW",
        errors__tolerance="all",
        errors__deadletterqueue__topic__name=dlq,
        conductor__restart__max=0,
    )
    conductor = conductors(config, workers=1)
    stops_at_the_bad_record(conductor, kafka, name)
    assert end_offsets(kafka, dlq) == {0: 0}
    assert "document_parsing_exception" in conductor.states()[0]["last_error"]


# -- THROW ------------------------------------------------------------------------------------


def test_throw_fails_the_task_commits_nothing_past_the_failure_and_gives_up_after_restart_max(
    kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    bad_value, reasons = BAD_RECORDS["malformed"]
    topic = create_topic(kafka, partitions=1, prefix="throw")
    produce(kafka, topic, good_and_bad(bad_value))
    name = unique("throw")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic}",
        connect__elastic__error__policy="THROW",
        conductor__restart__max=1,
    )
    conductor = conductors(config, workers=1)

    code = conductor.wait(90)
    assert code == 1, (
        f"every slot failed after restart.max: the supervisor exits 1; log:\n{conductor.output()}"
    )
    assert committed_offsets(kafka, f"connect-{name}") == {0: BAD_OFFSET}, (
        "exactly the records before the failed one are committed"
    )

    assert_gave_up_after_one_restart(conductor, f"{topic}-0@{BAD_OFFSET}", reasons, ignore_case=True)

    # Committed records were written; nothing was written for the bad record; a good record
    # after it may have been (ids are deterministic, so a re-write does not duplicate).
    ids = es_ids(elasticsearch, index) if es_count(elasticsearch, index) else set()
    assert {f"{topic}-0-{n}" for n in range(BAD_OFFSET)} <= ids
    assert ids <= {f"{topic}-0-{n}" for n in GOOD_OFFSETS}


# -- a rebalance while a batch is being retried ------------------------------------------------
# Elasticsearch stays up: the index is created with its primary shard held unassigned (an
# allocation filter no node matches), so every bulk request to it times out and the workers sit
# in their retry waits until the filter is lifted. (A read-only-allow-delete block would not do:
# Elasticsearch's disk monitor lifts it by itself within 30 s.)

RETRY_LINE = re.compile(r"worker (\d+): (?:retry \d+ of \d+|Elasticsearch at \S+ does not answer)")


def retrying_workers(conductor) -> set[int]:
    return {int(worker) for worker in RETRY_LINE.findall(conductor.full_log())}


def assigned_lines(conductor) -> int:
    return conductor.full_log().count("partitions assigned:")


def retry_config(
    directory: Path,
    name: str,
    topic: str,
    index: str,
    elasticsearch: str,
    kafka: str,
    interval_ms: int,
    **settings: object,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_config(
        directory,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic}",
        conductor__linger__ms=50,
        connect__elastic__error__policy="RETRY",
        connect__elastic__max__retries=60,
        connect__elastic__retry__interval=interval_ms,
        connect__elastic__write__timeout=1000,
        **settings,
    )


def numbered(start: int, stop: int) -> list[tuple[bytes, bytes, int]]:
    return [(f"sensor-{n % 500:04d}".encode(), reading(n, TS + n), TS + n) for n in range(start, stop)]


def test_partitions_revoked_while_a_batch_is_retried_are_not_committed_by_their_old_owner(
    kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    """The old owner's batch finishes after the new owner committed further: it must not
    commit the revoked partitions' older offsets over the new owner's."""
    topic = create_topic(kafka, partitions=4, prefix="revoke")
    create_unwritable_index(elasticsearch, index)
    name = unique("revoke")
    produce(kafka, topic, numbered(0, 2000))
    # Same connector (same group); the first retries every 4 s, the newcomer every 0.2 s, so
    # once the index is writable the newcomer writes and commits first, the old batch after it.
    slow = conductors(
        retry_config(tmp_path / "slow", name, topic, index, elasticsearch, kafka, 4000),
        workers=2,
        label="slow",
    )
    wait_for(lambda: retrying_workers(slow) == {0, 1}, 60, "both workers retrying their first batch")
    produce(kafka, topic, numbered(2000, 4000))  # past the batches the slow workers hold
    fast = conductors(
        retry_config(tmp_path / "fast", name, topic, index, elasticsearch, kafka, 200),
        workers=1,
        label="fast",
    )
    wait_for(lambda: retrying_workers(fast) == {0}, 60, "the newcomer to take partitions and retry them")
    moved = "; ".join(
        line[line.index("partitions revoked") :]
        for line in slow.full_log().splitlines()
        if "partitions revoked" in line
    )
    assert moved, "the newcomer's partitions came from the retrying workers"
    make_writable(elasticsearch, index)

    wait_for(lambda: es_count(elasticsearch, index) == 4000, 60, "all 4000 documents")
    ends = end_offsets(kafka, topic)
    time.sleep(6)  # longer than the slow workers' retry interval: their held batches are settled
    committed = committed_offsets(kafka, f"connect-{name}")
    assert committed == ends, (
        f"committed offsets {committed} != end offsets {ends} (revoked from the slow workers: {moved}); "
        f"slow log:\n{log_digest(slow, 30)}\nfast log:\n{log_digest(fast, 15)}"
    )
    assert fast.stop() == 0
    assert slow.stop() == 0


def test_partitions_assigned_while_a_batch_is_retried_lose_no_records(
    kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    """A worker waiting to retry its batch gets more partitions (another member left): what it
    reads from them meanwhile must be written, not dropped."""
    topic = create_topic(kafka, partitions=4, prefix="assign")
    create_unwritable_index(elasticsearch, index)
    name = unique("assign")
    stays = conductors(
        retry_config(tmp_path / "stays", name, topic, index, elasticsearch, kafka, 4000),
        workers=1,
        label="stays",
    )
    # Not a static member: on SIGTERM it leaves the group at once. Batches of 100: the bulk requests
    # it leaves queued in Elasticsearch (they run once the index is writable) hold few records.
    leaves = conductors(
        retry_config(
            tmp_path / "leaves",
            name,
            topic,
            index,
            elasticsearch,
            kafka,
            4000,
            conductor__static__membership="false",
            connect__elastic__batch__size=100,
        ),
        workers=1,
        label="leaves",
    )
    wait_for(
        lambda: (
            len(stays.partitions()) == 2
            and len(leaves.partitions()) == 2
            and stays.partitions() | leaves.partitions() == {0, 1, 2, 3}
        ),
        60,
        "the two members to own two partitions each",
    )
    produce(kafka, topic, numbered(0, 4000))
    wait_for(
        lambda: retrying_workers(stays) == {0} and retrying_workers(leaves) == {0},
        60,
        "both members retrying their batches",
    )
    assigned = assigned_lines(stays)
    assert leaves.stop() == 0  # its batch stays uncommitted: its partitions are read again
    wait_for(
        lambda: assigned_lines(stays) > assigned, 60, "the leaver's partitions to move to the other member"
    )
    time.sleep(5)  # the remaining member is still waiting to retry while it owns them
    make_writable(elasticsearch, index)
    produce(kafka, topic, numbered(4000, 4400))  # later records: committing them seals any gap

    ends = end_offsets(kafka, topic)
    try:
        wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == ends, 60, "every offset committed")
    except AssertionError:
        pass  # reported below, with the document count
    committed = committed_offsets(kafka, f"connect-{name}")
    count = es_count(elasticsearch, index)
    positions = {
        p["partition"]: p["committed"] for state in stays.states() for p in state.get("partitions", [])
    }
    assert (count, committed) == (4400, ends), (
        f"{count} of 4400 documents written; committed {committed}, end offsets {ends}, committed positions of the "
        f"remaining member {positions}; log:\n{log_digest(stays, 30)}"
    )
    assert stays.stop() == 0
