"""The Elasticsearch sink against a real OpenSearch (compose/local up opensearch): the same
connect.elastic.* config and the same bulk path as for Elasticsearch; the server is told from
its root endpoint. OpenSearch is read here with plain HTTP (the elasticsearch client refuses it)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from support.pipeline import committed_offsets, create_topic, produce, unique, wait_for, write_config
from support.records import record, route

from conductor.config import ElasticsearchSettings
from conductor.errors import ConfigError
from sinks.elasticsearch import ElasticsearchSink
from sinks.search_server import SearchServer

pytestmark = pytest.mark.servers

DAY_MS = 86_400_000


class Plain:
    """An OpenSearch (or Elasticsearch) read over plain HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        answer = requests.request(method, self.url + path, json=body, timeout=30)
        assert answer.status_code in ok, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def count(self, index: str) -> int:
        self.call("POST", f"/{index}/_refresh", ok=(200, 404))
        return self.call("GET", f"/{index}/_count?ignore_unavailable=true&allow_no_indices=true")["count"]

    def documents(self, index: str) -> dict[str, Any]:
        self.call("POST", f"/{index}/_refresh")
        hits = self.call("POST", f"/{index}/_search?size=1000", {"query": {"match_all": {}}})["hits"]["hits"]
        return {hit["_id"]: hit["_source"] for hit in hits}

    def states(self, prefix: str) -> dict[str, str]:
        rows = self.call("GET", f"/_cat/indices/{prefix}*?format=json&h=index,status&expand_wildcards=all")
        return {row["index"]: row["status"] for row in rows}

    def delete_all(self, prefix: str) -> None:
        for name in self.states(prefix):
            self.call("DELETE", f"/{name}")


def day(days_ago: int, spelled: str = "%Y-%m-%d") -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime(spelled)


@pytest.fixture
def plain(opensearch: str) -> Iterator[Plain]:
    client = Plain(opensearch)
    prefixes: list[str] = []
    client.prefixes = prefixes
    yield client
    for prefix in prefixes:
        client.delete_all(prefix)


@pytest.fixture
def name(plain: Plain) -> str:
    prefix = f"os-test-{uuid.uuid4().hex[:10]}"
    plain.prefixes.append(prefix)
    return prefix


@pytest.fixture
def make_sink(opensearch: str) -> Iterator[Callable[..., ElasticsearchSink]]:
    sinks: list[ElasticsearchSink] = []

    def make(routes: list, **settings: Any) -> ElasticsearchSink:
        sink = ElasticsearchSink(ElasticsearchSettings(hosts=(opensearch,), **settings), routes)
        sinks.append(sink)
        sink.setup()
        return sink

    yield make
    for sink in sinks:
        sink.close()


def test_the_server_is_told_from_its_root_and_the_key_must_agree(opensearch: str, elasticsearch: str) -> None:
    found = SearchServer(ElasticsearchSettings(hosts=(opensearch,))).identify()
    assert found.name == "opensearch" and found.version.split(".")[0] in ("2", "3"), found
    assert str(found).startswith("OpenSearch ")
    other = SearchServer(ElasticsearchSettings(hosts=(elasticsearch,))).identify()
    assert other.name == "elasticsearch" and str(other).startswith("Elasticsearch "), other
    assert (
        SearchServer(ElasticsearchSettings(hosts=(opensearch,), distribution="opensearch")).identify()
        == found
    )
    with pytest.raises(ConfigError) as caught:
        SearchServer(ElasticsearchSettings(hosts=(opensearch,), distribution="elasticsearch")).identify()
    assert caught.value.problems == [
        f"conductor.elastic.distribution=elasticsearch, but the server at {opensearch} is {found}"
    ]
    with pytest.raises(ConfigError, match=r"distribution=opensearch, but the server at .* is Elasticsearch "):
        SearchServer(ElasticsearchSettings(hosts=(elasticsearch,), distribution="opensearch")).identify()


def test_round_trip_daily_indexes_upserts_and_deletes(plain: Plain, name: str, make_sink) -> None:
    r = route(f"INSERT INTO {name} SELECT * FROM readings PK sensor WITHINDEXSUFFIX=_{{yyyy-MM-dd}}")
    upsert = route(f"UPSERT INTO {name}-merged SELECT * FROM readings PK sensor")
    plain.call("PUT", f"/{name}-merged")
    sink = make_sink([r, upsert])
    first = int(datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp() * 1000)
    batch = [
        (record(n, {"sensor": f"s{n}", "celsius": 20.0 + n}, timestamp=first + (n % 2) * DAY_MS), r)
        for n in range(6)
    ]
    batch += [(record(10, {"sensor": "s1", "a": 1}), upsert), (record(11, {"sensor": "s1", "b": 2}), upsert)]
    assert sink.write(batch) == []
    assert plain.documents(f"{name}_2026-03-01") == {
        f"s{n}": {"sensor": f"s{n}", "celsius": 20.0 + n} for n in (0, 2, 4)
    }
    assert set(plain.documents(f"{name}_2026-03-02")) == {"s1", "s3", "s5"}
    assert plain.documents(f"{name}-merged") == {"s1": {"sensor": "s1", "a": 1, "b": 2}}
    deleting = route(
        f"INSERT INTO {name}-merged SELECT * FROM readings PK _key PROPERTIES('behavior.on.null.values'='DELETE')"
    )
    sink = make_sink([deleting])
    assert sink.write([(record(12, None, key=b"s1"), deleting)]) == []
    assert plain.count(f"{name}-merged") == 0


