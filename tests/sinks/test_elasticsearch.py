"""The Elasticsearch sink against the real server; the retry paths (429, 5xx, 413, gone)
against a small scripted HTTP server, since a healthy Elasticsearch does not produce them."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch
from support.records import TS, record, route
from support.scripted_es import items, whole

from conductor.config import ElasticsearchSettings
from conductor.errors import RecordError, RetriableRecordError, SinkUnavailable
from conductor.records import Record
from conductor.routes import Route
from sinks.elasticsearch import ElasticsearchSink, plan_requests


@pytest.fixture
def es(elasticsearch: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(elasticsearch)
    yield client
    client.close()


@pytest.fixture
def index(es: Elasticsearch) -> Iterator[Callable[[], str]]:
    """Unique index names; every index starting with one of them is deleted afterwards."""
    names: list[str] = []

    def make() -> str:
        names.append(f"conductor-test-{uuid.uuid4().hex[:12]}")
        return names[-1]

    yield make
    for name in names:
        found = es.indices.get(index=f"{name}*", allow_no_indices=True, expand_wildcards="all")
        for concrete in found.body:
            es.indices.delete(index=concrete)


@pytest.fixture
def make_sink(elasticsearch: str) -> Iterator[Callable[..., ElasticsearchSink]]:
    sinks: list[ElasticsearchSink] = []

    def make(
        routes: list[Route], hosts: tuple[str, ...] = (elasticsearch,), **settings: Any
    ) -> ElasticsearchSink:
        sink = ElasticsearchSink(ElasticsearchSettings(hosts=hosts, **settings), routes)
        sinks.append(sink)
        sink.setup()
        return sink

    yield make
    for sink in sinks:
        sink.close()


def documents(es: Elasticsearch, name: str) -> dict[str, dict[str, Any]]:
    es.indices.refresh(index=name)
    hits = es.search(index=name, size=10_000, query={"match_all": {}})["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


def count(es: Elasticsearch, name: str) -> int:
    es.indices.refresh(index=name)
    return es.count(index=name)["count"]


# -- against the real server ---------------------------------------------------------------


def test_insert_without_pk_ids_are_topic_partition_offset(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r])
    batch = [(record(offset, {"n": offset}), r) for offset in (5, 6)]
    assert sink.write(batch) == []
    assert sink.write(batch) == []  # a redelivered record overwrites itself
    assert documents(es, name) == {"readings-0-5": {"n": 5}, "readings-0-6": {"n": 6}}


def test_insert_with_pk_and_projection(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT sensor, celsius AS c FROM readings PK sensor, site")
    sink = make_sink([r])
    value = {"sensor": "s1", "site": 7, "celsius": 20.5, "other": True}
    assert sink.write([(record(1, value), r)]) == []
    assert documents(es, name) == {"s1-7": {"sensor": "s1", "c": 20.5}}


def test_daily_index_from_the_record_timestamp(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT * FROM readings WITHINDEXSUFFIX=_{{YYYY-MM-dd}}")
    sink = make_sink([r])
    next_day = TS + 86_400_000
    batch = [(record(1, {"a": 1}), r), (record(2, {"a": 2}, timestamp=next_day), r)]
    assert sink.write(batch) == []
    assert list(documents(es, f"{name}_2025-12-29")) == ["readings-0-1"]
    assert list(documents(es, f"{name}_2025-12-30")) == ["readings-0-2"]


def test_wallclock_suffix_uses_the_time_of_writing(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT * FROM readings WITHINDEXSUFFIX=_{{yyyy-MM-dd}}")
    sink = make_sink([r], suffix_clock="wallclock")
    assert sink.write([(record(1, {"a": 1}), r)]) == []
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert count(es, f"{name}_{today}") == 1


def test_dynamic_targets_from_key_and_value(es, index, make_sink):
    from_key, from_value = index(), index()
    by_key = route("INSERT INTO _key.region SELECT * FROM readings")
    by_value = route("INSERT INTO _value.region SELECT * FROM readings")
    sink = make_sink([by_key, by_value])
    key = orjson.dumps({"region": from_key})
    failures = sink.write(
        [
            (record(1, {"a": 1}, key=key), by_key),
            (record(2, {"region": from_value}), by_value),
            (record(3, {"no_region": 1}), by_value),
        ]
    )
    assert [(f.record.offset, type(f.error)) for f in failures] == [(3, RecordError)]
    assert "target field '_value.region' is missing" in failures[0].error.reason
    assert count(es, from_key) == 1 and count(es, from_value) == 1


def test_stream_reactor_targets_and_fields_reach_elasticsearch(es, index, make_sink):
    """The forms of Stream-Reactor's CreateIndexTest and KCQL tests, written for real: a header
    whose name has dots names the index, the key's fields and the record's coordinates are
    projected, @timestamp is a field name, and the id comes from a legacy _.key path."""
    name = index()
    r = route(
        "INSERT INTO `_header.'index.name'` SELECT _key.*, @timestamp, _.topic AS topic, "
        "_.offset AS offset, _header.meta.room AS room FROM readings PK _.key.home, _.offset"
    )
    sink = make_sink([r])
    rec = record(41, {"@timestamp": "2026-11-29T10:00:00Z", "celsius": 20.5}, key=b'{"home": "h7"}')
    rec.headers = [("index.name", name.encode()), ("meta", b'{"room": "kitchen"}')]
    assert sink.write([(rec, r)]) == []
    assert documents(es, name) == {
        "h7-41": {
            "home": "h7",
            "@timestamp": "2026-11-29T10:00:00Z",
            "topic": "readings",
            "offset": 41,
            "room": "kitchen",
        }
    }


def test_upsert_merges_partial_documents(es, index, make_sink):
    name = index()
    r = route(f"UPSERT INTO {name} SELECT * FROM readings PK id")
    sink = make_sink([r])
    batch = [(record(1, {"id": "d", "a": 1}), r), (record(2, {"id": "d", "b": 2}), r)]
    assert sink.write(batch) == []  # both in one request
    assert sink.write([(record(3, {"id": "d", "a": 3}), r)]) == []
    assert documents(es, name) == {"d": {"id": "d", "a": 3, "b": 2}}


@pytest.mark.parametrize("behaviour", ["IGNORE", "delete", "FAIL"])
def test_tombstones(es, index, make_sink, behaviour):
    name = index()
    r = route(
        f"INSERT INTO {name} SELECT * FROM readings PK _key "
        f"PROPERTIES('behavior.on.null.values'='{behaviour}')"
    )
    sink = make_sink([r])
    batch = [(record(1, {"a": 1}, key=b"k1"), r), (record(2, {"a": 2}, key=b"k2"), r)]
    assert sink.write(batch) == []
    failures = sink.write([(record(3, None, key=b"k1"), r)])
    if behaviour == "IGNORE":
        assert failures == [] and sorted(documents(es, name)) == ["k1", "k2"]
    elif behaviour == "delete":
        assert failures == [] and sorted(documents(es, name)) == ["k2"]
        assert sink.write([(record(4, None, key=b"never-written"), r)]) == []  # 404 is fine
    else:
        assert [f.error.reason for f in failures] == [
            "null value (tombstone) with behavior.on.null.values=FAIL"
        ]
        assert sorted(documents(es, name)) == ["k1", "k2"]


def test_tombstone_delete_needs_an_id_it_can_derive(es, index, make_sink):
    name = index()
    props = "PROPERTIES('behavior.on.null.values'='DELETE')"
    by_value_pk = route(f"INSERT INTO {name} SELECT * FROM readings PK id {props}")
    no_pk = route(f"INSERT INTO {name} SELECT * FROM readings {props}")
    sink = make_sink([by_value_pk, no_pk])
    assert sink.write([(record(7, {"id": "x"}), no_pk)]) == []
    failures = sink.write([(record(1, None), by_value_pk), (record(7, None), no_pk)])
    assert len(failures) == 1 and failures[0].record.offset == 1
    assert "PK id of the value, which a tombstone does not have" in failures[0].error.reason
    assert count(es, name) == 0  # readings-0-7 deleted by topic-partition-offset


def test_mapping_conflict_fails_exactly_that_record(es, index, make_sink):
    name = index()
    es.indices.create(index=name, mappings={"properties": {"celsius": {"type": "float"}}})
    r = route(f"INSERT INTO {name} SELECT * FROM readings PK sensor")
    sink = make_sink([r])
    batch = [(record(i, {"sensor": f"sensor-{i}", "celsius": 20.0 + i}), r) for i in range(10)]
    batch[4] = (record(4, {"sensor": "sensor-4", "celsius": "abc"}), r)
    failures = sink.write(batch)
    assert [f.record.offset for f in failures] == [4]
    reason = failures[0].error.reason
    assert not failures[0].retriable
    assert reason.startswith(f"Elasticsearch rejected document {name}/sensor-4: document_parsing_exception: ")
    assert "failed to parse field [celsius] of type [float]" in reason
    assert count(es, name) == 9


def test_small_max_bytes_makes_several_requests(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r], max_bytes=2_000)
    batch = [(record(i, {"n": i, "pad": "x" * 100}), r) for i in range(60)]
    assert sink.write(batch) == []
    assert sink.last_write.requests >= 4
    assert count(es, name) == 60


def test_kcql_batch_caps_actions_per_request(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT * FROM readings BATCH=7")
    sink = make_sink([r])
    assert sink.write([(record(i, {"n": i}), r) for i in range(20)]) == []
    assert sink.last_write.requests == 3
    assert count(es, name) == 20


def test_missing_pk_field_is_a_failure(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT * FROM readings PK id")
    sink = make_sink([r])
    failures = sink.write([(record(1, {"id": 1}), r), (record(2, {"other": 2}), r)])
    assert [(f.record.offset, f.route) for f in failures] == [(2, r)]
    assert "PK field 'id' is missing from record readings-0@2" in failures[0].error.reason
    assert count(es, name) == 1


def test_autocreate_creates_the_index(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT * FROM readings AUTOCREATE WITHINDEXSUFFIX=_{{yyyy}}")
    sink = make_sink([r])
    assert sink.write([(record(1, {"a": 1}), r)]) == []
    assert f"{name}_2025" in sink.created
    assert es.indices.exists(index=f"{name}_2025")
    assert sink.write([(record(2, {"a": 2}), r)]) == []  # seen: not created again
    assert count(es, f"{name}_2025") == 2


def test_pipeline_existing_and_missing(es, index, make_sink):
    name, pipeline = index(), f"conductor-test-{uuid.uuid4().hex[:8]}"
    es.ingest.put_pipeline(id=pipeline, processors=[])
    try:
        good = route(f"INSERT INTO {name} SELECT * FROM readings WITHPIPELINE={pipeline}")
        bad = route(f"INSERT INTO {name} SELECT * FROM readings WITHPIPELINE=no-such-pipeline")
        sink = make_sink([good, bad])
        failures = sink.write(
            [(record(1, {"a": 1}), good), (record(2, {"a": 2}), bad), (record(3, {"a": 3}), bad)]
        )
        assert [f.record.offset for f in failures] == [2, 3]
        assert "pipeline with id [no-such-pipeline] does not exist" in failures[0].error.reason
        assert count(es, name) == 1
    finally:
        es.ingest.delete_pipeline(id=pipeline)


def test_check_routes(caplog):
    routes = [
        route("INSERT INTO a SELECT * FROM t1 TTL=60"),
        route("UPSERT INTO b SELECT * FROM t2"),
        route("INSERT INTO c SELECT * FROM t3 PROPERTIES('behaviour.on.null'='x')"),
        route("INSERT INTO d SELECT * FROM t4 PROPERTIES('behavior.on.null.values'='drop')"),
        route(
            "INSERT INTO e SELECT * FROM t5 WITHDOCTYPE=reading "
            "PROPERTIES('behavior.on.null.values'='Delete')"
        ),
        route("INSERT INTO f SELECT a, now() AS at FROM t6"),
    ]
    sink = ElasticsearchSink(ElasticsearchSettings(hosts=("http://127.0.0.1:1",)), routes)
    with caplog.at_level(logging.WARNING, logger="sinks.elasticsearch"):
        problems = sink.check_routes(routes)
    assert problems == [
        "KCQL line 1 (a <- t1): TTL is not supported by Elasticsearch "
        "(use index suffixes or ILM to expire documents)",
        "KCQL line 1 (b <- t2): UPSERT requires a PK (the document id to merge into)",
        "KCQL line 1 (c <- t3): unknown PROPERTIES key 'behaviour.on.null' (known: behavior.on.null.values)",
        "KCQL line 1 (d <- t4): behavior.on.null.values='drop' must be one of IGNORE, DELETE, FAIL",
        "KCQL line 1 (f <- t6): now() is Cassandra's function; Elasticsearch has no use for it",
    ]
    assert "WITHDOCTYPE=reading has no effect" in caplog.text


def test_setup_against_an_unused_port_fails_fast():
    sink = ElasticsearchSink(
        ElasticsearchSettings(hosts=("http://user:secret@127.0.0.1:1",), write_timeout_ms=2_000), []
    )
    started = time.monotonic()
    with pytest.raises(SinkUnavailable) as caught:
        sink.setup()
    assert time.monotonic() - started < 5
    assert caught.value.reason.startswith("Elasticsearch at http://127.0.0.1:1 does not answer: ")
    assert "secret" not in str(caught.value)
    sink.close()


def test_twenty_thousand_documents_in_five_requests(es, index, make_sink):
    name = index()
    r = route(f"INSERT INTO {name} SELECT * FROM readings PK sensor")
    sink = make_sink([r])
    batch = [(record(i, {"sensor": f"s{i}", "celsius": i / 10, "site": "lab"}), r) for i in range(20_000)]
    assert sink.write(batch) == []
    assert sink.last_write.actions == 20_000
    assert sink.last_write.requests == 5  # batch_size 4000; well under max_bytes
    assert count(es, name) == 20_000


def test_plan_requests_bounds_actions_and_bytes():
    assert plan_requests([10, 10, 10, 10, 10], 2, 1_000) == [range(0, 2), range(2, 4), range(4, 5)]
    assert plan_requests([40, 40, 500, 40], 10, 100) == [range(0, 2), range(2, 3), range(3, 4)]
    assert plan_requests([], 10, 100) == []


# -- retry paths, against a scripted server ------------------------------------------------

R = route("INSERT INTO idx SELECT * FROM readings PK id")


def batch_of(n: int) -> list[tuple[Record, Route]]:
    return [(record(i, {"id": f"d{i}"}), R) for i in range(n)]


def test_items_refused_for_now_come_back_retriable_and_alone(scripted, make_sink):
    """One attempt per write(): the worker writes the refused items again (tasks/sink.py)."""
    server = scripted(
        [items(lambda pos, meta: 429 if meta["_id"] == "d1" else 201), items(lambda pos, meta: 201)]
    )
    sink = make_sink([R], hosts=(server.url,))
    batch = batch_of(3)
    failures = sink.write(batch)
    assert [(f.record.offset, f.retriable) for f in failures] == [(1, True)]
    assert failures[0].error.reason.startswith(
        "Elasticsearch rejected document idx/d1: es_rejected_execution_exception: queue full"
    )
    assert sink.write([batch[1]]) == []
    assert [[a["index"]["_id"] for a in request] for request in server.requests] == [
        ["d0", "d1", "d2"],
        ["d1"],
    ]


def test_a_refused_item_that_is_not_retriable_is_a_record_error(scripted, make_sink):
    server = scripted([items(lambda pos, meta: 400 if pos == 0 else 201, error="document_parsing_exception")])
    sink = make_sink([R], hosts=(server.url,))
    failures = sink.write(batch_of(2))
    assert [(f.record.offset, type(f.error)) for f in failures] == [(0, RecordError)]
    assert len(server.requests) == 1


def test_a_whole_request_refused_for_now_makes_each_record_retriable(scripted, make_sink):
    server = scripted([whole(503), whole(429), items(lambda pos, meta: 201)])
    sink = make_sink([R], hosts=(server.url,))
    for status in (503, 429):
        failures = sink.write(batch_of(3))
        assert [f.record.offset for f in failures] == [0, 1, 2]
        assert all(isinstance(f.error, RetriableRecordError) for f in failures)
        assert f"HTTP {status}" in failures[0].error.reason
    assert sink.write(batch_of(3)) == []
    assert len(server.requests) == 3


def test_413_splits_the_request(scripted, make_sink):
    server = scripted(
        [lambda actions: whole(413)(actions) if len(actions) > 2 else items(lambda pos, meta: 201)(actions)]
    )
    sink = make_sink([R], hosts=(server.url,))
    assert sink.write(batch_of(8)) == []
    assert [len(request) for request in server.requests] == [8, 4, 2, 2, 4, 2, 2]


def test_a_single_action_too_large_is_a_failure(scripted, make_sink):
    server = scripted([whole(413)])
    sink = make_sink([R], hosts=(server.url,))
    failures = sink.write(batch_of(2))
    assert [f.record.offset for f in failures] == [0, 1]
    assert "too large for Elasticsearch" in failures[0].error.reason


def test_write_while_unreachable_raises_sink_unavailable(scripted, make_sink):
    server = scripted([items(lambda pos, meta: 201)])
    sink = make_sink([R], hosts=(server.url,), write_timeout_ms=300)
    server.stop()
    started = time.monotonic()
    with pytest.raises(SinkUnavailable) as caught:
        sink.write(batch_of(3))
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert message.startswith(f"Elasticsearch at {server.url} does not answer: ConnectionError")
    assert message.endswith("(POST /_bulk)")


def test_a_hung_server_does_not_hold_write_past_the_timeout(scripted, make_sink):
    def hang(actions: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        time.sleep(3)
        return items(lambda pos, meta: 201)(actions)

    server = scripted([hang])
    sink = make_sink([R], hosts=(server.url,), write_timeout_ms=500)
    started = time.monotonic()
    with pytest.raises(SinkUnavailable, match="ConnectionTimeout"):
        sink.write(batch_of(1))
    assert time.monotonic() - started < 2


def test_requests_not_sent_before_the_write_timeout_are_retriable(scripted, make_sink):
    def slow(actions: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        time.sleep(0.3)
        return items(lambda pos, meta: 201)(actions)

    server = scripted([slow])
    sink = make_sink([R], hosts=(server.url,), write_timeout_ms=1000, batch_size=1)
    failures = sink.write(batch_of(6))
    assert 1 <= len(server.requests) < 6
    assert [f.record.offset for f in failures] == list(range(len(server.requests), 6))
    assert all(f.retriable and "not sent" in f.error.reason for f in failures)


def test_credentials_reach_every_host_and_the_connectors_own_win():
    from conductor.config.secrets import Secret
    from conductor.config.security import Credentials
    from sinks.search_server import SearchServer

    def headers(settings: ElasticsearchSettings) -> list[str | None]:
        server = SearchServer(settings)
        try:
            return [node.config.headers.get("authorization") for node in server.transport.node_pool.all()]
        finally:
            server.close()

    in_url = ElasticsearchSettings(hosts=("http://user:pw@es1:9200", "http://es2:9200"))
    assert sorted(headers(in_url), key=str) == ["Basic dXNlcjpwdw==", None]  # user:pw, on its own host
    own = ElasticsearchSettings(
        hosts=("http://user:pw@es1:9200", "http://es2:9200"),
        credentials=Credentials("elastic", Secret("s3cr3t")),
    )
    assert headers(own) == ["Basic ZWxhc3RpYzpzM2NyM3Q="] * 2  # elastic:s3cr3t
    api_key = ElasticsearchSettings(hosts=("https://es1:9200",), api_key=Secret("aWQ6a2V5"))
    assert headers(api_key) == ["ApiKey aWQ6a2V5"]
