"""Event-time windows and the aggregates kept for each of them.

Windows are aligned to the epoch and run [start, start + size): a tumbling window of one minute
starts on every whole minute, a hopping window every `advance`. A window's state is a plain list
with one slot per aggregate, so it can be written to the changelog as JSON and read back as is.
Aggregates follow SQL: a missing or null field is skipped (COUNT(*) counts the record anyway),
and a field of the wrong type is the record's error, never a silent zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conductor.errors import RecordError

Slot = Any
Update = Callable[[list[Slot], int, Any, int], None]  # (state, slot index, value, event time)


def window_starts(event_ms: int, size_ms: int, advance_ms: int) -> range:
    """The starts of every window holding `event_ms`, newest first."""
    newest = event_ms - event_ms % advance_ms
    return range(newest, event_ms - size_ms, -advance_ms)


def is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def count_all(state: list[Slot], i: int, value: Any, event_ms: int) -> None:
    state[i] += 1


def count_field(state: list[Slot], i: int, value: Any, event_ms: int) -> None:
    if value is not None:
        state[i] += 1


def add_sum(state: list[Slot], i: int, value: Any, event_ms: int) -> None:
    if value is None:
        return
    if not is_number(value):
        raise TypeError(value)
    state[i] = value if state[i] is None else state[i] + value


def add_avg(state: list[Slot], i: int, value: Any, event_ms: int) -> None:
    if value is None:
        return
    if not is_number(value):
        raise TypeError(value)
    total, count = state[i]
    state[i] = [total + value, count + 1]


def keep_min(state: list[Slot], i: int, value: Any, event_ms: int) -> None:
    if value is None:
        return
    current = state[i]
    if current is None:
        comparable(value)
        state[i] = value
    elif comparable(value) is not comparable(current):
        raise TypeError(value)
    elif value < current:
        state[i] = value


def keep_max(state: list[Slot], i: int, value: Any, event_ms: int) -> None:
    if value is None:
        return
    current = state[i]
    if current is None:
        comparable(value)
        state[i] = value
    elif comparable(value) is not comparable(current):
        raise TypeError(value)
    elif value > current:
        state[i] = value


def comparable(value: Any) -> type:
    """The family MIN and MAX compare within: numbers, or strings."""
    if is_number(value):
        return float
    if type(value) is str:
        return str
    raise TypeError(value)


def keep_earliest(state: list[Slot], i: int, value: Any, event_ms: int) -> None:
    # Ties keep the first seen: a replay in offset order gives the same answer.
    if value is not None and (state[i] is None or event_ms < state[i][0]):
        state[i] = [event_ms, value]


def keep_latest(state: list[Slot], i: int, value: Any, event_ms: int) -> None:
    if value is not None and (state[i] is None or event_ms >= state[i][0]):
        state[i] = [event_ms, value]


UPDATES: dict[str, tuple[Update, Callable[[], Slot], Callable[[Slot], Any]]] = {
    # function: (update, empty slot, result)
    "COUNT*": (count_all, lambda: 0, lambda slot: slot),
    "COUNT": (count_field, lambda: 0, lambda slot: slot),
    "SUM": (add_sum, lambda: None, lambda slot: slot),
    "AVG": (add_avg, lambda: [0, 0], lambda slot: slot[0] / slot[1] if slot[1] else None),
    "MIN": (keep_min, lambda: None, lambda slot: slot),
    "MAX": (keep_max, lambda: None, lambda slot: slot),
    "EARLIEST": (keep_earliest, lambda: None, lambda slot: None if slot is None else slot[1]),
    "LATEST": (keep_latest, lambda: None, lambda slot: None if slot is None else slot[1]),
}
WANTS = {
    "SUM": "a number",
    "AVG": "a number",
    "MIN": "a number or a string",
    "MAX": "a number or a string",
}


class Aggregates:
    """The SELECT list's aggregates, compiled: a new state, adding a record, the results."""

    def __init__(self, functions: Sequence[tuple[str, Callable[[dict], Any], str]]) -> None:
        """`functions`: (function name, getter of its field's value, the field as written);
        COUNT(*) is named "COUNT*"."""
        self.names = [name for name, _, _ in functions]
        self.getters = [getter for _, getter, _ in functions]
        self.fields = [field for _, _, field in functions]
        self.updates = [UPDATES[name][0] for name in self.names]
        self.empties = [UPDATES[name][1] for name in self.names]
        self.results = [UPDATES[name][2] for name in self.names]
        self.steps = list(zip(range(len(self.names)), self.updates, self.getters, strict=True))

    def new(self) -> list[Slot]:
        return [empty() for empty in self.empties]

    def values(self, value: dict) -> list[Any]:
        """The value each aggregate reads from the record, read once for all its windows."""
        return [getter(value) for getter in self.getters]

    def added(self, state: list[Slot], values: list[Any], event_ms: int) -> list[Slot]:
        """A copy of `state` with the record added; a RecordError leaves `state` as it was."""
        staged = list(state)  # slots are replaced, never changed in place: a shallow copy is enough
        for i, update, _ in self.steps:
            try:
                update(staged, i, values[i], event_ms)
            except TypeError:
                found = values[i]
                raise RecordError(
                    f"{self.names[i]}({self.fields[i]}) needs {WANTS[self.names[i]]}, found "
                    f"{type(found).__name__} {found!r:.40}{self.clash(self.names[i], state[i], found)}"
                ) from None
        return staged

    def add(self, state: list[Slot], values: list[Any], event_ms: int) -> None:
        state[:] = self.added(state, values, event_ms)

    def check(self, values: list[Any]) -> None:
        """Raise the RecordError a fresh window would meet with these values."""
        self.added(self.new(), values, 0)

    @staticmethod
    def clash(name: str, held: Slot, found: Any) -> str:
        """For MIN and MAX: a number meeting strings, or the other way round."""
        if name not in ("MIN", "MAX") or held is None or not (is_number(found) or type(found) is str):
            return ""
        return f", where the window holds {type(held).__name__} {held!r:.40}"

    def finish(self, state: list[Slot]) -> list[Any]:
        return [result(slot) for result, slot in zip(self.results, state, strict=True)]
