"""Single Message Transforms on schemaless records, against Kafka Connect's documented behaviour
(cases mirrored from connect/transforms/src/test/java/.../*Test.java where they are schemaless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from conductor.cli import main
from conductor.config import parse_config
from conductor.errors import ConfigError, RecordError
from conductor.records import Record
from conductor.transforms import Chain, build_chain
from conductor.transforms.fields import field_path
from conductor.transforms.routing import python_replacement

T = "org.apache.kafka.connect.transforms."
P = T + "predicates."


def record(
    value: dict[str, Any] | None = None,
    key: bytes | None = None,
    topic: str = "test",
    headers: list[tuple[str, bytes | None]] | None = None,
    timestamp: int = 123,
) -> Record:
    raw = None if value is None else orjson.dumps(value)
    return Record(topic, 0, 42, timestamp, key, value, headers or [], raw)


def chain(settings: dict[str, str]) -> Chain:
    built, problems, _ = build_chain(settings)
    assert problems == []
    assert built is not None
    return built


def one(kind: str, **settings: str) -> Chain:
    """A chain of one transform, `t`, with its settings given with dots as underscores."""
    values = {"transforms": "t", "transforms.t.type": T + kind}
    values.update({f"transforms.t.{name.replace('_', '.')}": value for name, value in settings.items()})
    return chain(values)


def problems(settings: dict[str, str]) -> list[str]:
    return build_chain(settings)[1]


# -- InsertField ---------------------------------------------------------------------------------


def test_insert_field_schemaless_configured_fields() -> None:
    """InsertFieldTest.schemalessInsertConfiguredFields; ! and ? only matter with a schema."""
    t = one(
        "InsertField$Value",
        topic_field="topic_field!",
        partition_field="partition_field",
        timestamp_field="timestamp_field?",
        static_field="instance_id",
        static_value="my-instance-id",
    )
    assert t.apply(record({"magic": 42})).value == {
        "magic": 42,
        "topic_field": "test",
        "partition_field": 0,
        "timestamp_field": 123,
        "instance_id": "my-instance-id",
    }


def test_insert_field_offset_and_tombstone_passthrough() -> None:
    t = one("InsertField$Value", offset_field="offset")
    assert t.apply(record({"a": 1})).value == {"a": 1, "offset": 42}
    tombstone = record(None)
    assert t.apply(tombstone) is tombstone  # a null value is left as it is


def test_insert_field_key_writes_the_key_back_as_json() -> None:
    t = one("InsertField$Key", topic_field="topic")
    out = t.apply(record({"a": 1}, key=b'{"id": 7}'))
    assert orjson.loads(out.key) == {"id": 7, "topic": "test"}
    assert out.key_object() == {"id": 7, "topic": "test"}
    assert out.value == {"a": 1}


def test_insert_field_on_a_text_key_fails_as_kafka_connect() -> None:
    with pytest.raises(RecordError) as caught:
        one("InsertField$Key", topic_field="topic").apply(record({"a": 1}, key=b"plain-text"))
    assert caught.value.reason == (
        "transform t (InsertField$Key): Only Map objects supported in absence of schema for "
        "[field insertion], found: java.lang.String"
    )
    assert caught.value.kind == "transform"


# -- ReplaceField --------------------------------------------------------------------------------


def test_replace_field_schemaless() -> None:
    """ReplaceFieldTest.schemaless: exclude wins over include; renames apply to what is kept."""
    t = one("ReplaceField$Value", exclude="dont", renames="abc:xyz,foo:bar", include="abc,foo,dont")
    out = t.apply(record({"dont": "whatever", "abc": 42, "foo": True, "etc": "etc"}))
    assert out.value == {"xyz": 42, "bar": True}


def test_replace_field_old_names_and_tombstone() -> None:
    t = one("ReplaceField$Value", blacklist="secret", whitelist="a,secret")
    assert t.apply(record({"a": 1, "b": 2, "secret": 3})).value == {"a": 1}
    assert t.apply(record(None)).value is None
    newer = one("ReplaceField$Value", exclude="a", blacklist="b")
    assert newer.apply(record({"a": 1, "b": 2})).value == {"b": 2}


def test_replace_field_invalid_rename() -> None:
    assert problems(
        {"transforms": "r", "transforms.r.type": T + "ReplaceField$Value", "transforms.r.renames": "a:b:c"}
    ) == ["transforms.r.renames: Invalid rename mapping: a:b:c (expected old:new)"]


# -- ExtractField, HoistField, ValueToKey ----------------------------------------------------------


def test_extract_field_schemaless_and_null() -> None:
    """ExtractFieldTest.schemaless / nullSchemaless / testNullWithSchema..."""
    t = one("ExtractField$Key", field="magic")
    assert t.apply(record({"x": 1}, key=b'{"magic": 42}')).key == b"42"
    assert t.apply(record({"x": 1}, key=None)).key is None
    text = t.apply(record({"x": 1}, key=b'{"magic": "abc"}'))
    assert (text.key, text.key_text(), text.key_object()) == (b"abc", "abc", "abc")
    value = one("ExtractField$Value", field="inner").apply(record({"inner": {"a": 1}, "b": 2}))
    assert value.value == {"a": 1}


@pytest.mark.parametrize(
    ("path", "steps"),
    [  # FieldPathNotationTest
        ("..", ["", "", ""]),
        ("foo..", ["foo", "", ""]),
        (".bar.", ["", "bar", ""]),
        ("", []),
        ("foo.bar.baz", ["foo", "bar", "baz"]),
        ("foo`bar`baz", ["foo`bar`baz"]),
        ("`foo.bar.baz`", ["foo.bar.baz"]),
        ("foo.`bar.baz`", ["foo", "bar.baz"]),
        ("`foo.bar`.baz", ["foo.bar", "baz"]),
        ("foo.``bar.baz`", ["foo", "`bar.baz"]),
        ("foo.`bar.baz``", ["foo", "bar.baz`"]),
        ("foo.`ba`r.baz`", ["foo", "ba`r.baz"]),
        ("foo.ba`r.baz", ["foo", "ba`r", "baz"]),
        ("foo.``bar``.baz", ["foo", "`bar`", "baz"]),
        ("foo.`bar\\`.baz`", ["foo", "bar`.baz"]),
        ("foo.`bar.`baz`", ["foo", "bar.`baz"]),
        ("foo.`bar\\`.`baz`", ["foo", "bar`.`baz"]),
    ],
)
def test_field_path_v2(path: str, steps: list[str]) -> None:
    assert field_path(path) == steps


def test_field_path_v2_escaped_closing_backtick_is_incomplete() -> None:
    with pytest.raises(ValueError, match=r"\[foo\.bar\.`baz\\`\], consider .* at position 8 to escape it"):
        field_path("foo.bar.`baz\\`")


def test_extract_field_v2_nested() -> None:
    """SingleFieldPathTest.shouldFindValueInMap / shouldReturnNullValueWhenFieldNotFoundInMap."""
    t = one("ExtractField$Value", field="foo.bar", field_syntax_version="V2")
    assert t.apply(record({"foo": {"bar": {"n": 42}, "baz": None}})).value == {"n": 42}
    assert (
        one("ExtractField$Key", field="foo.bar", field_syntax_version="V2")
        .apply(record({"a": 1}, key=b'{"foo": {"bar": 42}}'))
        .key_object()
        == 42
    )
    assert (
        one("ExtractField$Key", field="foo.baz.inner", field_syntax_version="V2")
        .apply(record({"a": 1}, key=b'{"foo": {"baz": null}}'))
        .key
        is None
    )
    assert one("ExtractField$Value", field="foo.bar").apply(record({"foo.bar": {"v1": True}})).value == {
        "v1": True
    }
    assert problems(
        {
            "transforms": "x",
            "transforms.x.type": T + "ExtractField$Value",
            "transforms.x.field": "foo.`bar.baz",
            "transforms.x.field.syntax.version": "V2",
        }
    ) == [
        "transforms.x.field: Incomplete backtick pair in path: [foo.`bar.baz], consider adding a backslash "
        "before backtick at position 4 to escape it"
    ]


def test_extract_field_leaving_no_object_fails_the_record() -> None:
    with pytest.raises(RecordError, match="after the transforms the value is a int, not a JSON object"):
        one("ExtractField$Value", field="n").apply(record({"n": 5}))


def test_hoist_field_value_and_key() -> None:
    """HoistFieldTest.schemaless: the whole value (or key) becomes one field."""
    assert one("HoistField$Value", field="wrapped").apply(record({"a": 1})).value == {"wrapped": {"a": 1}}
    assert one("HoistField$Key", field="magic").apply(record({"a": 1}, key=b"42")).key_object() == {
        "magic": 42
    }
    assert one("HoistField$Value", field="w").apply(record(None)).value == {"w": None}


def test_extract_then_hoist_chains() -> None:
    t = chain(
        {
            "transforms": "x,h",
            "transforms.x.type": T + "ExtractField$Value",
            "transforms.x.field": "n",
            "transforms.h.type": T + "HoistField$Value",
            "transforms.h.field": "number",
        }
    )
    assert t.apply(record({"n": 5, "m": 6})).value == {"number": 5}


def test_value_to_key() -> None:
    """ValueToKeyTest.schemaless."""
    t = one("ValueToKey", fields="a,b")
    out = t.apply(record({"a": 1, "b": 2, "c": 3}, key=b"old"))
    assert out.key_object() == {"a": 1, "b": 2}
    assert orjson.loads(out.key) == {"a": 1, "b": 2}
    with pytest.raises(RecordError, match=r"\[copying fields from value to key\], found: null"):
        t.apply(record(None))
    assert problems({"transforms": "k", "transforms.k.type": T + "ValueToKey"}) == [
        "transforms.k.fields: required, but missing"
    ]


# -- MaskField -------------------------------------------------------------------------------------


def test_mask_field_schemaless_empty_values() -> None:
    """MaskFieldTest.testSchemaless: each type's empty value."""
    value = {"magic": 42, "bool": True, "num": 1.5, "str": "x", "list": [1], "map": {"a": 1}, "keep": 7}
    t = one("MaskField$Value", fields="magic,bool,num,str,list,map,missing")
    assert t.apply(record(value)).value == {
        "magic": 0,
        "bool": False,
        "num": 0.0,
        "str": "",
        "list": [],
        "map": {},
        "missing": None,
        "keep": 7,
    }


