"""Routes compiled from KCQL: projection, targets and primary keys (pure, no server)."""

from __future__ import annotations

import pytest

from conductor.errors import RecordError
from conductor.kcql import parse_kcql
from conductor.records import Record
from conductor.routes import by_topic, compile_route


def record(value, key=b'{"region": "eu", "id": 7}', headers=None, offset=5) -> Record:
    return Record("t", 2, offset, 1_700_000_000_000, key, value, headers or [("h", b"from-header")])


def route(kcql: str):
    (statement,) = parse_kcql(kcql)
    return compile_route(statement)


def test_select_star_returns_the_value_itself_without_copying() -> None:
    value = {"sensor_id": "s1", "celsius": 20.5}
    assert route("INSERT INTO idx SELECT * FROM t").project(record(value)) is value


def test_fields_aliases_nested_key_and_header() -> None:
    r = route("INSERT INTO idx SELECT a.b.c AS abc, x, _key.region AS region, _header.h, a.d.* FROM t")
    value = {"a": {"b": {"c": 1}, "d": {"e": 2, "f": 3}}, "x": "y", "z": 0}
    assert r.project(record(value)) == {
        "abc": 1,
        "x": "y",
        "region": "eu",
        "h": "from-header",
        "e": 2,
        "f": 3,
    }


def test_ignore_removes_nested_fields_without_touching_the_record() -> None:
    r = route("INSERT INTO idx SELECT * FROM t IGNORE a.b, z")
    value = {"a": {"b": 1, "c": 2}, "z": 0, "k": 1}
    assert r.project(record(value)) == {"a": {"c": 2}, "k": 1}
    assert value == {"a": {"b": 1, "c": 2}, "z": 0, "k": 1}


def test_missing_selected_fields_are_left_out() -> None:
    assert route("INSERT INTO idx SELECT x, y FROM t").project(record({"x": 1})) == {"x": 1}


def test_primary_key_from_value_key_and_nested_paths() -> None:
    r = route("INSERT INTO idx SELECT * FROM t PK sensor_id, a.b, _key.id")
    rec = record({"sensor_id": "s1", "a": {"b": True}})
    assert r.primary_key(rec) == ("s1", True, 7)
    assert r.primary_key_text(rec, "|") == "s1|true|7"


def test_a_missing_primary_key_field_is_a_record_error_that_names_it() -> None:
    r = route("INSERT INTO idx SELECT * FROM t PK sensor_id")
    with pytest.raises(RecordError, match=r"PK field 'sensor_id' is missing from record t-2@5"):
        r.primary_key(record({"celsius": 1}))


def test_a_structured_primary_key_value_is_refused() -> None:
    r = route("INSERT INTO idx SELECT * FROM t PK a")
    with pytest.raises(RecordError, match="is a dict, not a scalar"):
        r.primary_key(record({"a": {"b": 1}}))


def test_dynamic_targets_from_key_value_and_header() -> None:
    rec = record({"room": "kitchen"})
    assert route("INSERT INTO _key.region SELECT * FROM t").target(rec) == "eu"
    assert route("INSERT INTO _value.room SELECT * FROM t").target(rec) == "kitchen"
    assert route("INSERT INTO _header.h SELECT * FROM t").target(rec) == "from-header"
    with pytest.raises(RecordError, match=r"target field '_value\.floor' is missing from record t-2@5"):
        route("INSERT INTO _value.floor SELECT * FROM t").target(rec)


def test_routes_by_topic_keep_every_statement_of_a_topic() -> None:
    statements = parse_kcql(
        "INSERT INTO a SELECT * FROM t; INSERT INTO b SELECT x FROM t; INSERT INTO c SELECT * FROM u"
    )
    routes = by_topic([compile_route(statement) for statement in statements])
    assert {topic: [r.target(record({})) for r in rs] for topic, rs in routes.items()} == {
        "t": ["a", "b"],
        "u": ["c"],
    }


# -- every form the grammar accepts, compiled and run on one record ------------------------

FULL = Record(
    "readings",
    3,
    42,
    1_700_000_000_123,
    b'{"home": {"id": "h1", "zone": "eu"}, "n": 2, "field.1": {"field.2": "dotted-key"}}',
    {
        "sensor": {"id": "s1", "celsius": 20.5},
        "@timestamp": "2026-11-29",
        "customer.name": {"first.name": "ann"},
    },
    [
        ("h", b"first"),
        ("h", b"last"),
        ("prefix.abc.suffix", b"from-dotted-header"),
        ("p", b'{"c": "nested-in-header", "d": {"e": 5}}'),
    ],
)


