"""Property tests of the KCQL parser and its routes: whatever the text, only conductor's own
errors come out (a KcqlSyntaxError with a position, or a RecordError for a record)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor.errors import RecordError
from conductor.kcql import KcqlSyntaxError, parse_kcql, parse_kcql_many
from conductor.records import Record
from conductor.routes import compile_route

WORDS = [
    "INSERT", "UPSERT", "INTO", "SELECT", "FROM", "AS", "IGNORE", "PK", "AUTOCREATE", "TTL", "BATCH",
    "WITHDOCTYPE", "WITHINDEXSUFFIX", "WITHPIPELINE", "PROPERTIES", "STOREAS", "now", "_key", "_value",
    "_header", "_", "topic", "offset", "key", "a", "b", "@timestamp", "idx", "t-1", "0", "23",
    "_{YYYY-MM-dd}", "{", "}", "'", "''", "`", "'a.b'", "`x.y`", "`_key.'f.1'`", ".", ",", "*", "=",
    "(", ")", ";", "\n", "é", "\t", "-",
]  # fmt: skip
VALID = [
    "INSERT INTO idx SELECT * FROM t",
    "UPSERT INTO `_key.'f.1'` SELECT a.b AS c, _key.*, _header.h.x, _.topic FROM 't' PK _.offset",
    "INSERT INTO _value.a SELECT _value AS v, @timestamp FROM t IGNORE a TTL=5 BATCH=2",
    "INSERT INTO idx SELECT a FROM t WITHINDEXSUFFIX=_{YYYY-MM-dd} PROPERTIES(a.b=23, 'k'='v')",
]

token_soup = st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join)
# A valid statement with a few words inserted, removed or swapped: text close to what a user
# types, which reaches deeper into the parser than random characters do.
mutated = st.tuples(
    st.sampled_from(VALID), st.integers(0, 200), st.integers(0, 5), st.sampled_from(WORDS)
).map(lambda t: t[0][: t[1]] + t[3] + t[0][t[1] + t[2] :])
kcql_text = st.one_of(st.text(max_size=120), token_soup, mutated)

json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "x", "h", "f.1"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kcql_text)
def test_the_parser_raises_only_kcql_syntax_errors_with_a_place(text: str) -> None:
    try:
        parse_kcql(text)
    except KcqlSyntaxError as err:
        assert 1 <= err.line <= text.count("\n") + 1
        assert err.column >= 1
        assert str(err).endswith("^")
    statements, errors = parse_kcql_many(text)
    assert all(isinstance(e, KcqlSyntaxError) for e in errors)
    assert statements or errors


@settings(max_examples=800, deadline=None)
@given(
    mutated,
    json_value,
    st.one_of(st.none(), st.binary(max_size=20), json_value.map(repr).map(str.encode)),
    st.lists(
        st.tuples(st.sampled_from(["h", "p"]), st.one_of(st.none(), st.binary(max_size=12))), max_size=3
    ),
)
def test_a_route_meets_any_record_with_a_record_error_at_worst(
    text: str, value: Any, key: bytes | None, headers: list[tuple[str, bytes | None]]
) -> None:
    try:
        statements = parse_kcql(text)
    except KcqlSyntaxError:
        return
    record = Record("t", 0, 1, 2, key, value if type(value) is dict else {"v": value}, headers)
    for statement in statements:
        route = compile_route(statement)
        for step in (route.project, route.target, route.primary_key):
            try:
                step(record)
            except RecordError:
                pass
