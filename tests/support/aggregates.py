"""What the aggregator's tests share: readings with chosen event times, the truth computed from
them in plain Python, an aggregator config, and every result read back with read_committed."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from support.pipeline import _write_properties

MINUTE = 60_000
BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a whole minute


@dataclass(frozen=True)
class Reading:
    key: str | None
    value: dict[str, Any]
    timestamp: int

    def as_record(self) -> tuple[bytes | None, bytes, int]:
        return (
            None if self.key is None else self.key.encode(),
            json.dumps(self.value).encode(),
            self.timestamp,
        )


def readings(
    count: int, spread_ms: int, sensors: int = 40, homes: int = 8, start: int = BASE
) -> list[Reading]:
    """`count` readings in event-time order over `spread_ms`, keyed by sensor, each sensor in one home."""
    found = []
    for n in range(count):
        sensor = n % sensors
        value = {
            "sensor_id": f"s{sensor}",
            "home_id": f"h{sensor % homes}",
            "celsius": round(18 + (n * 7919 % 600) / 100, 2),
            "raw": n % 13,
        }
        found.append(Reading(f"s{sensor}", value, start + n * spread_ms // count))
    return found


def config(directory: Path, name: str, topic: str, sql: str, kafka: str, **settings: object) -> Path:
    return _write_properties(
        directory, name, topic, kafka, "conductor.aggregate", {"conductor.aggregate.sql": sql}, settings
    )


def truth(
    given: Iterable[Reading],
    group: Callable[[dict], tuple],
    size_ms: int,
    advance_ms: int | None = None,
    where: Callable[[dict], bool] = lambda value: True,
) -> dict[tuple, list[Reading]]:
    """The readings of every (group, window start), computed without conductor's code."""
    advance_ms = advance_ms or size_ms
    windows: dict[tuple, list[Reading]] = defaultdict(list)
    for reading in given:
        if not where(reading.value):
            continue
        start = reading.timestamp - reading.timestamp % advance_ms
        while start > reading.timestamp - size_ms:
            windows[(*group(reading.value), start)].append(reading)
            start -= advance_ms
    return dict(windows)


def read_results(
    kafka: str, topic: str, expected: int, timeout: float = 120, settle: float = 3.0
) -> list[Any]:
    """Every record of `topic` as (key, value) JSON, read_committed, once `expected` have come
    (and `settle` seconds more, so a duplicate would be seen)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    settled_at = None
    try:
        while time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                found += [(json.loads(m.key), json.loads(m.value)) for m in messages]
            if len(found) >= expected:
                settled_at = settled_at or time.monotonic()
                if time.monotonic() - settled_at >= settle:
                    break
    finally:
        consumer.close()
    return found


def by_window(results: list[Any], group_fields: tuple[str, ...]) -> dict[tuple, dict]:
    """Results by (group..., window start); a (group, window) given twice fails the test."""
    found: dict[tuple, dict] = {}
    for key, value in results:
        window = (*(value[f] for f in group_fields), value["window_start"])
        assert window not in found, f"{window} emitted twice: {found[window]} and {value}"
        assert key == {f: value[f] for f in group_fields}
        assert value["window_end"] > value["window_start"]
        found[window] = value
    return found


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def internal_topics(kafka: str, name: str) -> dict[str, dict[str, str]]:
    """The connector's internal topics and the configs set on them (not the broker's defaults)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=kafka)
    try:
        names = [t for t in admin.list_topics() if t.startswith(f"connect-{name}-")]
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in names])
    finally:
        admin.close()
    return {
        topic: {
            key: entry["value"]
            for key, entry in configs.items()
            if entry["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        }
        for topic, configs in found["topic"].items()
    }
