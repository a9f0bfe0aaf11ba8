"""Worker memory over a long run: Kafka -> `conductor start` -> Elasticsearch, RSS of every
worker sampled every few seconds until the group has committed N records.

    .venv/bin/python bench/memory_curve.py --records 10000000 --workers 3

One run:
  1. streams N readings (conductor.readings.readings, keyed by sensor) to a new 6-partition topic
     (kept whatever their age), without holding them in memory;
  2. `conductor start --workers W` into one Elasticsearch index with `PK sensor_id`: every
     reading is a full index request, but the index holds one document per sensor, so
     Elasticsearch's heap and disk stay flat over ten million records;
  3. every --sample-s seconds: RSS of the supervisor and each worker, CPU, and the offsets the
     group committed; until every offset is committed, then SIGTERM (exit 0 wanted);
  4. the curve as a Markdown table into docs/BENCHMARKS.md (between this script's markers);
     topic, index and consumer group are deleted at the end.

The goal (issue 13): under 100 MiB RSS per worker, steady, over 10 million records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import psutil
from common import (
    MIB,
    PARTITIONS,
    ROOT,
    add_output_arguments,
    write_doc,
    write_properties,
)

from conductor.readings import readings

MARK_BEGIN = "<!-- bench/memory_curve.py: generated from here -->"
MARK_END = "<!-- bench/memory_curve.py: generated until here -->"
SECTION = """## Worker memory over a long run (`bench/memory_curve.py`)

What it measures: the RSS of every worker of `conductor start --workers W` over a run of many
millions of readings into Elasticsearch (one index, `PK sensor_id`, so the store stays small while
every reading is an index request), sampled every few seconds until the consumer group has
committed them all. The goal (issue 13): under 100 MiB per worker, steady.

"""
NEW_FILE = "# Benchmarks\n\n"
START_MS = 1_700_000_000_000  # fixed, so runs produce the same readings


def produce(bootstrap: str, topic: str, count: int) -> float:
    """Create the topic and stream `count` readings to it; the seconds it took."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=PARTITIONS,
                    replication_factor=1,
                    topic_configs={"retention.ms": "-1"},
                )
            ]
        )
    finally:
        admin.close()
    started = time.monotonic()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1, max_request_size=4 * MIB
    )
    try:
        for n, (key, value) in enumerate(readings(count, start_ms=START_MS)):
            producer.send(topic, key=key, value=value, timestamp_ms=START_MS + n * 1000)
            if n % 500_000 == 499_999:
                print(f"  produced {n + 1:,}", flush=True)
        producer.flush()
    finally:
        producer.close()
    return time.monotonic() - started


def committed(admin: object, group: str, topic: str) -> int:
    try:
        offsets = admin.list_group_offsets(group)[group]  # type: ignore[attr-defined]
    except Exception:
        return -1
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def rest_pid(state_dir: Path) -> int | None:
    """The REST server's process (forked by the supervisor, so its command line is the same)."""
    for path in state_dir.glob("*/supervisor.json"):
        try:
            return orjson.loads(path.read_bytes()).get("rest_pid")
        except (OSError, orjson.JSONDecodeError):
            return None
    return None


def sample(root: psutil.Process, rest: int | None) -> tuple[float, float, list[float]]:
    """(supervisor RSS MiB, CPU seconds of the tree, worker RSS MiB), the REST server's RSS not
    counted as a worker's."""
    try:
        children = root.children(recursive=True)
    except psutil.Error:
        return 0.0, 0.0, []
    cpu, workers = 0.0, []
    supervisor = 0.0
    for proc in [root, *children]:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                rss = proc.memory_info().rss / MIB
        except psutil.Error:
            continue
        cpu += times.user + times.system
        if proc.pid == root.pid:
            supervisor = rss
        elif proc.pid != rest:
            workers.append(rss)
    return supervisor, cpu, workers


