"""Kafka Connect's TimestampConverter, schemaless. A whole number is a Unix time (in
unix.precision), text is read with `format`; Date, Time and Timestamp come out as epoch
milliseconds, which is how Stream-Reactor's JSON writer writes a java.util.Date."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conductor.records import Record
from conductor.transforms.base import (
    Settings,
    TransformError,
    java_type,
    operating,
    require_map,
    with_operating,
)
from conductor.transforms.simpledate import PatternError, formatter, parser

TYPES = ("string", "unix", "Date", "Time", "Timestamp")
PRECISIONS = {"seconds": 1000, "milliseconds": 1, "microseconds": -1000, "nanoseconds": -1_000_000}
DAY_MS = 86_400_000


def _truncate(number: int, divisor: int) -> int:
    """Java's TimeUnit conversion to a coarser unit: toward zero."""
    quotient = abs(number) // divisor
    return quotient if number >= 0 else -quotient


@dataclass(frozen=True, slots=True)
class TimestampConverter:
    side: str
    field: str  # "": the whole value (or key)
    target: str
    pattern: str
    precision: str
    format_ms: Callable[[int], str] | None = field(compare=False, repr=False)
    parse: Callable[[str], int | None] | None = field(compare=False, repr=False)

    @classmethod
    def configure(cls, s: Settings, side: str) -> TimestampConverter | None:
        name = s.string("field", "")
        target = s.choice("target.type", TYPES, "string") if s.string("target.type", required=True) else None
        pattern = s.string("format", "")
        precision = s.choice("unix.precision", tuple(PRECISIONS), "milliseconds")
        s.boolean("replace.null.with.default", True)
        if target == "string" and not pattern.strip():
            s.problem(
                "format",
                "TimestampConverter requires format option to be specified when using string timestamps",
            )
            return None
        format_ms = parse = None
        if pattern.strip():
            try:
                format_ms, parse = formatter(pattern), parser(pattern)
            except PatternError as error:
                s.problem("format", f"{pattern!r}: {error}")
                return None
        return None if target is None else cls(side, name, target, pattern, precision, format_ms, parse)

    def apply(self, record: Record) -> Record:
        value = operating(record, self.side)
        if value is None or not self.field:
            return with_operating(record, self.side, self.convert(value))
        value = require_map(value, "converting timestamp formats")
        return with_operating(record, self.side, {**value, self.field: self.convert(value.get(self.field))})

    def convert(self, value: Any) -> Any:
        if value is None:
            return None
        return self.to_target(self.to_epoch_ms(value))

    def to_epoch_ms(self, value: Any) -> int:
        if type(value) is int:
            scale = PRECISIONS[self.precision]
            return value * scale if scale > 0 else _truncate(value, -scale)
        if type(value) is str:
            if self.parse is None:
                raise TransformError("a string timestamp needs the format option to be read")
            epoch_ms = self.parse(value)
            if epoch_ms is None:
                raise TransformError(
                    f"Could not parse timestamp: value ({value}) does not match pattern ({self.pattern})"
                )
            return epoch_ms
        raise TransformError(
            f"TimestampConverter does not support class {java_type(value)} objects as timestamps"
        )

    def to_target(self, epoch_ms: int) -> Any:
        target = self.target
        if target == "string":
            assert self.format_ms is not None
            return self.format_ms(epoch_ms)
        if target == "unix":
            scale = PRECISIONS[self.precision]
            return _truncate(epoch_ms, scale) if scale > 0 else epoch_ms * -scale
        if target == "Date":
            return epoch_ms - epoch_ms % DAY_MS
        if target == "Time":
            return epoch_ms % DAY_MS
        return epoch_ms
