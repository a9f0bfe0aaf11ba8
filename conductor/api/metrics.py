"""GET /metrics: Prometheus' text format, by prometheus-client.

Two sources: the workers' own counters and histograms (prometheus-client's multiprocess
files, tasks/metrics.py), and what the state files say at the time of the scrape: connector and
task status, lag per partition, restarts. The names follow Strimzi's JMX exporter rules for
Kafka Connect (kafka_connect_<group>_<attribute>, labels connector and task, lower-case status
values), so its Kafka Connect dashboard works; conductor's additions are named conductor_*.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conductor import __version__
from conductor.api.http import Request, Response
from conductor.api.view import ConnectorView

STATES = ("running", "paused", "failed", "unassigned", "destroyed", "restarting")


def prepare(folder: Path) -> None:
    """An empty metrics folder for a fresh start (the counters of an earlier run would add up)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def forget(folder: Path, pid: int) -> None:
    """A worker exited: its gauges no longer count (its counters still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(folder))


class Metrics:
    def __init__(self, folder: Path, connector_class: str, read_view: Callable[[], ConnectorView]) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        self.registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(self.registry, path=str(folder))
        self.registry.register(_StateCollector(connector_class, read_view))

    def handle(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)


class _StateCollector:
    def __init__(self, connector_class: str, read_view: Callable[[], ConnectorView]) -> None:
        self.connector_class = connector_class
        self.read_view = read_view

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        view = self.read_view()
        name = view.name

        def gauge(metric: str, documentation: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
            return GaugeMetricFamily(metric, documentation, labels=labels)

        connector = gauge(
            "kafka_connect_connector_status", "The connector's state (value 1)", ("connector", "status")
        )
        connector.add_metric((name, view.state.lower()), 1)
        yield connector
        for attribute, value in (
            ("connector_class", self.connector_class),
            ("connector_type", "sink"),
            ("connector_version", __version__),
        ):
            info = gauge(
                f"kafka_connect_connector_{attribute}",
                f"The connector's {attribute}",
                ("connector", attribute),
            )
            info.add_metric((name, value), 1)
            yield info

        tasks = view.listed_tasks
        yield _single("kafka_connect_worker_connector_count", "Connectors in this conductor", 1)
        yield _single("kafka_connect_worker_task_count", "Tasks (workers) in this conductor", len(tasks))
        for state in STATES:
            count = gauge(
                f"kafka_connect_worker_connector_{state}_task_count", f"Tasks {state}", ("connector",)
            )
            count.add_metric((name,), sum(1 for task in tasks if task.state.lower() == state))
            yield count

        status = gauge(
            "kafka_connect_connector_task_status",
            "Each task's state (value 1)",
            ("connector", "task", "status"),
        )
        partition_count = gauge(
            "kafka_connect_sink_task_partition_count", "Partitions held", ("connector", "task")
        )
        lag_max = gauge(
            "kafka_connect_sink_task_sink_record_lag_max",
            "Largest lag of a partition held",
            ("connector", "task"),
        )
        read_rate = gauge(
            "kafka_connect_sink_task_sink_record_read_rate", "Records read per second", ("connector", "task")
        )
        lag = gauge(
            "conductor_partition_lag",
            "Records behind the end of the partition, from the last commit",
            ("connector", "task", "topic", "partition"),
        )
        restarts = CounterMetricFamily(
            "conductor_task_restarts", "Times a task's worker was started again", labels=("connector", "task")
        )
        open_windows = gauge(
            "conductor_aggregate_windows_open", "Open windows (aggregator)", ("connector", "task")
        )
        for task in tasks:
            labels = (name, str(task.id))
            status.add_metric((*labels, task.state.lower()), 1)
            restarts.add_metric(labels, task.slot.get("respawns") or 0)
            partitions = task.worker.get("partitions") or [] if task.state == "RUNNING" else []
            partition_count.add_metric(labels, len(partitions))
            lags = [p["lag"] for p in partitions if p.get("lag") is not None]
            lag_max.add_metric(labels, max(lags, default=0))
            read_rate.add_metric(labels, task.worker.get("records_per_s") or 0)
            for p in partitions:
                if p.get("lag") is not None:
                    lag.add_metric((*labels, p["topic"], str(p["partition"])), p["lag"])
            if "open_windows" in task.worker:
                open_windows.add_metric(labels, task.worker["open_windows"])
        yield from (status, partition_count, lag_max, read_rate, lag, restarts, open_windows)


def _single(metric: str, documentation: str, value: float) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(metric, documentation, value=value)