@pytest.mark.parametrize(
    ("select", "document"),
    [
        ("*", FULL.value),
        ("sensor.*", {"id": "s1", "celsius": 20.5}),
        ("_value.sensor.*", {"id": "s1", "celsius": 20.5}),
        ("_value.*", FULL.value),
        ("_value", {"_value": FULL.value}),
        ("_value AS v", {"v": FULL.value}),
        ("_value.sensor.id AS sid", {"sid": "s1"}),
        ("sensor.celsius, @timestamp", {"celsius": 20.5, "@timestamp": "2026-11-29"}),
        ("`customer.name`.`first.name` AS first", {"first": "ann"}),
        ("_key", {"_key": FULL.key.decode()}),
        ("_key.*", {"home": {"id": "h1", "zone": "eu"}, "n": 2, "field.1": {"field.2": "dotted-key"}}),
        ("_key.home.*", {"id": "h1", "zone": "eu"}),
        ("_key.home.zone AS zone, _key.n", {"zone": "eu", "n": 2}),
        ("_header.h", {"h": "last"}),
        ("_header.p.c, _header.p.d.e AS e", {"c": "nested-in-header", "e": 5}),
        (
            "_.topic, _.partition, _.offset, _.timestamp",
            {"topic": "readings", "partition": 3, "offset": 42, "timestamp": 1_700_000_000_123},
        ),
        ("_.TOPIC AS t, _.key.n AS n, _.key.home.*", {"t": "readings", "n": 2, "id": "h1", "zone": "eu"}),
        ("sensor.id AS 'sensor id'", {"sensor id": "s1"}),
    ],
)
def test_every_select_form_projects_what_it_names(select: str, document: dict) -> None:
    assert route(f"INSERT INTO idx SELECT {select} FROM readings").project(FULL) == document


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("idx", "idx"),
        ("'quoted.idx'", "quoted.idx"),
        ("_key", FULL.key.decode()),
        ("_key.home.zone", "eu"),
        ("`_key.'field.1'.'field.2'`", "dotted-key"),
        ("_value.sensor.id", "s1"),
        ("`_value.'customer.name'.'first.name'`", "ann"),
        ("_header.h", "last"),
        ("`_header.'prefix.abc.suffix'`", "from-dotted-header"),
        ("_header.p.c", "nested-in-header"),
        ("_key.n", "2"),
    ],
)
def test_every_target_form_names_the_index_from_the_record(target: str, name: str) -> None:
    assert route(f"INSERT INTO {target} SELECT * FROM readings").target(FULL) == name


def test_a_target_field_holding_a_struct_is_a_record_error() -> None:
    with pytest.raises(
        RecordError, match=r"target field '_value' of record readings-3@42 is a dict, not a name"
    ):
        route("INSERT INTO _value SELECT * FROM readings").target(FULL)
    with pytest.raises(RecordError, match=r"target field '_key.home' of record readings-3@42 is a dict"):
        route("INSERT INTO _key.home SELECT * FROM readings").target(FULL)


@pytest.mark.parametrize(
    ("pk", "key"),
    [
        ("sensor.id", ("s1",)),
        ("_value.sensor.id", ("s1",)),
        ("_key.home.id, _key.n", ("h1", 2)),
        ("_.key.home.zone", ("eu",)),
        ("_header.h", ("last",)),
        ("_header.p.d.e", (5,)),
        ("_.topic, _.partition, _.offset", ("readings", 3, 42)),
        ("@timestamp", ("2026-11-29",)),
    ],
)
def test_every_primary_key_form_reads_its_value(pk: str, key: tuple) -> None:
    assert route(f"INSERT INTO idx SELECT * FROM readings PK {pk}").primary_key(FULL) == key


def test_ignore_of_key_and_nested_value_fields() -> None:
    r = route("INSERT INTO idx SELECT *, _key.n FROM readings IGNORE sensor.celsius, @timestamp")
    assert r.project(FULL) == {"sensor": {"id": "s1"}, "customer.name": {"first.name": "ann"}, "n": 2}
