"""Stream-Reactor's own KCQL statements, read by conductor as Stream-Reactor reads them.

The statements and what each Stream-Reactor test asserts about them are test data
(data/stream_reactor_kcql/*.yaml, with their source file and line). Each one is:
- read as Stream-Reactor reads it: the same parse, the same parts, the same connector
  outcome (index name, document id, Cassandra table and columns);
- or a clause of another Stream-Reactor connector (STOREAS, PARTITIONBY, a SELECT without
  INSERT, ...), which conductor refuses with the message it gives any unknown clause;
- or one of the DIFFERENCES below, each a deliberate choice, listed in the README.
A statement may be in only one class: the totals test keeps the count honest.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.stream_reactor_kcql import expected_view, quoted_split, sr_view

from conductor.config import ElasticsearchSettings, parse_config
from conductor.connector import build_connector
from conductor.errors import ConfigError, RecordError
from conductor.kcql import Field, KcqlSyntaxError, Statement, parse_kcql
from conductor.records import Record
from conductor.routes import compile_route
from sinks.elasticsearch import plan_route

DATA = Path(__file__).parent / "data" / "stream_reactor_kcql"
CASES = [
    case
    for name in ("kcql_module.yaml", "elasticsearch.yaml", "cassandra.yaml")
    for case in yaml.safe_load((DATA / name).read_text())
]
OTHER_CONNECTOR_START = "SELECT_ONLY"  # Stream-Reactor's source connectors' statement form

# Where conductor reads a statement differently on purpose: source file:line -> why. The README
# lists the same differences; DIFFERENCE_CHECKS below shows each one.
DIFFERENCES: dict[str, str] = {
    "KcqlTest.java:458": "a character outside KCQL's alphabet (here the '%' of an unformatted "
    "'%s') is an error; Stream-Reactor's lexer drops it with a note on stderr and reads 's'",
    "CreateIndexTest.scala:48": "AUTOCREATE with a target read from the record creates each "
    "index the first time a record names it; Stream-Reactor refuses to auto-create there",
    "CreateIndexTest.scala:41": "WITHINDEXSUFFIX dates come from the record's timestamp (a "
    "replay lands in the same daily index); conductor.index.suffix.clock=wallclock gives "
    "Stream-Reactor's clock of writing",
    "ITBase.scala:235": "the same: WITHINDEXSUFFIX dates come from the record's timestamp",
    "CassandraSettingsTest.scala:646": "a Cassandra target without a keyspace is a table of "
    "connect.cassandra.key.space, as in Stream-Reactor's first Cassandra sink; its newer sink "
    "wants keyspace.table",
}


def case_id(case: dict[str, Any]) -> str:
    path, line = case["source"].rsplit(":", 1)
    return f"{path.rsplit('/', 1)[-1]}:{line}"


def classify(case: dict[str, Any]) -> str:
    if case_id(case) in DIFFERENCES:
        return "difference"
    if case.get("clauses"):
        return "other connector"
    return "as stream-reactor"


BY_CLASS: dict[str, list[dict[str, Any]]] = {}
for _case in CASES:
    BY_CLASS.setdefault(classify(_case), []).append(_case)


def params(kind: str) -> list[Any]:
    return [pytest.param(case, id=case_id(case)) for case in BY_CLASS.get(kind, [])]


# -- the classes --------------------------------------------------------------------------------


def parse_one(text: str) -> Statement:
    (statement,) = parse_kcql(text)
    return statement


@pytest.mark.parametrize("case", params("as stream-reactor"))
def test_read_as_stream_reactor_reads_it(case: dict[str, Any]) -> None:
    if "target_only" in case:
        # TargetTypeParser reads the target after Kcql.unescape: a back-quoted target here.
        statement = parse_one(f"INSERT INTO `{case['target_only']}` SELECT * FROM t")
        expected = case["asserts"]["target_type"]
        assert sr_view(statement)["target_type"] == {
            "kind": expected["kind"],
            "path": quoted_split(expected["path"]) if expected.get("path") else None,
        }
        return
    if case["sr"] == "fails" and case.get("fails_in") == "parser":
        with pytest.raises(KcqlSyntaxError):
            parse_kcql(case["kcql"])
        return
    try:
        statements = parse_kcql(case["kcql"])
    except KcqlSyntaxError:
        # Refused by the parser where Stream-Reactor refuses it in the connector: both refuse.
        assert case["sr"] == "fails", "Stream-Reactor parses this"
        return
    asserts = case.get("asserts") or {}
    # Several statements in one text: Stream-Reactor's parseMultiple, one set of asserts each.
    each = asserts.get("statements")
    if each is None:  # one set for the whole text: for several statements, connector facts only
        assert len(statements) == 1 or set(asserts) <= {"connector"}
        each = [asserts] * len(statements)
    assert len(statements) == len(each)
    for statement, expected_asserts in zip(statements, each, strict=True):
        expected = expected_view(expected_asserts)
        view = sr_view(statement)
        assert {key: view[key] for key in expected} == expected
        connector = expected_asserts.get("connector")
        if case["sr"] == "fails" or connector:
            check_connector(case, statement, connector or {})


@pytest.mark.parametrize("case", params("other connector"))
def test_clauses_of_other_connectors_are_refused_as_unknown_clauses(case: dict[str, Any]) -> None:
    with pytest.raises(KcqlSyntaxError) as info:
        parse_kcql(case["kcql"])
    message = info.value.message
    if OTHER_CONNECTOR_START in case["clauses"]:
        assert message.startswith("Expected 'INSERT' or 'UPSERT', found 'SELECT'"), message
    else:
        found = (info.value.found or "").strip("'").upper()
        assert any(found.startswith(clause) for clause in case["clauses"]), message
        assert "after the statement; expected one of: IGNORE, PK," in message


@pytest.mark.parametrize("case", params("difference"))
def test_deliberate_differences_read_as_conductor_documents_them(case: dict[str, Any]) -> None:
    DIFFERENCE_CHECKS[case_id(case)](case)


def refuses_the_stray_character(case: dict[str, Any]) -> None:
    with pytest.raises(KcqlSyntaxError, match=r"Expected a topic name, found '%' at line 1, column 46"):
        parse_kcql(case["kcql"])


def autocreates_indexes_named_by_records(case: dict[str, Any]) -> None:
    statement = parse_one(case["kcql"] + " AUTOCREATE")
    connector = connector_of(case, statement)
    (route,) = connector.routes[statement.topic]
    plan = plan_route(route, connector.sink.settings)
    assert plan.autocreate
    assert (
        plan.index_of(record_of(statement.topic, {"key": {"sausages": "bratwurst"}, "value": {}}), 0)
        == "bratwurst"
    )


def a_table_alone_is_in_the_configured_keyspace(case: dict[str, Any]) -> None:
    statement = parse_one(case["kcql"])
    connector = connector_of(case, statement)
    assert statement.target.path == ("invalidtable",)
    assert connector.sink.settings.keyspace == CASSANDRA_CONFIG["connect.cassandra.key.space"]


def index_suffix_from_the_record_time(case: dict[str, Any]) -> None:
    statement = parse_one(case["kcql"])
    (route,) = connector_of(case, statement).routes[statement.topic]
    record = record_of(statement.topic, {"value": {}})
    record.timestamp = 1_700_000_000_000  # 2023-11-14 in UTC
    written_at = 1_720_000_000_000  # 2024-07-03
    base = statement.target.name + statement.index_suffix.split("{")[0]
    by_record = plan_route(route, ElasticsearchSettings(hosts=("localhost",)))
    assert by_record.index_of(record, written_at) == base + "2023-11-14"
    by_clock = plan_route(route, ElasticsearchSettings(hosts=("localhost",), suffix_clock="wallclock"))
    assert by_clock.index_of(record, written_at) == base + "2024-07-03"


DIFFERENCE_CHECKS: dict[str, Any] = {
    "CreateIndexTest.scala:41": index_suffix_from_the_record_time,
    "ITBase.scala:235": index_suffix_from_the_record_time,
    "CassandraSettingsTest.scala:646": a_table_alone_is_in_the_configured_keyspace,
    "KcqlTest.java:458": refuses_the_stray_character,
    "CreateIndexTest.scala:48": autocreates_indexes_named_by_records,
}


# Statements Stream-Reactor refuses and conductor reads, on purpose (README), with what they mean.
CONDUCTOR_READS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "keywords in any case (Stream-Reactor: all lower or all upper)",
        "Insert Into idx Select * From t Pk id",
        {"write_mode": "INSERT", "source": "t", "primary_keys": [{"name": "id"}]},
    ),
    (
        "clauses in any order (Stream-Reactor: a fixed order)",
        "INSERT INTO idx SELECT * FROM t WITHINDEXSUFFIX=_{YYYY} PK id AUTOCREATE",
        {"index_suffix": "_{YYYY}", "primary_keys": [{"name": "id"}], "autocreate": True},
    ),
    (
        "a ';' inside quotes does not end the statement (Stream-Reactor splits at every ';')",
        "INSERT INTO idx SELECT `a;b` FROM t PROPERTIES('behavior.on.null.values'='IGNORE;')",
        {"fields": [{"name": "a;b"}], "properties": {"behavior.on.null.values": "IGNORE;"}},
    ),
    (
        "unquoted now() is Cassandra's function (Stream-Reactor drops the column silently)",
        "INSERT INTO ks.t SELECT id, now() AS loaded FROM t",
        {"fields": [{"name": "id"}, {"name": "now()", "alias": "loaded"}]},
    ),
]


@pytest.mark.parametrize(("why", "kcql", "expected"), CONDUCTOR_READS, ids=[c[0] for c in CONDUCTOR_READS])
def test_forms_that_only_conductor_reads(why: str, kcql: str, expected: dict[str, Any]) -> None:
    view = sr_view(parse_one(kcql))
    assert {key: view[key] for key in expected} == expected


def test_every_statement_is_in_exactly_one_class() -> None:
    totals = Counter(classify(case) for case in CASES)
    assert totals == {"as stream-reactor": 171, "other connector": 88, "difference": 6}
    assert set(DIFFERENCES) <= {case_id(case) for case in CASES}, "a DIFFERENCES entry names no statement"
    assert set(DIFFERENCES) == set(DIFFERENCE_CHECKS)
    print(f"\n{len(CASES)} statements: {dict(totals)}")


# -- what the connectors derive from a statement ------------------------------------------------

ES_CONFIG = {
    "name": "conformance",
    "connector.class": "com.datamountaineer.streamreactor.connect.elastic8.ElasticSinkConnector",
    "connect.elastic.hosts": "localhost",
    "bootstrap.servers": "localhost:9092",
}


CASSANDRA_CONFIG = {
    "name": "conformance",
    "connector.class": "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
    "connect.cassandra.contact.points": "localhost",
    "connect.cassandra.key.space": "default_ks",
    "bootstrap.servers": "localhost:9092",
}


def is_cassandra(case: dict[str, Any]) -> bool:
    return "cassandra" in case["source"]


def connector_of(case: dict[str, Any], statement: Statement):
    """The connector conductor builds for this one statement (ConfigError if it refuses it)."""
    if is_cassandra(case):
        config = {**CASSANDRA_CONFIG, "connect.cassandra.kcql": statement.text}
    else:
        config = {**ES_CONFIG, "connect.elastic.kcql": statement.text}
    return build_connector(parse_config({**config, "topics": statement.topic}, environ={}))


def record_of(topic: str, given: dict[str, Any]) -> Record:
    key = given.get("key")
    if key is not None and not isinstance(key, str):
        key = json.dumps(key)
    headers = [
        (name, None if v is None else (v if isinstance(v, str) else json.dumps(v)).encode())
        for name, v in (given.get("headers") or {}).items()
    ]
    return Record(
        topic,
        given.get("partition", 0),
        given.get("offset", 0),
        1_700_000_000_000,
        None if key is None else key.encode(),
        given.get("value"),
        headers,
    )


def check_connector(case: dict[str, Any], statement: Statement, facts: dict[str, Any]) -> None:
    if case["sr"] == "fails":
        # The config is refused, or else each record the test gives is.
        try:
            connector = connector_of(case, statement)
        except ConfigError:
            return
        assert facts.get("records"), "Stream-Reactor refuses this; conductor took the config"
        for given in facts["records"]:
            with pytest.raises(RecordError):
                write_es(connector, statement, given)
        return
    if is_cassandra(case):
        check_cassandra(case, statement, facts)
        return
    connector = connector_of(case, statement)
    if "index" in facts:
        assert compile_route(statement).target(record_of(statement.topic, {"value": {}})) == facts["index"]
    (route,) = connector.routes[statement.topic]
    for given in facts.get("records") or []:
        if "index" in given:
            index_of = plan_route(route, connector.sink.settings).index_of
            assert index_of(record_of(statement.topic, given), 0) == given["index"]
        if not {"request", "id", "document"} & set(given):
            continue
        line = write_es(connector, statement, given)
        if given.get("request") == "none":
            assert line is None
            continue
        action, meta = next(iter(line[0].items()))
        if "request" in given:
            assert action == given["request"]
        if "id" in given:
            assert meta["_id"] == given["id"]
        if "document" in given:
            assert line[1] == given["document"]
    for search in facts.get("search") or []:
        # Stream-Reactor's integration tests count documents after writing its test records
        # (ITBase): here, the distinct (index, id) pairs the sink writes them to.
        nested = "Nested" in facts.get("note", "") or "Nested" in search["after"]
        written = {index_and_id(write_es(connector, statement, given)) for given in it_records(nested)}
        assert len(written) == search["total_hits"]
        assert {index for index, _ in written} == {search["index"]}


def index_and_id(lines: list[dict[str, Any]] | None) -> tuple[str, str]:
    assert lines is not None
    ((_, meta),) = lines[0].items()
    return meta["_index"], meta["_id"]


def it_records(nested: bool) -> list[dict[str, Any]]:
    """ITBase.getTestRecords / getTestRecordsNested: 14 records, partitions 12 and 13."""
    records = []
    for partition in (12, 13):
        for offset in range(1, 8):
            value: dict[str, Any] = {
                "id": f"sink_test-{partition}-{offset}",
                "int_field": 12,
                "long_field": 12,
                "string_field": "foo",
            }
            if nested:
                value["nested"] = dict(value)
            records.append({"key": "key", "value": value, "partition": partition, "offset": offset})
    return records


def write_es(connector, statement: Statement, given: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The bulk lines the Elasticsearch sink makes of one record (None if it makes none);
    a RecordError where the sink refuses the record."""
    sink = connector.sink
    (route,) = connector.routes[statement.topic]
    sink.plans = {id(route): plan_route(route, sink.settings)}
    failures: list[Any] = []
    actions, _ = sink.actions([(record_of(statement.topic, given), route)], failures)
    if failures:
        raise failures[0].error
    if not actions:
        return None
    return [json.loads(line) for line in actions[0][0].splitlines()]


