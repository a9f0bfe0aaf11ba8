"""The aggregator benchmark's data set and its peer: quix-streams computing the same windowed
aggregation exactly once, measured in the same run as conductor.

The data: `produce_readings` writes JSON readings {"sensor_id", "home_id", "celsius", "ts"}
(1000 sensors over 100 homes, event time 3 ms apart so that a 1-minute window holds ~20,000
readings: ~200 per home, ~20 per sensor), keyed by sensor_id but placed on partitions by
home_id (all sensors of a home on one partition: a home's event time then stays in order through
quix-streams' repartition, else grace 0 drops ~2/3 of the readings of a group-by-home), each
with its Kafka record timestamp = ts; then one "closer" per sensor, far later in event time and marked with the
header `bench-closer`, so that every window closes with grace 0 (quix-streams closes a window
only when a later record of the same key arrives; one closer per sensor reaches every key and
every partition). `expected` is the truth, closers excluded.

The peer, run in its own venv (`bench/requirements-peers.txt` in `.venv-peers`):

    .venv-peers/bin/python bench/aggregate_peer.py quix --bootstrap B --input T --output O \
        --processes N --group G --by home_id|sensor_id [--expect WINDOWS]

starts N worker processes in one consumer group; each runs a quix-streams Application with
processing_guarantee="exactly-once" that computes COUNT, AVG, MIN, MAX of celsius per group per
1-minute tumbling window (grace 0, `.final()`) and writes JSON results to O. By home_id it
re-keys with `group_by` (a repartition topic). It stops on SIGTERM, or with --expect once the
output holds that many distinct windows (read_committed).

`run_quix` (conductor's venv) runs that command and measures it; `main` produces a data set,
runs both groupings, prints the numbers and deletes its topics:

    .venv/bin/python bench/aggregate_peer.py bench --records 200000 --partitions 6 --processes 2
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"

SENSORS = 1000
HOMES = 100
WINDOW_MS = 60_000
PER_MINUTE = 20_000  # readings per minute of event time: ~200 per home window, ~20 per sensor window
CLOSER_GAP_MS = 10 * WINDOW_MS  # closers come this long after the last reading
CLOSER_HEADER = "bench-closer"
GROUPINGS = ("sensor_id", "home_id")
MIB = 1024 * 1024


# -- the data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Produced:
    """What `produce_readings` wrote: the readings (closers excluded) and how."""

    topic: str
    partitions: int
    keyed_by: str
    placement: str
    readings: list[dict[str, Any]]
    closers: int
    closer_ts: int
    seconds: float


def make_readings(
    n: int, *, start_ms: int | None = None, per_minute: int = PER_MINUTE, seed: int = 7
) -> list[dict[str, Any]]:
    """n readings in event-time order, `per_minute` per minute, starting on a minute boundary far
    enough back that the closers still lie in the past."""
    rng = random.Random(seed)
    step = WINDOW_MS / per_minute
    if start_ms is None:
        span = int(n * step) + CLOSER_GAP_MS + 2 * WINDOW_MS
        start_ms = (int(time.time() * 1000) - span) // WINDOW_MS * WINDOW_MS
    out = []
    for i in range(n):
        sensor = rng.randrange(SENSORS)
        home = sensor // (SENSORS // HOMES)
        out.append(
            {
                "sensor_id": f"sensor-{sensor:05d}",
                "home_id": f"home-{home:05d}",
                "celsius": round(rng.gauss(18.0 + home % 7, 3.0), 2),
                "ts": start_ms + int(i * step),
            }
        )
    return out


def closer_readings(readings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One reading per sensor, CLOSER_GAP_MS after the last one: closes every key's windows."""
    ts = (max(r["ts"] for r in readings) if readings else int(time.time() * 1000)) + CLOSER_GAP_MS
    per_home = SENSORS // HOMES
    return [
        {"sensor_id": f"sensor-{s:05d}", "home_id": f"home-{s // per_home:05d}", "celsius": 0.0, "ts": ts}
        for s in range(SENSORS)
    ]


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        # Event time lies in the past: without retention.ms=-1 old segments could be deleted.
        admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs={"retention.ms": "-1"},
                )
            ]
        )
    finally:
        admin.close()


