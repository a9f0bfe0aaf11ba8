"""Kafka Connect's Cast, schemaless: Java's number conversions, on the JSON types JsonConverter
gives (whole numbers are Long, others Double)."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from conductor.records import Record
from conductor.transforms.base import (
    INTEGER,
    Settings,
    TransformError,
    operating,
    require_map,
    with_operating,
)

OUTPUT_TYPES = ("INT8", "INT16", "INT32", "INT64", "FLOAT32", "FLOAT64", "BOOLEAN", "STRING")
INPUT_TYPES = OUTPUT_TYPES + ("BYTES",)
BITS = {"INT8": 8, "INT16": 16, "INT32": 32, "INT64": 64}
SCHEMA_TYPES = {bool: "BOOLEAN", int: "INT64", float: "FLOAT64", str: "STRING", dict: "MAP", list: "ARRAY"}
WHOLE = ""  # the spec's key when the whole value (or key) is cast


def _wrap(number: int, bits: int) -> int:
    """Java's narrowing of a long: the low bits, two's complement."""
    half = 1 << (bits - 1)
    return (number + half) % (1 << bits) - half


def _saturate(number: float, bits: int) -> int:
    """Java's double to int (bits 32) or long (64): NaN is 0, out of range is the bound."""
    if math.isnan(number):
        return 0
    bound = 1 << (bits - 1)
    return (
        int(max(-bound, min(bound - 1, math.trunc(number))))
        if math.isfinite(number)
        else (bound - 1 if number > 0 else -bound)
    )


def _float32(number: float) -> float:
    """The float32 nearest, written with the fewest digits that read back as it (Float.toString)."""
    single = struct.unpack("f", struct.pack("f", number))[0]
    if not math.isfinite(single):
        return single
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return float(text)
    return single


def java_string(value: Any) -> str:
    """Object.toString() of what JsonConverter gives: Long, Double (1.0E10), Boolean, String."""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is float:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value == 0 or 1e-3 <= abs(value) < 1e7:
            return repr(value)
        sign, digits, exponent = Decimal(repr(value)).as_tuple()
        text = "".join(map(str, digits)).rstrip("0") or "0"
        power = len(digits) + int(exponent) - 1
        return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"
    return str(value)


def _parse_integer(text: str, bits: int) -> int:
    if not INTEGER.fullmatch(text):
        raise ValueError(text)
    number = int(text)
    if _wrap(number, bits) != number:
        raise ValueError(text)
    return number


def cast(value: Any, target: str) -> Any:
    if value is None:
        return None
    source = SCHEMA_TYPES.get(type(value))
    if source not in INPUT_TYPES:
        raise TransformError(
            f"Cast transformation does not support casting from {source}; supported types are "
            f"[{', '.join(INPUT_TYPES)}]"
        )
    try:
        if target in BITS:
            bits = BITS[target]
            if type(value) is str:
                return _parse_integer(value, bits)
            if type(value) is float:
                return _wrap(_saturate(value, 32 if bits < 64 else 64), bits)
            return _wrap(int(value), bits)
        if target in ("FLOAT32", "FLOAT64"):
            if type(value) is str and "_" in value:
                raise ValueError(value)  # Python reads 1_000; Double.parseDouble does not
            number = float(value)  # a bool is 1.0 or 0.0; a string as Double.parseDouble reads it
            return _float32(number) if target == "FLOAT32" else number
        if target == "BOOLEAN":
            if type(value) is str:
                return value.lower() == "true"
            if type(value) is float:
                return _saturate(value, 64) != 0
            return bool(value)
        return java_string(value)
    except ValueError:
        raise TransformError(
            f"Value ({java_string(value)}) was out of range for requested data type"
        ) from None


@dataclass(frozen=True, slots=True)
class Cast:
    side: str
    casts: tuple[tuple[str, str], ...]  # (field, type); one (WHOLE, type) for the whole value

    @classmethod
    def configure(cls, s: Settings, side: str) -> Cast | None:
        spec = s.listing("spec", required=True)
        s.boolean("replace.null.with.default", True)
        if s.string("spec") is not None and not spec:
            s.problem("spec", "Must specify at least one field to cast.")
        casts: list[tuple[str, str]] = []
        for mapping in spec:
            parts = mapping.split(":")
            if len(parts) > 2:
                s.problem("spec", f"Invalid cast mapping: {mapping}")
                continue
            field, kind = (WHOLE, parts[0]) if len(parts) == 1 else (parts[0].strip(), parts[1])
            kind = kind.strip().upper()
            if kind not in INPUT_TYPES + ("MAP", "ARRAY", "STRUCT", "BYTES"):
                s.problem("spec", f"Invalid type found in casting spec: {kind.lower()}")
            elif kind not in OUTPUT_TYPES:
                s.problem(
                    "spec",
                    f"Cast transformation does not support casting to {kind}; supported types are "
                    f"[{', '.join(OUTPUT_TYPES)}]",
                )
            else:
                casts.append((field, kind))
        if any(field == WHOLE for field, _ in casts) and len(spec) > 1:
            s.problem(
                "spec",
                "Cast transformations that specify a type to cast the entire value to may only specify a "
                "single cast in their spec",
            )
        return cls(side, tuple(casts)) if casts else None

    def apply(self, record: Record) -> Record:
        value = operating(record, self.side)
        if value is None:
            return record
        if self.casts[0][0] == WHOLE:
            return with_operating(record, self.side, cast(value, self.casts[0][1]))
        value = require_map(value, "cast types")
        updated = dict(value)
        for field, kind in self.casts:
            updated[field] = cast(value.get(field), kind)
        return with_operating(record, self.side, updated)
