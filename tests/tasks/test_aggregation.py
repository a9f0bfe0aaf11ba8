"""A compiled aggregation statement and the windows it keeps for one partition: no server."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.errors import RecordError
from conductor.records import Record
from conductor.sql import SqlSyntaxError, parse_sql
from tasks.aggregation import NO_TIME, Outcome, PartitionState, Plan

FAR_FUTURE = 10**13
HOP_10_5 = "HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS)"
Result = tuple[int, dict, dict, int]  # plan index, key, value, timestamp
Row = tuple[str, int, int | None]  # group, event time, x
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def plan(
    select: str = "k, COUNT(*) AS n",
    window: str = "TUMBLING (SIZE 10 SECONDS)",
    *,
    group_by: str = "k",
    where: str = "",
    timestamp: str = "",
    emit: str = "FINAL",
    index: int = 0,
) -> Plan:
    text = (
        f"INSERT INTO out SELECT {select} FROM in"
        + (f" TIMESTAMP BY {timestamp}" if timestamp else "")
        + (f" WHERE {where}" if where else "")
        + f" WINDOW {window} GROUP BY {group_by} EMIT {emit}"
    )
    (statement,) = parse_sql(text)
    return Plan.compile(index, statement)


def state_of(*args: Any, **kwargs: Any) -> PartitionState:
    return PartitionState(plan(*args, **kwargs))


def add(state: PartitionState, value: dict, at: int = 0) -> Outcome:
    """Add one record with Kafka timestamp `at`, as the worker does: a fresh Outcome per record."""
    outcome = Outcome()
    state.add(Record("in", 0, 0, at, None, value, []), value, outcome)
    return outcome


def advance(state: PartitionState, now_ms: int) -> list[Result]:
    outcome = Outcome()
    state.advance_to(now_ms, outcome)
    return outcome.results


def snapshot(state: PartitionState) -> Any:
    return copy.deepcopy((state.stream_time, state.windows, state.dirty, state.closed, state.written_time))


def refused(state: PartitionState, value: dict, at: int = 0) -> str:
    """The reason `state` refuses the record, after checking it left the state as it was."""
    before = snapshot(state)
    with pytest.raises(RecordError) as info:
        add(state, value, at)
    assert snapshot(state) == before
    return info.value.reason


def through_json(entries: list[tuple[list[Any], Any]]) -> list[tuple[list[Any], Any]]:
    """Changelog entries as the worker writes and reads them: JSON key and value."""
    return [
        (orjson.loads(orjson.dumps(key)), None if value is None else orjson.loads(orjson.dumps(value)))
        for key, value in entries
    ]


def by_key(entries: list[tuple[list[Any], Any]]) -> dict[bytes, Any]:
    keyed = {orjson.dumps(key): value for key, value in entries}
    assert len(keyed) == len(entries)  # one entry per key in a single call
    return keyed


def entry(group: str, start: int) -> bytes:
    return orjson.dumps([[group], start])


STREAM_TIME = orjson.dumps(["stream_time"])


# -- the compiled plan ---------------------------------------------------------------------


def test_plan_holds_the_window_emit_and_group_names() -> None:
    compiled = plan(
        "home.id AS home, COUNT(*)",
        "HOPPING (SIZE 1 MINUTE, ADVANCE BY 15 SECONDS, GRACE PERIOD 5 SECONDS)",
        group_by="home.id, room",
        emit="CHANGES",
        index=7,
    )
    assert (compiled.index, compiled.size_ms, compiled.advance_ms) == (7, 60_000, 15_000)
    assert (compiled.grace_ms, compiled.final) == (5_000, False)
    assert compiled.group_names == ("home", "room")


def test_a_tumbling_plan_advances_by_its_size_and_emits_final_by_default() -> None:
    text = "INSERT INTO o SELECT COUNT(*) FROM i WINDOW TUMBLING (SIZE 2 SECONDS) GROUP BY k"
    (statement,) = parse_sql(text)
    compiled = Plan.compile(0, statement)
    assert (compiled.size_ms, compiled.advance_ms) == (2_000, 2_000)
    assert (compiled.grace_ms, compiled.final) == (0, True)
    assert compiled.group_names == ("k",)


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO o SELECT COUNT(*) AS k FROM i WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k",
        "INSERT INTO o SELECT COUNT(*) FROM i WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY a.b, c.b",
        "INSERT INTO o SELECT COUNT(*) FROM i WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY meta.window_start",
    ],
)
def test_no_output_column_is_lost_to_a_name_clash(text: str) -> None:
    # A GROUP BY field left out of SELECT is named by its last part; that name can clash with
    # an alias, another group field or a window column. Refusing the statement is a fix too.
    try:
        (statement,) = parse_sql(text)
    except SqlSyntaxError:
        return
    compiled = Plan.compile(0, statement)
    group = tuple(f"g{i}" for i in range(len(statement.group_by)))
    key, value = compiled.result(group, 0, compiled.aggregates.new())
    assert len(key) == len(group)
    assert len(value) == len(group) + 2 + len(statement.aggregates)


# -- stream time and the windows a record counts in ----------------------------------------


def test_stream_time_is_the_largest_event_time_seen() -> None:
    state = state_of(window="TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 HOUR)")
    assert state.stream_time == NO_TIME
    seen = []
    for at in (5_000, 3_000, 9_000, 1_000, -20_000):
        add(state, {"k": "a"}, at)
        seen.append(state.stream_time)
    assert seen == [5_000, 5_000, 9_000, 9_000, 9_000]
    assert state.windows == {0: {("a",): [4]}, -20_000: {("a",): [1]}}


def test_a_record_counts_in_every_window_of_its_own() -> None:
    state = state_of(window=HOP_10_5)
    outcome = add(state, {"k": "a"}, 12_000)
    assert (outcome.counted, outcome.late_windows, outcome.results) == (True, 0, [])
    assert state.windows == {10_000: {("a",): [1]}, 5_000: {("a",): [1]}}
    add(state, {"k": "b"}, 14_999)
    assert state.windows == {10_000: {("a",): [1], ("b",): [1]}, 5_000: {("a",): [1], ("b",): [1]}}
    assert state.open_windows == 4


def test_a_record_counts_in_every_window_when_advance_does_not_divide_size() -> None:
    state = state_of(window="HOPPING (SIZE 10 SECONDS, ADVANCE BY 4 SECONDS)")
    add(state, {"k": "a"}, 12_000)
    assert state.windows == {12_000: {("a",): [1]}, 8_000: {("a",): [1]}, 4_000: {("a",): [1]}}
    add(state, {"k": "a"}, 13_999)  # the same three windows: [4000, 14000) still holds it
    assert sorted(state.windows) == [4_000, 8_000, 12_000]
    assert all(groups == {("a",): [2]} for groups in state.windows.values())


def test_tumbling_without_grace_a_record_before_the_current_window_is_late() -> None:
    state = state_of()
    add(state, {"k": "a"}, 60_000)
    for at in (59_999, 0, -1):
        outcome = add(state, {"k": "a"}, at)
        assert (outcome.counted, outcome.late_windows, outcome.results) == (False, 1, [])
    for at in (60_000, 69_999):
        assert add(state, {"k": "a"}, at).counted
    assert state.windows == {60_000: {("a",): [3]}}
    assert state.stream_time == 69_999


def test_tumbling_with_grace_a_record_still_counts_until_end_plus_grace() -> None:
    state = state_of(window="TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 30 SECONDS)")
    add(state, {"k": "a"}, 10_000)
    assert add(state, {"k": "a"}, 9_999).counted
    add(state, {"k": "a"}, 39_999)  # window 0 ends at 10000: closes at stream time 40000
    outcome = add(state, {"k": "a"}, 1)
    assert (outcome.counted, outcome.late_windows) == (True, 0)
    assert state.windows[0] == {("a",): [2]}
    outcome = add(state, {"k": "a"}, 40_000)
    assert [value["n"] for _, _, value, _ in outcome.results] == [2]
    assert 0 not in state.windows
    outcome = add(state, {"k": "a"}, 2)
    assert (outcome.counted, outcome.late_windows) == (False, 1)
    assert 0 not in state.windows


def test_hopping_a_record_late_for_some_windows_counts_in_the_open_ones() -> None:
    state = state_of(window=HOP_10_5)
    add(state, {"k": "a"}, 12_000)  # windows 10000 and 5000
    outcome = add(state, {"k": "a"}, 16_000)  # 15000 and 10000; 5000 ends at 15000: closed
    assert [(value["window_start"], value["n"]) for _, _, value, _ in outcome.results] == [(5_000, 1)]
    outcome = add(state, {"k": "a"}, 11_000)  # 10000 open, 5000 closed
    assert (outcome.counted, outcome.late_windows, outcome.results) == (True, 1, [])
    assert state.windows == {10_000: {("a",): [3]}, 15_000: {("a",): [1]}}
    outcome = add(state, {"k": "a"}, 7_000)  # 5000 and 0: both closed
    assert (outcome.counted, outcome.late_windows) == (False, 2)
    assert sorted(state.windows) == [10_000, 15_000]


def test_late_windows_add_up_over_one_outcome() -> None:
    state = state_of(window=HOP_10_5)
    add(state, {"k": "a"}, 30_000)
    outcome = Outcome()
    for at in (1_000, 26_000):  # late for 2 windows, then for 1 of 2
        outcome.counted = True
        state.add(Record("in", 0, 0, at, None, {"k": "a"}, []), {"k": "a"}, outcome)
    assert (outcome.counted, outcome.late_windows) == (True, 3)


# -- EMIT FINAL and EMIT CHANGES -----------------------------------------------------------


def test_emit_final_emits_each_window_once_when_it_closes() -> None:
    state = state_of("home AS h, COUNT(*) AS n, SUM(x) AS total, AVG(x) AS mean", group_by="home", index=3)

    def row(home: str, start: int, n: int, total: int | None, mean: float | None) -> Result:
        value = {"h": home, "window_start": start, "window_end": start + 10_000, "n": n}
        return (3, {"h": home}, value | {"total": total, "mean": mean}, start)

    assert add(state, {"home": "a", "x": 1}, 1_000).results == []
    assert add(state, {"home": "b", "x": 2}, 2_000).results == []
    assert add(state, {"home": "a", "x": 3}, 9_999).results == []
    closing = add(state, {"home": "a", "x": 4}, 10_000)
    assert closing.results == [row("a", 0, 2, 4, 2.0), row("b", 0, 1, 2, 2.0)]
    assert add(state, {"home": "b", "x": 5}, 25_000).results == [row("a", 10_000, 1, 4, 4.0)]
    assert add(state, {"home": "a"}, 45_000).results == [row("b", 20_000, 1, 5, 5.0)]
    assert advance(state, FAR_FUTURE) == [row("a", 40_000, 1, None, None)]
    assert advance(state, FAR_FUTURE + 1) == []
    assert state.windows == {}


def test_emit_final_emits_windows_closing_together_in_start_order() -> None:
    state = state_of(window="HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS, GRACE PERIOD 1 MINUTE)")
    add(state, {"k": "a"}, 12_000)  # creates 10000 before 5000
    add(state, {"k": "b"}, 3_000)  # creates 0 and -5000
    results = advance(state, FAR_FUTURE)
    assert [(key, value["window_start"], value["n"]) for _, key, value, _ in results] == [
        ({"k": "b"}, -5_000, 1),
        ({"k": "b"}, 0, 1),
        ({"k": "a"}, 5_000, 1),
        ({"k": "a"}, 10_000, 1),
    ]


def test_emit_final_closes_a_window_at_its_end_plus_grace() -> None:
    state = state_of(window="TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 5 SECONDS)")
    add(state, {"k": "a"}, 1_000)
    assert advance(state, 14_999) == []
    assert state.stream_time == 14_999
    (result,) = advance(state, 15_000)
    assert result == (0, {"k": "a"}, {"k": "a", "window_start": 0, "window_end": 10_000, "n": 1}, 0)
    assert state.stream_time == 15_000


def test_emit_changes_emits_every_update_of_every_window_and_nothing_at_close() -> None:
    state = state_of("k, COUNT(*) AS n, MAX(x) AS hi", HOP_10_5, emit="CHANGES")

    def row(start: int, n: int, hi: int) -> Result:
        value = {"k": "a", "window_start": start, "window_end": start + 10_000, "n": n, "hi": hi}
        return (0, {"k": "a"}, value, start)

    assert add(state, {"k": "a", "x": 3}, 12_000).results == [row(10_000, 1, 3), row(5_000, 1, 3)]
    assert add(state, {"k": "a", "x": 1}, 13_000).results == [row(10_000, 2, 3), row(5_000, 2, 3)]
    outcome = add(state, {"k": "a", "x": 9}, 16_000)  # closes 5000: no result for it
    assert outcome.results == [row(15_000, 1, 9), row(10_000, 3, 9)]
    outcome = add(state, {"k": "a", "x": 99}, 11_000)  # late for 5000, counts in 10000
    assert (outcome.results, outcome.late_windows) == ([row(10_000, 4, 99)], 1)
    assert add(state, {"k": "a", "x": 7}, 1_000).results == []  # late as a whole
    assert advance(state, FAR_FUTURE) == []
    assert state.windows == {}


def test_advance_to_never_moves_stream_time_backwards() -> None:
    state = state_of()
    add(state, {"k": "a"}, 50_000)
    state.changes()
    assert advance(state, 10_000) == []
    assert advance(state, 50_000) == []
    assert state.stream_time == 50_000
    assert state.windows == {50_000: {("a",): [1]}}
    assert state.changes() == []


def test_advance_to_closes_only_what_that_time_closes() -> None:
    state = state_of()
    for at in (1_000, 11_000, 21_000):
        add(state, {"k": "a"}, at)
    assert [value["window_start"] for _, _, value, _ in advance(state, 25_000)] == []
    # add already closed 0 and 10000 as stream time passed 20000
    assert sorted(state.windows) == [20_000]
    assert [value["window_start"] for _, _, value, _ in advance(state, 30_000)] == [20_000]
    assert state.stream_time == 30_000
    assert add(state, {"k": "a"}, 29_999).counted is False


# -- WHERE ---------------------------------------------------------------------------------


def test_a_record_that_fails_where_neither_counts_nor_moves_stream_time() -> None:
    state = state_of(where="x > 0")
    add(state, {"k": "a", "x": 1}, 5_000)
    before = snapshot(state)
    for value in ({"k": "a", "x": -1}, {"k": "a"}, {"k": "a", "x": None}, {"x": 0}):
        outcome = add(state, value, 99_000)
        # Filtered out, not late: counted stays as the caller set it.
        assert (outcome.counted, outcome.late_windows, outcome.results) == (True, 0, [])
        assert snapshot(state) == before
    assert state.stream_time == 5_000


def test_where_is_tested_before_the_event_time_and_group_are_read() -> None:
    state = state_of(where="x > 0", timestamp="ts")
    add(state, {"x": 0, "ts": "not a time"})  # neither a RecordError for the time nor the group
    assert state.windows == {}


def test_a_where_comparison_of_the_wrong_type_is_the_records_error() -> None:
    state = state_of(where="x > 0")
    add(state, {"k": "a", "x": 1}, 5_000)
    reason = refused(state, {"k": "a", "x": "hot"}, 6_000)
    assert reason == "WHERE cannot compare field 'x' (string 'hot') with number 0"


# -- GROUP BY ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({}, "GROUP BY field 'k' is missing: a group needs a value"),
        ({"k": None}, "GROUP BY field 'k' is missing: a group needs a value"),
        ({"k": {"a": 1}}, "GROUP BY field 'k' is a dict: a group needs a value"),
        ({"k": [1]}, "GROUP BY field 'k' is a list: a group needs a value"),
    ],
)
def test_a_group_without_a_plain_value_is_the_records_error(value: dict, reason: str) -> None:
    state = state_of()
    add(state, {"k": "a"}, 5_000)
    assert refused(state, value, 6_000) == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"home": 1}, "GROUP BY field 'home.id' is missing: a group needs a value"),
        ({"home": {"id": None}}, "GROUP BY field 'home.id' is missing: a group needs a value"),
        ({"home": {"id": {}}}, "GROUP BY field 'home.id' is a dict: a group needs a value"),
    ],
)
def test_a_nested_group_field_without_a_plain_value_is_the_records_error(value: dict, reason: str) -> None:
    assert refused(state_of("COUNT(*) AS n", group_by="home.id"), value) == reason


def test_groups_by_several_fields_and_plain_values() -> None:
    state = state_of("home.id AS h, room, COUNT(*) AS n", group_by="home.id, room", emit="CHANGES")
    outcome = add(state, {"home": {"id": 0}, "room": ""}, 1_000)
    assert outcome.results == [
        (0, {"h": 0, "room": ""}, {"h": 0, "room": "", "window_start": 0, "window_end": 10_000, "n": 1}, 0)
    ]
    add(state, {"home": {"id": 0}, "room": "x"}, 1_000)
    add(state, {"home": {"id": 0}, "room": ""}, 1_000)
    assert state.windows == {0: {(0, ""): [2], (0, "x"): [1]}}


def test_true_and_1_are_different_groups() -> None:
    state = state_of(emit="CHANGES")
    keys = [add(state, {"k": k}, 1_000).results[0][1] for k in (True, 1, False, 0)]
    assert keys == [{"k": True}, {"k": 1}, {"k": False}, {"k": 0}]
    assert state.open_windows == 4


# -- TIMESTAMP BY --------------------------------------------------------------------------


def test_event_time_is_the_record_timestamp_without_timestamp_by() -> None:
    state = state_of()
    add(state, {"k": "a", "ts": 99_999}, 12_345)
    assert state.stream_time == 12_345
    assert list(state.windows) == [10_000]


@pytest.mark.parametrize(
    ("ts", "event_ms"),
    [
        (1_700_000_000_123, 1_700_000_000_123),
        (0, 0),
        (-5, -5),
        ("2024-01-01T00:00:00Z", 1_704_067_200_000),  # 19723 days after the epoch
        ("2024-01-01T00:00:00.250Z", 1_704_067_200_250),
        ("2024-01-01T02:00:00+02:00", 1_704_067_200_000),
        ("2023-12-31T19:00:00-05:00", 1_704_067_200_000),
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_timestamp_by_reads_epoch_ms_or_iso_8601_with_a_zone(ts: Any, event_ms: int) -> None:
    state = state_of(timestamp="ts")
    add(state, {"k": "a", "ts": ts}, 42)  # the Kafka timestamp is not the event time
    assert state.stream_time == event_ms
    assert list(state.windows) == [event_ms - event_ms % 10_000]


@pytest.mark.parametrize(
    ("ts", "event_ms"),
    [
        ("1987-05-10T10:40:21.915Z", 547_641_621_915),
        ("2039-01-12T23:59:04.595Z", 2_178_489_544_595),
        ("1952-09-30T02:38:27.386Z", -544_483_292_614),
    ],
)
def test_timestamp_by_reads_iso_8601_to_the_exact_millisecond(ts: str, event_ms: int) -> None:
    state = state_of(timestamp="ts")
    add(state, {"k": "a", "ts": ts})
    assert state.stream_time == event_ms


@given(st.integers(-(10**13), 10**13))
def test_timestamp_by_reads_any_iso_8601_millisecond_as_written(event_ms: int) -> None:
    text = (EPOCH + timedelta(milliseconds=event_ms)).isoformat(timespec="milliseconds")
    state = state_of(timestamp="ts")
    add(state, {"k": "a", "ts": text.replace("+00:00", "Z")})
    assert state.stream_time == event_ms


def test_timestamp_by_a_nested_field() -> None:
    state = state_of(timestamp="meta.at")
    add(state, {"k": "a", "meta": {"at": 25_000}})
    assert state.stream_time == 25_000
    reason = refused(state, {"k": "a", "meta": 1})
    assert reason.startswith("event time field 'meta.at' holds None")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"k": "a", "ts": "2024-01-01T00:00:00"}, "'2024-01-01T00:00:00'"),  # no zone
        ({"k": "a", "ts": "yesterday"}, "'yesterday'"),
        ({"k": "a", "ts": 1.7e12}, "1700000000000.0"),
        ({"k": "a", "ts": True}, "True"),
        ({"k": "a", "ts": None}, "None"),
        ({"k": "a"}, "None"),
        ({"k": "a", "ts": {"ms": 1}}, "{'ms': 1}"),
    ],
)
def test_timestamp_by_a_value_that_is_no_time_is_the_records_error(value: dict, shown: str) -> None:
    state = state_of(timestamp="ts")
    add(state, {"k": "a", "ts": 5_000})
    assert refused(state, value) == (
        f"event time field 'ts' holds {shown}: not epoch milliseconds or an ISO-8601 time with a zone"
    )


# -- a bad record leaves the state as it was -----------------------------------------------


def test_an_aggregate_of_the_wrong_type_leaves_the_state_unchanged() -> None:
    state = state_of("k, COUNT(*) AS n, SUM(x) AS s")
    add(state, {"k": "a", "x": 1}, 1_000)
    assert refused(state, {"k": "a", "x": "2"}, 2_000) == "SUM(x) needs a number, found str '2'"
    assert refused(state, {"k": "a", "x": True}, 3_000) == "SUM(x) needs a number, found bool True"


@pytest.mark.parametrize("window", ["TUMBLING (SIZE 10 SECONDS)", HOP_10_5])
def test_a_value_that_clashes_with_a_windows_values_leaves_the_state_unchanged(window: str) -> None:
    # MIN over numbers meets a string: only the window's own state shows the clash. Hopping,
    # the record's newest window (5000) is new and takes the string; window 0 refuses it.
    state = state_of("k, COUNT(*) AS n, MIN(x) AS lo", window)
    add(state, {"k": "a", "x": 5}, 1_000)
    state.changes()
    assert refused(state, {"k": "a", "x": "z"}, 6_000).startswith("MIN(x) needs ")


# -- the changelog -------------------------------------------------------------------------


def test_changes_write_each_touched_window_and_the_stream_time_once() -> None:
    state = state_of("k, COUNT(*) AS n, AVG(x) AS mean, EARLIEST(x) AS first")
    add(state, {"k": "a", "x": 1}, 1_000)
    add(state, {"k": "b", "x": 2}, 2_000)
    add(state, {"k": "a", "x": 3}, 500)
    entries = state.changes()
    assert entries[-1] == (["stream_time"], 2_000)
    assert by_key(entries) == {
        entry("a", 0): [2, [4, 2], [500, 3]],
        entry("b", 0): [1, [2, 1], [2_000, 2]],
        STREAM_TIME: 2_000,
    }
    assert state.changes() == []


def test_changes_write_a_tombstone_for_each_closed_window() -> None:
    state = state_of()
    add(state, {"k": "a"}, 1_000)
    add(state, {"k": "b"}, 1_000)
    state.changes()
    add(state, {"k": "a"}, 12_000)
    assert by_key(state.changes()) == {
        entry("a", 0): None,
        entry("b", 0): None,
        entry("a", 10_000): [1],
        STREAM_TIME: 12_000,
    }
    assert state.changes() == []


def test_a_window_touched_and_closed_between_two_calls_is_only_a_tombstone() -> None:
    state = state_of()
    add(state, {"k": "a"}, 1_000)
    state.changes()
    add(state, {"k": "a"}, 2_000)
    add(state, {"k": "a"}, 25_000)
    assert by_key(state.changes()) == {entry("a", 0): None, entry("a", 20_000): [1], STREAM_TIME: 25_000}


def test_a_late_or_filtered_record_writes_nothing() -> None:
    state = state_of(where="x IS NOT NULL")
    add(state, {"k": "a", "x": 1}, 20_000)
    state.changes()
    assert add(state, {"k": "a", "x": 1}, 1_000).counted is False
    add(state, {"k": "a"}, 30_000)
    assert state.changes() == []


def test_advance_to_writes_the_tombstones_of_what_it_closes_and_the_stream_time() -> None:
    state = state_of()
    add(state, {"k": "a"}, 1_000)
    state.changes()
    advance(state, 10_000)
    assert by_key(state.changes()) == {entry("a", 0): None, STREAM_TIME: 10_000}


def test_advance_to_writes_the_stream_time_when_no_window_closes() -> None:
    # Without it a restored state runs on the older stream time, and a record the first run
    # would have dropped as late counts after a restart.
    state = state_of()
    add(state, {"k": "a"}, 1_000)
    advance(state, 10_000)
    state.changes()
    advance(state, 60_000)  # nothing is open: nothing closes
    replica = PartitionState(state.plan)
    replica.restore(["stream_time"], 10_000)
    for key, value in through_json(state.changes()):
        replica.restore(key, value)
    assert replica.stream_time == 60_000


def test_restore_keeps_the_largest_stream_time_and_applies_tombstones() -> None:
    state = state_of()
    state.restore(["stream_time"], 5_000)
    state.restore([["a"], 0], [2])
    state.restore([["b"], 0], [1])
    state.restore([["a"], 10_000], [1])
    state.restore(["stream_time"], 3_000)
    assert state.stream_time == 5_000
    assert state.windows == {0: {("a",): [2], ("b",): [1]}, 10_000: {("a",): [1]}}
    state.restore([["a"], 0], None)
    state.restore([["a"], 10_000], None)
    state.restore([["c"], 20_000], None)  # a tombstone for a window never seen
    assert state.windows == {0: {("b",): [1]}}
    assert state.open_windows == 1
    assert state.changes() == []  # restoring is not a change to write again


def test_a_restored_state_goes_on_counting_as_the_original() -> None:
    original = state_of("k, COUNT(*) AS n, MAX(x) AS hi", HOP_10_5)
    add(original, {"k": "a", "x": 1}, 3_000)
    add(original, {"k": "a", "x": 7}, 8_000)
    restored = PartitionState(original.plan)
    for key, value in through_json(original.changes()):
        restored.restore(key, value)
    for at, x in ((9_000, 2), (1_000, 9), (-2_000, 5), (14_000, 0)):
        a, b = add(original, {"k": "a", "x": x}, at), add(restored, {"k": "a", "x": x}, at)
        assert (a.results, a.counted, a.late_windows) == (b.results, b.counted, b.late_windows)
    assert advance(original, FAR_FUTURE) == advance(restored, FAR_FUTURE)


ROUND_TRIP_WINDOWS = [
    "TUMBLING (SIZE 5 SECONDS)",
    "TUMBLING (SIZE 5 SECONDS, GRACE PERIOD 3 SECONDS)",
    "HOPPING (SIZE 6 SECONDS, ADVANCE BY 4 SECONDS, GRACE PERIOD 1 SECOND)",
]
ROWS = st.lists(
    st.tuples(
        st.sampled_from("ab"),
        st.integers(-30, 30).map(lambda n: n * 1_000) | st.integers(-30_000, 30_000),
        st.none() | st.integers(-5, 5),
        st.booleans(),  # write the changelog after this record
    ),
    max_size=40,
)


@pytest.mark.parametrize("emit", ["FINAL", "CHANGES"])
@pytest.mark.parametrize("window", ROUND_TRIP_WINDOWS)
@given(rows=ROWS)
def test_the_changelog_restores_the_same_windows_and_stream_time(
    window: str, emit: str, rows: list[tuple[str, int, int | None, bool]]
) -> None:
    select = "k, COUNT(*) AS n, SUM(x) AS s, AVG(x) AS a, MIN(x) AS lo, EARLIEST(x) AS e, LATEST(x) AS l"
    original = state_of(select, window, emit=emit)
    follower, log = PartitionState(original.plan), []

    def write() -> None:
        entries = through_json(original.changes())
        log.extend(entries)
        for key, value in entries:
            follower.restore(key, value)
        assert (follower.windows, follower.stream_time) == (original.windows, original.stream_time)

    for group, at, x, flush in rows:
        add(original, {"k": group, "x": x}, at)
        if flush:
            write()
    write()
    assert original.changes() == []
    fresh = PartitionState(original.plan)
    for key, value in log:
        fresh.restore(key, value)
    assert (fresh.windows, fresh.stream_time) == (original.windows, original.stream_time)


# -- EMIT FINAL and CHANGES against a plain reference --------------------------------------

SPREAD_WINDOWS = [
    "TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 200 SECONDS)",
    "HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS, GRACE PERIOD 200 SECONDS)",
    "HOPPING (SIZE 10 SECONDS, ADVANCE BY 3 SECONDS, GRACE PERIOD 200 SECONDS)",
    "HOPPING (SIZE 2 SECONDS, ADVANCE BY 700 MILLISECONDS, GRACE PERIOD 200 SECONDS)",
]
SELECT_ALL = (
    "g, COUNT(*) AS n, COUNT(x) AS nx, SUM(x) AS s, AVG(x) AS a, MIN(x) AS lo, MAX(x) AS hi,"
    " EARLIEST(tag) AS first, LATEST(tag) AS last"
)
SPREAD_ROWS = st.lists(
    st.tuples(
        st.sampled_from("ab"),
        st.integers(-50, 50).map(lambda n: n * 1_000) | st.integers(-50_000, 50_000),  # within 100 s
        st.none() | st.integers(-100, 100),
    ),
    max_size=30,
)


def reference(rows: list[Row], size: int, advance_by: int) -> dict[tuple[str, int], dict]:
    """Each (group, window start)'s output row, from the rows in plain Python."""
    members: dict[tuple[str, int], list[tuple[int, int, int | None]]] = {}
    for tag, (group, at, x) in enumerate(rows):
        # every k with k * advance in (at - size, at]
        for k in range((at - size) // advance_by + 1, at // advance_by + 1):
            members.setdefault((group, k * advance_by), []).append((at, tag, x))
    expected = {}
    for (group, start), found in members.items():
        xs = [x for _, _, x in found if x is not None]
        expected[(group, start)] = {
            "g": group,
            "window_start": start,
            "window_end": start + size,
            "n": len(found),
            "nx": len(xs),
            "s": sum(xs) if xs else None,
            "a": sum(xs) / len(xs) if xs else None,
            "lo": min(xs, default=None),
            "hi": max(xs, default=None),
            "first": min(found)[1],  # the earliest time; of a tie, the first seen
            "last": max(found)[1],  # the latest time; of a tie, the last seen
        }
    return expected


@pytest.mark.parametrize("window", SPREAD_WINDOWS)
@given(rows=SPREAD_ROWS)
def test_emit_final_matches_a_plain_reference(window: str, rows: list[Row]) -> None:
    state = state_of(SELECT_ALL, window, group_by="g")
    for tag, (group, at, x) in enumerate(rows):
        outcome = add(state, {"g": group, "x": x, "tag": tag}, at)
        assert (outcome.counted, outcome.late_windows, outcome.results) == (True, 0, [])
    results = advance(state, FAR_FUTURE)
    starts = [start for _, _, _, start in results]
    assert starts == sorted(starts)
    for _, key, value, start in results:
        assert key == {"g": value["g"]}
        assert start == value["window_start"]
    found = {(value["g"], value["window_start"]): value for _, _, value, _ in results}
    assert len(found) == len(results)  # each window once
    assert found == reference(rows, state.plan.size_ms, state.plan.advance_ms)
    assert state.windows == {}


@pytest.mark.parametrize("window", SPREAD_WINDOWS)
@given(rows=SPREAD_ROWS)
def test_emit_changes_matches_a_plain_reference(window: str, rows: list[Row]) -> None:
    state = state_of(SELECT_ALL, window, group_by="g", emit="CHANGES")
    latest: dict[tuple[str, int], dict] = {}
    for tag, (group, at, x) in enumerate(rows):
        results = add(state, {"g": group, "x": x, "tag": tag}, at).results
        starts = [start for _, _, _, start in results]
        own = reference([(group, at, x)], state.plan.size_ms, state.plan.advance_ms)
        assert starts == sorted((start for _, start in own), reverse=True)  # newest first
        for _, _, value, _ in results:
            latest[(value["g"], value["window_start"])] = value
    assert advance(state, FAR_FUTURE) == []
    assert latest == reference(rows, state.plan.size_ms, state.plan.advance_ms)
