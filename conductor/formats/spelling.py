"""How Connect's logical types are spelled in what the sinks write, for every format alike:
a Timestamp as epoch milliseconds, a Date as an ISO date, a Time as an ISO time of day, a Decimal
as an exact decimal.Decimal, and bytes as base64 text (conductor/formats/connectjson.py says why)."""

from __future__ import annotations

import base64
import binascii
from datetime import date, timedelta
from typing import Any

from conductor.errors import RecordError

EPOCH = date(1970, 1, 1)
DAY_MS = 86_400_000


def iso_date(days: int, where: str) -> str:
    try:
        return (EPOCH + timedelta(days=days)).isoformat()
    except OverflowError:
        raise RecordError(f"{where}: {days} days from 1970-01-01 is not a date") from None


def time_of_day(millis: int, where: str) -> str:
    if not 0 <= millis < DAY_MS:
        raise RecordError(f"{where}: {millis} ms is not a time within a day")
    seconds, millis = divmod(millis, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}"


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_base64(text: str) -> bytes | None:
    """The bytes of base64 text; None when it is not base64 (the caller says where)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def json_kind(value: Any) -> str:
    """What a decoded JSON value is, for messages: an object, an array, a string, ..."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
