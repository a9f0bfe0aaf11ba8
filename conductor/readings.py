"""Sample temperature readings, shaped like the smart-home thermostats' aggregated stream."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import orjson


def readings(
    count: int, sensors: int = 1000, start_ms: int | None = None, seed: int = 7
) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, value) pairs: key is the sensor id, value a JSON reading one second apart."""
    rng = random.Random(seed)
    start_ms = int(time.time() * 1000) - count * 1000 if start_ms is None else start_ms
    for n in range(count):
        sensor_id = f"sensor-{n % sensors:05d}"
        reading = {
            "reading_id": n,
            "sensor_id": sensor_id,
            "home_id": f"home-{(n % sensors) // 4:05d}",
            "celsius": round(rng.gauss(20.0, 3.0), 2),
            "humidity": round(rng.uniform(30.0, 60.0), 1),
            "timestamp": start_ms + n * 1000,
        }
        yield sensor_id.encode(), orjson.dumps(reading)
