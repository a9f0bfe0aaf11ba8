"""Elasticsearch, then Kafka, stopped mid-run under a running group of three workers.

An outage is never fatal: every worker waits (staying in its group), nothing is skipped, no
task fails and none is restarted, and afterwards every worker holds partitions again. The
scenario is long (two server restarts), so it runs once per session; to repeat it, run this
module alone: `.venv/bin/python -m pytest tests/tasks/test_worker_outages.py`.
"""

from __future__ import annotations

import time

import probes  # compose/, put on sys.path by tests/conftest.py
import pytest
from support.outages import bring_back, es_answers, es_count_or_none, group_settled, stop
from support.pipeline import (
    committed_offsets,
    create_topic,
    end_offsets,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.servers

TS = 1_767_000_000_000
PART = 30_000  # readings produced before, during and after the outages
OUTAGE_S = 15


def numbered(start: int, stop: int) -> list[tuple[bytes, bytes, int]]:
    return [(f"sensor-{n % 500:04d}".encode(), reading(n, TS + n), TS + n) for n in range(start, stop)]


def kafka_answers(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        probes.kafka_ready(host, int(port))
    except probes.ProbeFailed:
        return False
    return True


def diagnosis(conductor, kafka: str, name: str, index: str, elasticsearch: str) -> str:
    states = [
        {
            key: state.get(key)
            for key in ("worker_id", "state", "group", "partitions", "waiting_for", "rejoins")
        }
        for state in conductor.states()
    ]
    return (
        f"documents {es_count_or_none(elasticsearch, index)}; committed {committed_offsets(kafka, f'connect-{name}')}; "
        f"workers {states}; log:\n{conductor.output()}"
    )


def test_an_elasticsearch_and_a_kafka_outage_are_ridden_out(
    kafka, elasticsearch, conductors, tmp_path
) -> None:
    topic = create_topic(kafka, partitions=6, prefix="outages")
    index = unique("outages").replace("-", "_")
    name = unique("outages")
    # No PK: the id is topic-partition-offset, so a record written again overwrites itself and
    # only a loss changes the count.
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic}",
        connect__elastic__error__policy="RETRY",
        connect__elastic__max__retries=10,
        connect__elastic__retry__interval=1000,
        connect__elastic__write__timeout=3000,
    )
    produce(kafka, topic, numbered(0, PART))
    conductor = conductors(config, workers=3)
    wait_for(lambda: group_settled(conductor, 3, 6), 60, "each of the 3 workers to hold partitions")
    wait_for(lambda: es_count(elasticsearch, index) == PART, 90, f"the first {PART} documents")

    # Elasticsearch down while records keep coming.
    try:
        stop("elasticsearch")
        assert not es_answers(elasticsearch), "Elasticsearch still answers after compose/local down"
        produce(kafka, topic, numbered(PART, 2 * PART))
        time.sleep(OUTAGE_S)
        assert conductor.process.poll() is None, (
            f"conductor exited during the outage; log:\n{conductor.output()}"
        )
        waiting = [state.get("waiting_for") for state in conductor.states()]
        assert any(waiting), f"the workers' state names what they wait for: {waiting}"
    finally:
        bring_back("elasticsearch", lambda: es_answers(elasticsearch))
    wait_for(lambda: es_count_or_none(elasticsearch, index) == 2 * PART, 120, f"{2 * PART} documents")

    # Kafka down while the workers are busy: the group, the fetches and the commits all wait for it.
    produce(kafka, topic, numbered(2 * PART, 3 * PART))
    try:
        stop("kafka")
        time.sleep(OUTAGE_S)
        assert conductor.process.poll() is None, (
            f"conductor exited during the outage; log:\n{conductor.output()}"
        )
    finally:
        bring_back("kafka", lambda: kafka_answers(kafka))
    produce(kafka, topic, numbered(3 * PART, 4 * PART))

    ends = end_offsets(kafka, topic)
    assert sum(ends.values()) == 4 * PART
    try:
        wait_for(lambda: es_count_or_none(elasticsearch, index) == 4 * PART, 180, f"all {4 * PART} documents")
        wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == ends, 60, "every offset committed")
        wait_for(lambda: group_settled(conductor, 3, 6), 120, "every worker to hold partitions again")
    except AssertionError as timed_out:
        raise AssertionError(
            f"{timed_out}: {diagnosis(conductor, kafka, name, index, elasticsearch)}"
        ) from None
    assert es_count(elasticsearch, index) == 4 * PART, "exactly one document per record: nothing lost"

    log = conductor.full_log()
    assert f"Elasticsearch at {elasticsearch} does not answer" in log, "the workers did meet the outage"
    assert f"Elasticsearch at {elasticsearch} answers again" in log
    assert "task failed" not in log and "could not start" not in log and "crashed" not in log, log[-6000:]
    slots = conductor.supervisor_state()["workers"]
    assert [slot["restarts"] for slot in slots] == [0, 0, 0], slots
    assert all(state["group"] == "stable" for state in conductor.states()), conductor.states()
    assert conductor.stop() == 0
