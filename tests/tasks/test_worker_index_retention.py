"""Index retention while the connector runs: one worker of the group closes and deletes the old
days every interval, and a record that arrives late for a closed day goes to the error policy
(the index stays closed; nothing is lost without the policy saying so)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import requests
from elasticsearch import Elasticsearch
from support.pipeline import (
    committed_offsets,
    create_topic,
    es_count,
    produce,
    unique,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.servers

DAY_MS = 86_400_000


def day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def status(client: Elasticsearch, name: str) -> str | None:
    """open, close, or None when there is no such index."""
    rows = client.options(ignore_status=404).cat.indices(
        index=name, h="index,status", format="json", expand_wildcards="all"
    )
    return rows[0]["status"] if isinstance(rows.body, list) and rows.body else None


def readings(count: int, days_ago: int = 0, first: int = 0) -> list[tuple[bytes, bytes, int]]:
    stamp = int(datetime.now(UTC).timestamp() * 1000) - days_ago * DAY_MS
    return [
        (b"sensor-%d" % n, orjson.dumps({"reading_id": n, "celsius": 20.5, "timestamp": stamp}), stamp)
        for n in range(first, first + count)
    ]


def retention_config(
    tmp_path: Path, elasticsearch: str, kafka: str, topic: str, target: str, policy: str
) -> Path:
    return write_config(
        tmp_path,
        unique("index-retention"),
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {target} SELECT * FROM {topic} PK reading_id WITHINDEXSUFFIX=_{{yyyy-MM-dd}}",
        connect__elastic__error__policy=policy,
        connect__elastic__max__retries=1,
        connect__elastic__retry__interval=200,
        conductor__index__close__after__days=7,
        conductor__index__delete__after__days=30,
        conductor__index__retention__interval__ms=5000,
        conductor__restart__max=0,
    )


@pytest.fixture
def client(elasticsearch: str):
    client = Elasticsearch(elasticsearch, request_timeout=30)
    yield client
    client.close()


def test_one_worker_runs_retention_every_interval_and_noop_skips_a_late_record(
    kafka: str, elasticsearch: str, client: Elasticsearch, tmp_path: Path, conductors
) -> None:
    target = unique("live").replace("-", "_")
    old, older, recent = (f"{target}_{day(k)}" for k in (8, 31, 3))
    lookalike = f"{target}_{day(8).replace('-', '.')}"
    for name in (old, older, recent, lookalike):
        client.indices.create(index=name, settings={"number_of_replicas": 0})
    topic = create_topic(kafka, partitions=4)
    config = retention_config(tmp_path, elasticsearch, kafka, topic, target, "NOOP")
    conductor = conductors(config, workers=2)

    wait_for(lambda: status(client, old) == "close" and status(client, older) is None, 60, "the first run")
    assert status(client, recent) == "open" and status(client, lookalike) == "open"

    def ran_first() -> list[dict]:
        return [
            s
            for s in conductor.states()
            if ((s.get("retention") or {}).get("last") or {}).get("closed") == [old]
        ]

    (runner,) = wait_for(ran_first, 30, "the first run in a worker's state")
    assert runner["retention"]["last"]["deleted"] == [older] and runner["retention"]["last"]["failed"] == {}
    assert [s["retention"]["runs_here"] for s in conductor.states()].count(True) == 1
    shown = requests.get(conductor.url() + "/conductor/state", timeout=10).json()["tasks"]
    assert [task["id"] for task in shown if "retention" in task] == [runner["worker_id"]]
    log = conductor.full_log()
    assert f"retention: closed index {old}: ended 7 days ago (conductor.index.close.after.days=7)" in log
    assert (
        f"retention: deleted index {older}: ended 30 days ago (conductor.index.delete.after.days=30)" in log
    )

    later = f"{target}_{day(9)}"  # made after the first run: the next one closes it
    client.indices.create(index=later, settings={"number_of_replicas": 0})
    wait_for(lambda: status(client, later) == "close", 30, "the periodic run to close a new old day")

    produce(kafka, topic, readings(5) + readings(1, days_ago=8, first=100) + readings(5, first=5))
    today = f"{target}_{day(0)}"
    wait_for(lambda: es_count(elasticsearch, today) == 10, 60, "today's records")
    wait_for(lambda: sum(committed_offsets(kafka, f"connect-{config.stem}").values()) == 11, 30, "commits")
    assert status(client, old) == "close", "a late record never reopens a closed index"
    wait_for(lambda: conductor.total("skipped") == 1, 10, "the skipped record in the state")
    log = conductor.full_log()
    assert "skipped (NOOP policy)" in log
    assert f"Index {old} is closed" in log and f"POST /{old}/_open" in log
    for name in (lookalike, recent):
        client.indices.delete(index=name)
    client.indices.delete(index=f"{target}_*", expand_wildcards="all")


@pytest.mark.parametrize("policy", ["THROW", "RETRY"])
def test_a_late_record_for_a_closed_day_fails_the_task_under_throw_and_retry(
    policy: str, kafka: str, elasticsearch: str, client: Elasticsearch, tmp_path: Path, conductors
) -> None:
    target = unique(f"late-{policy.lower()}").replace("-", "_")
    closed = f"{target}_{day(8)}"
    client.indices.create(index=closed, settings={"number_of_replicas": 0})
    topic = create_topic(kafka, partitions=1)
    config = retention_config(tmp_path, elasticsearch, kafka, topic, target, policy)
    conductor = conductors(config, workers=1)
    wait_for(lambda: status(client, closed) == "close", 60, "retention to close the old day")

    produce(kafka, topic, readings(3) + readings(1, days_ago=8, first=100) + readings(3, first=3))
    wait_for(lambda: conductor.process.poll() is not None, 90, "the task to fail and conductor to give up")
    (worker,) = conductor.states()
    assert worker["state"] == "failed", worker
    assert f"Index {closed} is closed" in worker["last_error"], worker["last_error"]
    assert f"POST /{closed}/_open" in worker["last_error"]
    assert status(client, closed) == "close"
    # Its batch's other records are written; only those before it are committed (the ones after
    # it are read again on a restart, to the same document ids).
    assert es_count(elasticsearch, f"{target}_{day(0)}") == 6
    assert committed_offsets(kafka, f"connect-{config.stem}") == {0: 3}, "committed up to the late record"
    client.indices.delete(index=f"{target}_*", expand_wildcards="all")