CASSANDRA_FACTS = {"namespace", "table", "field_mappings", "field_mapping_count"}


def check_cassandra(case: dict[str, Any], statement: Statement, facts: dict[str, Any]) -> None:
    """Where the Cassandra sink writes and which field fills which column. Rows that
    Stream-Reactor's integration tests write are not replayed here (tests/sinks write real ones)."""
    if not CASSANDRA_FACTS & set(facts):
        return
    try:
        connector_of(case, statement)
    except ConfigError as error:
        # Accepted but for the options of Stream-Reactor's newer Cassandra sink, each named.
        assert error.problems == [
            f"KCQL line 1 ({statement.target.name} <- {statement.topic}): PROPERTIES key {key!r} "
            f"is not supported by the Cassandra sink"
            for key in statement.properties
        ]
    path = statement.target.path
    keyspace, table = path if len(path) == 2 else (CASSANDRA_CONFIG["connect.cassandra.key.space"], path[0])
    if "namespace" in facts:
        assert keyspace == facts["namespace"]
    if "table" in facts:
        assert table == facts["table"]
    mappings = {
        field.name: {"from": cassandra_from(field), "to": field.name, "type": field.source}
        for field in statement.fields
        if not field.wildcard
    }
    if "field_mapping_count" in facts:
        assert len(mappings) == facts["field_mapping_count"]
    for expected in facts.get("field_mappings") or []:
        if "from" in expected:
            expected = {**expected, "from": removeprefix(str(expected["from"]), "_value.")}
        assert {k: mappings[expected["to"]][k] for k in expected} == expected


def cassandra_from(field: Field) -> str:
    if field.source == "now":
        return "now()"
    return ".".join(field.path) or f"_{field.source}"


def removeprefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if text.startswith(prefix) else text