def produce_readings(
    bootstrap: str,
    topic: str,
    n: int,
    partitions: int = 6,
    keyed_by: str = "sensor_id",
    *,
    placement: str = "home",
    per_minute: int = PER_MINUTE,
    seed: int = 7,
    start_ms: int | None = None,
) -> Produced:
    """Create `topic` and write n readings keyed by `keyed_by`, record timestamp = ts, then the
    closers (header `bench-closer`). `placement` picks the partition: "home" puts every sensor
    of a home on one partition (Kafka's murmur2 of home_id), "key" is Kafka's default (murmur2
    of the key). Only with "home" does a home's event time stay in order through a repartition:
    with "key", grace 0 drops most readings of a group-by-home (see the report). `start_ms`: the
    first reading's time (default: as late as leaves the closers in the past)."""
    from kafka import KafkaProducer
    from kafka.partitioner.default import murmur2

    def partition_of(r: dict[str, Any]) -> int | None:
        if placement == "key":
            return None  # the producer's partitioner: murmur2 of the key
        return (murmur2(r["home_id"].encode()) & 0x7FFFFFFF) % partitions

    readings = make_readings(n, start_ms=start_ms, per_minute=per_minute, seed=seed)
    closers = closer_readings(readings)
    create_topic(bootstrap, topic, partitions)
    started = time.monotonic()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all", max_request_size=4 * MIB
    )
    futures = []
    marker = [(CLOSER_HEADER, b"1")]
    for batch, headers in ((readings, None), (closers, marker)):
        for r in batch:
            futures.append(
                producer.send(
                    topic,
                    partition=partition_of(r),
                    key=r[keyed_by].encode(),
                    value=orjson.dumps(r),
                    timestamp_ms=r["ts"],
                    headers=headers,
                )
            )
    producer.flush()
    for future in futures:
        future.get(timeout=60)
    producer.close()
    return Produced(
        topic,
        partitions,
        keyed_by,
        placement,
        readings,
        len(closers),
        closers[0]["ts"],
        time.monotonic() - started,
    )


def read_readings(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """The readings in `topic` (closers left out), for a data set produced elsewhere."""
    out = []
    for record in read_all(bootstrap, topic):
        if not any(key == CLOSER_HEADER for key, _ in record.headers or ()):
            out.append(orjson.loads(record.value))
    return out


@dataclass(frozen=True)
class Window:
    count: int
    avg: float
    min: float
    max: float


def expected(readings: Iterable[dict[str, Any]], by: str = "home_id") -> dict[tuple[str, int], Window]:
    """The truth: per (group, window_start) of 1-minute tumbling windows aligned to the epoch,
    count and avg/min/max of celsius."""
    acc: dict[tuple[str, int], list[float]] = {}
    for r in readings:
        key = (r[by], r["ts"] - r["ts"] % WINDOW_MS)
        c = r["celsius"]
        a = acc.get(key)
        if a is None:
            acc[key] = [1, c, c, c]
        else:
            a[0] += 1
            a[1] += c
            a[2] = min(a[2], c)
            a[3] = max(a[3], c)
    return {key: Window(int(a[0]), a[1] / a[0], a[2], a[3]) for key, a in acc.items()}


def verify(results: dict[tuple[str, int], dict[str, Any]], truth: dict[tuple[str, int], Window]) -> list[str]:
    """Problems with the results: missing or unexpected windows, counts not exact, floats off."""
    problems: list[str] = []
    missing = [k for k in truth if k not in results]
    extra = [k for k in results if k not in truth]
    wrong_count = wrong_value = short = 0
    examples: list[str] = []
    for key, want in truth.items():
        got = results.get(key)
        if got is None:
            continue
        if got["count"] != want.count:
            wrong_count += 1
            short += want.count - got["count"]
            if len(examples) < 3:
                examples.append(f"{key}: count {got['count']} want {want.count}")
            continue
        for name in ("avg", "min", "max"):
            if not math.isclose(got[name], getattr(want, name), rel_tol=1e-9, abs_tol=1e-9):
                wrong_value += 1
                if len(examples) < 3:
                    examples.append(f"{key}: {name} {got[name]} want {getattr(want, name)}")
                break
    if missing:
        problems.append(f"{len(missing)} of {len(truth)} windows missing, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} windows not in the truth, e.g. {extra[:3]}")
    if wrong_count:
        problems.append(f"{wrong_count} windows with a wrong count ({short:+,} readings short in all)")
    if wrong_value:
        problems.append(f"{wrong_value} windows with a wrong avg/min/max")
    if examples:
        problems.append("e.g. " + "; ".join(examples))
    return problems


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of a topic written without transactions, up to its end (kafka-python)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * MIB,
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out: list[Any] = []
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=500, max_records=50_000).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