def test_bulk_failures_mapping_and_closed_index(plain: Plain, name: str, make_sink) -> None:
    plain.call("PUT", f"/{name}", {"mappings": {"properties": {"celsius": {"type": "float"}}}})
    plain.call("PUT", f"/{name}-closed")
    plain.call("POST", f"/{name}-closed/_close")
    r = route(f"INSERT INTO {name} SELECT * FROM readings PK sensor")
    late = route(f"INSERT INTO {name}-closed SELECT * FROM readings PK sensor")
    sink = make_sink([r, late])
    batch = [(record(i, {"sensor": f"s{i}", "celsius": 20.0 + i}), r) for i in range(5)]
    batch[2] = (record(2, {"sensor": "s2", "celsius": "hot"}), r)
    batch.append((record(9, {"sensor": "s9", "celsius": 1.0}), late))
    failures = sink.write(batch)
    assert [(f.record.offset, f.error.kind, f.retriable) for f in failures] == [
        (2, "mapping", False),
        (9, "index_closed", False),
    ]
    assert failures[0].error.reason.startswith(
        f"OpenSearch rejected document {name}/s2: mapper_parsing_exception: "
    )
    assert failures[1].error.reason.startswith(
        f"OpenSearch rejected document {name}-closed/s9: index_closed_exception: closed. "
        f"Index {name}-closed is closed"
    )
    assert f"POST /{name}-closed/_open" in failures[1].error.reason
    assert plain.count(name) == 4
    assert plain.states(f"{name}-closed") == {f"{name}-closed": "close"}


def test_conductor_start_and_retention_on_opensearch(
    kafka: str, opensearch: str, plain: Plain, tmp_path: Path, conductors
) -> None:
    """The Stream-Reactor config pointed at OpenSearch as it is: records in, retention on."""
    target = unique("os-live").replace("-", "_")
    plain.prefixes.append(target)
    old, older, recent = (f"{target}_{day(k)}" for k in (8, 31, 3))
    lookalike = f"{target}_{day(8, '%Y.%m.%d')}"
    for index in (old, older, recent, lookalike, f"keep_{target}"):
        plain.call("PUT", f"/{index}")
    plain.prefixes.append(f"keep_{target}")
    alias = f"{target}_{day(40)}"
    plain.call("POST", "/_aliases", {"actions": [{"add": {"index": f"keep_{target}", "alias": alias}}]})
    topic = create_topic(kafka, partitions=3)
    config = write_config(
        tmp_path,
        unique("os-sink"),
        topic,
        elasticsearch=opensearch,
        kafka=kafka,
        kcql=f"INSERT INTO {target} SELECT * FROM {topic} PK reading_id WITHINDEXSUFFIX=_{{yyyy-MM-dd}}",
        conductor__index__close__after__days=7,
        conductor__index__delete__after__days=30,
    )
    dry = subprocess.run(
        [sys.executable, "-m", "conductor.cli", "retention", "--config", str(config), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == "1 to close, 1 to delete, 3 left (dry run: nothing changed)"

    conductor = conductors(config, workers=3)
    now = int(datetime.now(UTC).timestamp() * 1000)
    values = [orjson.dumps({"reading_id": n, "celsius": 20.5, "timestamp": now}) for n in range(300)]
    produce(kafka, topic, [(b"k%d" % n, value, now) for n, value in enumerate(values)])
    today = f"{target}_{day(0)}"
    wait_for(lambda: plain.count(today) == 300, 60, "300 documents in OpenSearch")
    wait_for(lambda: sum(committed_offsets(kafka, f"connect-{config.stem}").values()) == 300, 30, "commits")
    wait_for(lambda: plain.states(target).get(old) == "close", 30, "retention to close the old day")
    states = plain.states(target)
    assert older not in states and states[recent] == "open" and states[lookalike] == "open"
    assert states[today] == "open"
    assert plain.call("GET", f"/_alias/{alias}") == {f"keep_{target}": {"aliases": {alias: {}}}}
    assert conductor.stop() == 0
