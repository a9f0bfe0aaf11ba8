"""End-to-end benchmark: Kafka -> `conductor start` -> Cassandra, against the limit measured in
the same run (the same rows written straight into Cassandra by the driver).

    /work/venv/bin/python bench/cassandra_pipeline.py --records 200000 --workers 1,2,3

One run:
  1. produces N temperature readings (conductor.readings.readings) to a new 6-partition topic,
     Kafka record timestamp = the reading's timestamp, and creates a keyspace with the table of
     examples/cassandra-schema.cql (readings, PRIMARY KEY ((sensor_id), ts));
  2. the limit: the same rows (same columns and values, same `USING TIMESTAMP` = the record's
     Kafka timestamp in microseconds + offset % 1000, as sinks/cassandra.py writes them) written
     by the driver's `execute_concurrent_with_args` with a prepared INSERT at a few concurrency
     levels, in this process or in 2 processes sharing the rows, and as UNLOGGED batches of one
     partition grouped as a worker groups them (per Kafka partition, per 2,000 records); the
     fastest is the limit. A reference row (not the limit) groups all of a sensor's rows;
  3. per worker count: `conductor start --workers W` (and with --per-row, once more with
     conductor.cassandra.unlogged.batches=false) on a fresh connector name (fresh consumer
     group from offset 0) and a truncated table, timed from the process start until Cassandra
     holds N rows, and until the group has committed every offset; CPU and RSS of the supervisor
     and every worker are sampled meanwhile; then SIGTERM and a check that it exits 0;
  4. CPU of Cassandra and Kafka (and of the whole machine) per phase;
  5. a Markdown table on stdout and in docs/BENCHMARKS.md (between this script's markers; the
     rest of that file is kept); topic, keyspace and consumer groups are deleted at the end.

Progress is read from Cassandra's `system_views.local_write_latency` write count for the table
(one number, no scan); once it reaches N a single `SELECT COUNT(*)` confirms the rows.

`--profile` adds one in-process worker run under cProfile and prints its hot spots.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import platform
import shutil
import signal
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType
from common import (
    KAFKA,
    PARTITIONS,
    BackgroundPoller,
    CountPoller,
    Readings,
    Result,
    Server,
    ServerCpu,
    add_output_arguments,
    add_profile_arguments,
    add_run_arguments,
    cleanup_kafka,
    conductor_name,
    conductor_version,
    find_process,
    fmt,
    kafka_answers,
    kafka_version,
    percent,
    produce,
    profile_in_process,
    profile_table,
    reading_records,
    render,
    retried,
    run_conductor,
    self_cpu,
    settings_line,
    steady_rate,
    table,
    wait_for_servers,
    worker_counts,
    write_doc,
    write_properties,
)

MARK_BEGIN = "<!-- bench/cassandra_pipeline.py: generated from here -->"
MARK_END = "<!-- bench/cassandra_pipeline.py: generated until here -->"
CASSANDRA = Server("Cassandra", "Cassandra", "org.apache.cassandra.service.CassandraDaemon")
SERVERS = (CASSANDRA, KAFKA)
TABLE = "readings"
# examples/cassandra-schema.cql; the columns in the order the KCQL below selects them
COLUMNS = ("sensor_id", "ts", "celsius", "humidity", "home_id", "reading_id")
SCHEMA = """CREATE TABLE {keyspace}.readings (
    sensor_id text,
    ts timestamp,
    celsius double,
    humidity float,
    home_id text,
    reading_id bigint,
    PRIMARY KEY ((sensor_id), ts)
)"""
# examples/cassandra-sink.properties
KCQL = "INSERT INTO readings SELECT sensor_id, timestamp AS ts, celsius, humidity, home_id, reading_id FROM {topic}"
COUNT_TIMEOUT_S = 120.0
EPOCH = dt.datetime(1970, 1, 1)  # the driver returns timestamps as naive UTC datetimes
EXACT_EVERY_S = 1.0


# -- the data ---------------------------------------------------------------------------------


@dataclass
class Dataset(Readings):
    keyspace: str
    # per record, after produce(): its partition and offset, and the values bound to
    # INSERT ... (COLUMNS) VALUES (...) USING TIMESTAMP ?, as the sink binds them
    placed: list[tuple[int, int]] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def end_offsets(self) -> dict[int, int]:
        ends: dict[int, int] = {}
        for partition, offset in self.placed:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        return ends


def build_dataset(count: int, run_id: str) -> Dataset:
    start_ms, keys, values, stamps = reading_records(count)
    return Dataset(
        topic=f"bench-{run_id}",
        start_ms=start_ms,
        keys=keys,
        values=values,
        timestamps=stamps,
        keyspace=f"bench_{run_id}",
    )


def build_rows(data: Dataset) -> None:
    """The rows the sink must write, computed here independently of it: the reading's fields
    (timestamp as epoch ms, which the driver binds to a CQL timestamp), and the write
    timestamp = Kafka timestamp in microseconds + offset % 1000 (sinks/cassandra.py
    write_timestamp)."""
    rows = []
    for value, stamp, (_, offset) in zip(data.values, data.timestamps, data.placed, strict=True):
        r = orjson.loads(value)
        rows.append(
            (
                r["sensor_id"],
                r["timestamp"],
                r["celsius"],
                r["humidity"],
                r["home_id"],
                r["reading_id"],
                stamp * 1000 + offset % 1000,
            )
        )
    data.rows = rows


# -- Cassandra -----------------------------------------------------------------------------------------


def connect(host: str, port: int, request_timeout: float = 12.0) -> tuple[Cluster, Session]:
    """A session as conductor's sink opens one (protocol v5, token-aware DC round robin)."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()), request_timeout=request_timeout
    )
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=5,
        control_connection_timeout=5,
    )
    try:
        return cluster, cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise


