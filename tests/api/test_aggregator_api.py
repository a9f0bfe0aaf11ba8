"""The aggregator through the REST server: open windows, late records and output topics in its
state; paused, it writes no result and commits no offset, then goes on exactly where it stopped."""

from __future__ import annotations

import time

import pytest
import requests
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from support.aggregates import BASE, MINUTE, config, read_results, readings
from support.pipeline import committed_offsets, create_topic, produce, unique, wait_for

pytestmark = pytest.mark.servers


def end_offset(kafka: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=kafka, isolation_level="read_committed")
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def test_aggregator_state_pause_and_metrics(kafka, tmp_path, conductors):
    topic = create_topic(kafka, 2, "agg-api-in")
    output = unique("agg-api-out")
    sql = (
        f"INSERT INTO {output} SELECT sensor_id, COUNT(*) AS n FROM {topic} KEYED BY sensor_id "
        "WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY sensor_id"
    )
    name = unique("agg-api")
    conductor = conductors(
        config(tmp_path, name, topic, sql, kafka, conductor__aggregate__idle__close__ms=0), workers=2
    )
    url = conductor.url()
    state_url = f"{url}/conductor/state"
    wait_for(
        lambda: all(
            t["state"] == "RUNNING" and t["partitions"] for t in requests.get(state_url).json()["tasks"]
        ),
        60,
        "both tasks running",
    )
    first = readings(400, 3 * MINUTE, sensors=10)
    produce(kafka, topic, (r.as_record() for r in first))
    # Three minutes of readings: two closed windows per sensor (the third stays open).
    read_results(kafka, output, 20)
    state = wait_for(
        lambda: (
            (s := requests.get(state_url).json())
            and sum(t.get("open_windows", 0) for t in s["tasks"]) == 10
            and s
        ),
        30,
        "the open windows reported",
    )
    assert state["kind"] == "aggregator" and state["type"] == "aggregator"
    assert all(t["output_topics"] == [output] for t in state["tasks"])
    assert sum(t["read"] for t in state["tasks"]) == 400 and all("late" in t for t in state["tasks"])

    requests.put(f"{url}/connectors/{name}/pause").raise_for_status()
    status_url = f"{url}/connectors/{name}/status"
    wait_for(
        lambda: [t["state"] for t in requests.get(status_url).json()["tasks"]] == ["PAUSED"] * 2, 30, "paused"
    )
    results, committed = end_offset(kafka, output), committed_offsets(kafka, f"connect-{name}")
    later = readings(400, 3 * MINUTE, sensors=10, start=BASE + 3 * MINUTE)
    produce(kafka, topic, (r.as_record() for r in later))
    time.sleep(5)
    assert end_offset(kafka, output) == results, "a paused aggregator wrote results"
    assert committed_offsets(kafka, f"connect-{name}") == committed

    requests.put(f"{url}/connectors/{name}/resume").raise_for_status()
    wait_for(lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == 800, 60, "all read")
    read_results(kafka, output, 50)  # minutes 2 to 4 close too: 10 sensors each; minute 5 stays open

    families = {f.name: f for f in text_string_to_metric_families(requests.get(f"{url}/metrics").text)}
    read = sum(
        s.value
        for s in families["kafka_connect_sink_task_sink_record_read"].samples
        if s.name.endswith("_total")
    )
    assert read == 800
    assert "conductor_aggregate_windows_open" in families
    assert (
        sum(s.value for s in families["conductor_aggregate_results"].samples if s.name.endswith("_total"))
        == 50
    )
