"""Helpers for running `conductor start` against the real servers in tests.

Import as `from support.pipeline import ...` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from elasticsearch import ApiError, Elasticsearch
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, pause: float = 0.5) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(pause)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, partitions: int, prefix: str = "readings") -> str:
    topic = unique(prefix)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    return topic


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, int | None]],
    partition: int | None = None,
) -> int:
    """Produce (key, value, timestamp_ms) triples; returns how many were acknowledged."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all")
    futures = [
        producer.send(topic, key=key, value=value, timestamp_ms=ts, partition=partition)
        for key, value, ts in records
    ]
    producer.flush()
    for future in futures:
        future.get(timeout=60)
    producer.close()
    return len(futures)


def reading(n: int, timestamp_ms: int, sensors: int = 500) -> bytes:
    return orjson.dumps(
        {
            "reading_id": n,
            "sensor_id": f"sensor-{n % sensors:04d}",
            "celsius": round(15 + (n % 100) / 10, 1),
            "timestamp": timestamp_ms,
        }
    )


def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset to be written, per partition of `topic`."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = wait_for(lambda: consumer.partitions_for_topic(topic), 30, f"metadata of {topic}")
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        consumer.close()


def read_partition(bootstrap: str, topic: str, count: int, partition: int = 0, timeout: float = 30) -> list:
    """The first `count` records of one partition of `topic`, read without a group."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    tp = TopicPartition(topic, partition)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        messages: list = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            messages += consumer.poll(timeout_ms=500).get(tp, [])
        return messages
    finally:
        consumer.close()


def es_count(url: str, index: str, settle_s: float = 15.0) -> int:
    """Documents in `index` (a name or pattern) after a refresh. An index the sink has just
    created answers 503 until its primary shard has started: asked again until `settle_s`."""
    client = Elasticsearch(url, max_retries=0)
    deadline = time.monotonic() + settle_s
    try:
        while True:
            try:
                client.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
                return client.count(index=index, ignore_unavailable=True, allow_no_indices=True)["count"]
            except ApiError as err:
                if err.meta.status != 503 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        client.close()


def _write_properties(
    directory: Path,
    name: str,
    topic: str,
    kafka: str,
    connector_class: str,
    sink_settings: dict[str, object],
    settings: dict[str, object],
) -> Path:
    """A connector .properties file; `settings` keys spell dots as `__` (connect__elastic__x)."""
    lines = {
        "name": name,
        "connector.class": connector_class,
        "tasks.max": 3,
        "topics": topic,
        "bootstrap.servers": kafka,
        **sink_settings,
        "conductor.linger.ms": 200,
        "conductor.worker.heartbeat.timeout.s": 30,
        "conductor.restart.backoff.initial.s": 0.5,
        "listeners": "http://127.0.0.1:0",  # a free port each: tests run several conductors at once
        **{key.replace("__", "."): value for key, value in settings.items()},
    }
    path = directory / f"{name}.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    return path


def write_config(
    directory: Path, name: str, topic: str, kcql: str, elasticsearch: str, kafka: str, **settings: object
) -> Path:
    host, port = elasticsearch.removeprefix("http://").split(":")
    return _write_properties(
        directory,
        name,
        topic,
        kafka,
        "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
        {"connect.elastic.hosts": host, "connect.elastic.port": port, "connect.elastic.kcql": kcql},
        settings,
    )


@dataclass
class Conductor:
    """One `conductor start` process with its own state folder."""

    config: Path
    state_dir: Path
    workers: int = 3
    process: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.state_dir / "conductor.log"

    def start(self) -> Conductor:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CONDUCTOR_STATE_DIR": str(self.state_dir)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "conductor.cli",
                    "start",
                    "--workers",
                    str(self.workers),
                    "--config",
                    str(self.config),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        return self

    def states(self) -> list[dict]:
        found = []
        for path in self.state_dir.glob("*/worker-*.json"):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                pass
        return found

    def supervisor_state(self) -> dict:
        for path in self.state_dir.glob("*/supervisor.json"):
            return json.loads(path.read_text())
        return {}

    def url(self, timeout: float = 60) -> str:
        """Where its REST server answers (the supervisor's state names the port it took)."""
        return wait_for(lambda: self.supervisor_state().get("url"), timeout, "the REST server's URL")

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.supervisor_state().get("workers", []) if w.get("pid")]

    def partitions(self) -> set[int]:
        return {
            p["partition"]
            for state in self.states()
            if state.get("state") == "running"
            for p in state.get("partitions", [])
        }

    def total(self, counter: str) -> int:
        """A counter of the workers' state files (written, skipped, dead_lettered...), summed."""
        return sum(int(state.get(counter) or 0) for state in self.states())

    def stop(self, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"conductor did not exit within {timeout}s; log:\n{self.output()}") from None

    def full_log(self) -> str:
        return self.log.read_text(errors="replace")

    def output(self) -> str:
        return self.full_log()[-6000:]


def assert_names_reason(text: str, reasons: tuple[str, ...], ignore_case: bool = False) -> None:
    for reason in reasons:
        found = reason.lower() in text.lower() if ignore_case else reason in text
        assert found, f"{reason!r} not in {text!r}"


def assert_gave_up_after_one_restart(
    conductor: Conductor, where: str, reasons: tuple[str, ...], ignore_case: bool = False
) -> None:
    """A THROW task with conductor.restart.max=1: started, restarted once after a backoff, then
    given up; supervisor and worker state say so and name the failed record and why."""
    supervisor = conductor.supervisor_state()
    assert supervisor.get("exit_code") == 1, supervisor
    (slot,) = supervisor["workers"]
    assert slot["state"] == "failed", slot
    assert slot["restarts"] == 1, slot
    assert "task failed" in (slot.get("last_exit") or ""), slot

    (worker,) = conductor.states()
    assert worker["state"] == "failed", worker
    assert where in worker["last_error"], worker
    assert_names_reason(worker["last_error"], reasons, ignore_case)

    log = conductor.full_log()
    assert log.count("task failed:") == 2, log[-6000:]
    assert "restarting in" in log, "the failed task is restarted with a backoff"
    assert "not restarting it" in log


def write_cassandra_config(
    directory: Path,
    name: str,
    topic: str,
    kcql: str,
    cassandra: tuple,
    kafka: str,
    keyspace: str,
    **settings: object,
) -> Path:
    hosts, port = cassandra
    return _write_properties(
        directory,
        name,
        topic,
        kafka,
        "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
        {
            "connect.cassandra.contact.points": ",".join(hosts),
            "connect.cassandra.port": port,
            "connect.cassandra.key.space": keyspace,
            "connect.cassandra.kcql": kcql,
        },
        settings,
    )


@contextmanager
def cassandra_table(cassandra: tuple, columns: str) -> Iterator[tuple[Any, str]]:
    """A fresh keyspace holding `readings (<columns>)`: (session, keyspace), dropped after."""
    from cassandra.cluster import Cluster

    hosts, port = cassandra
    keyspace = unique("ks").replace("-", "_")
    cluster = Cluster(list(hosts), port=port)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    session.execute(f"CREATE TABLE {keyspace}.readings ({columns})")
    try:
        yield session, keyspace
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        cluster.shutdown()
