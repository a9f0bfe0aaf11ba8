"""Records that Kafka's retention deleted before the connector wrote them: a consumer jumps
ahead silently (Kafka Connect's too); conductor says so at ERROR and counts them."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition
from support.outages import create_unwritable_index, make_writable
from support.pipeline import committed_offsets, es_count, produce, reading, unique, wait_for, write_config

pytestmark = pytest.mark.servers

TS = 1_767_000_000_000
WRITTEN = 100  # written and committed before the connector stops
LOST = 500  # produced while it is stopped, then deleted by retention


def log_start(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return consumer.beginning_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
    finally:
        consumer.close()


def numbered(start: int, stop: int, ahead_ms: int = 0) -> list[tuple[bytes, bytes, int]]:
    # Timestamps of now: retention.ms counts from the record's timestamp.
    now = int(time.time() * 1000) + ahead_ms
    return [(f"sensor-{n % 50:04d}".encode(), reading(n, TS + n), now) for n in range(start, stop)]


def set_retention(admin: KafkaAdminClient, topic: str, ms: str) -> None:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": ms})
    answers = []
    for _ in range(30):  # a broker just restarted (the outage test) may not take it at once
        answers.append(admin.alter_configs([resource])["topic"][topic])
        if answers[-1] == "OK":
            return
        time.sleep(1)
    raise AssertionError(f"retention.ms={ms} for {topic} not taken: {answers[-3:]}")


def segments_deleted(kafka: str, topic: str, start: int) -> None:
    """Roll the segment holding what was produced, delete it by retention, then keep the rest."""
    time.sleep(1.5)
    # Rolls the segment, so the rest is closed. Dated an hour ahead: Kafka may also roll and
    # delete the active segment once all of it is past retention, and this one must stay.
    produce(kafka, topic, numbered(start, start + 1, ahead_ms=3_600_000))
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    try:
        set_retention(admin, topic, "1000")
        try:
            wait_for(lambda: log_start(kafka, topic) == start, 60, "retention to delete the closed segments")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}: the log starts at {log_start(kafka, topic)}") from None
        set_retention(admin, topic, "-1")
    finally:
        admin.close()


def new_topic(kafka: str) -> str:
    """Segments roll every second, so that what is produced becomes deletable soon after."""
    topic = unique("retention")
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    try:
        admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"segment.ms": "1000", "retention.ms": "-1"})]
        )
    finally:
        admin.close()
    return topic


def test_records_deleted_by_retention_while_stopped_are_reported_exactly(
    kafka, elasticsearch, conductors, tmp_path
) -> None:
    topic = new_topic(kafka)
    index = topic.replace("-", "_")
    name = unique("retention")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic}",
    )
    produce(kafka, topic, numbered(0, WRITTEN))
    first = conductors(config, workers=1, label="first")
    wait_for(
        lambda: committed_offsets(kafka, f"connect-{name}") == {0: WRITTEN}, 60, "the first records committed"
    )
    assert first.stop() == 0
    produce(kafka, topic, numbered(WRITTEN, WRITTEN + LOST))  # never written: the connector is stopped
    segments_deleted(kafka, topic, WRITTEN + LOST)

    second = conductors(config, workers=1, label="second")
    end = WRITTEN + LOST + 1
    wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == {0: end}, 60, "the last record committed")
    wait_for(
        lambda: second.total("records_lost") == LOST, 30, f"the worker's state to count {LOST} lost records"
    )
    (state,) = second.states()
    assert state["lost"] == {f"{topic}-0": LOST}
    log = second.full_log()
    assert (
        f"{topic}-0: {LOST} record(s) (offsets {WRITTEN} to {WRITTEN + LOST - 1}) were deleted by Kafka's "
        f"retention before this connector wrote them; they are lost. Reading on from offset {WRITTEN + LOST}."
    ) in log
    assert " ERROR " in log.split("were deleted by Kafka's retention")[0].splitlines()[-1]
    assert es_count(elasticsearch, index) == WRITTEN + 1
    assert second.stop() == 0
    # Counted once: a restart finds nothing more lost.
    third = conductors(config, workers=1, label="third")
    wait_for(lambda: third.states() and third.states()[0].get("state") == "running", 30, "the third run")
    time.sleep(3)
    assert third.total("records_lost") == 0
    assert third.stop() == 0


def test_records_deleted_by_retention_while_the_connector_is_behind_are_reported_exactly(
    kafka, elasticsearch, conductors, tmp_path
) -> None:
    """The worker holds its first records while the index cannot take them; meanwhile retention
    deletes what it has not read yet. It writes what it holds, then finds the gap."""
    topic = new_topic(kafka)
    index = topic.replace("-", "_")
    create_unwritable_index(elasticsearch, index)
    name = unique("retention-behind")
    config = write_config(
        tmp_path,
        name,
        topic,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic}",
        connect__elastic__write__timeout=1000,
    )
    produce(kafka, topic, numbered(0, WRITTEN))
    conductor = conductors(config, workers=1)
    wait_for(lambda: any(s.get("waiting_for") for s in conductor.states()), 60, "the worker waiting to write")
    produce(kafka, topic, numbered(WRITTEN, WRITTEN + LOST))  # not read: the worker waits, paused
    segments_deleted(kafka, topic, WRITTEN + LOST)
    make_writable(elasticsearch, index)

    end = WRITTEN + LOST + 1
    wait_for(lambda: committed_offsets(kafka, f"connect-{name}") == {0: end}, 90, "the last record committed")
    wait_for(
        lambda: conductor.total("records_lost") == LOST,
        30,
        f"the worker's state to count {LOST} lost records",
    )
    assert (
        f"{topic}-0: {LOST} record(s) (offsets {WRITTEN} to {WRITTEN + LOST - 1}) were deleted by Kafka's "
        f"retention before this connector wrote them while it was behind; they are lost."
    ) in conductor.full_log()
    assert es_count(elasticsearch, index) == WRITTEN + 1, "what the worker held was written, and the last one"
    assert conductor.stop() == 0
