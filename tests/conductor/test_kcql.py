"""KCQL lexer, parser, AST and index-suffix date patterns."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from conductor.errors import ConductorError
from conductor.kcql import (
    DateFormatError,
    Field,
    FieldPath,
    KcqlSyntaxError,
    Statement,
    Target,
    compile_suffix,
    compile_suffix_reader,
    parse_kcql,
    parse_kcql_many,
)
from conductor.kcql.lexer import TokenKind, split_statements, tokenize


def parse_one(text: str) -> Statement:
    (statement,) = parse_kcql(text)
    return statement


def syntax_error(text: str) -> KcqlSyntaxError:
    with pytest.raises(KcqlSyntaxError) as info:
        parse_kcql(text)
    return info.value


def value(*path: str, **kwargs: object) -> Field:
    return Field("value", path, **kwargs)  # type: ignore[arg-type]


def epoch_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


# -- lexer ---------------------------------------------------------------------------------


def test_lexer_yields_kinds_values_and_positions() -> None:
    tokens = list(tokenize("INSERT INTO `odd name`\n  PROPERTIES('it''s'=1);"))
    assert [(t.kind, t.value) for t in tokens] == [
        (TokenKind.NAME, "INSERT"),
        (TokenKind.NAME, "INTO"),
        (TokenKind.QUOTED_NAME, "odd name"),
        (TokenKind.NAME, "PROPERTIES"),
        (TokenKind.LPAREN, "("),
        (TokenKind.STRING, "it's"),
        (TokenKind.EQUALS, "="),
        (TokenKind.NAME, "1"),
        (TokenKind.RPAREN, ")"),
        (TokenKind.SEMI, ";"),
        (TokenKind.EOF, ""),
    ]
    properties = tokens[3]
    assert (properties.start, properties.end, properties.line, properties.column) == (25, 35, 2, 3)


def test_lexer_puts_end_of_input_after_the_last_non_blank_character() -> None:
    *_, eof = tokenize("SELECT\n\n  \n")
    assert (eof.kind, eof.start, eof.line, eof.column) == (TokenKind.EOF, 6, 1, 7)


def test_split_statements_ignores_semicolons_inside_quotes() -> None:
    text = "a 'x;y' `p;q`; b ;; c"
    assert [text[s:e] for s, e in split_statements(text)] == [
        "a 'x;y' `p;q`;",
        " b ;",
        ";",
        " c",
    ]


# -- statements ----------------------------------------------------------------------------


def test_insert_with_pk_and_index_suffix() -> None:
    text = (
        "INSERT INTO temperatures_ SELECT * FROM temperatures.aggregated"
        " PK sensor_id WITHINDEXSUFFIX=_{YYYY-MM-dd}"
    )
    statement = parse_one(text)
    assert statement == Statement(
        "INSERT",
        Target("static", ("temperatures_",)),
        "temperatures.aggregated",
        (Field("value", (), wildcard=True),),
        primary_keys=(FieldPath("value", ("sensor_id",)),),
        index_suffix="_{YYYY-MM-dd}",
    )
    assert statement.selects_all
    assert statement.text == text
    assert (statement.start, statement.line, statement.column) == (0, 1, 1)


def test_upsert_with_every_clause() -> None:
    statement = parse_one(
        "UPSERT INTO idx SELECT id, a.b.c AS abc, a.d.* , _key.k AS kk, _header.h FROM t"
        " PK id, a.b, _key.x IGNORE z AUTOCREATE WITHDOCTYPE=doc WITHPIPELINE=pipe BATCH=500"
        " PROPERTIES('behavior.on.null.values'='DELETE')"
    )
    assert statement.write_mode == "UPSERT"
    assert statement.target == Target("static", ("idx",))
    assert statement.topic == "t"
    assert statement.fields == (
        value("id"),
        value("a", "b", "c", alias="abc"),
        value("a", "d", wildcard=True),
        Field("key", ("k",), alias="kk"),
        Field("header", ("h",)),
    )
    assert [f.name for f in statement.fields] == ["id", "abc", None, "kk", "h"]
    assert not statement.selects_all
    assert statement.primary_keys == (
        FieldPath("value", ("id",)),
        FieldPath("value", ("a", "b")),
        FieldPath("key", ("x",)),
    )
    assert [pk.dotted for pk in statement.primary_keys] == ["id", "a.b", "_key.x"]
    assert statement.ignored == (FieldPath("value", ("z",)),)
    assert statement.autocreate is True
    assert statement.doc_type == "doc"
    assert statement.pipeline == "pipe"
    assert statement.batch_size == 500
    assert statement.properties == {"behavior.on.null.values": "DELETE"}
    assert statement.ttl is None and statement.index_suffix is None


def test_defaults_when_no_clause_is_given() -> None:
    statement = parse_one("INSERT INTO t SELECT a FROM topic")
    assert statement.ignored == () and statement.primary_keys == ()
    assert statement.autocreate is False
    assert statement.doc_type is statement.pipeline is statement.index_suffix is None
    assert statement.ttl is statement.batch_size is None
    assert statement.properties == {}


def test_nodes_are_frozen_and_hashable() -> None:
    statement = parse_one("INSERT INTO t SELECT a FROM topic PROPERTIES('k'='v')")
    with pytest.raises(dataclasses.FrozenInstanceError):
        statement.topic = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        statement.properties["k"] = "w"  # type: ignore[index]
    assert hash(statement) == hash(parse_one("INSERT INTO t SELECT a FROM topic"))


def test_nodes_keep_their_positions() -> None:
    statement = parse_one("INSERT INTO t\n  SELECT a,\n    _key.b\nFROM x PK c")
    assert (statement.target.line, statement.target.column) == (1, 13)
    assert [(f.line, f.column, f.start) for f in statement.fields] == [(2, 10, 23), (3, 5, 30)]
    assert (statement.primary_keys[0].line, statement.primary_keys[0].column) == (4, 11)


@pytest.mark.parametrize(
    ("text", "target", "name"),
    [
        ("INSERT INTO _key.region SELECT * FROM t", Target("key", ("region",)), "_key.region"),
        ("INSERT INTO _value.a.b SELECT * FROM t", Target("value", ("a", "b")), "_value.a.b"),
        ("INSERT INTO _header.h SELECT * FROM t", Target("header", ("h",)), "_header.h"),
        ("INSERT INTO my-index SELECT * FROM t", Target("static", ("my-index",)), "my-index"),
        ("INSERT INTO ks.table SELECT * FROM t", Target("static", ("ks", "table")), "ks.table"),
        ("INSERT INTO `odd name` SELECT * FROM t", Target("static", ("odd name",)), "odd name"),
        # Back-quoted or single-quoted, a target reads as if unquoted (Stream-Reactor's
        # TargetTypeParser); '...' keeps dots inside one part.
        ("INSERT INTO `_key` SELECT * FROM t", Target("key", ()), "_key"),
        ("INSERT INTO _value SELECT * FROM t", Target("value", ()), "_value"),
        ("INSERT INTO 'ks.table' SELECT * FROM t", Target("static", ("ks", "table")), "ks.table"),
        (
            "INSERT INTO `_header.'prefix.abc.suffix'` SELECT * FROM t",
            Target("header", ("prefix.abc.suffix",)),
            "_header.`prefix.abc.suffix`",
        ),
        (
            "INSERT INTO `_key.'field.1'.'field.2'` SELECT * FROM t",
            Target("key", ("field.1", "field.2")),
            "_key.`field.1`.`field.2`",
        ),
        (  # as Stream-Reactor's CreateIndexTest writes it: the outer '...' is dropped
            "INSERT INTO `'_value.'customer.name'.'first.name'` SELECT * FROM t",
            Target("value", ("customer.name", "first.name")),
            "_value.`customer.name`.`first.name`",
        ),
        (
            "INSERT INTO `_value.'customer.name'.'first.name'` SELECT * FROM t",
            Target("value", ("customer.name", "first.name")),
            "_value.`customer.name`.`first.name`",
        ),
    ],
)
def test_targets(text: str, target: Target, name: str) -> None:
    statement = parse_one(text)
    assert statement.target == target
    assert statement.target.name == name
    assert statement.target.is_dynamic is (target.kind != "static")


@pytest.mark.parametrize(
    ("topic_text", "topic"),
    [
        ("temperatures.aggregated", "temperatures.aggregated"),
        ("sensor-readings", "sensor-readings"),
        ("orders_v2", "orders_v2"),
        ("`odd topic`", "odd topic"),
        ("`select`", "select"),
    ],
)
def test_topics(topic_text: str, topic: str) -> None:
    assert parse_one(f"INSERT INTO t SELECT * FROM {topic_text}").topic == topic


@pytest.mark.parametrize(
    ("field_text", "field", "name"),
    [
        ("a", value("a"), "a"),
        ("a.b.c", value("a", "b", "c"), "c"),
        ("a.b.*", value("a", "b", wildcard=True), None),
        ("x AS y", value("x", alias="y"), "y"),
        ("x as `the y`", value("x", alias="the y"), "the y"),
        ("`a.b`.c", value("a.b", "c"), "c"),
        ("`from`", value("from"), "from"),
        ("_key", Field("key", ()), "_key"),
        ("_key AS k", Field("key", (), alias="k"), "k"),
        ("_key.f", Field("key", ("f",)), "f"),
        ("_key.*", Field("key", (), wildcard=True), None),
        ("_value.f.g", value("f", "g"), "g"),
        ("_value.*", value(wildcard=True), None),
        ("_header.h", Field("header", ("h",)), "h"),
        ("_header.`trace.id` AS trace", Field("header", ("trace.id",), alias="trace"), "trace"),
        ("ttl", value("ttl"), "ttl"),
    ],
)
def test_fields(field_text: str, field: Field, name: str | None) -> None:
    (parsed,) = parse_one(f"INSERT INTO t SELECT {field_text} FROM x").fields
    assert parsed == field
    assert parsed.name == name


def test_star_may_be_combined_with_other_fields() -> None:
    statement = parse_one("INSERT INTO t SELECT *, _key.id AS kid FROM x")
    assert statement.fields == (value(wildcard=True), Field("key", ("id",), alias="kid"))
    assert statement.selects_all


@pytest.mark.parametrize(
    "text",
    [
        "insert into t select * from x pk id autocreate ttl=5",
        "Insert Into t Select * From x Pk id AutoCreate Ttl=5",
        "iNsErT iNtO t sElEcT * fRoM x pK id AUTOcreate tTl=5",
    ],
)
def test_keywords_in_any_case(text: str) -> None:
    statement = parse_one(text)
    assert statement.write_mode == "INSERT"
    assert (statement.primary_keys, statement.autocreate, statement.ttl) == (
        (FieldPath("value", ("id",)),),
        True,
        5,
    )


def test_identifiers_keep_their_case() -> None:
    statement = parse_one("upsert into MyIndex select FieldA AS Out from MyTopic pk FieldA")
    assert statement.write_mode == "UPSERT"
    assert statement.target.name == "MyIndex"
    assert statement.topic == "MyTopic"
    assert statement.fields == (value("FieldA", alias="Out"),)


def test_clauses_in_any_order_and_layout() -> None:
    statement = parse_one(
        "INSERT INTO t SELECT * FROM x\n"
        "  TTL = 3600\n  WITHDOCTYPE = 'my doc'\n  IGNORE a, b.c\n"
        "  WITHPIPELINE='p-1'\n  WITHINDEXSUFFIX = '-{yyyy.MM.dd}'\n  BATCH= 10"
    )
    assert statement.ttl == 3600
    assert statement.doc_type == "my doc"
    assert statement.ignored == (FieldPath("value", ("a",)), FieldPath("value", ("b", "c")))
    assert statement.pipeline == "p-1"
    assert statement.index_suffix == "-{yyyy.MM.dd}"
    assert statement.batch_size == 10


@pytest.mark.parametrize(
    ("clause", "suffix"),
    [
        ("WITHINDEXSUFFIX=_{YYYY-MM-dd}", "_{YYYY-MM-dd}"),
        ("WITHINDEXSUFFIX=-{yyyy.MM.dd}", "-{yyyy.MM.dd}"),
        ("WITHINDEXSUFFIX=_{yyyy-MM-dd'T'HH} TTL=1", "_{yyyy-MM-dd'T'HH}"),
        ("WITHINDEXSUFFIX='_{YYYY} x'", "_{YYYY} x"),
        ("WITHINDEXSUFFIX=_v2", "_v2"),
    ],
)
def test_index_suffix_values(clause: str, suffix: str) -> None:
    assert parse_one(f"INSERT INTO t SELECT * FROM x {clause}").index_suffix == suffix


def test_index_suffix_stops_at_semicolon() -> None:
    first, second = parse_kcql(
        "INSERT INTO a SELECT * FROM x WITHINDEXSUFFIX=_{YYYY};INSERT INTO b SELECT * FROM y"
    )
    assert first.index_suffix == "_{YYYY}"
    assert second.target.name == "b"


def test_ttl_and_batch_values() -> None:
    assert parse_one("INSERT INTO t SELECT * FROM x TTL=3600").ttl == 3600
    assert parse_one("INSERT INTO t SELECT * FROM x TTL=1").ttl == 1
    assert parse_one("INSERT INTO t SELECT * FROM x BATCH=1").batch_size == 1


def test_pk_with_key_and_header_paths() -> None:
    statement = parse_one("UPSERT INTO t SELECT * FROM x PK _key, _key.a.b, _header.h, `c.d`")
    assert statement.primary_keys == (
        FieldPath("key", ()),
        FieldPath("key", ("a", "b")),
        FieldPath("header", ("h",)),
        FieldPath("value", ("c.d",)),
    )
    assert [pk.dotted for pk in statement.primary_keys] == ["_key", "_key.a.b", "_header.h", "`c.d`"]


def test_upsert_without_pk_and_ttl_are_left_to_the_sink() -> None:
    statement = parse_one("UPSERT INTO t SELECT * FROM x TTL=10")
    assert statement.primary_keys == () and statement.ttl == 10


def test_properties() -> None:
    statement = parse_one(
        "INSERT INTO t SELECT * FROM x PROPERTIES('a'='1', 'b.c'='it''s', 'd'='x;y', 'e'='')"
    )
    assert dict(statement.properties) == {"a": "1", "b.c": "it's", "d": "x;y", "e": ""}
    assert parse_one("INSERT INTO t SELECT * FROM x PROPERTIES()").properties == {}


# -- several statements --------------------------------------------------------------------


def test_two_statements() -> None:
    first, second = parse_kcql("INSERT INTO a SELECT * FROM x; UPSERT INTO b SELECT id FROM y PK id")
    assert (first.target.name, first.topic, first.write_mode) == ("a", "x", "INSERT")
    assert (second.target.name, second.topic, second.write_mode) == ("b", "y", "UPSERT")
    assert first.text == "INSERT INTO a SELECT * FROM x"
    assert second.text == "UPSERT INTO b SELECT id FROM y PK id"
    assert (second.start, second.line, second.column) == (31, 1, 32)


def test_three_statements_on_lines_with_blank_ones_and_a_trailing_semicolon() -> None:
    statements = parse_kcql(
        "\n  INSERT INTO a SELECT * FROM x PROPERTIES('sep'=';');\n"
        ";\n"
        "INSERT INTO `b;c` SELECT * FROM y;\n"
        "INSERT INTO d SELECT * FROM z;\n\n"
    )
    assert [s.target.name for s in statements] == ["a", "b;c", "d"]
    assert statements[0].properties == {"sep": ";"}
    assert [(s.line, s.column) for s in statements] == [(2, 3), (4, 1), (5, 1)]


def test_parse_kcql_many_collects_every_error() -> None:
    text = (
        "INSERT INTO a SELECT * FROM x;\n"
        "INSERT TO b SELECT * FROM y;\n"
        "INSERT INTO c SELECT * FROM z;\n"
        "INSERT INTO d SELECT , FROM w"
    )
    statements, errors = parse_kcql_many(text)
    assert [s.target.name for s in statements] == ["a", "c"]
    assert [e.message for e in errors] == [
        "Expected 'INTO', found 'TO' at line 2, column 8",
        "Expected a field name, found ',' at line 4, column 22",
    ]


def test_parse_kcql_many_when_all_is_well() -> None:
    statements, errors = parse_kcql_many("INSERT INTO a SELECT * FROM x; ;")
    assert [s.topic for s in statements] == ["x"] and errors == []


def test_parse_kcql_many_recovers_after_an_unterminated_quote() -> None:
    statements, errors = parse_kcql_many(
        "INSERT INTO a SELECT * FROM x PROPERTIES('a'='b;INSERT INTO c SELECT * FROM y"
    )
    assert statements == []
    assert [e.message for e in errors] == ["Unterminated string starting at line 1, column 46"]


def test_parse_kcql_many_of_an_empty_text() -> None:
    statements, errors = parse_kcql_many(" ; \n")
    assert statements == []
    assert [e.message for e in errors] == [
        "Expected 'INSERT' or 'UPSERT', found end of input at line 1, column 3"
    ]


# -- errors --------------------------------------------------------------------------------


def test_error_has_message_position_source_line_and_caret() -> None:
    err = syntax_error("INSERT INTO sensor_dat SELEC * FROM t")
    assert err.message == "Expected 'SELECT', found 'SELEC' at line 1, column 24"
    assert (err.line, err.column) == (1, 24)
    assert (err.expected, err.found) == ("'SELECT'", "'SELEC'")
    assert err.source_line == "INSERT INTO sensor_dat SELEC * FROM t"
    assert str(err) == (
        "Expected 'SELECT', found 'SELEC' at line 1, column 24\n"
        "INSERT INTO sensor_dat SELEC * FROM t\n"
        "                       ^"
    )
    assert isinstance(err, ConductorError)


def test_error_in_the_second_statement_on_line_two() -> None:
    err = syntax_error("INSERT INTO a SELECT * FROM x;\n  UPSERT INTO b SELECT * FROM y PK id,\n")
    assert str(err) == (
        "Expected a field name, found end of input at line 2, column 39\n"
        "  UPSERT INTO b SELECT * FROM y PK id,\n"
        "                                      ^"
    )
    assert (err.line, err.column, err.found) == (2, 39, "end of input")


def test_caret_follows_tabs() -> None:
    err = syntax_error("INSERT\tINTO\tt\tSELECT * FROM x FOO")
    assert str(err).splitlines()[2] == "      \t    \t \t                ^"


CLAUSE_LIST = (
    "IGNORE, PK, AUTOCREATE, WITHDOCTYPE, WITHINDEXSUFFIX, WITHPIPELINE, TTL, BATCH, PROPERTIES, or ';'"
)


# fmt: off
ERROR_MESSAGES = [
    ("INSERT TO t SELECT * FROM x", "Expected 'INTO', found 'TO' at line 1, column 8"),
    ("INSERTS INTO t", "Expected 'INSERT' or 'UPSERT', found 'INSERTS' at line 1, column 1"),
    ("", "Expected 'INSERT' or 'UPSERT', found end of input at line 1, column 1"),
    (";;\n", "Expected 'INSERT' or 'UPSERT', found end of input at line 1, column 3"),
    ("INSERT INTO SELECT * FROM x", "Expected a target name, found 'SELECT' at line 1, column 13"),
    ("INSERT INTO _header SELECT * FROM x", "Expected '_header.<name>' (the header whose content names the target), found '_header' at line 1, column 13"),
    ("INSERT INTO _header. SELECT * FROM x", "Expected a target name, found 'SELECT' at line 1, column 22"),
    ("INSERT INTO `a..b` SELECT * FROM x", "Expected a target name, found '`a..b`', which has an empty part at line 1, column 13"),
    ("INSERT INTO t SELECT * FROM;", "Expected a topic name, found ';' at line 1, column 28"),
    ("INSERT INTO t SELECT * FROM", "Expected a topic name, found end of input at line 1, column 28"),
    ("INSERT INTO t SELECT * FROM x.", "Expected a topic name, found end of input at line 1, column 31"),
    ("INSERT INTO t SELECT a,, b FROM x", "Expected a field name, found ',' at line 1, column 24"),
    ("INSERT INTO t SELECT FROM x", "Expected a field name, found 'FROM' at line 1, column 22"),
    ("INSERT INTO t SELECT a, FROM x", "Expected a field name, found 'FROM' at line 1, column 25"),
    ("INSERT INTO t SELECT a b FROM x", "Expected 'FROM', found 'b' at line 1, column 24"),
    ("INSERT INTO t SELECT a AS FROM x", "Expected an alias, found 'FROM' at line 1, column 27"),
    ("INSERT INTO t SELECT a.* AS b FROM x", "Expected 'FROM', found 'AS' at line 1, column 26"),
    ("INSERT INTO t SELECT * AS b FROM x", "Expected 'FROM', found 'AS' at line 1, column 24"),
    ("INSERT INTO t SELECT _header.* FROM x", "Expected a field name, found '*' at line 1, column 30"),
    ("INSERT INTO t SELECT _header FROM x", "Expected '.' after '_header', found 'FROM' at line 1, column 30"),
    ("INSERT INTO t SELECT _.foo FROM x", "Expected 'key', 'topic', 'partition', 'offset' or 'timestamp' after '_.', found 'foo' at line 1, column 24"),
    ("INSERT INTO t SELECT _.key FROM x", "Expected '.' and a key field after '_.key', found 'FROM' at line 1, column 28"),
    ("INSERT INTO t SELECT a, b.c, a FROM x", "Field 'a' is selected twice at line 1, column 30"),
    ("INSERT INTO t SELECT `` FROM x", "Expected a field name, found '``' at line 1, column 22"),
    ("INSERT INTO t SELECT a FROM x FOO", f"Unexpected 'FOO' after the statement; expected one of: {CLAUSE_LIST} at line 1, column 31"),
    ("INSERT INTO t SELECT a FROM x, y", f"Unexpected ',' after the statement; expected one of: {CLAUSE_LIST} at line 1, column 30"),
    ("INSERT INTO t SELECT a FROM x INSERT INTO u SELECT b FROM y", f"Unexpected 'INSERT' after the statement; expected one of: {CLAUSE_LIST} at line 1, column 31"),
    ("INSERT INTO t SELECT a FROM x PK a PK b", "Duplicate clause 'PK' at line 1, column 36"),
    ("INSERT INTO t SELECT a FROM x autocreate AUTOCREATE", "Duplicate clause 'AUTOCREATE' at line 1, column 42"),
    ("INSERT INTO t SELECT a FROM x PK", "Expected a field name, found end of input at line 1, column 33"),
    ("INSERT INTO t SELECT a FROM x PK a.*", "Expected a field name, found '*' at line 1, column 36"),
    ("INSERT INTO t SELECT a FROM x IGNORE ;", "Expected a field name, found ';' at line 1, column 38"),
    ("INSERT INTO t SELECT a FROM x TTL=abc", "Expected a positive integer after 'TTL=', found 'abc' at line 1, column 35"),
    ("INSERT INTO t SELECT a FROM x TTL=0", "Expected a positive integer after 'TTL=', found '0' at line 1, column 35"),
    ("INSERT INTO t SELECT a FROM x TTL=-5", "Expected a positive integer after 'TTL=', found '-5' at line 1, column 35"),
    ("INSERT INTO t SELECT a FROM x TTL='5'", "Expected a positive integer after 'TTL=', found string '5' at line 1, column 35"),
    ("INSERT INTO t SELECT a FROM x TTL 5", "Expected '=' after 'TTL', found '5' at line 1, column 35"),
    ("INSERT INTO t SELECT a FROM x BATCH=0", "Expected a positive integer after 'BATCH=', found '0' at line 1, column 37"),
    ("INSERT INTO t SELECT a FROM x BATCH=", "Expected a positive integer after 'BATCH=', found end of input at line 1, column 37"),
    ("INSERT INTO t SELECT a FROM x WITHDOCTYPE=;", "Expected a document type after 'WITHDOCTYPE=', found ';' at line 1, column 43"),
    ("INSERT INTO t SELECT a FROM x WITHPIPELINE=(", "Expected a pipeline name after 'WITHPIPELINE=', found '(' at line 1, column 44"),
    ("INSERT INTO t SELECT a FROM x WITHINDEXSUFFIX=", "Expected an index suffix after 'WITHINDEXSUFFIX=', found end of input at line 1, column 47"),
    ("INSERT INTO t SELECT a FROM x WITHINDEXSUFFIX=_{YYYY-QQ}", "Unknown date pattern letter 'Q' in WITHINDEXSUFFIX at line 1, column 54"),
    ("INSERT INTO t SELECT a FROM x WITHINDEXSUFFIX=_{YYYY", "Unclosed '{' in WITHINDEXSUFFIX at line 1, column 48"),
    ("INSERT INTO t SELECT a FROM x PROPERTIES 'a'='b'", "Expected '(' after 'PROPERTIES', found string 'a' at line 1, column 42"),
    ("INSERT INTO t SELECT a FROM x PROPERTIES(a=)", "Expected a property value, found ')' at line 1, column 44"),
    ("INSERT INTO t SELECT a FROM x PROPERTIES('a' 'b')", "Expected '=' after the property key string 'a', found string 'b' at line 1, column 46"),
    ("INSERT INTO t SELECT a FROM x PROPERTIES(,)", "Expected a property key, found ',' at line 1, column 42"),
    ("INSERT INTO t SELECT a FROM x PROPERTIES('a'='b' 'c'='d')", "Expected ',' or ')', found string 'c' at line 1, column 50"),
    ("INSERT INTO t SELECT a FROM x PROPERTIES('a'='b'", "Expected ',' or ')', found end of input at line 1, column 49"),
    ("INSERT INTO t SELECT a FROM x PROPERTIES('a'='1', 'a'='2')", "Duplicate property string 'a' at line 1, column 51"),
    ("INSERT INTO t SELECT a FROM x PROPERTIES('a'='b", "Unterminated string starting at line 1, column 46"),
    ("INSERT INTO `t SELECT a FROM x", "Unterminated quoted name starting at line 1, column 13"),
    ("INSERT INTO t SELECT a FROM x WITHDOCTYPE=(doc)", "Expected a document type after 'WITHDOCTYPE=', found '(' at line 1, column 43"),
]
# fmt: on


@pytest.mark.parametrize(("text", "message"), ERROR_MESSAGES)
def test_error_messages(text: str, message: str) -> None:
    err = syntax_error(text)
    assert err.message == message
    assert str(err).splitlines()[0] == message
    caret_line = str(err).splitlines()[2]
    assert caret_line == " " * (err.column - 1) + "^"


def test_unterminated_string_error_details() -> None:
    text = "INSERT INTO t SELECT a FROM x PROPERTIES('a'='b"
    err = syntax_error(text)
    assert str(err) == ("Unterminated string starting at line 1, column 46\n" + text + "\n" + " " * 45 + "^")
    assert (err.expected, err.found) == ("a closing '", "end of input")


def test_unexpected_clause_error_details() -> None:
    err = syntax_error("INSERT INTO t SELECT a FROM x\nFOO")
    assert (err.line, err.column, err.source_line) == (2, 1, "FOO")
    assert err.found == "'FOO'"
    assert err.expected == f"one of: {CLAUSE_LIST}"


def test_error_in_a_later_statement_stops_parse_kcql() -> None:
    err = syntax_error("INSERT INTO a SELECT * FROM x;\nINSERT INTO b SELECT * FROM y TTL=x;\nbad")
    assert err.message == "Expected a positive integer after 'TTL=', found 'x' at line 2, column 35"


# -- index-suffix date patterns ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "moment", "suffix"),
    [
        ("_{YYYY-MM-dd}", (2025, 12, 29), "_2025-12-29"),
        ("_{yyyy-MM-dd}", (2025, 12, 29), "_2025-12-29"),
        ("_{YYYY-MM-dd}", (2026, 1, 1), "_2026-01-01"),
        ("_{uuuu.MM}", (2024, 12, 31, 23, 59, 59), "_2024.12"),
        ("-{yyyy.MM.dd.HH}", (2026, 1, 1, 7, 5, 9), "-2026.01.01.07"),
        ("-{yy/M/d H:mm:ss}", (2026, 3, 4, 7, 5, 9), "-26/3/4 7:05:09"),
        ("{m s}", (2026, 3, 4, 7, 5, 9), "5 9"),
        ("logs_{yyyy}_v2", (2026, 3, 4), "logs_2026_v2"),
        ("_{yyyy-MM-dd'T'HH}", (2026, 3, 4, 13), "_2026-03-04T13"),
        ("_{yyyy 'week''s' ''}", (2026, 3, 4), "_2026 week's '"),
        ("static", (2026, 3, 4), "static"),
        ("_{}", (2026, 3, 4), "_"),
    ],
)
def test_compile_suffix(pattern: str, moment: tuple[int, ...], suffix: str) -> None:
    assert compile_suffix(pattern)(epoch_ms(*moment)) == suffix


def test_compile_suffix_reuses_the_last_result_within_its_unit() -> None:
    daily = compile_suffix("_{YYYY-MM-dd}")
    hourly = compile_suffix("_{YYYY-MM-dd-HH}")
    start = epoch_ms(2026, 1, 1)
    for ms in (start, start + 3_600_000, start + 86_399_999, start - 1, start):
        expected = datetime.fromtimestamp(ms / 1000, UTC)
        assert daily(ms) == expected.strftime("_%Y-%m-%d")
        assert hourly(ms) == expected.strftime("_%Y-%m-%d-%H")


def test_compile_suffix_before_1970() -> None:
    assert compile_suffix("_{yyyy-MM-dd HH}")(-1) == "_1969-12-31 23"


@pytest.mark.parametrize(
    ("pattern", "moment", "suffix"),
    [
        ("_{YYYY-MM-dd}", (2025, 12, 29), "_2025-12-29"),
        ("_{uuuu.MM}", (2024, 12, 1), "_2024.12"),
        ("-{yyyy.MM.dd.HH}", (2026, 1, 1, 7), "-2026.01.01.07"),
        ("-{yy/M/d H:mm:ss}", (2026, 3, 4, 7, 5, 9), "-26/3/4 7:05:09"),
        ("-{yy/M/d}", (2026, 11, 13), "-26/11/13"),
        ("_{yyyy-MM-dd'T'HH}", (2026, 3, 4, 13), "_2026-03-04T13"),
        ("_{yyyy 'week''s' ''}", (2026, 1, 1), "_2026 week's '"),
        ("_{yyyy}-{yyyy}", (2026, 1, 1), "_2026-2026"),
    ],
)
def test_a_suffix_reads_back_to_the_start_of_its_period(
    pattern: str, moment: tuple[int, ...], suffix: str
) -> None:
    assert compile_suffix_reader(pattern)(suffix)[0] == epoch_ms(*moment)


@pytest.mark.parametrize(
    ("pattern", "suffix", "start", "end"),
    [
        ("_{yyyy}", "_2026", (2026, 1, 1), (2027, 1, 1)),
        ("_{yyyy-MM}", "_2026-12", (2026, 12, 1), (2027, 1, 1)),
        ("_{yy.M}", "_26.2", (2026, 2, 1), (2026, 3, 1)),
        ("_{yyyy-MM-dd}", "_2024-02-29", (2024, 2, 29), (2024, 3, 1)),
        ("_{yyyy-MM-dd-HH}", "_2026-12-31-23", (2026, 12, 31, 23), (2027, 1, 1)),
        ("_{yyyy-MM-dd HH:mm}", "_2026-12-31 23:59", (2026, 12, 31, 23, 59), (2027, 1, 1)),
    ],
)
def test_a_suffix_reads_back_to_its_whole_period(
    pattern: str, suffix: str, start: tuple[int, ...], end: tuple[int, ...]
) -> None:
    assert compile_suffix_reader(pattern)(suffix) == (epoch_ms(*start), epoch_ms(*end))


@pytest.mark.parametrize("pattern", ["static", "_{dd}", "_{MM-dd}", "_{HH}", "_{yyyy-dd}", "_{yyyy-MM HH}"])
def test_a_suffix_that_names_no_single_period_has_no_reader(pattern: str) -> None:
    assert compile_suffix_reader(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("_{yyyy-MM-dd}", "_2026-02-30"),  # no such day
        ("_{yyyy-MM-dd}", "_2026-13-01"),
        ("_{yyyy-MM-dd}", "_2026.11.30"),  # another format
        ("_{yyyy-MM-dd}", "-2026-11-30"),
        ("_{yyyy-MM-dd}", "_2026-11-30-05"),
        ("_{yyyy-MM-dd}", "_20261130"),
        ("_{yyyy-MM-dd}", "_2026-11-3"),
        ("_{yyyy.MM.dd}", "_2026a11b30"),  # '.' is a literal dot, not any character
        ("_{yyyy-M-d}", "_2026-011-30"),
        ("_{yyyy}-{yyyy}", "_2026-2025"),  # a repeated field that disagrees with itself
        ("_{yyyyMd}", "_2026111"),  # unpadded and ambiguous: 1 Nov or 11 Jan
        ("_{yyyy-MM-dd}", "_0000-01-01"),  # no year 0
    ],
)
def test_text_the_suffix_would_not_have_written_reads_as_none(pattern: str, text: str) -> None:
    assert compile_suffix_reader(pattern)(text) is None


@pytest.mark.parametrize(
    ("pattern", "message", "position"),
    [
        ("_{YYYY-QQ}", "Unknown date pattern letter 'Q' at position 8 of '_{YYYY-QQ}'", 8),
        ("_{MMM}", "Unsupported date pattern 'MMM' at position 3 of '_{MMM}'", 3),
        ("_{yyy}", "Unsupported date pattern 'yyy' at position 3 of '_{yyy}'", 3),
        ("_{YYYY", "Unclosed '{' at position 2 of '_{YYYY'", 2),
        ("_{YY{MM}}", "Nested '{' at position 5 of '_{YY{MM}}'", 5),
        ("_YYYY}", "Unmatched '}' at position 6 of '_YYYY}'", 6),
        ("_{'abc}", 'Unterminated quote at position 3 of "_{\'abc}"', 3),
    ],
)
def test_compile_suffix_errors(pattern: str, message: str, position: int) -> None:
    with pytest.raises(DateFormatError) as info:
        compile_suffix(pattern)
    assert str(info.value) == message
    assert info.value.position == position
    assert isinstance(info.value, ConductorError)