def test_mask_field_replacement() -> None:
    """MaskFieldTest.testReplacementTypeMismatch / testSchemalessWithReplacement..."""
    t = one("MaskField$Value", fields="n,f,s", replacement="123")
    assert t.apply(record({"n": 1, "f": 2.5, "s": "secret"})).value == {"n": 123, "f": 123.0, "s": "123"}
    with pytest.raises(RecordError, match=r"Unable to convert \*\*\* \(class java.lang.String\) to number"):
        one("MaskField$Value", fields="n", replacement="***").apply(record({"n": 1}))
    with pytest.raises(RecordError, match=r"Cannot mask value of type class java\.lang\.Boolean with custom"):
        one("MaskField$Value", fields="b", replacement="x").apply(record({"b": True}))
    assert problems(
        {"transforms": "m", "transforms.m.type": T + "MaskField$Value", "transforms.m.fields": ""}
    ) == ["transforms.m.fields: expected a non-empty list"]


# -- Flatten ---------------------------------------------------------------------------------------


def test_flatten_schemaless_nested() -> None:
    """FlattenTest.testNestedMapWithDelimiter; arrays are kept whole."""
    t = one("Flatten$Value", delimiter="#")
    value = {"A": {"B": {"int8": 8, "array": [1, 2], "null": None}}, "top": "x"}
    assert t.apply(record(value)).value == {"A#B#int8": 8, "A#B#array": [1, 2], "A#B#null": None, "top": "x"}
    assert one("Flatten$Value").apply(record({"a": {"b": 1}})).value == {"a.b": 1}


