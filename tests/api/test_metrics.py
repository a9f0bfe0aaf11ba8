"""GET /metrics on a real `conductor start` (Elasticsearch sink, two workers), read with
prometheus-client's own parser: the counts match what was produced exactly, the names and labels
are those Strimzi's Kafka Connect dashboard reads, every name deploy/grafana's dashboard asks for
is there, and a record Elasticsearch refuses shows as a failure of kind "mapping".

One conductor serves the module: N good readings, a scrape once they are written and reported,
then one bad record and a second scrape.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
import pytest
import requests
from elasticsearch import Elasticsearch
from prometheus_client.parser import text_string_to_metric_families
from support.aggregates import config as aggregator_config
from support.pipeline import (
    ROOT,
    Conductor,
    create_topic,
    end_offsets,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.servers

TS = 1_767_000_000_000  # a fixed record timestamp (Dec 2025)
N = 3000
PARTITIONS = 4
WORKERS = 2
SINK_CLASS = "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector"
BAD_KEY = b"bad-record-key"
# "celsius" is mapped as a float: Elasticsearch refuses "hot" (document_parsing_exception).
BAD_VALUE = orjson.dumps({"reading_id": N, "sensor_id": "sensor-9999", "celsius": "hot", "timestamp": TS})
DASHBOARD = ROOT / "deploy" / "grafana" / "conductor-dashboard.json"
TASK_STATES = {"running", "paused", "failed", "unassigned", "destroyed", "restarting"}


# -- scraping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    content_type: str
    families: tuple

    def samples(self, name: str) -> list:
        """The samples called `name` (a sample's own name: x_total, x_bucket, x_count...)."""
        return [sample for family in self.families for sample in family.samples if sample.name == name]

    def total(self, name: str, **labels: str) -> float:
        return sum(
            s.value for s in self.samples(name) if all(s.labels.get(k) == v for k, v in labels.items())
        )

    def by_task(self, name: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for sample in self.samples(name):
            found[sample.labels["task"]] = found.get(sample.labels["task"], 0) + sample.value
        return found

    def sample_names(self) -> set[str]:
        return {sample.name for family in self.families for sample in family.samples}

    def family(self, name: str):
        return next((f for f in self.families if f.name == name), None)

    def __str__(self) -> str:
        return "\n".join(f"{s.name}{s.labels} {s.value}" for family in self.families for s in family.samples)


def scrape(url: str) -> Scrape:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    families = tuple(text_string_to_metric_families(response.text))
    return Scrape(response.headers.get("Content-Type", ""), families)


# -- the conductor all tests read ---------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    name: str
    topic: str
    holders: dict[int, str]  # partition -> the task holding it
    before: Scrape  # after the N good readings
    after: Scrape  # after the bad record too
    state_after: list[dict]  # the workers' state files at the second scrape


def readings() -> list[tuple[bytes, bytes, int]]:
    return [(f"sensor-{n % 500:04d}".encode(), reading(n, TS + n), TS + n) for n in range(N)]


def conductor_state(url: str) -> dict:
    return requests.get(f"{url}/conductor/state", timeout=10).json()


def ready(url: str, name: str) -> dict[int, str] | None:
    """partition -> task once every task is RUNNING and the partitions are shared out (each held
    once, none missing), else None."""
    status = requests.get(f"{url}/connectors/{name}/status", timeout=10).json()
    tasks = status.get("tasks") or []
    if status.get("connector", {}).get("state") != "RUNNING" or len(tasks) != WORKERS:
        return None
    if any(task["state"] != "RUNNING" for task in tasks):
        return None
    holders: dict[int, str] = {}
    for task in conductor_state(url)["tasks"]:
        if task["state"] != "RUNNING" or not task["partitions"]:
            return None
        for p in task["partitions"]:
            if p["partition"] in holders:
                return None  # a file from before the rebalance
            holders[p["partition"]] = str(task["id"])
    return holders if sorted(holders) == list(range(PARTITIONS)) else None


def reported(conductor: Conductor, read: int, written: int, skipped: int, ends: dict[int, int]) -> bool:
    """The workers' state files (written every 2 s, right after the metrics) show these counts,
    and every partition committed to its end."""
    states = conductor.states()
    committed = {
        p["partition"]: p["committed"]
        for state in states
        if state.get("state") == "running"
        for p in state.get("partitions", [])
    }
    return (
        conductor.total("read") == read
        and conductor.total("written") == written
        and conductor.total("skipped") == skipped
        and committed == ends
    )


def stop(conductor: Conductor) -> None:
    if conductor.process and conductor.process.poll() is None:
        conductor.process.send_signal(signal.SIGINT)
        try:
            conductor.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            conductor.process.kill()
            conductor.process.wait()


@pytest.fixture(scope="module")
def run(kafka: str, elasticsearch: str, tmp_path_factory: pytest.TempPathFactory) -> Iterable[Run]:
    directory = tmp_path_factory.mktemp("metrics")
    index = unique("metrics").replace("-", "_")
    client = Elasticsearch(elasticsearch, request_timeout=10)
    client.indices.create(index=index, mappings={"properties": {"celsius": {"type": "float"}}})
    topic = create_topic(kafka, partitions=PARTITIONS, prefix="metrics")
    name = unique("metrics-es")
    config = write_config(
        directory,
        name,
        topic,
        f"INSERT INTO {index} SELECT * FROM {topic}",
        elasticsearch,
        kafka,
        connect__elastic__error__policy="NOOP",
    )
    conductor = Conductor(config, directory / "state", WORKERS).start()
    try:
        yield prepared(conductor, name, topic, index, kafka, elasticsearch)
    finally:
        stop(conductor)
        try:
            client.indices.delete(index=index, ignore_unavailable=True, allow_no_indices=True)
        finally:
            client.close()


def prepared(conductor: Conductor, name: str, topic: str, index: str, kafka: str, elasticsearch: str) -> Run:
    """N good readings written and scraped, then the bad record skipped and scraped."""
    try:
        url = conductor.url()
        holders = wait_for(lambda: ready(url, name), 60, "both tasks RUNNING with their partitions")

        produce(kafka, topic, readings())
        ends = end_offsets(kafka, topic)
        assert sum(ends.values()) == N
        wait_for(lambda: es_count(elasticsearch, index) == N, 60, f"{N} documents in Elasticsearch")
        wait_for(
            lambda: reported(conductor, N, N, 0, ends), 30, f"the workers to report {N} read and written"
        )
        before = scrape(url)

        produce(kafka, topic, [(BAD_KEY, BAD_VALUE, TS)], partition=0)
        ends = end_offsets(kafka, topic)
        wait_for(
            lambda: reported(conductor, N + 1, N, 1, ends), 30, "the workers to report the skipped record"
        )
        state_after = conductor.states()
        after = scrape(url)
    except AssertionError as failed:
        raise AssertionError(f"{failed}; log:\n{conductor.output()}") from None
    return Run(name, topic, holders, before, after, state_after)


# -- (a) the counts, states and lag after N readings ----------------------------------------------


def test_counts_states_lag_and_latency_after_n_readings(run: Run) -> None:
    scraped = run.before
    media_type, *parameters = [part.strip() for part in scraped.content_type.split(";")]
    assert media_type == "text/plain", scraped.content_type
    params = dict(p.split("=", 1) for p in parameters)
    # Prometheus' text format: 0.0.4, or 1.0.0 as prometheus-client >= 0.22 names the same format
    # with UTF-8 escaping; Prometheus reads both as text/plain.
    assert params.get("version") in ("0.0.4", "1.0.0"), scraped.content_type

    tasks = {str(t) for t in range(WORKERS)}
    read = scraped.by_task("kafka_connect_sink_task_sink_record_read_total")
    sent = scraped.by_task("kafka_connect_sink_task_sink_record_send_total")
    assert set(read) == tasks and set(sent) == tasks, scraped
    assert sum(read.values()) == N, read
    assert sum(sent.values()) == N, sent
    assert all(read[task] > 0 for task in tasks), f"both tasks held partitions with data: {read}"
    assert scraped.family("kafka_connect_sink_task_sink_record_read").type == "counter"

    (connector,) = scraped.samples("kafka_connect_connector_status")
    assert connector.labels == {"connector": run.name, "status": "running"}
    assert connector.value == 1

    statuses = scraped.samples("kafka_connect_connector_task_status")
    assert sorted((s.labels["task"], s.labels["status"], s.value) for s in statuses) == [
        (task, "running", 1) for task in sorted(tasks)
    ], statuses
    assert scraped.total("kafka_connect_worker_connector_running_task_count") == WORKERS

    lags = {
        (s.labels["topic"], int(s.labels["partition"])): s for s in scraped.samples("conductor_partition_lag")
    }
    assert set(lags) == {(run.topic, p) for p in range(PARTITIONS)}, lags
    for (_, partition), sample in lags.items():
        assert sample.labels["task"] == run.holders[partition], (sample, run.holders)
        assert sample.labels["connector"] == run.name
        assert sample.value == 0, f"everything is committed: {sample}"
    assert scraped.by_task("kafka_connect_sink_task_sink_record_lag_max") == {t: 0 for t in tasks}
    held = scraped.by_task("kafka_connect_sink_task_partition_count")
    assert held == {t: list(run.holders.values()).count(t) for t in tasks}, held

    batches = scraped.total("conductor_put_batch_seconds_count")
    assert batches > 0, scraped
    assert scraped.total("conductor_put_batch_seconds_bucket", le="+Inf") == batches
    assert scraped.total("conductor_put_batch_seconds_sum") > 0
    assert scraped.family("conductor_put_batch_seconds").type == "histogram"
    # Kafka Connect's own shapes of the same: rates and the put-batch window, one sample per task.
    for name in (
        "kafka_connect_sink_task_sink_record_send_rate",
        "kafka_connect_sink_task_put_batch_avg_time_ms",
        "kafka_connect_sink_task_put_batch_max_time_ms",
    ):
        assert set(scraped.by_task(name)) == set(tasks), name
    commits = scraped.total("kafka_connect_sink_task_offset_commit_completion_total")
    assert commits > 0
    assert scraped.total("conductor_offset_commit_seconds_count") == commits

    for name in (
        "kafka_connect_task_error_total_record_failures",
        "kafka_connect_task_error_total_record_errors",
        "kafka_connect_task_error_total_records_skipped",
    ):
        assert scraped.by_task(name) == {t: 0 for t in tasks}, name
    assert not scraped.samples("conductor_record_failures_total")


# -- (b) the dashboards' names --------------------------------------------------------------------

# The names Strimzi's Kafka Connect dashboard reads that conductor claims to serve, with the labels
# its JMX exporter rules give them (Strimzi's scrape adds its own: namespace, pod, strimzi_io_*).
STRIMZI = {
    "kafka_connect_worker_connector_count": set(),
    "kafka_connect_worker_task_count": set(),
    **{
        f"kafka_connect_worker_connector_{state}_task_count": {"connector"}
        for state in ("running", "paused", "failed", "unassigned", "destroyed")
    },
    "kafka_connect_connector_status": {"connector", "status"},
    "kafka_connect_connector_connector_class": {"connector", "connector_class"},
    "kafka_connect_connector_connector_type": {"connector", "connector_type"},
    "kafka_connect_connector_connector_version": {"connector", "connector_version"},
    "kafka_connect_connector_task_status": {"connector", "task", "status"},
    "kafka_connect_task_error_total_record_failures": {"connector", "task"},
}
# What the brief for deploy/grafana's dashboard asked it to show.
DASHBOARD_NEEDS = {
    "kafka_connect_connector_status",
    "kafka_connect_connector_task_status",
    "kafka_connect_sink_task_sink_record_read_total",
    "kafka_connect_sink_task_sink_record_send_total",
    "conductor_partition_lag",
    "kafka_connect_sink_task_sink_record_lag_max",
    "conductor_put_batch_seconds_bucket",
    "conductor_offset_commit_seconds_bucket",
    "conductor_record_failures_total",
    "kafka_connect_task_error_total_record_errors",
    "kafka_connect_task_error_total_records_skipped",
    "kafka_connect_task_error_deadletterqueue_produce_requests",
    "kafka_connect_task_error_total_retries",
    "conductor_task_restarts_total",
    "conductor_records_lost_total",
    "conductor_aggregate_windows_open",
    "conductor_aggregate_late_records_total",
}
AGGREGATOR_ONLY = {"conductor_aggregate_windows_open"}
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")


def expressions(dashboard: dict) -> list[str]:
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard.get("panels", []))
    return found


def dashboard_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    connector = variables["connector"]
    assert connector["query"]["query"] == "label_values(kafka_connect_connector_status, connector)"
    names = set()
    for expr in expressions(dashboard):
        selectors = SELECTOR.findall(expr)
        assert selectors, f"no metric selector in {expr!r}"
        for metric, matchers in selectors:
            assert 'connector="$connector"' in matchers, f"{metric} not filtered by connector in {expr!r}"
            names.add(metric)
    return names


def aggregator_scrape(kafka: str, conductors, tmp_path) -> tuple[str, Scrape]:
    """An aggregator holding open windows: its scrape has what only aggregators serve."""
    topic = create_topic(kafka, partitions=1, prefix="metrics-agg-in")
    name = unique("metrics-agg")
    sql = (
        f"INSERT INTO {unique('metrics-agg-out')} SELECT sensor_id, COUNT(*) AS n FROM {topic} "
        f"KEYED BY sensor_id WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY sensor_id"
    )
    conductor = conductors(aggregator_config(tmp_path, name, topic, sql, kafka), workers=1)
    url = conductor.url()
    now = int(time.time() * 1000)
    records = [
        (f"s{n}".encode(), orjson.dumps({"sensor_id": f"s{n}", "celsius": 20.0}), now) for n in range(3)
    ]
    produce(kafka, topic, records)
    found = wait_for(
        lambda: (s := scrape(url)).total("conductor_aggregate_windows_open") >= 3 and s,
        60,
        "the aggregator to report its 3 open windows",
    )
    return name, found


def test_every_dashboard_name_is_served_with_the_labels_its_joins_use(
    run: Run, kafka: str, conductors, tmp_path
) -> None:
    scraped = run.after  # it has a failure kind: conductor_record_failures_total exists once one happened
    needed = dashboard_names()
    assert needed >= DASHBOARD_NEEDS, f"the dashboard does not show {sorted(DASHBOARD_NEEDS - needed)}"
    served = scraped.sample_names()
    assert needed - served <= AGGREGATOR_ONLY, (
        f"not served by the sink: {sorted(needed - served - AGGREGATOR_ONLY)}"
    )

    aggregator, aggregated = aggregator_scrape(kafka, conductors, tmp_path)
    missing = needed - served - aggregated.sample_names()
    assert not missing, f"the dashboard reads names /metrics never serves: {sorted(missing)}"
    (windows,) = aggregated.samples("conductor_aggregate_windows_open")
    assert windows.labels == {"connector": aggregator, "task": "0"}
    assert aggregated.samples("conductor_aggregate_late_records_total")

    for name, labels in STRIMZI.items():
        samples = scraped.samples(name)
        assert samples, f"{name} is not served"
        assert scraped.family(name).type == "gauge", f"{name}: Strimzi's rules export it as a GAUGE"
        for sample in samples:
            assert set(sample.labels) == labels, sample
            if "connector" in labels:
                assert sample.labels["connector"] == run.name, sample
            if "status" in labels:
                assert sample.labels["status"] in TASK_STATES | {"stopped"}, sample
            if "task" in labels:
                assert sample.labels["task"] in {str(t) for t in range(WORKERS)}, sample

    assert scraped.total("kafka_connect_worker_connector_count") == 1
    assert scraped.total("kafka_connect_worker_task_count") == WORKERS
    assert scraped.total("kafka_connect_worker_connector_running_task_count") == WORKERS
    for state in ("paused", "failed", "unassigned", "destroyed"):
        assert scraped.total(f"kafka_connect_worker_connector_{state}_task_count") == 0, state
    (kind,) = scraped.samples("kafka_connect_connector_connector_type")
    assert kind.labels["connector_type"] == "sink"
    (cls,) = scraped.samples("kafka_connect_connector_connector_class")
    assert cls.labels["connector_class"] == SINK_CLASS
    (version,) = scraped.samples("kafka_connect_connector_connector_version")
    assert version.labels["connector_version"]
    # The dashboard's joins: connector status * on(connector) the info gauges, and task failures
    # * on(connector, task) group_left(status) the task status, which must be one per task.
    statuses = scraped.samples("kafka_connect_connector_task_status")
    task_keys = [(s.labels["connector"], s.labels["task"]) for s in statuses]
    assert len(task_keys) == len(set(task_keys)) == WORKERS, statuses
    failures = scraped.samples("kafka_connect_task_error_total_record_failures")
    assert {(s.labels["connector"], s.labels["task"]) for s in failures} == set(task_keys), failures


# -- (c) a failure kind -----------------------------------------------------------------------------


def test_a_record_elasticsearch_refuses_counts_as_a_mapping_failure_and_a_skipped_error(run: Run) -> None:
    scraped = run.after
    holder = run.holders[0]  # the bad record went to partition 0
    (failure,) = scraped.samples("conductor_record_failures_total")
    assert failure.labels == {"connector": run.name, "task": holder, "kind": "mapping"}, failure
    assert failure.value == 1
    assert scraped.by_task("kafka_connect_task_error_total_record_errors").get(holder) == 1, scraped
    assert scraped.total("kafka_connect_task_error_total_record_errors") == 1
    assert scraped.by_task("kafka_connect_task_error_total_records_skipped").get(holder) == 1
    assert scraped.total("kafka_connect_task_error_total_records_skipped") == 1
    assert scraped.total("kafka_connect_task_error_total_record_failures") == 1
    assert scraped.total("kafka_connect_task_error_deadletterqueue_produce_requests") == 0
    assert scraped.total("kafka_connect_task_error_total_retries") == 0

    assert scraped.total("kafka_connect_sink_task_sink_record_read_total") == N + 1
    assert scraped.total("kafka_connect_sink_task_sink_record_send_total") == N

    stamps = {
        s.labels["task"]: s.value
        for s in scraped.samples("kafka_connect_task_error_last_error_timestamp")
        if s.value
    }
    assert list(stamps) == [holder], stamps
    assert abs(stamps[holder] - time.time() * 1000) < 120_000, f"last-error-timestamp is in ms: {stamps}"
    errors = [s["last_error"] for s in run.state_after if s.get("last_error")]
    assert len(errors) == 1 and "document_parsing_exception" in errors[0], errors