# -- the quix-streams app (runs in .venv-peers) -------------------------------------------------------


def quix_worker(args: argparse.Namespace) -> int:
    """One member of the group: the aggregation as quix-streams writes it."""
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Max, Mean, Min

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel=args.log_level,
    )
    source = app.topic(args.input, key_deserializer="str", value_deserializer="json")
    output = app.topic(args.output, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)
    if args.by != args.input_key:
        sdf = sdf.group_by(args.by)  # re-keyed through a repartition topic
    sdf = (
        sdf.tumbling_window(duration_ms=WINDOW_MS, grace_ms=args.grace_ms)
        .agg(count=Count(), avg=Mean("celsius"), min=Min("celsius"), max=Max("celsius"))
        .final(closing_strategy=args.closing)
    )
    by = args.by
    sdf = sdf.apply(
        lambda w, key, _ts, _headers: {
            by: key,
            "window_start": w["start"],
            "window_end": w["end"],
            "count": w["count"],
            "avg": w["avg"],
            "min": w["min"],
            "max": w["max"],
        },
        metadata=True,
    )
    sdf.to_topic(output)
    app.run()
    return 0


def quix_launcher(args: argparse.Namespace) -> int:
    """Start --processes workers (this script with --worker I), forward SIGTERM/SIGINT to them,
    and with --expect stop them once the output holds that many distinct windows."""
    state_root = Path(args.state_dir or tempfile.mkdtemp(prefix="bench-agg-quix-"))
    base = [sys.executable, __file__, *sys.argv[1:]]
    workers = []
    for i in range(args.processes):
        state = state_root / f"worker-{i}"  # one RocksDB folder per worker, as on separate hosts
        log = (Path(args.logs) / f"quix-worker-{i}.log").open("wb") if args.logs else subprocess.DEVNULL
        workers.append(
            subprocess.Popen(
                [*base, "--worker", str(i), "--state-dir", str(state)], stdout=log, stderr=subprocess.STDOUT
            )
        )
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: stopping.append(signum))
    watcher = OutputWatcher(args.bootstrap, args.output, args.by) if args.expect else None
    try:
        while not stopping and all(w.poll() is None for w in workers):
            if watcher is not None:
                if watcher.poll() >= args.expect:
                    break
            else:
                time.sleep(0.2)
    finally:
        if watcher is not None:
            watcher.close()
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for w in workers:
            try:
                w.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    if not args.state_dir:
        shutil.rmtree(state_root, ignore_errors=True)
    codes = [w.returncode for w in workers]
    return 0 if all(c == 0 for c in codes) else 1


class OutputWatcher:
    """Distinct (group, window_start) in the output, read_committed (confluent-kafka). The
    output may not exist yet (quix-streams creates it at start): assigned once it does."""

    def __init__(self, bootstrap: str, topic: str, by: str) -> None:
        from confluent_kafka import Consumer

        self.by, self.topic = by, topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-agg-watch-{uuid.uuid4().hex[:8]}",  # assign() only, never commits
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.assigned = False
        self.seen: set[tuple[str, int]] = set()

    def poll(self) -> int:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        if not self.assigned:
            meta = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
            if meta.error is not None or not meta.partitions:
                time.sleep(0.5)
                return 0
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions])
            self.assigned = True
        for message in self.consumer.consume(10_000, timeout=0.5):
            if message.error() is None:
                value = orjson.loads(message.value())
                self.seen.add((value[self.by], value["window_start"]))
        return len(self.seen)

    def close(self) -> None:
        self.consumer.close()


def add_quix_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default=os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--group", required=True)
    parser.add_argument("--by", choices=GROUPINGS, default="home_id")
    parser.add_argument(
        "--input-key", choices=GROUPINGS, default="sensor_id", help="what the input is keyed by"
    )
    parser.add_argument("--grace-ms", type=int, default=0)
    parser.add_argument(
        "--closing",
        choices=("key", "partition"),
        default="key",
        help="quix-streams' closing strategy (its default: key)",
    )
    parser.add_argument("--commit-interval", type=float, default=5.0, help="s (quix-streams' default 5.0)")
    parser.add_argument("--expect", type=int, default=0, help="stop once the output holds this many windows")
    parser.add_argument("--state-dir", default=None, help="RocksDB state (default: a fresh temp folder)")
    parser.add_argument("--logs", default=None, metavar="DIR", help="each worker's log goes here")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)