# -- Cast ------------------------------------------------------------------------------------------


def test_cast_fields_schemaless() -> None:
    """CastTest.castFieldsSchemaless, on JSON's types."""
    t = one(
        "Cast$Value",
        spec="int8:int16,int16:int32,int32:int64,int64:boolean,float32:float64,float64:boolean,boolean:int8,"
        "string:int32",
    )
    value = {"int8": 8, "int16": 16, "int32": 32, "int64": 64, "float32": 32.0, "float64": -64.0}
    out = t.apply(record({**value, "boolean": True, "string": "42", "other": "x"})).value
    assert out == {
        "int8": 8,
        "int16": 16,
        "int32": 32,
        "int64": True,
        "float32": 32.0,
        "float64": True,
        "boolean": 1,
        "string": 42,
        "other": "x",
    }


@pytest.mark.parametrize(
    ("spec", "given", "expected"),
    [
        ("int8", 42, 42),  # castWholeRecordValueSchemalessInt8
        ("int8", 300, 44),  # Java's narrowing keeps the low bits
        ("int32", 3.9e10, 2147483647),  # a double saturates, then narrows
        ("int64", -7.9, -7),
        ("float32", 1.1, 1.1),
        ("float64", "1.5", 1.5),
        ("boolean", "TRUE", True),
        ("boolean", "yes", False),  # Boolean.parseBoolean
        ("boolean", 0.5, False),  # longValue() != 0
        ("string", 42, "42"),  # castWholeRecordValueSchemalessString
        ("string", 1e10, "1.0E10"),
        ("string", 2.5, "2.5"),
        ("string", False, "false"),
    ],
)
def test_cast_whole_value(spec: str, given: Any, expected: Any) -> None:
    out = one("Cast$Key", spec=spec).apply(record({"a": 1}, key=orjson.dumps(given)))
    assert out.key_object() == expected
    assert type(out.key_object()) is type(expected)


