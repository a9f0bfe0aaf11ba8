"""`conductor start` with Single Message Transforms, end to end against the real Kafka and
Elasticsearch: a chain that inserts and renames fields, masks one, drops tombstones and routes the
topic the KCQL reads; and a record the mask fails on, sent to the dead-letter topic."""

from __future__ import annotations

import orjson
import pytest
from elasticsearch import Elasticsearch
from support.pipeline import (
    committed_offsets,
    create_topic,
    end_offsets,
    es_count,
    produce,
    read_partition,
    unique,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.servers

T = "org.apache.kafka.connect.transforms."
TS = 1_767_000_000_000


def value(n: int, pin: object = 1234) -> bytes:
    return orjson.dumps(
        {"reading_id": n, "sensor_id": f"sensor-{n:04d}", "celsius": 15.5 + n, "pin": pin, "secret": "s"}
    )


BAD = value(3, pin=True)  # MaskField cannot put the replacement "0" in a boolean
RECORDS = [
    (b"sensor-0000", value(0), TS),
    (b"sensor-0001", value(1), TS + 1),
    (b"sensor-0002", None, TS + 2),  # a tombstone: the Filter drops it
    (b"sensor-0003", BAD, TS + 3),
    (b"sensor-0004", value(4), TS + 4),
    (b"sensor-0005", value(5), TS + 5),
]
WRITTEN = (0, 1, 4, 5)


def documents(url: str, index: str) -> dict[str, dict]:
    client = Elasticsearch(url)
    try:
        client.indices.refresh(index=index)
        hits = client.search(index=index, size=100, query={"match_all": {}})["hits"]["hits"]
        return {hit["_id"]: hit["_source"] for hit in hits}
    finally:
        client.close()


def test_a_chain_of_transforms_reshapes_routes_filters_and_dead_letters(
    kafka, elasticsearch, conductors, tmp_path, index
) -> None:
    raw = create_topic(kafka, partitions=1, prefix="raw")
    routed = "clean" + raw.removeprefix("raw")  # what RegexRouter makes of it, and what KCQL reads
    dlq = unique("transforms-dlq")
    produce(kafka, raw, RECORDS)
    name = unique("transforms")
    config = write_config(
        tmp_path,
        name,
        raw,
        elasticsearch=elasticsearch,
        kafka=kafka,
        kcql=f"INSERT INTO {index} SELECT * FROM {routed}",
        errors__tolerance="all",
        errors__deadletterqueue__topic__name=dlq,
        errors__deadletterqueue__topic__replication__factor=1,
        errors__deadletterqueue__context__headers__enable="true",
        # the Filter first: MaskField fails on a tombstone, in Kafka Connect as here
        transforms="dropTombstones,tag,rename,mask,route",
        transforms__tag__type=T + "InsertField$Value",
        transforms__tag__static__field="source",
        transforms__tag__static__value="conductor",
        transforms__tag__topic__field="from_topic",
        transforms__rename__type=T + "ReplaceField$Value",
        transforms__rename__renames="celsius:temperature",
        transforms__rename__exclude="secret",
        transforms__mask__type=T + "MaskField$Value",
        transforms__mask__fields="pin",
        transforms__mask__replacement="0",
        transforms__dropTombstones__type=T + "Filter",
        transforms__dropTombstones__predicate="isTombstone",
        transforms__route__type=T + "RegexRouter",
        transforms__route__regex="raw-(.*)",
        transforms__route__replacement="clean-$1",
        predicates="isTombstone",
        predicates__isTombstone__type=T + "predicates.RecordIsTombstone",
    )
    conductor = conductors(config, workers=1)

    wait_for(
        lambda: committed_offsets(kafka, f"connect-{name}") == {0: len(RECORDS)},
        60,
        "every offset committed (the tombstone dropped, the bad record dead-lettered)",
    )
    assert es_count(elasticsearch, index) == len(WRITTEN)
    # no PK: the document id is <topic>-<partition>-<offset>, with the topic RegexRouter made
    assert documents(elasticsearch, index) == {
        f"{routed}-0-{n}": {
            "reading_id": n,
            "sensor_id": f"sensor-{n:04d}",
            "temperature": 15.5 + n,
            "pin": 0,
            "source": "conductor",
            "from_topic": raw,
        }
        for n in WRITTEN
    }

    assert end_offsets(kafka, dlq) == {0: 1}, "exactly the record the mask failed on is dead-lettered"
    (dead,) = read_partition(kafka, dlq, 1)
    assert (dead.key, dead.value) == (b"sensor-0003", BAD), "the original record, untransformed"
    headers = {key: header.decode() for key, header in dead.headers}
    assert headers["__connect.errors.topic"] == raw
    assert headers["__connect.errors.offset"] == "3"
    assert headers["__connect.errors.stage"] == "TRANSFORMATION"
    assert headers["__connect.errors.exception.message"] == (
        "transform mask (MaskField$Value): Cannot mask value of type class java.lang.Boolean with custom "
        "replacement."
    )
    wait_for(lambda: conductor.total("dead_lettered") == 1, 30, "the worker's state to count 1 dead-lettered")
    assert conductor.process.poll() is None, f"the task keeps running; log:\n{conductor.output()}"
    assert conductor.stop() == 0
    assert committed_offsets(kafka, f"connect-{name}") == {0: len(RECORDS)}
