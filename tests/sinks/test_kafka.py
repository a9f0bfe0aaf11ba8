"""The Kafka producer sink against the real broker: routed records to their target topics."""

from __future__ import annotations

import orjson
import pytest
from support.pipeline import create_topic, read_partition
from support.records import record, route

from conductor.config import KafkaSettings
from sinks.kafka import KafkaProducerSink, Message

pytestmark = pytest.mark.servers


@pytest.fixture
def sink(kafka: str):
    producer = KafkaProducerSink(KafkaSettings(bootstrap_servers=(kafka,), group_id="unused"))
    producer.setup()
    yield producer
    producer.close()


def test_routed_records_go_to_their_topic_projected_keyed_and_with_their_headers(kafka, sink) -> None:
    target = create_topic(kafka, partitions=1, prefix="kafka-sink")
    r = route(f"INSERT INTO {target} SELECT sensor, celsius AS c FROM readings")
    batch = [
        (record(n, {"sensor": f"s{n}", "celsius": 20 + n, "other": 1}, key=f"k{n}".encode()), r)
        for n in range(3)
    ]
    batch[1][0].headers.extend([("origin", b"lab"), ("empty", None)])
    assert sink.write(batch) == []
    written = read_partition(kafka, target, 3)
    assert [(m.key, orjson.loads(m.value)) for m in written] == [
        (f"k{n}".encode(), {"sensor": f"s{n}", "c": 20 + n}) for n in range(3)
    ]
    assert written[1].headers == [("origin", b"lab")]


def test_a_message_kafka_refuses_for_good_comes_back_with_its_reason(kafka, sink) -> None:
    target = create_topic(kafka, partitions=1, prefix="kafka-sink-big")
    refused = sink.send([Message(target, None, b"x" * 2_000_000), Message(target, None, b"small")])
    assert [position for position, _ in refused] == [0]
    assert "MessageSizeTooLarge" in refused[0][1]
    assert [m.value for m in read_partition(kafka, target, 1)] == [b"small"]