def test_cast_errors() -> None:
    with pytest.raises(RecordError, match=r"Cast transformation does not support casting from ARRAY"):
        one("Cast$Key", spec="int8").apply(record({"a": 1}, key=b'["foo"]'))  # ...UnsupportedType
    with pytest.raises(RecordError, match=r"Value \(300\) was out of range for requested data type"):
        one("Cast$Value", spec="n:int8").apply(record({"n": "300"}))
    assert problems(
        {"transforms": "c", "transforms.c.type": T + "Cast$Value", "transforms.c.spec": "int8,a:map,b:x"}
    ) == [
        "transforms.c.spec: Cast transformation does not support casting to MAP; supported types are "
        "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]",
        "transforms.c.spec: Invalid type found in casting spec: x",
        "transforms.c.spec: Cast transformations that specify a type to cast the entire value to may only "
        "specify a single cast in their spec",
    ]


# -- TimestampConverter ----------------------------------------------------------------------------

DATE_PLUS_TIME = 86_401_000  # 1970-01-02T00:00:01Z, TimestampConverterTest's DATE_PLUS_TIME
SECONDS = "yyyy-MM-dd'T'HH:mm:ss"


@pytest.mark.parametrize(
    ("settings", "given", "expected"),
    [
        ({"target_type": "Timestamp"}, DATE_PLUS_TIME, DATE_PLUS_TIME),
        ({"target_type": "Date"}, DATE_PLUS_TIME, 86_400_000),
        ({"target_type": "Time"}, DATE_PLUS_TIME, 1000),
        # unix.precision reads a whole number and writes one: text in, seconds or microseconds out
        (
            {"target_type": "unix", "unix_precision": "seconds", "format": SECONDS},
            "1970-01-02T00:00:01",
            86_401,
        ),
        (
            {"target_type": "unix", "unix_precision": "microseconds", "format": SECONDS},
            "1970-01-02T00:00:01",
            86_401_000_000,
        ),
        ({"target_type": "unix", "unix_precision": "seconds"}, 86_401, 86_401),
        ({"target_type": "Timestamp", "unix_precision": "nanoseconds"}, 86_401_000_999_999, DATE_PLUS_TIME),
        (
            {"target_type": "string", "format": "yyyy MM dd HH mm ss SSS"},
            DATE_PLUS_TIME,
            "1970 01 02 00 00 01 000",
        ),
        (
            {"target_type": "unix", "format": "yyyy-MM-dd'T'HH:mm:ss.SSS"},
            "1970-01-02T00:00:01.000",
            DATE_PLUS_TIME,
        ),
        ({"target_type": "unix", "format": "yyyyMMdd"}, "19700102", 86_400_000),
        (
            {"target_type": "unix", "format": "yyyy-MM-dd"},
            "1970-13-01",
            31_536_000_000,
        ),  # lenient: 1971-01-01
    ],
)
def test_timestamp_converter_schemaless(settings: dict[str, str], given: Any, expected: Any) -> None:
    t = one("TimestampConverter$Value", field="ts", **settings)
    assert t.apply(record({"ts": given, "other": 1})).value == {"ts": expected, "other": 1}


