"""The values of JSON Schema records: the Node a schema compiles to, and the readers of the
values that need converting (Connect's logical types, narrow integers, bytes, {key, value} maps).
A value that does not fit raises Misfit, which each container it sits in gives its path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from conductor.errors import RecordError
from conductor.formats.spelling import from_base64, iso_date, json_kind, time_of_day

INTEGERS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
EVERY = frozenset({dict, list, str, int, float, bool, Decimal})  # every JSON value but null
NUMBERS = frozenset({int, float, Decimal})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
MISSING = object()
Fix = Callable[[Any], Any]


class Misfit(Exception):
    """A value that does not fit its schema; each container it passes through adds its path."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


@dataclass(slots=True, eq=False)
class Node:
    """What one schema makes of a value that is not null: the value as it is when its Python type
    is `kept` (no call per record), else `read(value)`, which converts it or raises Misfit."""

    kind: str  # what the schema says, for messages
    read: Fix
    kept: frozenset = frozenset()
    accepts: frozenset = frozenset()  # the Python types of values a oneOf branch is picked for
    nullable: bool = False
    default: Any = MISSING
    names: frozenset | None = None  # a struct's properties: an object picks the branch naming most


def read_one(node: Node, value: Any) -> Any:
    if value is None:
        return read_null(node, True)
    if type(value) in node.kept:
        return value
    return node.read(value)


def read_null(node: Node, present: bool) -> Any:
    """A null (present) or absent value: the schema's default, else null, which an explicit null
    may only be where the schema allows it (Connect: "Invalid null value for required field")."""
    if node.default is not MISSING and node.default is not None:
        return read_one(node, copy.deepcopy(node.default))
    if present and not node.nullable:
        raise Misfit(f"null, but the schema's {node.kind} is not optional")
    return None


def mismatch(kind: str, value: Any) -> Misfit:
    found = json_kind(value)
    text = str(value) if type(value) is Decimal else repr(value)
    shown = "" if type(value) in (dict, list) else f" {text:.60}"
    return Misfit(f"the schema says {kind}, the payload holds {found}{shown}")


def refusing(kind: str) -> Fix:
    def refuse(value: Any) -> Any:
        raise mismatch(kind, value)

    return refuse


PASS = Node("any JSON", lambda value: value, EVERY, EVERY, nullable=True)
NULL = Node("null", refusing("null"), nullable=True)
NOTHING = Node("no value (false)", refusing("no value (false)"))


STRING = Node("string", refusing("string"), frozenset({str}), frozenset({str}))
BOOLEAN = Node("boolean", refusing("boolean"), frozenset({bool}), frozenset({bool}))


def read_bytes(value: Any) -> str:
    if type(value) is not str:
        raise mismatch("bytes (base64 text)", value)
    base64_bytes(value)
    return value


BYTES = Node("bytes (base64 text)", read_bytes, accepts=frozenset({str}))


def base64_bytes(text: str) -> bytes:
    decoded = from_base64(text)
    if decoded is None:
        raise Misfit(f"invalid bytes: {text!r:.60} is not base64")
    return decoded


def integral(value: Any) -> Any:
    """5.0 as 5, as JSON Schema counts it an integer; any other value as it is."""
    kind = type(value)
    if (kind is float and value.is_integer()) or (kind is Decimal and value == value.to_integral_value()):
        return int(value)
    return value


def integer(kind: str) -> Fix:
    bits = INTEGERS[kind]
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)

    def read(value: Any) -> int:
        value = integral(value)
        if type(value) is not int:
            raise mismatch(f"integer ({kind})", value)
        if not low <= value < high:
            raise Misfit(f"{value} is out of range for {kind}")
        return value

    return read


def floating(kind: str) -> Fix:
    def read(value: Any) -> float:
        if type(value) in NUMBERS:
            return float(value)
        raise mismatch(kind, value)

    return read


def timestamp(value: Any) -> int:
    value = integral(value)
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise Misfit(f"{value!r:.60} is not an ISO timestamp") from None
        return ((at if at.tzinfo else at.replace(tzinfo=UTC)) - EPOCH) // MS
    raise mismatch("a Timestamp (integer epoch milliseconds)", value)


def date_of(value: Any) -> str:
    value = integral(value)
    try:
        if type(value) is int:
            return iso_date(value, "a Date")
        if type(value) is str:
            return date.fromisoformat(value).isoformat()
    except RecordError as error:
        raise Misfit(error.reason) from None
    except ValueError:
        raise Misfit(f"{value!r:.60} is not an ISO date") from None
    raise mismatch("a Date (integer days since 1970-01-01)", value)


def time_of(value: Any) -> str:
    value = integral(value)
    if type(value) is str:
        try:
            at = time.fromisoformat(value)
        except ValueError:
            raise Misfit(f"{value!r:.60} is not an ISO time of day") from None
        value = ((at.hour * 60 + at.minute) * 60 + at.second) * 1000 + at.microsecond // 1000
    if type(value) is not int:
        raise mismatch("a Time (integer milliseconds of the day)", value)
    try:
        return time_of_day(value, "a Time")
    except RecordError as error:
        raise Misfit(error.reason) from None


def decimal_of(scale: int) -> Fix:
    def read(value: Any) -> Decimal:
        if type(value) is int:
            return Decimal(value)
        if type(value) is str:  # base64 of the big-endian two's-complement unscaled integer
            unscaled = int.from_bytes(base64_bytes(value), "big", signed=True)
            return Decimal(f"{unscaled}E{-scale}")  # exact, however many digits (scaleb rounds)
        raise mismatch("a Decimal (a number, or base64 bytes)", value)

    return read


def entries(key: Node, value: Node) -> Fix:
    text_keys = key.kind == "string"

    def read(entries: Any) -> Any:
        if type(entries) is not list:
            raise mismatch("an array of {key, value} (a map)", entries)
        pairs = []
        for position, entry in enumerate(entries):
            if type(entry) is not dict:
                misfit = mismatch("a {key, value} object", entry)
                misfit.path.append(f"[{position}]")
                raise misfit
            try:
                pairs.append((read_one(key, entry.get("key")), read_one(value, entry.get("value"))))
            except Misfit as misfit:
                misfit.path.append(f"[{position}]")
                raise
        return dict(pairs) if text_keys else [list(pair) for pair in pairs]

    return read