def run(args: argparse.Namespace) -> str:
    from kafka import KafkaAdminClient

    run_id = uuid.uuid4().hex[:8]
    topic, index, name = f"bench-mem-{run_id}", f"bench_mem_{run_id}", f"bench-mem-{run_id}"
    group = f"connect-{name}"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-mem-{run_id}-"))
    print(f"run {run_id}: producing {args.records:,} readings to {topic}", flush=True)
    produce_s = produce(args.kafka, topic, args.records)
    print(f"  produced in {produce_s:.0f}s", flush=True)
    host, port = args.elasticsearch.removeprefix("http://").rsplit(":", 1)
    config = write_properties(
        workdir,
        name,
        [
            f"name={name}",
            "connector.class=io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
            f"tasks.max={args.workers}",
            f"topics={topic}",
            f"bootstrap.servers={args.kafka}",
            f"connect.elastic.hosts={host}",
            f"connect.elastic.port={port}",
            f"connect.elastic.kcql=INSERT INTO {index} SELECT * FROM {topic} PK sensor_id",
        ],
    )
    env = {**os.environ, "CONDUCTOR_STATE_DIR": str(workdir / "state")}
    log = (workdir / "conductor.log").open("wb")
    admin = KafkaAdminClient(bootstrap_servers=args.kafka)
    samples: list[tuple[float, int, float, float, list[float]]] = []
    started = time.monotonic()
    process = subprocess.Popen(
        [
            args.conductor,
            "--log-level",
            "WARNING",
            "start",
            "--workers",
            str(args.workers),
            "--config",
            str(config),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    root = psutil.Process(process.pid)
    exit_code = None
    try:
        done = -1
        while done < args.records:
            time.sleep(args.sample_s)
            if process.poll() is not None:
                raise RuntimeError(
                    f"conductor exited with {process.returncode}; see {workdir / 'conductor.log'}"
                )
            supervisor, cpu, workers = sample(root, rest_pid(workdir / "state"))
            done = committed(admin, group, topic)
            samples.append((time.monotonic() - started, done, supervisor, cpu, workers))
            print(
                f"  {samples[-1][0]:6.0f}s {max(done, 0):>11,} committed; workers RSS "
                f"{', '.join(f'{w:.0f}' for w in workers)} MiB; supervisor {supervisor:.0f} MiB",
                flush=True,
            )
            if time.monotonic() - started > args.timeout:
                raise RuntimeError(f"not done after {args.timeout:.0f}s: {done:,} committed")
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        admin.close()
        cleanup(args, topic, index, group)
    return render(args, samples, produce_s, exit_code, run_id)


def cleanup(args: argparse.Namespace, topic: str, index: str, group: str) -> None:
    from elasticsearch import Elasticsearch
    from kafka import KafkaAdminClient

    client = Elasticsearch(args.elasticsearch, request_timeout=60)
    try:
        client.indices.delete(index=index, ignore_unavailable=True)
    finally:
        client.close()
    admin = KafkaAdminClient(bootstrap_servers=args.kafka)
    try:
        admin.delete_consumer_groups([group])
        admin.delete_topics([topic])
    except Exception as error:
        print(f"  cleanup: {error}", file=sys.stderr)
    finally:
        admin.close()


def render(
    args: argparse.Namespace,
    samples: list[tuple[float, int, float, float, list[float]]],
    produce_s: float,
    exit_code: int | None,
    run_id: str,
) -> str:
    """The curve: about 25 rows spread over the run, every sample's maximum kept in the summary."""
    worker_peak = max((max(s[4]) for s in samples if s[4]), default=0.0)
    wall, total = samples[-1][0], samples[-1][1]
    cpu = samples[-1][3]
    tenth = next((s for s in samples if s[1] >= total / 10), samples[0])
    late = [max(s[4]) for s in samples if s[1] >= total / 2 and s[4]]
    step = max(1, len(samples) // 25)
    rows = samples[::step]
    if rows[-1] is not samples[-1]:
        rows.append(samples[-1])
    workers = max(len(s[4]) for s in samples)
    header = "| s | committed | rec/s since last row | " + " | ".join(
        f"worker {i + 1} MiB" for i in range(workers)
    )
    lines = [header + " | supervisor MiB |", "|" + "---:|" * (workers + 4)]
    previous = (0.0, 0)
    for t, done, supervisor, _, rss in rows:
        rate = (done - previous[1]) / (t - previous[0]) if t > previous[0] else 0.0
        previous = (t, done)
        cells = [f"{r:.0f}" for r in sorted(rss)] + [""] * (workers - len(rss))
        lines.append(
            f"| {t:.0f} | {max(done, 0):,} | {rate:,.0f} | " + " | ".join(cells) + f" | {supervisor:.0f} |"
        )
    verdict = "meets" if worker_peak < 100 else "misses"
    return "\n".join(
        [
            MARK_BEGIN,
            "",
            f"### Latest run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
            f"- machine: {os.cpu_count()} CPUs, Linux {platform.release()}; run {run_id}",
            f"- {args.records:,} readings produced in {produce_s:.0f}s; `conductor start --workers {args.workers}`, "
            f"defaults; every offset committed after {wall:.0f}s ({total / wall:,.0f} records/s, "
            f"{cpu / total * 1e6:.1f} CPU-s per million for the supervisor and workers); SIGTERM -> exit {exit_code}",
            f"- worker RSS: at most **{worker_peak:.0f} MiB** over the run ({verdict} the 100 MiB goal); "
            f"largest worker at 10% of the records {max(tenth[4], default=0):.0f} MiB, over the second half "
            f"{min(late, default=0):.0f}-{max(late, default=0):.0f} MiB",
            "",
            *lines,
            "",
            MARK_END,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="for the whole conductor run, s")
    parser.add_argument("--kafka", default=os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument(
        "--elasticsearch", default=os.environ.get("CONDUCTOR_ELASTICSEARCH_URL", "http://127.0.0.1:19200")
    )
    parser.add_argument("--conductor", default=str(Path(sys.executable).parent / "conductor"))
    add_output_arguments(parser, keep_help="(unused: the topic is always deleted)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    block = run(args)
    print()
    print(block)
    if args.output != "-":
        write_doc(Path(args.output), block, MARK_BEGIN, MARK_END, NEW_FILE, SECTION)
        print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