def test_timestamp_converter_whole_key_and_errors() -> None:
    key = one("TimestampConverter$Key", target_type="string", format="yyyy-MM-dd")
    assert key.apply(record({"a": 1}, key=b"86401000")).key == b"1970-01-02"
    parsing = one("TimestampConverter$Value", field="ts", target_type="unix", format="yyyy-MM-dd")
    with pytest.raises(
        RecordError, match=r"Could not parse timestamp: value \(soon\) does not match pattern"
    ):
        parsing.apply(record({"ts": "soon"}))
    with pytest.raises(RecordError, match=r"does not support class java\.lang\.Double objects as timestamps"):
        parsing.apply(record({"ts": 1.5}))
    base = {"transforms": "c", "transforms.c.type": T + "TimestampConverter$Value"}
    assert problems(base) == ["transforms.c.target.type: required, but missing"]
    assert problems({**base, "transforms.c.target.type": "string"}) == [
        "transforms.c.format: TimestampConverter requires format option to be specified when using string "
        "timestamps"
    ]


# -- RegexRouter, TimestampRouter ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regex", "replacement", "topic", "expected"),
    [
        ("foo", "bar", "foo", "bar"),  # RegexRouterTest.staticReplacement
        ("foo", "bar", "orig", "orig"),  # doesntMatch
        ("(.*)", "$1", "orig", "orig"),  # identity
        ("(.*)", "prefix-$1", "orig", "prefix-orig"),  # addPrefix
        ("(.*)", "$1-suffix", "orig", "orig-suffix"),  # addSuffix
        ("(.*)-(\\d\\d\\d\\d\\d\\d\\d\\d)", "$1", "index-20160117", "index"),  # slice
        ("(?<name>.*)-x", "${name}-y", "a-x", "a-y"),
        ("(.*)", "\\$1-$1", "t", "$1-t"),
    ],
)
def test_regex_router(regex: str, replacement: str, topic: str, expected: str) -> None:
    out = one("RegexRouter", regex=regex, replacement=replacement).apply(record({"a": 1}, topic=topic))
    assert out.topic == expected
    assert out.consumed == (topic, 0)


def test_java_replacement_references() -> None:
    import re

    pattern = re.compile("(a)(b)")
    assert python_replacement("$12", pattern) == "\\g<1>2"  # as Java: $12 is group 1, then '2'
    with pytest.raises(ValueError, match="No group 3"):
        python_replacement("$3", pattern)
    with pytest.raises(ValueError, match="Illegal group reference"):
        python_replacement("$x", pattern)
    assert problems(
        {
            "transforms": "r",
            "transforms.r.type": T + "RegexRouter",
            "transforms.r.regex": "(.*",
            "transforms.r.replacement": "x",
        }
    )[0].startswith("transforms.r.regex: Invalid regex: ")


def test_timestamp_router() -> None:
    """TimestampRouterTest.defaultConfiguration: ${topic}-${timestamp}, yyyyMMdd, UTC."""
    out = one("TimestampRouter").apply(record({"a": 1}, topic="test", timestamp=1483425001864))
    assert out.topic == "test-20170103"
    custom = one("TimestampRouter", topic_format="${timestamp}_${topic}", timestamp_format="yyyy-MM-dd'T'HH")
    assert custom.apply(record({"a": 1}, topic="t", timestamp=1483425001864)).topic == "2017-01-03T06_t"
    assert problems(
        {
            "transforms": "r",
            "transforms.r.type": T + "TimestampRouter",
            "transforms.r.timestamp.format": "YYYY-ww",
        }
    ) == [
        "transforms.r.timestamp.format: 'YYYY-ww': 'YYYY' is not supported yet; conductor reads the numbers "
        "y, M, d, H, m, s, S"
    ]


# -- headers ---------------------------------------------------------------------------------------


def test_drop_insert_and_header_from() -> None:
    t = chain(
        {
            "transforms": "drop,insert,from",
            "transforms.drop.type": T + "DropHeaders",
            "transforms.drop.headers": "a,b",
            "transforms.insert.type": T + "InsertHeader",
            "transforms.insert.header": "source",
            "transforms.insert.value.literal": "conductor",
            "transforms.from.type": T + "HeaderFrom$Value",
            "transforms.from.fields": "id,meta",
            "transforms.from.headers": "h_id,h_meta",
            "transforms.from.operation": "move",
        }
    )
    out = t.apply(
        record({"id": "x1", "meta": {"v": 1}, "n": 2}, headers=[("a", b"1"), ("c", b"3"), ("b", None)])
    )
    assert out.headers == [("c", b"3"), ("source", b"conductor"), ("h_id", b"x1"), ("h_meta", b'{"v":1}')]
    assert out.value == {"n": 2}
    copy = one("HeaderFrom$Value", fields="n", headers="h", operation="copy").apply(record({"n": 2}))
    assert (copy.value, copy.headers) == ({"n": 2}, [("h", b"2")])


