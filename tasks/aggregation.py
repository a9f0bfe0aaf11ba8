"""One aggregation statement, compiled, and the state it keeps for one input partition.

`Plan` is the statement made into functions once at start: the WHERE test, the event time, the
group key, the aggregates. `PartitionState` holds the open windows of one partition and its
stream time (the largest event time seen there, as in Kafka Streams). Adding a record updates
its windows and reports what to write: results (every update under EMIT CHANGES, each closed
window under EMIT FINAL) and changelog entries for the windows it touched. Nothing here talks
to Kafka: tasks/aggregator.py does, inside one transaction per batch.

Lateness is decided per window, as in Kafka Streams: a window is closed once its end plus the
grace period is at or before the stream time, and a record does not count in a closed window.
A record counted in none of its windows is late as a whole; the caller hands it to the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from conductor.errors import RecordError
from conductor.records import Record
from conductor.routes import MISSING, dig
from conductor.sql import Aggregation, FieldRef, compile_condition
from tasks.windows import Aggregates, Slot, window_starts

GroupKey = tuple[Any, ...]
WindowKey = tuple[GroupKey, int]  # (group, window start)
NO_TIME = -(2**63)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Flag:
    """A boolean in a group key: True and 1 are one dict key in Python, not one group."""

    value: bool


def typed(group: tuple[Any, ...]) -> GroupKey:
    for value in group:
        if type(value) is bool:
            return tuple(Flag(v) if type(v) is bool else v for v in group)
    return group


def check_group(group: tuple[Any, ...], fields: tuple[str, ...]) -> None:
    """A RecordError unless every GROUP BY field holds a plain value."""
    for found, name in zip(group, fields, strict=True):
        if found is None or type(found) in (dict, list):
            what = "missing" if found is None else f"a {type(found).__name__}"
            raise RecordError(f"GROUP BY field {name!r} is {what}: a group needs a value")


def plain(key: GroupKey) -> list[Any]:
    return [v.value if type(v) is Flag else v for v in key]


def field_getter(ref: FieldRef) -> Callable[[dict], Any]:
    path = ref.path
    if len(path) == 1:
        (name,) = path
        return lambda value: value.get(name)
    return lambda value: None if (found := dig(value, path)) is MISSING else found


def event_time_getter(ref: FieldRef | None) -> Callable[[Record, dict], int]:
    """The record's timestamp, or a value field holding epoch milliseconds or ISO-8601."""
    if ref is None:
        return lambda record, value: record.timestamp
    read, spelled = field_getter(ref), ref.dotted

    def from_field(record: Record, value: dict) -> int:
        found = read(value)
        if type(found) is int:
            return found
        if type(found) is str:
            try:
                moment = datetime.fromisoformat(found.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                if moment.tzinfo is not None:  # exact: float seconds would be 1 ms off at times
                    return (moment - EPOCH) // MILLISECOND
        raise RecordError(
            f"event time field {spelled!r} holds {found!r:.40}: not epoch milliseconds or an "
            f"ISO-8601 time with a zone"
        )

    return from_field


@dataclass(frozen=True)
class Plan:
    """A statement compiled once; `index` tells its state apart from the other statements'."""

    index: int
    statement: Aggregation
    passes: Callable[[dict], bool] | None
    event_time: Callable[[Record, dict], int]
    group_getters: tuple[Callable[[dict], Any], ...]
    aggregates: Aggregates
    size_ms: int
    advance_ms: int
    grace_ms: int
    final: bool
    group_names: tuple[str, ...]  # GROUP BY fields under their SELECT alias, else their last part
    group_fields: tuple[str, ...]  # GROUP BY fields as written, for messages

    @classmethod
    def compile(cls, index: int, statement: Aggregation) -> Plan:
        functions = [
            (
                "COUNT*" if item.argument is None else item.function,
                (lambda value: 1) if item.argument is None else field_getter(item.argument),
                "*" if item.argument is None else item.argument.dotted,
            )
            for item in statement.aggregates
        ]
        window = statement.window
        aliases = {item.field.path: item.alias for item in statement.group_items}
        return cls(
            index,
            statement,
            None if statement.where is None else compile_condition(statement.where),
            event_time_getter(statement.timestamp_field),
            tuple(field_getter(ref) for ref in statement.group_by),
            Aggregates(functions),
            window.size_ms,
            window.advance_ms,
            window.grace_ms,
            statement.emit == "FINAL",
            tuple(aliases.get(ref.path, ref.path[-1]) for ref in statement.group_by),
            tuple(ref.dotted for ref in statement.group_by),
        )

    def group_of(self, value: dict) -> GroupKey:
        group = tuple(getter(value) for getter in self.group_getters)
        check_group(group, self.group_fields)
        return group

    def result(self, group: GroupKey, start: int, state: list[Slot]) -> tuple[dict, dict]:
        """The output record's key (the group fields) and value."""
        key = dict(zip(self.group_names, plain(group), strict=True))
        value: dict[str, Any] = dict(key)
        value["window_start"] = start
        value["window_end"] = start + self.size_ms
        for item, result in zip(self.statement.aggregates, self.aggregates.finish(state), strict=True):
            value[item.alias] = result
        return key, value


@dataclass
class Outcome:
    """What adding records produced: results to send, and whether the record counted."""

    results: list[tuple[int, dict, dict, int]] = field(default_factory=list)  # plan, key, value, time
    counted: bool = True
    late_windows: int = 0


@dataclass
class PartitionState:
    """The open windows of one statement on one input partition."""

    plan: Plan
    stream_time: int = NO_TIME
    windows: dict[int, dict[GroupKey, list[Slot]]] = field(default_factory=dict)  # by start
    dirty: set[WindowKey] = field(default_factory=set)  # changed since the changelog was written
    closed: set[WindowKey] = field(default_factory=set)  # closed since then: tombstones
    written_time: int = NO_TIME  # the stream time the changelog holds

    def add(self, record: Record, value: dict, outcome: Outcome) -> None:
        """Count one decoded record; a RecordError leaves the state untouched."""
        plan = self.plan
        if plan.passes is not None and not plan.passes(value):
            return
        event_ms = plan.event_time(record, value)
        group = typed(plan.group_of(value))
        values = plan.aggregates.values(value)
        stream_time = max(self.stream_time, event_ms)
        closes_at = stream_time - plan.grace_ms - plan.size_ms  # a start at or before: closed
        staged = []
        for start in window_starts(event_ms, plan.size_ms, plan.advance_ms):
            if start <= closes_at:
                outcome.late_windows += 1
                continue
            held = self.windows.get(start, {}).get(group)
            staged.append((start, plan.aggregates.added(held or plan.aggregates.new(), values, event_ms)))
        # Every window took the record: only now does anything change.
        for start, state in staged:
            self.windows.setdefault(start, {})[group] = state
            self.dirty.add((group, start))
            if not plan.final:
                key, result = plan.result(group, start, state)
                outcome.results.append((plan.index, key, result, start))
        outcome.counted = bool(staged)
        if stream_time > self.stream_time:
            self.stream_time = stream_time
            self.close_windows(outcome)

    def advance_to(self, now_ms: int, outcome: Outcome) -> None:
        """Move stream time forward (input is idle and caught up) and close what that closes."""
        if now_ms > self.stream_time:
            self.stream_time = now_ms
            self.close_windows(outcome)

    def close_windows(self, outcome: Outcome) -> None:
        plan = self.plan
        closes_at = self.stream_time - plan.grace_ms - plan.size_ms
        for start in sorted(start for start in self.windows if start <= closes_at):
            for group, state in self.windows.pop(start).items():
                if plan.final:
                    key, result = plan.result(group, start, state)
                    outcome.results.append((plan.index, key, result, start))
                self.dirty.discard((group, start))
                self.closed.add((group, start))

    # -- the changelog ---------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        return bool(self.dirty or self.closed) or self.stream_time != self.written_time

    def changes(self) -> list[tuple[list[Any], Any]]:
        """Changelog entries since the last call: each touched window's state, a tombstone for
        each closed one, and the stream time; then forgets them."""
        entries: list[tuple[list[Any], Any]] = []
        for group, start in self.dirty:
            entries.append(([plain(group), start], self.windows[start][group]))
        for group, start in self.closed:
            entries.append(([plain(group), start], None))
        if self.stream_time != self.written_time:
            entries.append((["stream_time"], self.stream_time))
            self.written_time = self.stream_time
        self.dirty.clear()
        self.closed.clear()
        return entries

    def restore(self, key: list[Any], value: Any) -> None:
        """Apply one changelog entry (the last one of a key wins)."""
        if key == ["stream_time"]:
            self.stream_time = self.written_time = max(self.stream_time, value)
            return
        group, start = typed(tuple(key[0])), key[1]
        if value is None:
            groups = self.windows.get(start)
            if groups is not None:
                groups.pop(group, None)
                if not groups:
                    del self.windows[start]
        else:
            self.windows.setdefault(start, {})[group] = value

    @property
    def open_windows(self) -> int:
        return sum(len(groups) for groups in self.windows.values())
