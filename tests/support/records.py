"""Records and routes built by hand, for the sink tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from conductor.kcql import parse_kcql
from conductor.records import Record
from conductor.routes import Route, compile_route

TS = int(datetime(2025, 12, 29, 12, 0, tzinfo=UTC).timestamp() * 1000)


def route(kcql: str) -> Route:
    return compile_route(parse_kcql(kcql)[0])


def record(
    offset: int,
    value: dict[str, Any] | None,
    *,
    key: bytes | None = None,
    topic: str = "readings",
    timestamp: int = TS,
) -> Record:
    raw = None if value is None else orjson.dumps(value)
    return Record(topic, 0, offset, timestamp, key, value, [], raw)