def test_header_from_config_errors() -> None:
    assert problems(
        {
            "transforms": "h",
            "transforms.h.type": T + "HeaderFrom$Value",
            "transforms.h.fields": "a,b",
            "transforms.h.headers": "x",
        }
    ) == [
        "transforms.h.headers: 'fields' config must have the same number of elements as 'headers' config.",
        "transforms.h.operation: required, but missing",
    ]


# -- Filter, predicates, negate -----------------------------------------------------------------


FILTER_TOMBSTONES = {
    "transforms": "dropTombstones",
    "transforms.dropTombstones.type": T + "Filter",
    "transforms.dropTombstones.predicate": "isTombstone",
    "predicates": "isTombstone",
    "predicates.isTombstone.type": P + "RecordIsTombstone",
}


def test_filter_with_record_is_tombstone() -> None:
    t = chain(FILTER_TOMBSTONES)
    assert t.apply(record(None)) is None
    kept = record({"a": 1})
    assert t.apply(kept) is kept


def test_filter_without_predicate_drops_everything() -> None:
    assert one("Filter").apply(record({"a": 1})) is None


def test_negate_keeps_only_the_matching_topics() -> None:
    t = chain(
        {
            "transforms": "onlyFoo",
            "transforms.onlyFoo.type": T + "Filter",
            "transforms.onlyFoo.predicate": "isFoo",
            "transforms.onlyFoo.negate": "true",
            "predicates": "isFoo",
            "predicates.isFoo.type": P + "TopicNameMatches",
            "predicates.isFoo.pattern": "foo.*",
        }
    )
    assert t.apply(record({"a": 1}, topic="bar")) is None
    assert t.apply(record({"a": 1}, topic="foobar")) is not None
    assert t.apply(record({"a": 1}, topic="xfoo")) is None  # matches() is the whole name


def test_has_header_key_qualifies_a_transform() -> None:
    t = chain(
        {
            "transforms": "ins",
            "transforms.ins.type": T + "InsertField$Value",
            "transforms.ins.static.field": "traced",
            "transforms.ins.static.value": "yes",
            "transforms.ins.predicate": "hasTrace",
            "predicates": "hasTrace",
            "predicates.hasTrace.type": P + "HasHeaderKey",
            "predicates.hasTrace.name": "trace",
        }
    )
    assert t.apply(record({"a": 1}, headers=[("trace", None)])).value == {"a": 1, "traced": "yes"}
    assert t.apply(record({"a": 1})).value == {"a": 1}


def test_chain_runs_in_order() -> None:
    t = chain(
        {
            "transforms": "rename,insert,route",
            "transforms.rename.type": T + "ReplaceField$Value",
            "transforms.rename.renames": "celsius:temperature",
            "transforms.insert.type": T + "InsertField$Value",
            "transforms.insert.topic.field": "from",
            "transforms.route.type": T + "RegexRouter",
            "transforms.route.regex": "raw-(.*)",
            "transforms.route.replacement": "clean-$1",
        }
    )
    assert t.routes
    out = t.apply(record({"celsius": 20}, topic="raw-readings"))
    assert (out.topic, out.value, out.original_topic) == (
        "clean-readings",
        {"temperature": 20, "from": "raw-readings"},
        "raw-readings",
    )
    assert t.describe() == "rename (ReplaceField$Value), insert (InsertField$Value), route (RegexRouter)"


# -- config errors ---------------------------------------------------------------------------------


