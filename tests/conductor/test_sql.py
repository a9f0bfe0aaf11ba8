"""The aggregator's windowed SQL: lexer, parser, AST, checks and WHERE conditions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor.errors import ConductorError, RecordError
from conductor.kcql import KcqlSyntaxError
from conductor.kcql.errors import locate
from conductor.sql import (
    Aggregate,
    Aggregation,
    And,
    Comparison,
    FieldRef,
    GroupItem,
    IsNull,
    Literal,
    Not,
    Or,
    SqlSyntaxError,
    Window,
    compile_condition,
    parse_sql,
    parse_sql_many,
)
from conductor.sql.lexer import TokenKind, tokenize
from conductor.syntax import PositionedSyntaxError

SEED = """INSERT INTO temperatures.aggregated
  SELECT home_id, COUNT(*) AS readings, AVG(celsius) AS avg_celsius,
         MIN(celsius) AS min_celsius, MAX(celsius) AS max_celsius
  FROM temperatures
  WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 30 SECONDS)
  GROUP BY home_id EMIT FINAL"""

# A statement around one clause under test: {where}, {window} or {select} filled in.
TEMPLATE = "INSERT INTO out SELECT {select} FROM in {where}WINDOW {window} GROUP BY k"


def statement(select: str = "k, COUNT(*)", where: str = "", window: str = "TUMBLING (SIZE 1 MINUTE)") -> str:
    return TEMPLATE.format(select=select, where=f"WHERE {where} " if where else "", window=window)


def parse_one(text: str) -> Aggregation:
    (parsed,) = parse_sql(text)
    return parsed


def syntax_error(text: str) -> SqlSyntaxError:
    with pytest.raises(SqlSyntaxError) as info:
        parse_sql(text)
    return info.value


def ref(*path: str) -> FieldRef:
    return FieldRef(path)


def where(condition: str) -> Any:
    return parse_one(statement(where=condition)).where


# -- the shared error ----------------------------------------------------------------------


def test_kcql_and_sql_errors_share_one_positioned_error() -> None:
    assert issubclass(KcqlSyntaxError, PositionedSyntaxError)
    assert issubclass(SqlSyntaxError, PositionedSyntaxError)
    assert issubclass(PositionedSyntaxError, ConductorError)
    assert not issubclass(SqlSyntaxError, KcqlSyntaxError)
    assert locate("ab\ncd", 4) == (2, 2, "cd")


# -- lexer ---------------------------------------------------------------------------------


def test_lexer_yields_kinds_values_and_positions() -> None:
    tokens = list(tokenize("WHERE my-topic.`a b` <> -1.5 AND\n  x>='it''s';"))
    assert [(t.kind, t.value) for t in tokens] == [
        (TokenKind.NAME, "WHERE"),
        (TokenKind.NAME, "my-topic"),
        (TokenKind.DOT, "."),
        (TokenKind.QUOTED_NAME, "a b"),
        (TokenKind.COMPARATOR, "<>"),
        (TokenKind.NAME, "-1.5"),
        (TokenKind.NAME, "AND"),
        (TokenKind.NAME, "x"),
        (TokenKind.COMPARATOR, ">="),
        (TokenKind.STRING, "it's"),
        (TokenKind.SEMI, ";"),
        (TokenKind.EOF, ""),
    ]
    x = tokens[7]
    assert (x.start, x.end, x.line, x.column) == (35, 36, 2, 3)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1.5.3", ["1.5", ".", "3"]),  # a decimal has one fraction
        ("v1.5", ["v1", ".", "5"]),  # only a number runs on into a fraction
        ("a-1 -b", ["a-1", "-", "b"]),  # '-' inside a word; alone, a character
        ("a=-5", ["a", "=", "-5"]),
        ("1.", ["1", "."]),
        ("!=!", ["!=", "!"]),
    ],
)
def test_lexer_words_numbers_and_dashes(text: str, words: list[str]) -> None:
    assert [t.value for t in tokenize(text)][:-1] == words


# -- statements ----------------------------------------------------------------------------


def test_the_seed_statement() -> None:
    parsed = parse_one(SEED)
    assert parsed == Aggregation(
        "temperatures.aggregated",
        "temperatures",
        (
            GroupItem(ref("home_id"), "home_id"),
            Aggregate("COUNT", None, "readings"),
            Aggregate("AVG", ref("celsius"), "avg_celsius"),
            Aggregate("MIN", ref("celsius"), "min_celsius"),
            Aggregate("MAX", ref("celsius"), "max_celsius"),
        ),
        (ref("home_id"),),
        False,
        None,
        None,
        Window("TUMBLING", 60_000, 60_000, 30_000),
        "FINAL",
    )
    assert parsed.text == SEED
    assert [a.alias for a in parsed.aggregates] == ["readings", "avg_celsius", "min_celsius", "max_celsius"]
    assert parsed.group_items == (GroupItem(ref("home_id"), "home_id"),)
    assert (parsed.start, parsed.line, parsed.column) == (0, 1, 1)
    assert [(i.line, i.column) for i in parsed.items] == [(2, 10), (2, 19), (2, 41), (3, 10), (3, 39)]
    assert (parsed.window.line, parsed.window.column) == (5, 3)
    assert (parsed.group_by[0].line, parsed.group_by[0].column) == (6, 12)


def test_every_clause() -> None:
    parsed = parse_one(
        "insert into home.stats select Home.id AS home, region, count(*), Sum(kwh), avg(kwh) as mean,"
        " earliest(ts), LATEST(meter.reading) from home-meters timestamp by meter.ts keyed by region, Home.id"
        " where kwh >= 0 and region <> 'north' window hopping (size 1 hour, advance by 15 minutes,"
        " grace period 2 minutes) group by Home.id, region emit changes"
    )
    assert parsed == Aggregation(
        "home.stats",
        "home-meters",
        (
            GroupItem(ref("Home", "id"), "home"),
            GroupItem(ref("region"), "region"),
            Aggregate("COUNT", None, "count"),
            Aggregate("SUM", ref("kwh"), "sum_kwh"),
            Aggregate("AVG", ref("kwh"), "mean"),
            Aggregate("EARLIEST", ref("ts"), "earliest_ts"),
            Aggregate("LATEST", ref("meter", "reading"), "latest_meter_reading"),
        ),
        (ref("Home", "id"), ref("region")),
        True,
        ref("meter", "ts"),
        And((Comparison(ref("kwh"), ">=", Literal(0)), Comparison(ref("region"), "!=", Literal("north")))),
        Window("HOPPING", 3_600_000, 900_000, 120_000),
        "CHANGES",
    )


def test_defaults_when_no_optional_clause_is_given() -> None:
    parsed = parse_one("INSERT INTO o SELECT COUNT(x.y) FROM i WINDOW TUMBLING (SIZE 5 SECONDS) GROUP BY k")
    assert parsed.items == (Aggregate("COUNT", ref("x", "y"), "count_x_y"),)
    assert parsed.group_items == ()
    assert (parsed.keyed, parsed.timestamp_field, parsed.where, parsed.emit) == (False, None, None, "FINAL")
    assert parsed.window == Window("TUMBLING", 5000, 5000, 0)


@pytest.mark.parametrize(
    ("unit", "ms"),
    [
        ("MILLISECOND", 1),
        ("milliseconds", 1),
        ("Second", 1000),
        ("SECONDS", 1000),
        ("minute", 60_000),
        ("MiNuTeS", 60_000),
        ("HOUR", 3_600_000),
        ("hours", 3_600_000),
        ("day", 86_400_000),
        ("DAYS", 86_400_000),
    ],
)
def test_units(unit: str, ms: int) -> None:
    window = parse_one(
        statement(window=f"HOPPING (SIZE 3 {unit}, ADVANCE BY 1 {unit}, GRACE PERIOD 2 {unit})")
    ).window
    assert window == Window("HOPPING", 3 * ms, ms, 2 * ms)


def test_long_windows_and_leading_zeros() -> None:
    assert parse_one(statement(window="TUMBLING (SIZE 007 DAYS)")).window.size_ms == 7 * 86_400_000
    assert (
        parse_one(statement(window="TUMBLING (SIZE 106751991167 DAYS)")).window.size_ms
        == 106751991167 * 86_400_000
    )


@pytest.mark.parametrize(
    "text",
    [
        "insert into o select k, count(*) from i timestamp by t keyed by k window tumbling (size 1 second) group by k emit final",
        "Insert Into o Select k, Count(*) From i Timestamp By t Keyed By k Window Tumbling (Size 1 Second) Group By k Emit Final",
        "INSERT INTO o SELECT k, COUNT(*) FROM i TIMESTAMP BY t KEYED BY k WINDOW TUMBLING (SIZE 1 SECOND) GROUP BY k EMIT FINAL",
    ],
)
def test_keywords_in_any_case(text: str) -> None:
    parsed = parse_one(text)
    assert parsed.timestamp_field == ref("t") and parsed.keyed
    assert (parsed.window.size_ms, parsed.emit) == (1000, "FINAL")
    assert parsed.aggregates == (Aggregate("COUNT", None, "count"),)


def test_identifiers_keep_their_case() -> None:
    parsed = parse_one(
        "INSERT INTO Out.Topic SELECT Kind, AVG(Temp) AS MeanTemp FROM In-Topic WINDOW TUMBLING (SIZE 1 DAY) GROUP BY Kind"
    )
    assert (parsed.output_topic, parsed.input_topic) == ("Out.Topic", "In-Topic")
    assert parsed.items == (GroupItem(ref("Kind"), "Kind"), Aggregate("AVG", ref("Temp"), "MeanTemp"))


def test_keywords_that_are_not_reserved_are_field_names_elsewhere() -> None:
    parsed = parse_one(
        "INSERT INTO o SELECT count, timestamp, MAX(size) AS hopping FROM i TIMESTAMP BY timestamp"
        " WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY count, timestamp"
    )
    assert parsed.items == (
        GroupItem(ref("count"), "count"),
        GroupItem(ref("timestamp"), "timestamp"),
        Aggregate("MAX", ref("size"), "hopping"),
    )
    assert parsed.timestamp_field == ref("timestamp")


def test_back_quoted_names() -> None:
    parsed = parse_one(
        "INSERT INTO `out` SELECT `from`.`a b`, SUM(`x.y`) AS `total kwh` FROM `my-topic`.`v2`"
        " WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY `from`.`a b`"
    )
    assert (parsed.output_topic, parsed.input_topic) == ("out", "my-topic.v2")
    assert parsed.items == (GroupItem(ref("from", "a b"), "a b"), Aggregate("SUM", ref("x.y"), "total kwh"))
    assert [f.dotted for f in (parsed.group_by[0], ref("x.y"), ref("a-b", "_c"))] == [
        "from.`a b`",
        "`x.y`",
        "a-b._c",
    ]


@pytest.mark.parametrize(
    ("topic_text", "topic"),
    [
        ("temperatures.aggregated", "temperatures.aggregated"),
        ("my-topic", "my-topic"),
        ("2024-readings.v1.5", "2024-readings.v1.5"),
        ("_internal", "_internal"),
        ("`odd.topic`", "odd.topic"),
    ],
)
def test_topics(topic_text: str, topic: str) -> None:
    assert (
        parse_one(
            f"INSERT INTO o SELECT COUNT(*) FROM {topic_text} WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k"
        ).input_topic
        == topic
    )


def test_nodes_are_frozen_and_hashable() -> None:
    parsed = parse_one(SEED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.emit = "CHANGES"  # type: ignore[misc]
    assert hash(parsed) == hash(parse_one(SEED.replace("\n", " ")))


# -- WHERE ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("a = 1", Comparison(ref("a"), "=", Literal(1))),
        ("a != -2", Comparison(ref("a"), "!=", Literal(-2))),
        ("a <> 2.50", Comparison(ref("a"), "!=", Literal(2.5))),
        ("a < 'it''s'", Comparison(ref("a"), "<", Literal("it's"))),
        ("a.b <= TRUE", Comparison(ref("a", "b"), "<=", Literal(True))),
        ("a > false", Comparison(ref("a"), ">", Literal(False))),
        ("0 >= a", Comparison(Literal(0), ">=", ref("a"))),
        ("a = b", Comparison(ref("a"), "=", ref("b"))),
        ("a = NULL", Comparison(ref("a"), "=", Literal(None))),
        ("a IS NULL", IsNull(ref("a"), False)),
        ("a is not null", IsNull(ref("a"), True)),
        ("NOT a = 1", Not(Comparison(ref("a"), "=", Literal(1)))),
        ("NOT NOT a IS NULL", Not(Not(IsNull(ref("a"))))),
        (
            "a = 1 OR b = 2 AND c = 3",
            Or((
                Comparison(ref("a"), "=", Literal(1)),
                And((Comparison(ref("b"), "=", Literal(2)), Comparison(ref("c"), "=", Literal(3)))),
            )),
        ),
        (
            "(a = 1 OR b = 2) AND NOT (c = 3)",
            And((
                Or((Comparison(ref("a"), "=", Literal(1)), Comparison(ref("b"), "=", Literal(2)))),
                Not(Comparison(ref("c"), "=", Literal(3))),
            )),
        ),
        (
            "a = 1 AND b = 2 AND c = 3 OR d = 4 OR e = 5",
            Or((
                And(tuple(Comparison(ref(n), "=", Literal(v)) for n, v in (("a", 1), ("b", 2), ("c", 3)))),
                Comparison(ref("d"), "=", Literal(4)),
                Comparison(ref("e"), "=", Literal(5)),
            )),
        ),
        ("'x' = 'x'", Comparison(Literal("x"), "=", Literal("x"))),
    ],
)  # fmt: skip
def test_conditions_parse(text: str, condition: Any) -> None:
    assert where(text) == condition


def test_literals_keep_their_type() -> None:
    assert Literal(1) != Literal(True) and Literal(1) != Literal(1.0) and Literal(0) != Literal(False)
    assert type(where("a = 1.0").right.value) is float
    assert type(where("a = 1").right.value) is int


def test_condition_positions() -> None:
    condition = where("a = 1 AND\n NOT b IS NULL")
    assert (condition.line, condition.column) == (1, 50)
    assert [(c.line, c.column) for c in condition.items] == [(1, 50), (2, 2)]
    assert (condition.items[1].condition.line, condition.items[1].condition.column) == (2, 6)


# -- several statements --------------------------------------------------------------------

SECOND = "INSERT INTO b SELECT SUM(x) FROM y WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY k"


def test_several_statements() -> None:
    first, second, third = parse_sql(f"{SEED};\n{SECOND} ;\n  {SECOND.replace('b', 'c', 1)};\n\n")
    assert (first.output_topic, second.output_topic, third.output_topic) == (
        "temperatures.aggregated",
        "b",
        "c",
    )
    assert second.text == SECOND
    assert (second.line, second.column, third.line, third.column) == (7, 1, 8, 3)


def test_a_semicolon_inside_quotes_does_not_separate() -> None:
    (parsed,) = parse_sql(statement(where="a = ';'"))
    assert parsed.where == Comparison(ref("a"), "=", Literal(";"))


def test_parse_sql_many_collects_every_error() -> None:
    text = f"{SECOND};\nINSERT INTO c SELECT FROM y;\n{SECOND.replace('b', 'd', 1)};\nINSERT INTO e SELEC"
    statements, errors = parse_sql_many(text)
    assert [s.output_topic for s in statements] == ["b", "d"]
    assert [e.message for e in errors] == [
        "Expected a field name, found 'FROM' at line 2, column 22",
        "Expected 'SELECT', found 'SELEC' at line 4, column 15",
    ]


def test_parse_sql_many_reads_as_parse_sql_does() -> None:
    assert parse_sql_many(f"{SECOND};  \n") == (list(parse_sql(f"{SECOND};  \n")), [])
    for text in ("", " ;", f"{SECOND};;{SECOND}"):
        _, errors = parse_sql_many(text)
        with pytest.raises(SqlSyntaxError) as info:
            parse_sql(text)
        assert [e.message for e in errors] == [info.value.message]
    assert parse_sql_many("")[1][0].message == "Expected 'INSERT', found end of input at line 1, column 1"


def test_parse_sql_many_recovers_after_a_bad_statement_with_a_semicolon_in_a_string() -> None:
    bad = statement(select="COUNT(*) AS", where="a = ';'")
    statements, errors = parse_sql_many(f"{bad};{SECOND}")
    assert [s.output_topic for s in statements] == ["b"]
    assert [e.message for e in errors] == ["Expected an alias, found 'FROM' at line 1, column 36"]


# -- errors --------------------------------------------------------------------------------


def test_error_has_message_position_source_line_and_caret() -> None:
    err = syntax_error("INSERT INTO temperatures.aggregated\n  SELEC home_id FROM t")
    assert err.message == "Expected 'SELECT', found 'SELEC' at line 2, column 3"
    assert (err.line, err.column, err.offset) == (2, 3, 38)
    assert (err.expected, err.found) == ("'SELECT'", "'SELEC'")
    assert str(err) == "Expected 'SELECT', found 'SELEC' at line 2, column 3\n  SELEC home_id FROM t\n  ^"
    assert isinstance(err, ConductorError)


W = "WINDOW TUMBLING (SIZE 1 MINUTE)"
RULE = "(KEYED BY must name exactly the GROUP BY fields)"
UNIT = "a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS)"
TOPIC = "a Kafka topic name (ASCII letters, digits, '.', '_' and '-', at most 249)"

# fmt: off
ERROR_MESSAGES = [
    # missing or misspelled tokens
    ("", "Expected 'INSERT', found end of input at line 1, column 1"),
    (";", "Expected 'INSERT', found ';' at line 1, column 1"),
    ("UPSERT INTO o", "Expected 'INSERT', found 'UPSERT' at line 1, column 1"),
    ("INSERT o SELECT", "Expected 'INTO', found 'o' at line 1, column 8"),
    ("INSERT INTO SELECT COUNT(*) FROM t", "Expected a topic name, found 'SELECT' at line 1, column 13"),
    ("INSERT INTO o SELEC COUNT(*) FROM t", "Expected 'SELECT', found 'SELEC' at line 1, column 15"),
    ("INSERT INTO o SELECT FROM t", "Expected a field name, found 'FROM' at line 1, column 22"),
    ("INSERT INTO o SELECT COUNT(*) t", "Expected ',' or 'FROM', found 't' at line 1, column 31"),
    ("INSERT INTO o SELECT COUNT(*), FROM t", "Expected a field name, found 'FROM' at line 1, column 32"),
    ("INSERT INTO o SELECT COUNT(*) AS FROM t", "Expected an alias, found 'FROM' at line 1, column 34"),
    ("INSERT INTO o SELECT COUNT() FROM t", "Expected a field name or '*', found ')' at line 1, column 28"),
    ("INSERT INTO o SELECT SUM(*) FROM t", "Expected a field name, found '*' at line 1, column 26"),
    ("INSERT INTO o SELECT AVG(x FROM t", "Expected ')', found 'FROM' at line 1, column 28"),
    ("INSERT INTO o SELECT COUNT(*) FROM", "Expected a topic name, found end of input at line 1, column 35"),
    ("INSERT INTO o SELECT COUNT(*) FROM t.. " + W, "Expected a topic name, found '.' at line 1, column 38"),
    ("INSERT INTO o SELECT COUNT(*) FROM t GROUP BY k", "Expected 'TIMESTAMP', 'KEYED', 'WHERE' or 'WINDOW', found 'GROUP' at line 1, column 38"),
    ("INSERT INTO o SELECT COUNT(*) FROM t TIMESTAMP BY ts GROUP BY k", "Expected 'KEYED', 'WHERE' or 'WINDOW', found 'GROUP' at line 1, column 54"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WHERE a = 1 TIMESTAMP BY ts", "Expected 'AND', 'OR' or 'WINDOW', found 'TIMESTAMP' at line 1, column 50"),
    ("INSERT INTO o SELECT COUNT(*) FROM t TIMESTAMP ts", "Expected 'BY', found 'ts' at line 1, column 48"),
    ("INSERT INTO o SELECT COUNT(*) FROM t KEYED BY " + W, "Expected a field name, found 'WINDOW' at line 1, column 47"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW SLIDING (SIZE 1 MINUTE)", "Expected 'TUMBLING' or 'HOPPING', found 'SLIDING' at line 1, column 45"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING SIZE 1 MINUTE", "Expected '(' after 'TUMBLING', found 'SIZE' at line 1, column 54"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (1 MINUTE)", "Expected 'SIZE', found '1' at line 1, column 55"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1 MINUTE GROUP BY k", "Expected ',' or ')', found 'GROUP' at line 1, column 69"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1 MINUTE, GRACE 1 SECOND)", "Expected 'PERIOD', found '1' at line 1, column 76"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 1 SECOND, x)", "Expected ')', found ',' at line 1, column 91"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1 MINUTE, ADVANCE BY 1 SECOND)", "Expected 'GRACE', found 'ADVANCE' at line 1, column 70"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW HOPPING (SIZE 1 MINUTE)", "Expected ',' and 'ADVANCE BY', found ')' at line 1, column 67"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE 1 SECOND)", "Expected 'BY', found '1' at line 1, column 77"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W, "Expected 'GROUP', found end of input at line 1, column 69"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP k", "Expected 'BY', found 'k' at line 1, column 76"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY k,", "Expected a field name, found end of input at line 1, column 81"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY 1", "Expected a field name, found '1' at line 1, column 79"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY a.", "Expected a field name, found end of input at line 1, column 81"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY ``", "Expected a field name, found '``' at line 1, column 79"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY k EMIT", "Expected 'FINAL' or 'CHANGES', found end of input at line 1, column 85"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY k EMIT ALL", "Expected 'FINAL' or 'CHANGES', found 'ALL' at line 1, column 86"),
    # trailing junk
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY k junk", "Expected ',', 'EMIT', ';' or end of input, found 'junk' at line 1, column 81"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY k @", "Expected ',', 'EMIT', ';' or end of input, found '@' at line 1, column 81"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY k EMIT FINAL junk", "Expected ';' or end of input, found 'junk' at line 1, column 92"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY k;;", "Expected 'INSERT', found ';' at line 1, column 81"),
    # bad units and bad numbers
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1 WEEK)", f"Expected {UNIT}, found 'WEEK' at line 1, column 62"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1 MS)", f"Expected {UNIT}, found 'MS' at line 1, column 62"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1)", f"Expected {UNIT}, found ')' at line 1, column 61"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE MINUTE)", "Expected an integer after 'SIZE', found 'MINUTE' at line 1, column 60"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1.5 MINUTES)", "Expected an integer after 'SIZE', found '1.5' at line 1, column 60"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE -1 MINUTES)", "Expected an integer after 'SIZE', found '-1' at line 1, column 60"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1MINUTE)", "Expected an integer after 'SIZE', found '1MINUTE' at line 1, column 60"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD '5' SECONDS)", "Expected an integer after 'GRACE PERIOD', found string '5' at line 1, column 83"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE BY x SECONDS)", "Expected an integer after 'ADVANCE BY', found 'x' at line 1, column 80"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 99999999999999999999 DAYS)", "Expected a duration of at most 2^63-1 milliseconds, found '99999999999999999999 DAYS' at line 1, column 60"),
    ("INSERT INTO o SELECT COUNT(*) FROM t WINDOW TUMBLING (SIZE 106751991168 DAYS)", "Expected a duration of at most 2^63-1 milliseconds, found '106751991168 DAYS' at line 1, column 60"),
    (statement(where="a = 99999999999999999999"), "Expected a number from -2^63 to 2^63-1, found '99999999999999999999' at line 1, column 54"),
    (statement(where="a = -9223372036854775809"), "Expected a number from -2^63 to 2^63-1, found '-9223372036854775809' at line 1, column 54"),
    (statement(where="a = 1x"), "Expected a field name or a value, found '1x' at line 1, column 54"),
    (statement(where="a = 1.2.3"), "Expected 'AND', 'OR' or 'WINDOW', found '.' at line 1, column 57"),
    (statement(where="a = - 1"), "Expected a field name or a value, found '-' at line 1, column 54"),
    # conditions
    (statement(where="a"), "Expected a comparator (=, !=, <>, <, <=, >, >=) or 'IS', found 'WINDOW' at line 1, column 52"),
    (statement(where="a == 1"), "Expected a field name or a value, found '=' at line 1, column 53"),
    (statement(where="a ! 1"), "Expected a comparator (=, !=, <>, <, <=, >, >=) or 'IS', found '!' at line 1, column 52"),
    (statement(where="(a = 1"), "Expected 'AND', 'OR' or ')', found 'WINDOW' at line 1, column 57"),
    (statement(where="a IS 1"), "Expected 'NOT' or 'NULL', found '1' at line 1, column 55"),
    (statement(where="a IS NOT TRUE"), "Expected 'NULL', found 'TRUE' at line 1, column 59"),
    (statement(where="a = 1 AND"), "Expected a field name or a value, found 'WINDOW' at line 1, column 60"),
    (statement(where="'a' < 1"), "Cannot compare string 'a' with number 1 at line 1, column 50"),
    (statement(where="TRUE = 1"), "Cannot compare boolean TRUE with number 1 at line 1, column 50"),
    (statement(where="NOT " * 65 + "a = 1"), "Condition nests deeper than 64 levels at line 1, column 306"),
    (statement(where="(" * 65 + "a = 1" + ")" * 65), "Condition nests deeper than 64 levels at line 1, column 114"),
    # unterminated quotes
    (statement(where="a = 'x"), "Unterminated string starting at line 1, column 54"),
    ("INSERT INTO `o SELECT COUNT(*) FROM t", "Unterminated quoted name starting at line 1, column 13"),
    # topics
    ("INSERT INTO `a b` SELECT COUNT(*) FROM t", f"Expected {TOPIC}, found '`a b`' at line 1, column 13"),
    ("INSERT INTO `..` SELECT COUNT(*) FROM t", f"Expected {TOPIC}, found '`..`' at line 1, column 13"),
    ("INSERT INTO o SELECT COUNT(*) FROM tëmp", f"Expected {TOPIC}, found 'tëmp' at line 1, column 36"),
    ("INSERT INTO o SELECT COUNT(*) FROM " + "t" * 250, f"Expected {TOPIC}, found '{'t' * 250}' at line 1, column 36"),
    # the checks once a statement parses
    (statement(window="TUMBLING (SIZE 0 SECONDS)"), "Expected a SIZE greater than 0, found '0 SECONDS' at line 1, column 66"),
    (statement(window="HOPPING (SIZE 0 SECONDS, ADVANCE BY 1 SECOND)"), "Expected a SIZE greater than 0, found '0 SECONDS' at line 1, column 65"),
    (statement(window="HOPPING (SIZE 1 MINUTE, ADVANCE BY 0 MILLISECONDS)"), "Expected an ADVANCE greater than 0, found '0 MILLISECONDS' at line 1, column 86"),
    (statement(window="HOPPING (SIZE 1 MINUTE, ADVANCE BY 61 SECONDS)"), "Expected an ADVANCE no longer than the SIZE (1 MINUTE), found '61 SECONDS' at line 1, column 86"),
    (statement(select="x, COUNT(*)"), "Field 'x' is neither in GROUP BY nor aggregated at line 1, column 24"),
    (statement(select="COUNT(*), k.x"), "Field 'k.x' is neither in GROUP BY nor aggregated at line 1, column 34"),
    (statement(select="k, COUNT(*), COUNT(*)"), "Output name 'count' is used twice at line 1, column 37"),
    (statement(select="k, COUNT(*) AS total, SUM(x) AS total"), "Output name 'total' is used twice at line 1, column 56"),
    (statement(select="k, COUNT(*) AS K"), "Output name 'K' clashes with 'k' (names are compared in any case) at line 1, column 39"),
    (statement(select="k, SUM(x) AS sum_y, SUM(y)"), "Output name 'sum_y' is used twice at line 1, column 44"),
    (statement(select="k, COUNT(*) AS window_start"), "Output name 'window_start' is reserved for the window's bounds at line 1, column 39"),
    (statement(select="k AS Window_End, COUNT(*)"), "Output name 'Window_End' is reserved for the window's bounds at line 1, column 29"),
    (statement(select="k"), "SELECT has no aggregate (COUNT, SUM, AVG, MIN, MAX, EARLIEST or LATEST) at line 1, column 17"),
    (statement(select="count, k"), "Field 'count' is neither in GROUP BY nor aggregated at line 1, column 24"),
    ("INSERT INTO o SELECT COUNT(*) FROM t KEYED BY j " + W + " GROUP BY k", f"KEYED BY field 'j' is not in GROUP BY {RULE} at line 1, column 47"),
    ("INSERT INTO o SELECT COUNT(*) FROM t KEYED BY k " + W + " GROUP BY k, j", f"GROUP BY field 'j' is missing from KEYED BY {RULE} at line 1, column 93"),
    ("INSERT INTO o SELECT COUNT(*) FROM t KEYED BY k, k " + W + " GROUP BY k", "Field 'k' is named twice in KEYED BY at line 1, column 50"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY k, k", "Field 'k' is named twice in GROUP BY at line 1, column 82"),
    ("INSERT INTO o SELECT COUNT(*) AS k FROM t " + W + " GROUP BY k", "GROUP BY field 'k' is output as 'k', which clashes with 'k'; select it with AS another name at line 1, column 84"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY a.b, c.b", "GROUP BY field 'c.b' is output as 'b', which clashes with 'b'; select it with AS another name at line 1, column 84"),
    ("INSERT INTO o SELECT COUNT(*) FROM t " + W + " GROUP BY m.window_end", "GROUP BY field 'm.window_end' is output as 'window_end', which clashes with the window's bounds; select it with AS another name at line 1, column 79"),
    ("INSERT INTO t SELECT COUNT(*) FROM t " + W + " GROUP BY k", "INSERT INTO 't' is the topic the statement reads FROM at line 1, column 13"),
    ("INSERT INTO a.b SELECT COUNT(*) FROM `a.b` " + W + " GROUP BY k", "INSERT INTO 'a.b' is the topic the statement reads FROM at line 1, column 13"),
]
# fmt: on


@pytest.mark.parametrize(("text", "message"), ERROR_MESSAGES)
def test_error_messages(text: str, message: str) -> None:
    err = syntax_error(text)
    assert err.message == message
    lines = str(err).splitlines()
    assert lines[0] == message
    assert lines[2] == " " * (err.column - 1) + "^"


def test_an_error_in_a_later_statement_on_a_later_line() -> None:
    err = syntax_error(f"{SECOND};\n{SECOND.replace('HOUR', 'HOURZ')}")
    assert (err.line, err.column, err.found) == (2, 60, "'HOURZ'")
    assert err.source_line == SECOND.replace("HOUR", "HOURZ")


def test_unterminated_string_error_details() -> None:
    err = syntax_error(statement(where="a = 'x"))
    assert (err.expected, err.found) == ("a closing '", "end of input")


def test_the_first_error_in_the_text_wins_over_a_check() -> None:
    # x is not grouped by, but the statement does not parse: the syntax error comes first
    assert syntax_error(statement(select="x, COUNT(*)") + " junk").message.startswith("Expected ',', 'EMIT'")


# -- WHERE, evaluated ----------------------------------------------------------------------


def passes(condition: str, value: dict[str, Any]) -> bool:
    return compile_condition(where(condition))(value)


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("a = 1", {"a": 1}, True),
        ("a = 1", {"a": 1.0}, True),
        ("a = 1.5", {"a": 1.5}, True),
        ("a != 1", {"a": 2}, True),
        ("a <> 1", {"a": 1}, False),
        ("a < 10", {"a": 9.99}, True),
        ("a <= 10", {"a": 10}, True),
        ("a > -1", {"a": 0}, True),
        ("a >= 0", {"a": -0.5}, False),
        ("10 > a", {"a": 3}, True),
        ("10 <= a", {"a": 3}, False),
        ("s = 'north'", {"s": "north"}, True),
        ("s < 'b'", {"s": "a"}, True),
        ("'b' < s", {"s": "a"}, False),
        ("f = TRUE", {"f": True}, True),
        ("f = FALSE", {"f": True}, False),
        ("f < TRUE", {"f": False}, True),
        ("a.b.c = 1", {"a": {"b": {"c": 1}}}, True),
        ("a = b", {"a": 2, "b": 2.0}, True),
        ("a < b", {"a": "x", "b": "y"}, True),
        ("1 = 1", {}, True),
        ("'a' != 'b'", {}, True),
        ("a IS NULL", {"a": None}, True),
        ("a IS NULL", {}, True),
        ("a IS NULL", {"a": 0}, False),
        ("a IS NOT NULL", {"a": {}}, True),
        ("a IS NOT NULL", {}, False),
        ("a.b IS NULL", {"a": 5}, True),
        ("NULL IS NULL", {}, True),
        # three-valued logic: a missing or null field makes a comparison unknown
        ("a = 1", {}, False),
        ("a != 1", {}, False),
        ("NOT a = 1", {}, False),
        ("NOT a = 1", {"a": None}, False),
        ("NOT a = 1", {"a": 2}, True),
        ("a = NULL", {"a": None}, False),
        ("NOT a = NULL", {"a": None}, False),
        ("a.b = 1", {"a": [1]}, False),
        ("a = 1 OR b = 1", {"b": 1}, True),
        ("a = 1 OR b = 1", {"b": 2}, False),
        ("NOT (a = 1 OR b = 1)", {"b": 2}, False),
        ("NOT (a = 1 OR b = 1)", {"a": 2, "b": 2}, True),
        ("a = 1 AND b = 1", {"b": 2}, False),
        ("NOT (a = 1 AND b = 1)", {"b": 2}, True),
        ("NOT (a = 1 AND b = 1)", {"b": 1}, False),
        ("a = b", {"a": 1, "b": None}, False),
        ("NOT a = b", {"a": 1}, False),
    ],
)
def test_conditions_evaluate(condition: str, value: dict[str, Any], expected: bool) -> None:
    assert passes(condition, value) is expected


def test_three_valued_truth_tables() -> None:
    # p and q are true (1), false (0) or unknown (missing); the row passes only if true.
    values = {"T": 1, "F": 0, "U": None}
    for p in "TFU":
        for q in "TFU":
            record = {"p": values[p], "q": values[q]}
            truth_and = "F" if "F" in p + q else "U" if "U" in p + q else "T"
            truth_or = "T" if "T" in p + q else "U" if "U" in p + q else "F"
            truth_not = {"T": "F", "F": "T", "U": "U"}
            assert passes("p = 1 AND q = 1", record) is (truth_and == "T"), (p, q)
            assert passes("p = 1 OR q = 1", record) is (truth_or == "T"), (p, q)
            assert passes("NOT (p = 1 AND q = 1)", record) is (truth_not[truth_and] == "T"), (p, q)
            assert passes("NOT (p = 1 OR q = 1)", record) is (truth_not[truth_or] == "T"), (p, q)


def test_no_condition_passes_everything() -> None:
    assert compile_condition(None)({}) is True


@pytest.mark.parametrize(
    ("condition", "value", "message"),
    [
        (
            "celsius > 20",
            {"celsius": "hot"},
            "WHERE cannot compare field 'celsius' (string 'hot') with number 20",
        ),
        (
            "20 < celsius",
            {"celsius": "hot"},
            "WHERE cannot compare field 'celsius' (string 'hot') with number 20",
        ),
        ("s = 'x'", {"s": 1.5}, "WHERE cannot compare field 's' (number 1.5) with string 'x'"),
        ("flag = TRUE", {"flag": 1}, "WHERE cannot compare field 'flag' (number 1) with boolean true"),
        ("n = 1", {"n": True}, "WHERE cannot compare field 'n' (boolean true) with number 1"),
        ("a.b = 1", {"a": {"b": {"c": 1}}}, "WHERE cannot compare field 'a.b' (an object) with number 1"),
        ("a != 'x'", {"a": [1, 2]}, "WHERE cannot compare field 'a' (an array) with string 'x'"),
        (
            "a = b",
            {"a": 1, "b": "1"},
            "WHERE cannot compare field 'a' (number 1) with field 'b' (string '1')",
        ),
        (
            "a = b",
            {"a": {}, "b": {}},
            "WHERE cannot compare field 'a' (an object) with field 'b' (an object)",
        ),
        (
            "`x y` = 1",
            {"x y": "z" * 60},
            f"WHERE cannot compare field '`x y`' (string '{'z' * 39}...) with number 1",
        ),
    ],
)
def test_comparing_incompatible_types_is_a_record_error(
    condition: str, value: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecordError) as info:
        passes(condition, value)
    assert str(info.value) == message


def test_and_or_stop_at_the_part_that_decides() -> None:
    # the second part would be a type error; the first decides, so it is not evaluated
    assert passes("a = 1 OR b = 1", {"a": 1, "b": "x"}) is True
    assert passes("a = 1 AND b = 1", {"a": 2, "b": "x"}) is False
    with pytest.raises(RecordError):
        passes("a = 1 AND b = 1", {"a": 1, "b": "x"})


# -- properties ----------------------------------------------------------------------------

WORDS = [
    "INSERT", "INTO", "SELECT", "FROM", "AS", "TIMESTAMP", "KEYED", "BY", "WHERE", "AND", "OR", "NOT",
    "IS", "NULL", "TRUE", "FALSE", "WINDOW", "TUMBLING", "HOPPING", "SIZE", "ADVANCE", "GRACE",
    "PERIOD", "GROUP", "EMIT", "FINAL", "CHANGES", "COUNT", "SUM", "AVG", "MIN", "MAX", "EARLIEST",
    "LATEST", "MINUTE", "SECONDS", "DAYS", "window_start", "a", "b.c", "t-1", "0", "1", "-1", "2.5",
    "99999999999999999999", "'x'", "''", "'", "`", "`a b`", ".", ",", "*", "(", ")", ";", "=", "<>",
    "!=", "<", ">=", "!", "\n", "é", "\t", "-",
]  # fmt: skip
VALID = [
    SEED,
    "INSERT INTO o SELECT k, SUM(x) AS s, COUNT(*) FROM i TIMESTAMP BY ts KEYED BY k WHERE x > -1.5 AND"
    " (y = 'a;b' OR NOT z IS NOT NULL) WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS,"
    " GRACE PERIOD 1 MINUTE) GROUP BY k EMIT CHANGES",
    f"{SECOND}; {SECOND.replace('b', 'c', 1)};",
]

token_soup = st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join)
# A valid statement with a few characters replaced by a word: close to what a user types.
mutated = st.tuples(
    st.sampled_from(VALID), st.integers(0, 400), st.integers(0, 6), st.sampled_from(WORDS)
).map(lambda t: t[0][: t[1]] + t[3] + t[0][t[1] + t[2] :])
sql_text = st.one_of(st.text(max_size=120), token_soup, mutated)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sql_text)
def test_the_parser_raises_only_sql_syntax_errors_with_a_place(text: str) -> None:
    try:
        parse_sql(text)
    except SqlSyntaxError as err:
        assert 1 <= err.line <= text.count("\n") + 1
        assert err.column >= 1
        assert str(err).endswith("^")
    statements, errors = parse_sql_many(text)
    assert all(isinstance(e, SqlSyntaxError) for e in errors)
    assert statements or errors


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=2)
    ),
    max_leaves=6,
)


@settings(max_examples=500, deadline=None)
@given(mutated, st.dictionaries(st.sampled_from(["x", "y", "z", "k"]), json_value, max_size=4))
def test_a_condition_meets_any_value_with_a_record_error_at_worst(text: str, value: dict[str, Any]) -> None:
    try:
        statements = parse_sql(text)
    except SqlSyntaxError:
        return
    for parsed in statements:
        try:
            assert compile_condition(parsed.where)(value) in (True, False)
        except RecordError:
            pass
