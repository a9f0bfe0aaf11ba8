"""A worker's Prometheus metrics, named as Strimzi's JMX exporter rules name Kafka Connect's
sink-task-metrics and task-error-metrics, so that Kafka Connect dashboards read them unchanged.

prometheus-client's multiprocess mode: each worker process writes its values to files in the
connector's metrics folder, and the REST server's process adds them up when scraped. Counters
of a worker that exited stay in the sum (totals survive restarts); its gauges go with it.

Nothing here runs per record: the worker hands over its counts with each state report, and
the increments since the last one are added then.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SINK = "kafka_connect_sink_task_"
ERRORS = "kafka_connect_task_error_"
LABELS = ("connector", "task")
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# count name in the worker's state -> the counter it adds to
COUNTERS = {
    "read": SINK + "sink_record_read",
    "written": SINK + "sink_record_send",
    "commits": SINK + "offset_commit_completion",
    "commits_refused": SINK + "offset_commit_skip",
    "records_lost": "conductor_records_lost",
    "late": "conductor_aggregate_late_records",
    "results": "conductor_aggregate_results",
}
# Kafka Connect's task-error-metrics are gauges of totals (Strimzi exports them as GAUGE).
ERROR_TOTALS = {
    "failures": ERRORS + "total_record_failures",
    "errors": ERRORS + "total_record_errors",
    "skipped": ERRORS + "total_records_skipped",
    "retries": ERRORS + "total_retries",
    "errors_logged": ERRORS + "total_errors_logged",
    "dead_lettered": ERRORS + "deadletterqueue_produce_requests",
}


class WorkerMetrics:
    """Made in the worker process, after the fork."""

    def __init__(self, folder: Path, connector: str, worker_id: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)  # made by the supervisor, but not for a worker run alone
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        from prometheus_client import Counter, Gauge, Histogram, values

        # The mode is chosen when prometheus_client is imported, maybe before the folder was
        # known (the supervisor's process imports it): choose it again for this process.
        values.ValueClass = values.MultiProcessValue()
        labels = {"connector": connector, "task": str(worker_id)}
        self.labels = labels
        self.counters = {
            count: Counter(name, f"Kafka Connect {name} (conductor: {count})", LABELS, registry=None).labels(
                **labels
            )
            for count, name in COUNTERS.items()
        }
        self.error_totals = {
            count: Gauge(
                name, f"Kafka Connect {name}", LABELS, registry=None, multiprocess_mode="livesum"
            ).labels(**labels)
            for count, name in ERROR_TOTALS.items()
        }
        self.failure_kinds = Counter(
            "conductor_record_failures",
            "Records a store refused, by kind (429, mapping, version conflict, ...)",
            LABELS + ("kind",),
            registry=None,
        )
        self.put_batch = Histogram(
            "conductor_put_batch_seconds",
            "Time to write one batch to the store (a bulk request, or the batch's Cassandra writes)",
            LABELS,
            buckets=WRITE_BUCKETS,
            registry=None,
        ).labels(**labels)
        self.commit = Histogram(
            "conductor_offset_commit_seconds",
            "Time to commit one batch's offsets",
            LABELS,
            buckets=WRITE_BUCKETS,
            registry=None,
        ).labels(**labels)
        self.last_error = Gauge(
            ERRORS + "last_error_timestamp",
            "Kafka Connect's last-error-timestamp, ms",
            LABELS,
            registry=None,
            multiprocess_mode="livemax",
        ).labels(**labels)
        self.send_rate = self._gauge(SINK + "sink_record_send_rate", "Records written per second")
        self.put_batch_avg = self._gauge(SINK + "put_batch_avg_time_ms", "Mean time of a batch write, ms")
        self.put_batch_max = self._gauge(SINK + "put_batch_max_time_ms", "Longest batch write, ms")
        self.rate = Rate()
        self.seen: dict[str, float] = {}
        self.kinds_seen: dict[str, int] = {}

    def update(self, counts: Mapping[str, Any], timings: Timings | None = None) -> None:
        """Add what the counts grew by since the last update; set the error totals."""
        for count, counter in self.counters.items():
            self._add(counter, count, counts.get(count))
        for count, gauge in self.error_totals.items():
            value = counts.get(count)
            if value is not None:
                gauge.set(value)
        for kind, value in (counts.get("failure_kinds") or {}).items():
            grown = value - self.kinds_seen.get(kind, 0)
            if grown > 0:
                self.failure_kinds.labels(**self.labels, kind=kind).inc(grown)
                self.kinds_seen[kind] = value
        last_error_at = counts.get("last_error_at")
        if last_error_at:
            self.last_error.set(int(last_error_at * 1000))
        if "written" in counts:
            self.send_rate.set(self.rate.per_second(time.monotonic(), counts["written"]))
        if timings is not None:
            # Kafka Connect's put-batch avg and max cover a window of recent batches: here, the
            # batches since the last update (0 when there were none).
            writes = timings.take_writes()
            for seconds in writes:
                self.put_batch.observe(seconds)
            self.put_batch_avg.set(1000 * sum(writes) / len(writes) if writes else 0)
            self.put_batch_max.set(1000 * max(writes, default=0))
            for seconds in timings.take_commits():
                self.commit.observe(seconds)

    def _gauge(self, name: str, documentation: str) -> Any:
        from prometheus_client import Gauge

        return Gauge(name, documentation, LABELS, registry=None, multiprocess_mode="livesum").labels(
            **self.labels
        )

    def _add(self, counter: Any, count: str, value: Any) -> None:
        if value is None:
            return
        grown = value - self.seen.get(count, 0)
        if grown > 0:
            counter.inc(grown)
        self.seen[count] = value


class Timings:
    """Write and commit durations, kept until the next metrics update takes them."""

    def __init__(self) -> None:
        self.writes: list[float] = []
        self.commits: list[float] = []

    def write(self, started: float) -> None:
        self.writes.append(time.monotonic() - started)

    def commit(self, started: float) -> None:
        self.commits.append(time.monotonic() - started)

    def take_writes(self) -> list[float]:
        taken, self.writes = self.writes, []
        return taken

    def take_commits(self) -> list[float]:
        taken, self.commits = self.commits, []
        return taken


class Rate:
    """Records per second between two state reports, for the state file and the page."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.count = 0
        self.last = 0.0

    def per_second(self, now: float, count: int) -> float:
        if self.at is not None and now > self.at:
            self.last = round((count - self.count) / (now - self.at), 1)
        self.at, self.count = now, count
        return self.last