def test_config_errors_are_listed_at_once() -> None:
    found = problems(
        {
            "transforms": "a,b,c,a,d",
            "transforms.a.type": T + "Foo",
            "transforms.c.type": T + "SetSchemaMetadata$Value",
            "transforms.d.type": T + "Filter",
            "transforms.d.predicate": "nope",
            "predicates": "p",
            "predicates.p.type": P + "TopicNameMatches",
        }
    )
    assert found[0] == "transforms: Duplicate alias provided: a"
    assert found[1] == "predicates.p.pattern: required, but missing"
    assert found[2].startswith(
        f"transforms.a.type: {T}Foo is not supported; conductor has: InsertField$Key, InsertField$Value, "
    )
    assert found[3] == "transforms.b.type: required, but missing"
    assert found[4].startswith(
        f"transforms.c.type: {T}SetSchemaMetadata$Value is not supported: it names schemas"
    )
    assert found[5] == "transforms.d.predicate: 'nope' is not one of the predicates (p)"
    assert len(found) == 6


ES = {
    "name": "es-sink",
    "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
    "topics": "readings",
    "connect.elastic.kcql": "INSERT INTO readings SELECT * FROM readings",
}


def test_connector_config_carries_the_chain_or_none() -> None:
    assert parse_config(ES, environ={}).transforms is None
    config = parse_config({**ES, **FILTER_TOMBSTONES, "transforms.dropTombstones.typo": "1"}, environ={})
    assert config.transforms == chain(FILTER_TOMBSTONES)
    assert config.warnings == ("transforms.dropTombstones.typo: Filter has no such setting",)
    with pytest.raises(ConfigError) as caught:
        parse_config({**ES, "transforms": "m", "transforms.m.type": T + "MaskField$Value"}, environ={})
    assert caught.value.problems == ["transforms.m.fields: required, but missing"]


def test_transform_keys_without_transforms_are_reported() -> None:
    config = parse_config({**ES, "transforms.x.type": T + "Filter", "predicates": "p"}, environ={})
    assert config.transforms is None
    assert config.notices == (
        "predicates has no effect here: transforms lists no transform, so it configures nothing",
        "transforms.x.type has no effect here: transforms lists no transform, so it configures nothing",
    )


def test_the_aggregator_refuses_routers() -> None:
    aggregator = {
        "name": "agg",
        "connector.class": "conductor.aggregate",
        "topics": "readings",
        "conductor.aggregate.sql": "INSERT INTO counts SELECT COUNT(*) FROM readings",
        "transforms": "r",
        "transforms.r.type": T + "RegexRouter",
        "transforms.r.regex": ".*",
        "transforms.r.replacement": "x",
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(aggregator, environ={})
    assert caught.value.problems[0].startswith("transforms: a router (RegexRouter, TimestampRouter) changes")


def test_a_failing_transform_raises_record_error_naming_its_alias() -> None:
    t = chain(
        {
            "transforms": "ok,mask",
            "transforms.ok.type": T + "InsertField$Value",
            "transforms.ok.static.field": "s",
            "transforms.ok.static.value": "v",
            "transforms.mask.type": T + "MaskField$Value",
            "transforms.mask.fields": "n",
            "transforms.mask.replacement": "zero",
        }
    )
    with pytest.raises(RecordError) as caught:
        t.apply(record({"n": 1}))
    assert caught.value.reason == (
        "transform mask (MaskField$Value): Unable to convert zero (class java.lang.String) to number"
    )
    assert caught.value.kind == "transform"


def test_validate_prints_the_chain(tmp_path: Path) -> None:
    """One line in `conductor validate` (the aggregator: validated without servers)."""
    settings = {
        "name": "agg",
        "connector.class": "conductor.aggregate",
        "topics": "temperatures",
        "bootstrap.servers": "localhost:9092",
        "conductor.aggregate.sql": "INSERT INTO counts SELECT home_id, COUNT(*) AS n FROM temperatures "
        "WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY home_id",
        **FILTER_TOMBSTONES,
        "transforms": "dropTombstones,tag",
        "transforms.tag.type": T + "InsertField$Value",
        "transforms.tag.static.field": "source",
        "transforms.tag.static.value": "conductor",
        "transforms.tag.predicate": "isTombstone",
        "transforms.tag.negate": "true",
    }
    path = tmp_path / "agg.properties"
    path.write_text("\n".join(f"{key}={value}" for key, value in settings.items()))
    result = CliRunner().invoke(main, ["validate", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert (
        "  transforms: dropTombstones (Filter if RecordIsTombstone), tag (InsertField$Value unless RecordIsTombstone)\n"
        in result.output
    )