def insert_cql(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
        f"USING TIMESTAMP ?"
    )


class Store:
    """The benchmark's own session for the keyspace: schema, truncation, counts, checks."""

    def __init__(self, host: str, port: int, keyspace: str) -> None:
        self.host, self.port, self.keyspace = host, port, keyspace
        self.cluster, self.session = connect(host, port, request_timeout=COUNT_TIMEOUT_S)

    def create(self) -> None:
        self.session.execute(
            f"CREATE KEYSPACE {self.keyspace} WITH replication = "
            f"{{'class': 'SimpleStrategy', 'replication_factor': 1}}",
            timeout=COUNT_TIMEOUT_S,
        )
        self.session.execute(SCHEMA.format(keyspace=self.keyspace), timeout=COUNT_TIMEOUT_S)

    def truncate(self) -> None:
        self.session.execute(f"TRUNCATE {self.keyspace}.{TABLE}", timeout=COUNT_TIMEOUT_S)

    def drop(self) -> None:
        self.session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}", timeout=COUNT_TIMEOUT_S)

    def count(self) -> int:
        return self.session.execute(
            f"SELECT COUNT(*) FROM {self.keyspace}.{TABLE}", timeout=COUNT_TIMEOUT_S
        ).one()[0]

    def check(self, data: Dataset, samples: int = 20) -> list[str]:
        """Problems with what the table holds: the row count, and a few rows' values and write
        timestamps compared with the rows computed from the readings."""
        problems = []
        count = self.count()
        if count != data.count:
            problems.append(f"table holds {count:,} rows, not {data.count:,}")
        select = self.session.prepare(
            f"SELECT {', '.join(COLUMNS)}, WRITETIME(celsius) FROM "
            f"{self.keyspace}.{TABLE} WHERE sensor_id = ? AND ts = ?"
        )
        step = max(1, data.count // samples)
        for n in list(range(0, data.count, step))[:samples] + [data.count - 1]:
            want = data.rows[n]
            row = self.session.execute(select, (want[0], want[1]), timeout=COUNT_TIMEOUT_S).one()
            if row is None:
                problems.append(f"row {want[0]} / {want[1]} not found")
                continue
            got = (
                row[0],
                (row[1] - EPOCH) // dt.timedelta(milliseconds=1),
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
            )
            expected = want[:3] + (float32(want[3]),) + want[4:]
            if got != expected:
                problems.append(
                    f"row {want[0]} / {want[1]}: {got} != {expected} "
                    f"(columns {', '.join(COLUMNS)}, writetime)"
                )
        return problems

    def version(self) -> str:
        return self.session.execute("SELECT release_version FROM system.local").one()[0]

    def close(self) -> None:
        self.cluster.shutdown()


def float32(value: float) -> float:
    """What a CQL float column gives back for `value`."""
    return struct.unpack(">f", struct.pack(">f", value))[0]


def wait_for_cassandra(args: argparse.Namespace, timeout: float = 180) -> None:
    """Wait until Cassandra answers a query and Kafka a metadata request (other test runs on
    this machine stop and start the servers)."""

    def cassandra_answers() -> None:
        cluster, session = connect(args.cassandra_host, args.cassandra_port, request_timeout=5)
        try:
            session.execute("SELECT release_version FROM system.local")
        finally:
            cluster.shutdown()

    wait_for_servers([cassandra_answers, kafka_answers(args.kafka)], timeout)


# -- progress: Cassandra's write count -------------------------------------------------------------


class WriteCountPoller(CountPoller):
    """The table's local write count (`system_views.local_write_latency`, one row, no scan)
    since the poller started, every `interval` s (faster near the end), on its own session.
    Each INSERT is one write (an UNLOGGED batch of one partition too: `rows_per_write` scales
    that). With `exact`, a count that reached the target is confirmed by `SELECT COUNT(*)` (at
    most every EXACT_EVERY_S): a write done twice (a retry) counts twice but adds no row, so
    until the rows are all there the poll says target - 1 at most."""

    def __init__(
        self,
        host: str,
        port: int,
        keyspace: str,
        target: int,
        interval: float,
        fast_interval: float,
        exact: bool,
        rows_per_write: float | None = 1.0,
    ) -> None:
        super().__init__(target, interval, fast_interval)
        self.store = Store(host, port, keyspace)
        self.query = self.store.session.prepare(
            "SELECT count FROM system_views.local_write_latency WHERE keyspace_name = ? AND table_name = ?"
        )
        self.keyspace = keyspace
        self.exact = exact
        self.rows_per_write = rows_per_write
        self.base = self.writes()
        self.exact_at = float("-inf")
        self.exact_counts: list[int] = []
        self.exact_seconds: list[float] = []

    def writes(self) -> int:
        row = self.store.session.execute(self.query, (self.keyspace, TABLE)).one()
        return row[0] if row else 0

    def count(self) -> int:
        try:
            if self.rows_per_write is None:
                return self.counted()
            written = min(self.target, round((self.writes() - self.base) * self.rows_per_write))
            if written < self.target or not self.exact:
                return written
            if time.monotonic() - self.exact_at < EXACT_EVERY_S:
                return self.target - 1
            self.exact_at = time.monotonic()
            rows = self.store.count()
            self.exact_counts.append(rows)
            self.exact_seconds.append(time.monotonic() - self.exact_at)
            return rows if rows >= self.target else self.target - 1
        except Exception:
            self.errors += 1
            return self.samples[-1][1] if self.samples else 0

    def counted(self) -> int:
        """Rows by SELECT COUNT(*), at most every EXACT_EVERY_S: for batched writes, where a
        write (one partition's batch) holds an unknown number of rows."""
        if time.monotonic() - self.exact_at >= EXACT_EVERY_S:
            self.exact_at = time.monotonic()
            self.last_counted = self.store.count()
            self.exact_seconds.append(time.monotonic() - self.exact_at)
        return getattr(self, "last_counted", 0)

    def close(self) -> None:
        self.store.close()


# -- the limit: the driver straight into Cassandra ----------------------------------------------


VARIANTS = ("concurrent", "grouped", "unlogged")
BATCH_CONCURRENCY = 128  # the sink's in-flight window (sinks/cassandra.py max_in_flight)
WORKER_BATCH = 2000  # records a Cassandra worker writes at once (conductor/config CASSANDRA_WORKER_BATCH)


def variant_label(variant: tuple[str, int, int]) -> str:
    kind, size, processes = variant
    if kind == "unlogged":
        return (
            f"reference, not the limit: UNLOGGED batches of <= {size} rows of one partition, "
            f"execute_concurrent concurrency {BATCH_CONCURRENCY}"
        )
    if kind == "grouped":
        return (
            f"UNLOGGED batches of <= {size} rows of one partition within each {WORKER_BATCH:,} records of a "
            f"Kafka partition (as a worker groups them), execute_concurrent concurrency {BATCH_CONCURRENCY}"
        )
    label = f"execute_concurrent_with_args, prepared INSERT, concurrency {size}"
    return label + (f" in each of {processes} processes" if processes > 1 else "")


def unlogged_batches(
    prepared: Any, rows: Sequence[tuple[Any, ...]], size: int
) -> list[tuple[BatchStatement, None]]:
    """The rows as UNLOGGED batches of at most `size` rows of one sensor (one partition)."""
    by_sensor: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_sensor.setdefault(row[0], []).append(row)
    return _batches(prepared, by_sensor.values(), size)


def worker_batches(prepared: Any, data: Dataset, size: int) -> list[tuple[BatchStatement, None]]:
    """The rows grouped as a worker groups them, not better: each Kafka partition's records in
    runs of WORKER_BATCH (one write of the sink), and within a run by sensor, in UNLOGGED batches
    of at most `size` rows (sinks/cassandra.py grouped())."""
    by_partition: dict[int, list[tuple[Any, ...]]] = {}
    for row, (partition, _) in zip(data.rows, data.placed, strict=True):
        by_partition.setdefault(partition, []).append(row)
    groups: list[list[tuple[Any, ...]]] = []
    for rows in by_partition.values():
        for start in range(0, len(rows), WORKER_BATCH):
            by_sensor: dict[str, list[tuple[Any, ...]]] = {}
            for row in rows[start : start + WORKER_BATCH]:
                by_sensor.setdefault(row[0], []).append(row)
            groups += by_sensor.values()
    return _batches(prepared, groups, size)


def _batches(prepared: Any, groups: Any, size: int) -> list[tuple[BatchStatement, None]]:
    batches = []
    for group in groups:
        for start in range(0, len(group), size):
            batch = BatchStatement(BatchType.UNLOGGED)
            for row in group[start : start + size]:
                batch.add(prepared, row)
            batch.is_idempotent = True
            batches.append((batch, None))
    return batches


def warm_up(args: argparse.Namespace, data: Dataset, store: Store, records: int = 40_000) -> None:
    """A throwaway load first, so the first limit variant does not pay for a cold Cassandra
    (JIT, caches) more than the others."""
    wait_for_cassandra(args)
    cluster, session = connect(args.cassandra_host, args.cassandra_port)
    try:
        prepared = session.prepare(insert_cql(data.keyspace))
        execute_concurrent_with_args(session, prepared, data.rows[:records], concurrency=128)
    finally:
        cluster.shutdown()
    store.truncate()


def measure_limit(
    args: argparse.Namespace, data: Dataset, store: Store, variant: tuple[str, int, int], server: ServerCpu
) -> Result:
    kind, size, processes = variant
    wait_for_cassandra(args)
    result = Result(
        f"limit: {variant_label(variant)}",
        "reference" if kind == "unlogged" else "limit",
        data.count,
        variant=variant,
    )
    store.truncate()
    cluster, session = connect(args.cassandra_host, args.cassandra_port)
    prepared = session.prepare(insert_cql(data.keyspace))
    prepared.is_idempotent = True  # as the sink's
    # the statements are ready before the clock, as the rows are; so are the other processes
    batches = (
        unlogged_batches(prepared, data.rows, size)
        if kind == "unlogged"
        else worker_batches(prepared, data, size)
        if kind == "grouped"
        else []
    )
    rows_per_write = data.count / len(batches) if batches else 1.0
    helpers = Helpers(args, data, size, processes) if processes > 1 else None
    poller = BackgroundPoller(
        WriteCountPoller(
            args.cassandra_host,
            args.cassandra_port,
            data.keyspace,
            data.count,
            args.poll,
            args.fast_poll,
            exact=False,
            rows_per_write=rows_per_write,
        )
    )
    failed: list[str] = []
    helper_cpu = 0.0
    try:
        server.begin()
        cpu0 = self_cpu()
        started = time.monotonic()
        poller.start()
        try:
            if helpers is not None:
                helper_cpu, failed = helpers.run()
            else:
                if batches:
                    outcome = execute_concurrent(
                        session, batches, concurrency=BATCH_CONCURRENCY, raise_on_first_error=True
                    )
                else:
                    outcome = execute_concurrent_with_args(
                        session, prepared, data.rows, concurrency=size, raise_on_first_error=True
                    )
                failed = [repr(r) for ok, r in outcome if not ok]
            poller_cpu = poller.stop()
            poller.poller.poll()  # the write count when the last write was answered, for the steady rate
            visible = store.count()  # as the conductor runs are timed: one COUNT(*) that sees them all
            elapsed = time.monotonic() - started
        finally:
            poller_cpu = poller.stop()
            poller.poller.close()
        result.client_cpu = self_cpu() - cpu0 - poller_cpu + helper_cpu
        server.end()
    finally:
        if helpers is not None:
            helpers.close()
    result.server = server
    if server.restarted:
        result.ok = False
        result.notes += server.restarted
    result.seconds = elapsed
    result.steady = steady_rate([(t - started, n) for t, n in poller.poller.samples], data.count)
    if poller.poller.errors:
        result.notes.append(f"{poller.poller.errors} progress polls failed")
    if failed:
        result.ok = False
        result.notes.append(f"{len(failed)} writes failed, first: {failed[0]}")
    if visible != data.count:
        result.ok = False
        result.notes.append(f"Cassandra counts {visible}, not {data.count}")
    problems = store.check(data)
    if problems:
        result.ok = False
        result.notes += problems
    if kind == "unlogged":
        result.notes.append(
            f"{len(batches):,} batches of {rows_per_write:.1f} rows on average: all of a "
            f"sensor's rows in the whole data set grouped, more than the sink could group "
            f"within one worker batch"
        )
    if helpers is not None:
        result.notes.append(f"client CPU includes the {processes} writer processes' (during the writes)")
    cluster.shutdown()
    store.truncate()
    return result


class Helpers:
    """`processes` writer processes (spawned, each with its own session), each running
    execute_concurrent_with_args on its share of the rows once `run()` says go."""

    def __init__(self, args: argparse.Namespace, data: Dataset, concurrency: int, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.go = context.Event()
        self.answers: Any = context.Queue()
        self.procs = [
            context.Process(
                target=_write_share,
                daemon=True,
                args=(
                    args.cassandra_host,
                    args.cassandra_port,
                    insert_cql(data.keyspace),
                    data.rows[n::processes],
                    concurrency,
                    self.go,
                    self.answers,
                ),
            )
            for n in range(processes)
        ]
        for proc in self.procs:
            proc.start()
        for _ in self.procs:  # connected and prepared
            kind, detail = self.answers.get(timeout=120)
            if kind != "ready":
                raise RuntimeError(f"writer process: {detail}")

    def run(self) -> tuple[float, list[str]]:
        """Go; the writers' CPU seconds (while writing) and failures."""
        self.go.set()
        cpu, failed = 0.0, []
        for _ in self.procs:
            kind, detail = self.answers.get(timeout=COUNT_TIMEOUT_S * 5)
            if kind != "done":
                raise RuntimeError(f"writer process: {detail}")
            cpu += detail[0]
            failed += detail[1]
        return cpu, failed

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join()


def _write_share(
    host: str, port: int, cql: str, rows: list[tuple[Any, ...]], concurrency: int, go: Any, answers: Any
) -> None:
    try:
        cluster, session = connect(host, port)
        prepared = session.prepare(cql)
        prepared.is_idempotent = True
    except Exception as exc:
        answers.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    answers.put(("ready", None))
    go.wait()
    try:
        cpu0 = self_cpu()
        outcome = execute_concurrent_with_args(
            session, prepared, rows, concurrency=concurrency, raise_on_first_error=True
        )
        answers.put(("done", (self_cpu() - cpu0, [repr(r) for ok, r in outcome if not ok])))
    except Exception as exc:
        answers.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        cluster.shutdown()


# -- conductor end to end ----------------------------------------------------------------------------


def write_config(
    directory: Path,
    name: str,
    data: Dataset,
    args: argparse.Namespace,
    workers: int,
    extra: Sequence[str] = (),
) -> Path:
    """examples/cassandra-sink.properties, on this run's topic and keyspace."""
    return write_properties(
        directory,
        name,
        [
            f"name={name}",
            "connector.class=io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
            f"tasks.max={workers}",
            f"topics={data.topic}",
            f"bootstrap.servers={args.kafka}",
            f"connect.cassandra.contact.points={args.cassandra_host}",
            f"connect.cassandra.port={args.cassandra_port}",
            f"connect.cassandra.key.space={data.keyspace}",
            "connect.cassandra.kcql=" + KCQL.format(topic=data.topic),
            "connect.cassandra.error.policy=RETRY",
            "connect.cassandra.max.retries=10",
            "connect.cassandra.retry.interval=5000",
            *args.conductor_setting,
            *extra,
        ],
    )


class Commits:
    """Whether the consumer group has committed every partition's end offset."""

    def __init__(self, bootstrap: str, group: str, ends: dict[int, int], topic: str) -> None:
        from kafka import KafkaAdminClient

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.group, self.ends, self.topic = group, ends, topic
        self.committed: dict[int, int] = {}
        self.error: str | None = None

    def __call__(self) -> bool:
        try:
            offsets = self.admin.list_group_offsets(self.group)[self.group]
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        self.committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == self.topic}
        return all(self.committed.get(p, -1) >= end for p, end in self.ends.items())

    def describe(self) -> str:
        """What was committed last, against the end offsets (when it never got there)."""
        return (
            f"committed {dict(sorted(self.committed.items()))}, end offsets {dict(sorted(self.ends.items()))}"
            + (f"; last error {self.error}" if self.error else "")
        )

    def close(self) -> None:
        self.admin.close()


def conductor_run(
    args: argparse.Namespace,
    data: Dataset,
    store: Store,
    workers: int,
    run_id: str,
    workdir: Path,
    server: ServerCpu,
    groups: list[str],
    attempt: int = 0,
    per_row: bool = False,
) -> Result:
    """conductor with its defaults (rows of a partition in UNLOGGED batches), or `per_row`
    (conductor.cassandra.unlogged.batches=false: a statement per row)."""
    wait_for_cassandra(args)
    name = conductor_name(run_id, workers, attempt)
    groups.append(f"connect-{name}")
    store.truncate()
    extra = ["conductor.cassandra.unlogged.batches=false"] if per_row else []
    config = write_config(workdir, name, data, args, workers, extra)
    poller = WriteCountPoller(
        args.cassandra_host,
        args.cassandra_port,
        data.keyspace,
        data.count,
        args.poll,
        args.fast_poll,
        exact=True,
        rows_per_write=1.0 if per_row else None,  # a batch's rows are unknown: COUNT(*) each second
    )
    commits = Commits(args.kafka, f"connect-{name}", data.end_offsets, data.topic)
    try:
        result = run_conductor(
            args,
            name=name,
            config=config,
            workers=workers,
            workdir=workdir,
            server=server,
            poller=poller,
            check=lambda: store.check(data),
            unit="row",
            settle=commits,
        )
    finally:
        commits.close()
    if per_row:
        result.label += ", conductor.cassandra.unlogged.batches=false (a statement per row)"
    if result.committed_s is None:
        result.notes.append(f"not every offset committed: {commits.describe()}")
    if poller.exact_seconds:
        result.notes.append(
            f"the confirming SELECT COUNT(*) took {', '.join(f'{t:.2f}' for t in poller.exact_seconds)}s"
        )
    if poller.errors:
        result.notes.append(f"{poller.errors} progress polls failed")
    if poller.exact_counts[:-1]:
        result.notes.append(
            f"write count reached {data.count:,} before the rows did: COUNT(*) said "
            f"{', '.join(f'{n:,}' for n in poller.exact_counts)}"
        )
    store.truncate()
    return result


# -- one worker under cProfile, in this process ---------------------------------------------------------


def profile_worker(
    args: argparse.Namespace,
    data: Dataset,
    store: Store,
    run_id: str,
    workdir: Path,
    server: ServerCpu,
    groups: list[str],
) -> tuple[Result, str, Any]:
    wait_for_cassandra(args)
    name = f"bench-{run_id}-profile"
    groups.append(f"connect-{name}")
    store.truncate()
    config_path = write_config(workdir, name, data, args, 1)
    result = Result("one worker in-process under cProfile", "profile", data.count)
    run = profile_in_process(config_path, data.count, args.profile_top, args.profile_out, server)
    result.seconds = run.seconds
    result.client_cpu = run.cpu
    result.server = server
    visible = store.count()
    result.ok = run.code == 0 and visible == data.count
    result.notes.append(f"worker exit {run.code}; counts {run.counts}; COUNT(*) {visible:,}")
    store.truncate()
    return result, run.text, run.stats


# -- report --------------------------------------------------------------------------------------------


def versions(store: Store, kafka_proc: psutil.Process | None) -> dict[str, str]:
    import cassandra
    import kafka

    out = {
        "python": platform.python_version(),
        "cassandra-driver": cassandra.__version__,
        "kafka-python": kafka.__version__,
        "orjson": orjson.__version__,
    }
    try:
        out["Cassandra"] = store.version()
    except Exception as exc:
        out["Cassandra"] = f"unknown ({exc})"
    out["Kafka"] = kafka_version(kafka_proc)
    commit = conductor_version()
    if commit is not None:
        out["conductor"] = commit
    return out


NEW_FILE = "# Benchmarks\n"
SECTION = """## Kafka -> conductor -> Cassandra (`bench/cassandra_pipeline.py`)

What it measures: how fast `conductor start` moves JSON temperature readings from a Kafka topic
into a Cassandra table, end to end, compared with **the limit**: the same rows (same columns,
values and write timestamps) written straight into Cassandra by the Python driver at its best
settings, measured in the same run. The goal (from the issue): end to end >= 80% of the limit.

Method, per run of the script:

- N readings (`conductor.readings.readings`, 1 s apart, 1000 sensors, keyed by sensor) are
  produced to a new 6-partition topic with the reading's time as the record timestamp. A new
  keyspace holds the table of `examples/cassandra-schema.cql` (`PRIMARY KEY ((sensor_id), ts)`:
  every reading is one row); the KCQL is the example's,
  `INSERT INTO readings SELECT sensor_id, timestamp AS ts, celsius, humidity, home_id, reading_id FROM <topic>`,
  which the sink runs as a prepared
  `INSERT ... USING TIMESTAMP ?` (Kafka timestamp in us + offset % 1000) per record.
- The limit: the same prepared INSERT, with the same values and write timestamps, run by the
  driver's `cassandra.concurrent.execute_concurrent_with_args` at concurrency 64, 128, 256 and
  512 in this process, and at 128 in each of 2 processes sharing the rows (conductor's workers
  are processes too; their CPU counts as client CPU); sessions are opened as the sink opens one
  (protocol v5, token-aware policy). The rows (and the other processes, connected) are ready
  before the clock starts, which stops once a `SELECT COUNT(*)` sees all N rows. The fastest is
  the limit. Right before each conductor run it runs once more ("limit just before"), and
  "% of limit" compares with that one. The table is truncated before every phase.
- A reference row, not the limit: the same rows as UNLOGGED batches of up to 100 rows of one
  partition (execute_concurrent, concurrency 128). `sinks/cassandra.py` can write such batches
  (`CassandraSinkSettings.unlogged_batches`), but no config key switches that on, so conductor
  cannot be run that way; and with all of a sensor's rows of the whole data set grouped this is
  the most batching could give, not what the sink would group within one worker batch.
- Each conductor run: a fresh connector name (a fresh consumer group reading from offset 0) and
  a truncated table; the clock starts just before `conductor start` is spawned and stops when
  the table holds N rows. Progress comes from Cassandra's per-table write count
  (`system_views.local_write_latency`, no scan), polled every 0.5 s, every 0.1 s past 90% (the
  same poller runs during the limit); when it reaches N, one `SELECT COUNT(*)` confirms the rows
  (again every second until it does). "all committed s" is when the consumer group had
  committed every partition's end offset (polled every 0.1 s; conductor CPU is taken when the
  rows were there). "steady 10-90%" is the rate between the moments 10% and 90% of the rows
  were written. Then SIGTERM; the run only counts if conductor exits 0, the count is N and a
  sample of rows has the expected values and write timestamps.
- CPU: "client/conductor CPU" is the benchmark process's own CPU (user+sys, minus its progress
  poller) for the limit rows, and the supervisor plus all workers for the conductor rows, in
  CPU seconds per million records. Cassandra and Kafka CPU are their JVMs' CPU during the phase;
  "other CPU" is the machine's non-idle CPU seconds during the phase (in brackets) minus the
  benchmark's or conductor's, Cassandra's and Kafka's: other load on the machine, which makes a
  row less trustworthy. A phase during which Cassandra or Kafka restarted is run again.
- Max RSS per worker: the largest RSS any worker process reached (sampled every poll).
"""


def render_block(
    args: argparse.Namespace,
    results: list[Result],
    limit: Result | None,
    produce_s: float,
    data: Dataset,
    info: dict[str, str],
    profile: str | None,
    started: dt.datetime,
) -> str:
    bullets = [
        f"- data: {data.count:,} readings = {data.count:,} rows of {data.keyspace}.{TABLE}, "
        f"produced in {produce_s:.1f}s; {PARTITIONS} partitions",
        settings_line(args),
    ]
    committed = ("all committed s", lambda r: fmt(r.committed_s, ".1f") if r.kind == "conductor" else "")
    return render(
        begin=MARK_BEGIN,
        end=MARK_END,
        script="bench/cassandra_pipeline.py",
        started=started,
        info=info,
        bullets=bullets,
        table_text=table(results, limit, SERVERS, [committed]),
        results=results,
        limit=limit,
        profile=profile,
    )


# -- main ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000, help="readings to produce (default 200000)")
    parser.add_argument(
        "--workers", default="1,2,3", help="worker counts to run, comma-separated (default 1,2,3)"
    )
    parser.add_argument(
        "--limit-variants",
        default="concurrent:128,concurrent:128x2,grouped:100,unlogged:100",
        help="driver variants for the limit: concurrent:CONCURRENCY[xPROCESSES] "
        "(execute_concurrent_with_args, in 1 or more processes sharing the rows), grouped:ROWS "
        "(UNLOGGED batches per partition within each worker batch, as the sink groups them) or "
        "unlogged:ROWS (all of a partition's rows grouped; a reference row, never the limit)",
    )
    parser.add_argument("--cassandra", default="127.0.0.1:19042", help="host:port (default 127.0.0.1:19042)")
    parser.add_argument(
        "--per-row",
        action="store_true",
        help="also run each worker count with conductor.cassandra.unlogged.batches=false",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also run the DataStax Kafka sink in Kafka Connect 4.1 on the same data (bench/cassandra_reference.py; "
        "built on first use into ~/.cache/conductor/peers)",
    )
    from cassandra_reference import add_reference_arguments  # it imports this module: here, not at the top

    add_reference_arguments(parser)
    parser.set_defaults(progress="count")  # rows counted every second, as conductor's batched runs are
    add_run_arguments(parser, poll=0.5, fast_poll=0.1, what="write count")
    add_profile_arguments(parser)
    add_output_arguments(parser, keep_help="keep the topic (the keyspace is always dropped)")
    args = parser.parse_args(argv)
    args.worker_counts = worker_counts(args.workers)
    host, _, port = args.cassandra.rpartition(":")
    args.cassandra_host, args.cassandra_port = host or args.cassandra, int(port or 9042)
    args.variants = []
    for spec in args.limit_variants.split(","):
        kind, _, number = spec.strip().partition(":")
        size, _, processes = number.partition("x")
        if kind not in VARIANTS or (kind != "concurrent" and processes):
            parser.error(f"unknown limit variant {spec!r}")
        args.variants.append((kind, int(size or (128 if kind == "concurrent" else 100)), int(processes or 1)))
    return args


def cassandra_retried(args: argparse.Namespace, run: Callable[[int], Any]) -> Any:
    """common.retried, for the errors of a server going away: Cassandra's and Kafka's."""
    from cassandra import DriverException, RequestExecutionException
    from cassandra.cluster import NoHostAvailable
    from kafka.errors import KafkaError

    return retried(
        args, run, (NoHostAvailable, DriverException, RequestExecutionException, KafkaError, OSError)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the running conductor is stopped and
    # the topic, keyspace and groups are deleted (conductor runs in its own session).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started_at = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-cassandra-{run_id}-"))
    wait_for_cassandra(args)
    server = ServerCpu(SERVERS)
    server.begin()
    for spec in SERVERS:
        if server.proc(spec.name) is None:
            print(f"warning: {spec.name} process not found; its CPU is not measured", file=sys.stderr)
    groups: list[str] = []
    results: list[Result] = []
    profile_text = None
    data = None
    store = None
    total = time.monotonic()
    try:
        print(f"run {run_id}: building {args.records:,} readings", flush=True)
        data = build_dataset(args.records, run_id)
        produce_s = produce(args.kafka, data, data.placed)
        build_rows(data)
        print(
            f"  produced to {data.topic} in {produce_s:.1f}s ({data.count / produce_s:,.0f}/s); "
            f"end offsets {data.end_offsets}",
            flush=True,
        )
        store = Store(args.cassandra_host, args.cassandra_port, data.keyspace)
        store.create()
        print(f"  keyspace {data.keyspace} created", flush=True)

        cassandra_retried(args, lambda attempt: warm_up(args, data, store))
        for variant in args.variants:
            r = cassandra_retried(
                args, lambda attempt: measure_limit(args, data, store, variant, server.copy())
            )
            results.append(r)
            print(
                f"  {r.label}: {r.rate:,.0f} rec/s, steady {fmt(r.steady)}, "
                f"client CPU {r.per_million(r.client_cpu):.1f} s/M, ok={r.ok}",
                flush=True,
            )
            for note in r.notes:
                print(f"    {note}", flush=True)
        good = [r for r in results if r.kind == "limit" and r.ok]
        limit = max(good, key=lambda r: r.rate, default=None)

        for workers in args.worker_counts:
            for per_row in (False, True) if args.per_row else (False,):
                adjacent = None
                if limit is not None and args.adjacent_limit:
                    adjacent = cassandra_retried(
                        args, lambda attempt: measure_limit(args, data, store, limit.variant, server.copy())
                    )
                    adjacent.label = f"limit again, before --workers {workers}"
                    print(f"  {adjacent.label}: {adjacent.rate:,.0f} rec/s, ok={adjacent.ok}", flush=True)
                r = cassandra_retried(
                    args,
                    lambda attempt: conductor_run(
                        args, data, store, workers, run_id, workdir, server.copy(), groups, attempt, per_row
                    ),
                )
                r.adjacent = adjacent
                results.append(r)
                pct = f"{percent(r, limit)} of limit" if limit and r.ok else ""
                print(
                    f"  {r.label}: {r.rate:,.0f} rec/s, steady {fmt(r.steady)}, {pct}, "
                    f"all committed at {fmt(r.committed_s, '.1f')}s, CPU {r.per_million(r.client_cpu):.1f} s/M, "
                    f"RSS {fmt(r.rss_mib, '.0f')} MiB, ok={r.ok}",
                    flush=True,
                )
                for note in r.notes:
                    print(f"    {note}", flush=True)

        if args.reference:
            from cassandra_reference import ensure_setup, run_reference

            setup = ensure_setup(args)
            r = cassandra_retried(
                args,
                lambda attempt: run_reference(args, data, store, server.copy(), groups, setup, 3, attempt),
            )
            results.append(r)
            print(f"  {r.label}: {r.rate:,.0f} rec/s, steady {fmt(r.steady)}, ok={r.ok}", flush=True)
            for note in r.notes:
                print(f"    {note}", flush=True)

        if args.profile:
            r, text, stats = cassandra_retried(
                args,
                lambda attempt: profile_worker(args, data, store, run_id, workdir, server.copy(), groups),
            )
            results.append(r)
            print(f"  {r.label}: {r.rate:,.0f} rec/s, ok={r.ok}; {'; '.join(r.notes)}", flush=True)
            print(text, flush=True)
            profile_text = profile_table(stats, r.seconds, 20)

        info = versions(store, server.proc("Kafka") or find_process(KAFKA.needle))
        block = render_block(args, results, limit, produce_s, data, info, profile_text, started_at)
        print()
        print(block)
        if args.output != "-":
            write_doc(Path(args.output), block, MARK_BEGIN, MARK_END, NEW_FILE, SECTION)
            print(f"\nwritten to {args.output}")
        print(f"total {time.monotonic() - total:.0f}s")
        return 0 if all(r.ok for r in results) else 1
    finally:
        cleanup(args, data, store, groups)
        shutil.rmtree(workdir, ignore_errors=True)


def cleanup(args: argparse.Namespace, data: Dataset | None, store: Store | None, groups: list[str]) -> None:
    if data is None:
        return
    try:
        wait_for_cassandra(args)
        if store is None:
            store = Store(args.cassandra_host, args.cassandra_port, data.keyspace)
        store.drop()
        store.close()
    except Exception as exc:
        print(f"cleanup: keyspace {data.keyspace}: {exc}", file=sys.stderr)
    cleanup_kafka(args.kafka, data.topic, groups, args.keep)


if __name__ == "__main__":
    sys.exit(main())