# -- measuring (runs in conductor's venv) -------------------------------------------------------------


class ResultReader:
    """The output topic read_committed from the start (kafka-python): the latest result per
    (group, window_start), how many results arrived twice, and when the first came."""

    def __init__(self, bootstrap: str, topic: str, by: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.by = by
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
        )
        parts = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.results: dict[tuple[str, int], dict[str, Any]] = {}
        self.duplicates = 0
        self.first_at: float | None = None

    def poll(self, timeout_ms: int) -> int:
        for records in self.consumer.poll(timeout_ms=timeout_ms, max_records=50_000).values():
            if self.first_at is None and records:
                self.first_at = time.monotonic()
            for record in records:
                value = orjson.loads(record.value)
                key = (value[self.by], value["window_start"])
                self.duplicates += key in self.results
                self.results[key] = value
        return len(self.results)

    def close(self) -> None:
        self.consumer.close()


def run_quix(
    bootstrap: str,
    input_topic: str,
    n: int,
    processes: int,
    by: str,
    *,
    readings: Sequence[dict[str, Any]] | None = None,
    input_key: str = "sensor_id",
    partitions: int | None = None,
    commit_interval: float = 5.0,
    closing: str = "key",
    grace_ms: int = 0,
    timeout: float = 300,
    logs: str | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """Run the quix-streams peer on `input_topic` (n readings, `readings` if given, else read
    back) until every expected window is in its output, read_committed. Wall time from just
    before the spawn; CPU of the process trees (launcher + workers) and the Kafka broker taken
    at that moment; then SIGTERM. The output topic, the group and quix-streams' internal topics
    are deleted unless `keep`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import KAFKA, ProcessSampler, ServerCpu, self_cpu, steady_rate, timeline

    if readings is None:
        readings = read_readings(bootstrap, input_topic)
    if len(readings) != n:
        raise ValueError(f"{input_topic} holds {len(readings)} readings, not {n}")
    truth = expected(readings, by)
    run = f"{uuid.uuid4().hex[:6]}"
    output = f"bench-agg-{run}-quix-out-{by.split('_')[0]}"
    group = f"bench-agg-{run}-quix-{by.split('_')[0]}"
    partitions = partitions or partition_count(bootstrap, input_topic)
    create_topic(bootstrap, output, partitions)
    state_dir = tempfile.mkdtemp(prefix="bench-agg-quix-")
    command = [
        str(PEERS_PYTHON), __file__, "quix",
        "--bootstrap", bootstrap, "--input", input_topic, "--output", output,
        "--processes", str(processes), "--group", group, "--by", by, "--input-key", input_key,
        "--commit-interval", str(commit_interval), "--closing", closing, "--grace-ms", str(grace_ms),
        "--state-dir", state_dir,
    ]  # fmt: skip
    if logs:
        Path(logs).mkdir(parents=True, exist_ok=True)
        command += ["--logs", logs, "--log-level", "INFO"]
    input_end = topic_sizes(bootstrap, [input_topic])[input_topic]  # readings and closers
    quiet = max(10.0, 3 * commit_interval)  # no new window for this long once all input is committed
    reader = ResultReader(bootstrap, output, by)
    progress = CommittedPoller(bootstrap, group, input_topic)
    server = ServerCpu([KAFKA])
    notes: list[str] = []
    server.begin()
    own_cpu = self_cpu()  # this process (the result reader) during the phase
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    sampler = ProcessSampler(process.pid)
    done_at = None
    last_sample = 0.0
    last_count, changed_at = 0, started
    try:
        while True:
            count = reader.poll(200)
            now = time.monotonic()
            if count != last_count:
                last_count, changed_at = count, now
            if now - last_sample > 0.5:
                sampler.sample()
                progress.poll()
                last_sample = now
            if all(key in reader.results for key in truth):
                done_at = time.monotonic()
                sampler.sample()
                break
            if process.poll() is not None:
                notes.append(f"exited early with {process.returncode}")
                break
            if progress.samples and progress.samples[-1][1] >= input_end and now - changed_at > quiet:
                notes.append(
                    f"all input committed, and no new window for {quiet:.0f}s: stopped with "
                    f"{count} of {len(truth)} windows"
                )
                break
            if now - started > timeout:
                notes.append(f"timed out after {timeout:.0f}s with {count} of {len(truth)} windows")
                break
    finally:
        server.end()
        own_cpu = self_cpu() - own_cpu
        cpu = sampler.total_cpu
        stop_started = time.monotonic()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        stop_s = time.monotonic() - stop_started
        # Whatever committed while stopping, to count duplicates and late windows too.
        reader.poll(1000)
        reader.close()
        progress.close()
        written = topic_sizes(bootstrap, [output], group)
        if not keep:
            cleanup(bootstrap, group, [output])
        shutil.rmtree(state_dir, ignore_errors=True)
    problems = verify(reader.results, truth)
    if reader.duplicates:
        problems.append(f"{reader.duplicates} windows written more than once")
    if code != 0:
        problems.append(f"exit code {code} after SIGTERM (want 0)")
    seconds = (done_at - started) if done_at else float("nan")
    rss = sorted(rss / MIB for pid, rss in sampler.rss.items() if sampler.roles.get(pid) == "worker")
    notes.append(f"SIGTERM -> exit {code} in {stop_s:.1f}s")
    if reader.first_at is not None:
        notes.append(f"first window visible after {reader.first_at - started:.1f}s")
    samples = [(t - started, c) for t, c in progress.samples]
    first_commit = next((t for t, c in samples if c > 0), None)
    # Commits come once per commit interval: with fewer than 5 distinct steps the rate means nothing.
    steady = steady_rate(samples, n) if len({c for _, c in samples}) >= 6 else None
    if first_commit is not None:
        notes.append(f"first input offsets committed after {first_commit:.1f}s")
    notes.append("input committed by second: " + timeline(progress.samples, started))
    return {
        "label": f"quix-streams {processes} processes, by {by}",
        "records": n,
        "windows": len(truth),
        "seconds": seconds,
        "records_per_s": n / seconds if done_at else float("nan"),
        "steady_records_per_s": steady,
        "cpu_s": cpu,
        "cpu_s_per_million": cpu / n * 1e6,
        "kafka_cpu_s_per_million": server.used[0] / n * 1e6,
        "machine_busy_s": server.used[-1],
        "bench_cpu_s": own_cpu,
        "max_rss_mib": max(rss, default=float("nan")),
        "rss_mib_per_worker": [round(r) for r in rss],
        "launcher_rss_mib": sampler.rss.get(process.pid, 0) / MIB,
        "written": written,
        "ok": done_at is not None and not problems and not server.restarted,
        "problems": problems + server.restarted,
        "notes": notes,
    }


class CommittedPoller:
    """The group's committed offsets on the input topic, summed: progress, at the pace of its
    commits (with exactly-once, one transaction per commit interval)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        from kafka import KafkaAdminClient

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.group, self.topic = group, topic
        self.samples: list[tuple[float, int]] = []

    def poll(self) -> None:
        try:
            offsets = self.admin.list_group_offsets(self.group)[self.group]
        except Exception:  # the group does not exist yet
            return
        total = sum(m.offset for tp, m in offsets.items() if tp.topic == self.topic and m.offset > 0)
        self.samples.append((time.monotonic(), total))

    def close(self) -> None:
        self.admin.close()


def topic_sizes(bootstrap: str, topics: Sequence[str], group: str | None = None) -> dict[str, int]:
    """End offsets summed over partitions (transaction markers included) of `topics` and of
    quix-streams' internal topics of `group`."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        names = list(topics) + sorted(t for t in consumer.topics() if group and f"__{group}--" in t)
        sizes = {}
        for name in names:
            parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            sizes[name] = sum(consumer.end_offsets(parts).values())
        return sizes
    finally:
        consumer.close()


def partition_count(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


def cleanup(bootstrap: str, group: str | None, topics: Sequence[str]) -> None:
    """Delete the group, `topics`, and quix-streams' repartition/changelog topics of the group."""
    from kafka import KafkaAdminClient

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import delete_group

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        doomed = list(topics)
        if group:
            try:
                delete_group(admin, group)
            except Exception as exc:
                print(f"cleanup: consumer group {group}: {exc}", file=sys.stderr)
            doomed += [t for t in admin.list_topics() if f"__{group}--" in t]
        existing = set(admin.list_topics())
        doomed = [t for t in doomed if t in existing]
        if doomed:
            admin.delete_topics(doomed)
    except Exception as exc:
        print(f"cleanup: {exc}", file=sys.stderr)
    finally:
        admin.close()


# -- the command line -----------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:,.0f}"


def report(result: dict[str, Any]) -> str:
    return (
        f"| {result['label']} | {result['records']:,} | {result['windows']:,} | {result['seconds']:.1f} | "
        f"{result['records_per_s']:,.0f} | {fmt(result['steady_records_per_s'])} | "
        f"{result['cpu_s_per_million']:.1f} | "
        f"{result['kafka_cpu_s_per_million']:.1f} | {result['max_rss_mib']:.0f} | "
        f"{'yes' if result['ok'] else 'NO'} |"
    )


def bench(args: argparse.Namespace) -> int:
    topic = f"bench-agg-{uuid.uuid4().hex[:6]}-in"
    produced = produce_readings(
        args.bootstrap, topic, args.records, args.partitions, placement=args.placement
    )
    print(
        f"produced {args.records:,} readings + {produced.closers} closers to {topic} "
        f"({args.partitions} partitions, placed by {args.placement}) in {produced.seconds:.1f}s",
        flush=True,
    )
    results = []
    try:
        for by in args.by:
            result = run_quix(
                args.bootstrap,
                topic,
                args.records,
                args.processes,
                by,
                readings=produced.readings,
                partitions=args.partitions,
                commit_interval=args.commit_interval,
                closing=args.closing,
                grace_ms=args.grace_ms,
                timeout=args.timeout,
                logs=args.logs and str(Path(args.logs) / by),
            )
            results.append(result)
            print(report(result), flush=True)
            for line in result["problems"] + result["notes"]:
                print(f"    {line}", flush=True)
            for name, size in result["written"].items():
                print(f"    {name}: {size:,} offsets", flush=True)
    finally:
        cleanup(args.bootstrap, None, [topic])
    print()
    print(
        "| run | records | windows | wall s | records/s | input steady 10-90% rec/s | CPU s per M | "
        "Kafka CPU s per M | max RSS per process MiB | ok |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for result in results:
        print(report(result))
    return 0 if all(r["ok"] for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    quix = commands.add_parser("quix", help="run the quix-streams peer (in .venv-peers)")
    add_quix_arguments(quix)
    run = commands.add_parser("bench", help="produce a data set and measure the peer on it")
    run.add_argument("--bootstrap", default=os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    run.add_argument("--records", type=int, default=200_000)
    run.add_argument("--partitions", type=int, default=6)
    run.add_argument("--processes", type=int, default=2)
    run.add_argument(
        "--placement",
        choices=("home", "key"),
        default="home",
        help="partition by home_id (default) or by the record key (sensor_id)",
    )
    run.add_argument("--by", nargs="+", choices=GROUPINGS, default=list(GROUPINGS))
    run.add_argument("--commit-interval", type=float, default=5.0)
    run.add_argument("--closing", choices=("key", "partition"), default="key")
    run.add_argument("--grace-ms", type=int, default=0)
    run.add_argument("--timeout", type=float, default=300)
    run.add_argument("--logs", default=None, metavar="DIR")
    make = commands.add_parser("produce", help="only produce a data set (the truth's sizes printed)")
    make.add_argument("--bootstrap", default=os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    make.add_argument("--topic", required=True)
    make.add_argument("--records", type=int, default=200_000)
    make.add_argument("--partitions", type=int, default=6)
    make.add_argument("--placement", choices=("home", "key"), default="home")
    args = parser.parse_args(argv)
    if args.command == "produce":
        produced = produce_readings(
            args.bootstrap, args.topic, args.records, args.partitions, placement=args.placement
        )
        windows = {by: len(expected(produced.readings, by)) for by in GROUPINGS}
        print(f"{args.topic}: {args.records:,} readings + {produced.closers} closers; windows {windows}")
        return 0
    if args.command == "quix":
        return quix_worker(args) if args.worker is not None else quix_launcher(args)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
