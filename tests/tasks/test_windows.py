"""Event-time windows and the aggregates kept for each: pure functions, no server."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.errors import RecordError
from tasks.windows import Aggregates, window_starts


def reference_starts(event_ms: int, size_ms: int, advance_ms: int) -> list[int]:
    """Every multiple of `advance_ms` whose [start, start + size) holds the event, newest first,
    by trying each candidate in turn."""
    candidates = range(event_ms - size_ms - advance_ms, event_ms + advance_ms + 1)
    found = [s for s in candidates if s % advance_ms == 0 and s <= event_ms < s + size_ms]
    return sorted(found, reverse=True)


def aggregates(*calls: str) -> Aggregates:
    """Aggregates from calls written as in SQL: "COUNT(*)", "SUM(x)"; each reads its field."""
    functions = []
    for call in calls:
        name, field = call.rstrip(")").split("(")
        if field == "*":
            functions.append(("COUNT*", lambda value: 1, "*"))
        else:
            functions.append((name, lambda value, field=field: value.get(field), field))
    return Aggregates(functions)


def run(aggs: Aggregates, *rows: dict | tuple[int, dict]) -> list[Any]:
    """The results after adding each row (a value, or (event time, value)) to one new state."""
    state = aggs.new()
    for row in rows:
        event_ms, value = row if isinstance(row, tuple) else (0, row)
        aggs.add(state, aggs.values(value), event_ms)
    return aggs.finish(state)


def error_of(aggs: Aggregates, *rows: dict) -> str:
    with pytest.raises(RecordError) as info:
        run(aggs, *rows)
    return info.value.reason


# -- window_starts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_ms", "starts"),
    [
        (0, [0]),
        (1, [0]),
        (59_999, [0]),  # the last millisecond of [0, 60000)
        (60_000, [60_000]),  # the end is exclusive: the next window
        (125_000, [120_000]),
        (-1, [-60_000]),
        (-60_000, [-60_000]),
        (-60_001, [-120_000]),
    ],
)
def test_tumbling_window_holds_the_event(event_ms: int, starts: list[int]) -> None:
    assert list(window_starts(event_ms, 60_000, 60_000)) == starts


@pytest.mark.parametrize(
    ("event_ms", "starts"),
    [
        (0, [0, -5]),
        (4, [0, -5]),
        (5, [5, 0]),
        (9, [5, 0]),
        (10, [10, 5]),
        (-1, [-5, -10]),
        (-5, [-5, -10]),
        (-6, [-10, -15]),
    ],
)
def test_hopping_windows_when_advance_divides_size(event_ms: int, starts: list[int]) -> None:
    assert list(window_starts(event_ms, 10, 5)) == starts


@pytest.mark.parametrize(
    ("event_ms", "starts"),
    [
        (0, [0, -4, -8]),
        (3, [0, -4]),  # [-8, 2) ended before 3
        (4, [4, 0, -4]),
        (9, [8, 4, 0]),
        (10, [8, 4]),  # [0, 10) ended: two windows only
        (11, [8, 4]),
        (12, [12, 8, 4]),
        (-1, [-4, -8]),
        (-4, [-4, -8, -12]),
    ],
)
def test_hopping_windows_when_advance_does_not_divide_size(event_ms: int, starts: list[int]) -> None:
    assert list(window_starts(event_ms, 10, 4)) == starts


def test_hopping_windows_count_varies_when_advance_does_not_divide_size() -> None:
    assert list(window_starts(0, 10, 3)) == [0, -3, -6, -9]
    assert list(window_starts(1, 10, 3)) == [0, -3, -6]


@given(
    event_ms=st.integers(-(10**13), 10**13),
    advance_ms=st.integers(1, 5_000),
    extra_ms=st.integers(0, 20_000),
)
def test_window_starts_match_a_brute_force_search(event_ms: int, advance_ms: int, extra_ms: int) -> None:
    size_ms = advance_ms + extra_ms
    expected = reference_starts(event_ms, size_ms, advance_ms)
    assert list(window_starts(event_ms, size_ms, advance_ms)) == expected


# -- COUNT ---------------------------------------------------------------------------------


def test_count_star_counts_every_record_even_without_fields() -> None:
    assert run(aggregates("COUNT(*)"), {}, {"x": None}, {"x": 1}) == [3]


def test_count_field_skips_null_and_missing() -> None:
    rows = [{"x": 0}, {"x": None}, {}, {"x": ""}, {"x": False}, {"x": {}}, {"y": 1}]
    assert run(aggregates("COUNT(x)"), *rows) == [4]


def test_count_of_nothing_is_zero() -> None:
    assert run(aggregates("COUNT(*)", "COUNT(x)")) == [0, 0]


# -- SUM and AVG ---------------------------------------------------------------------------


def test_sum_of_ints_stays_an_int() -> None:
    (total,) = run(aggregates("SUM(x)"), {"x": 1}, {"x": 2}, {"x": -10})
    assert total == -7
    assert type(total) is int


def test_sum_of_floats_is_a_float() -> None:
    (total,) = run(aggregates("SUM(x)"), {"x": 1.5}, {"x": 2.5})
    assert total == 4.0
    assert type(total) is float


def test_sum_of_ints_and_floats_is_a_float() -> None:
    (total,) = run(aggregates("SUM(x)"), {"x": 1}, {"x": 2.5})
    assert total == 3.5
    assert type(total) is float


def test_sum_skips_null_and_missing_and_is_null_without_values() -> None:
    assert run(aggregates("SUM(x)"), {"x": None}, {}, {"x": 4}) == [4]
    assert run(aggregates("SUM(x)"), {"x": None}, {}) == [None]
    assert run(aggregates("SUM(x)")) == [None]


def test_avg_is_a_float() -> None:
    (mean,) = run(aggregates("AVG(x)"), {"x": 2}, {"x": 4})
    assert mean == 3.0
    assert type(mean) is float
    assert run(aggregates("AVG(x)"), {"x": 1}, {"x": 2}) == [1.5]
    assert run(aggregates("AVG(x)"), {"x": 0.5}, {"x": 1}, {"x": -3}) == [-0.5]


def test_avg_skips_null_and_missing_and_is_null_without_values() -> None:
    assert run(aggregates("AVG(x)"), {"x": 2}, {"x": None}, {}, {"x": 4}) == [3.0]
    assert run(aggregates("AVG(x)"), {"x": None}, {}) == [None]
    assert run(aggregates("AVG(x)")) == [None]


# -- MIN and MAX ---------------------------------------------------------------------------


def test_min_and_max_of_numbers() -> None:
    rows = [{"x": 3}, {"x": -1.5}, {"x": None}, {"x": 2}, {}]
    assert run(aggregates("MIN(x)", "MAX(x)"), *rows) == [-1.5, 3]


def test_min_and_max_of_strings() -> None:
    rows = [{"x": "b"}, {"x": "a"}, {"x": "c"}, {"x": None}, {"x": "B"}]
    assert run(aggregates("MIN(x)", "MAX(x)"), *rows) == ["B", "c"]


def test_min_and_max_without_values_are_null() -> None:
    assert run(aggregates("MIN(x)", "MAX(x)"), {"x": None}, {}) == [None, None]


# -- values of the wrong type --------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "rows", "message"),
    [
        ("SUM(x)", [{"x": 1}, {"x": "2"}], "SUM(x) needs a number, found str '2'"),
        ("SUM(x)", [{"x": [1]}], "SUM(x) needs a number, found list [1]"),
        ("AVG(x)", [{"x": {"a": 1}}], "AVG(x) needs a number, found dict {'a': 1}"),
        ("MIN(x)", [{"x": {}}], "MIN(x) needs a number or a string, found dict {}"),
        ("MAX(x)", [{"x": [2]}], "MAX(x) needs a number or a string, found list [2]"),
    ],
)
def test_a_value_of_the_wrong_type_is_the_records_error(call: str, rows: list[dict], message: str) -> None:
    assert error_of(aggregates(call), *rows) == message


@pytest.mark.parametrize("call", ["MIN(x)", "MAX(x)"])
@pytest.mark.parametrize(("first", "then"), [(1, "a"), ("a", 1), (1.5, "a"), ("a", 2.5)])
def test_min_and_max_refuse_numbers_and_strings_mixed(call: str, first: Any, then: Any) -> None:
    message = error_of(aggregates("COUNT(*)", call), {"x": first}, {"x": then})
    assert message.startswith(f"{call} needs ")
    assert repr(then) in message


def test_a_long_value_is_cut_in_the_message() -> None:
    message = error_of(aggregates("SUM(x)"), {"x": "y" * 100})
    assert message == "SUM(x) needs a number, found str '" + "y" * 39


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("SUM(x)", "SUM(x) needs a number, found bool True"),
        ("AVG(x)", "AVG(x) needs a number, found bool True"),
        ("MIN(x)", "MIN(x) needs a number or a string, found bool True"),
        ("MAX(x)", "MAX(x) needs a number or a string, found bool True"),
    ],
)
def test_bool_is_not_a_number(call: str, message: str) -> None:
    assert error_of(aggregates(call), {"x": True}) == message
    assert error_of(aggregates(call), {"x": 1}, {"x": True}) == message


def test_bool_is_a_value_for_count_earliest_and_latest() -> None:
    rows = [(1, {"x": False}), (2, {"x": True})]
    assert run(aggregates("COUNT(x)", "EARLIEST(x)", "LATEST(x)"), *rows) == [2, False, True]


# -- EARLIEST and LATEST -------------------------------------------------------------------


def test_earliest_and_latest_go_by_event_time_not_arrival() -> None:
    rows = [(5, {"x": "a"}), (3, {"x": "b"}), (7, {"x": "c"}), (4, {"x": "d"})]
    assert run(aggregates("EARLIEST(x)", "LATEST(x)"), *rows) == ["b", "c"]


def test_earliest_keeps_the_first_seen_and_latest_the_last_seen_of_a_tie() -> None:
    rows = [(3, {"x": "a"}), (3, {"x": "b"}), (3, {"x": "c"})]
    assert run(aggregates("EARLIEST(x)", "LATEST(x)"), *rows) == ["a", "c"]
    rows = [(5, {"x": "a"}), (1, {"x": "b"}), (9, {"x": "c"}), (1, {"x": "d"}), (9, {"x": "e"})]
    assert run(aggregates("EARLIEST(x)", "LATEST(x)"), *rows) == ["b", "e"]


def test_earliest_and_latest_skip_null_and_missing() -> None:
    rows = [(1, {"x": None}), (2, {"x": "a"}), (3, {}), (0, {"x": None})]
    assert run(aggregates("EARLIEST(x)", "LATEST(x)"), *rows) == ["a", "a"]
    assert run(aggregates("EARLIEST(x)", "LATEST(x)"), (1, {})) == [None, None]


def test_earliest_and_latest_keep_any_json_value() -> None:
    rows = [(1, {"x": {"a": [1]}}), (2, {"x": [None]})]
    assert run(aggregates("EARLIEST(x)", "LATEST(x)"), *rows) == [{"a": [1]}, [None]]


# -- check, and a bad record leaving the state as it was -----------------------------------


def test_values_are_read_once_per_aggregate() -> None:
    aggs = aggregates("COUNT(*)", "SUM(x)", "MIN(y)")
    assert aggs.values({"x": 2, "z": 3}) == [1, 2, None]


def test_check_raises_what_add_would_without_changing_any_state() -> None:
    aggs = aggregates("COUNT(*)", "SUM(x)")
    state = aggs.new()
    aggs.add(state, aggs.values({"x": 2}), 0)
    with pytest.raises(RecordError, match=r"^SUM\(x\) needs a number, found str 'a'$"):
        aggs.check(aggs.values({"x": "a"}))
    assert state == [1, 2]
    aggs.check(aggs.values({"x": 3}))
    assert state == [1, 2]


def test_check_passes_a_record_that_add_takes() -> None:
    aggs = aggregates("COUNT(*)", "SUM(x)", "AVG(x)", "MIN(y)", "MAX(y)", "EARLIEST(z)", "LATEST(z)")
    aggs.check(aggs.values({"x": 1.5, "y": "s", "z": {"any": "thing"}}))
    aggs.check(aggs.values({}))


def test_add_that_raises_leaves_the_state_unchanged() -> None:
    # check() reads no state, so it cannot see a string meeting a MAX that holds numbers:
    # add itself must not count the record in the aggregates before the one that refuses it.
    aggs = aggregates("COUNT(*)", "SUM(y)", "MAX(x)")
    state = aggs.new()
    aggs.add(state, aggs.values({"x": 5, "y": 1}), 0)
    with pytest.raises(RecordError, match=r"^MAX\(x\) needs "):
        aggs.add(state, aggs.values({"x": "a", "y": 1}), 0)
    assert state == [1, 1, 5]
