"""End-to-end benchmark: Kafka -> `conductor start` -> Elasticsearch, against the limit measured
in the same run (the same documents bulk-loaded straight into Elasticsearch by the client).

    /work/venv/bin/python bench/es_pipeline.py --records 200000 --workers 1,2,3

One run:
  1. produces N temperature readings (conductor.readings.readings) to a new 6-partition topic,
     Kafka record timestamp = the reading's timestamp (1 s apart, so 200,000 readings cover
     3 calendar days and 3 daily indexes);
  2. the limit: the same documents (same ids, daily index names and JSON bodies) bulk-loaded by
     the Python client, in a few variants (helpers.streaming_bulk, helpers.parallel_bulk, raw
     NDJSON through perform_request, 1 or 2 threads); the fastest is the limit;
  3. per worker count: `conductor start --workers W` on a fresh connector name (fresh consumer
     group from offset 0) and fresh indexes, timed from the process start until Elasticsearch
     counts N documents; CPU and RSS of the supervisor and every worker are sampled meanwhile;
     then SIGTERM and a check that it exits 0;
  4. CPU of Elasticsearch and Kafka (and of the whole machine) per phase, since on a small
     machine they share the cores with conductor;
  5. a Markdown table on stdout and in docs/BENCHMARKS.md (between the bench markers; the
     rest of that file is kept); topic, indexes and consumer groups are deleted at the end.

`--profile` adds one in-process worker run under cProfile (fresh group, fresh indexes) and
prints its hot spots: the worker `conductor start` forks, run in this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
from common import (
    KAFKA,
    MIB,
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
from elasticsearch import Elasticsearch, helpers
from elasticsearch.serializer import OrjsonSerializer

from conductor.readings import readings

BULK_HEADERS = {"content-type": "application/x-ndjson", "accept": "application/json"}
MARK_BEGIN = "<!-- bench/es_pipeline.py: generated from here -->"
MARK_END = "<!-- bench/es_pipeline.py: generated until here -->"
ELASTICSEARCH = Server("Elasticsearch", "ES", "org.elasticsearch.bootstrap.Elasticsearch")
SERVERS = (ELASTICSEARCH, KAFKA)


# -- the data ---------------------------------------------------------------------------------


@dataclass
class Dataset(Readings):
    prefix: str  # KCQL target; the daily indexes are prefix + "_YYYY-MM-dd"
    indexes: list[str]  # per record
    ids: list[str]  # per record
    per_index: dict[str, int]

    @property
    def pattern(self) -> str:
        return self.prefix + "_*"


def build_dataset(count: int, run_id: str) -> Dataset:
    """The readings, and for each the document Elasticsearch must end up with: the KCQL
    `PK sensor_id, reading_id` id and the `WITHINDEXSUFFIX=_{YYYY-MM-dd}` (UTC, record
    timestamp) index, computed here independently of conductor."""
    start_ms = int(time.time() * 1000) - count * 1000
    prefix = f"bench_{run_id}_"
    keys, values, stamps, indexes, ids = [], [], [], [], []
    day_names: dict[int, str] = {}
    for n, (key, value) in enumerate(readings(count, start_ms=start_ms)):
        stamp = start_ms + n * 1000  # what readings() writes into "timestamp"
        day = stamp // 86_400_000
        index = day_names.get(day)
        if index is None:
            index = day_names[day] = prefix + time.strftime("_%Y-%m-%d", time.gmtime(stamp // 1000))
        keys.append(key)
        values.append(value)
        stamps.append(stamp)
        indexes.append(index)
        ids.append(f"{key.decode()}-{n}")
    per_index: dict[str, int] = {}
    for index in indexes:
        per_index[index] = per_index.get(index, 0) + 1
    return Dataset(
        topic=f"bench-{run_id}",
        start_ms=start_ms,
        keys=keys,
        values=values,
        timestamps=stamps,
        prefix=prefix,
        indexes=indexes,
        ids=ids,
        per_index=per_index,
    )


# -- servers -------------------------------------------------------------------------------------


def wait_for_es(es_url: str, bootstrap: str, timeout: float = 180) -> None:
    """Wait until Elasticsearch answers a cluster health and Kafka a metadata request (other test
    runs on this machine stop and start the servers)."""

    def es_answers() -> None:
        client = Elasticsearch(es_url, request_timeout=5)
        try:
            client.cluster.health(wait_for_status="yellow", timeout="5s")
        finally:
            client.close()

    wait_for_servers([es_answers, kafka_answers(bootstrap)], timeout)


# -- progress: Elasticsearch's count ---------------------------------------------------------------


class EsCountPoller(CountPoller):
    """Refresh + _count every `interval` s (faster near the end) on its own client; the same
    load on Elasticsearch in the limit and in the conductor runs."""

    def __init__(self, url: str, pattern: str, target: int, interval: float, fast_interval: float) -> None:
        super().__init__(target, interval, fast_interval)
        self.client = Elasticsearch(url, request_timeout=30)
        self.pattern = pattern

    def count(self) -> int:
        try:
            self.client.indices.refresh(index=self.pattern, ignore_unavailable=True, allow_no_indices=True)
            return self.client.count(index=self.pattern, ignore_unavailable=True, allow_no_indices=True)[
                "count"
            ]
        except Exception:
            self.errors += 1
            return self.samples[-1][1] if self.samples else 0

    def close(self) -> None:
        self.client.close()


# -- Elasticsearch housekeeping -----------------------------------------------------------------


def es_client(url: str, **kwargs: Any) -> Elasticsearch:
    return Elasticsearch(
        url, request_timeout=120, serializers={"application/json": OrjsonSerializer()}, **kwargs
    )


def delete_indexes(client: Elasticsearch, pattern: str) -> None:
    names = list(
        client.indices.get(
            index=pattern, ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all"
        )
    )
    for start in range(0, len(names), 50):
        client.indices.delete(index=",".join(names[start : start + 50]))


def index_counts(client: Elasticsearch, pattern: str) -> dict[str, int]:
    client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    rows = client.cat.indices(index=pattern, format="json", h="index,docs.count")
    return {row["index"]: int(row["docs.count"]) for row in rows}


def check_documents(client: Elasticsearch, data: Dataset, samples: int = 20) -> list[str]:
    """Problems with what Elasticsearch holds: per-index counts, and a few documents' ids and
    bodies compared with the readings produced."""
    problems = []
    counts = index_counts(client, data.pattern)
    if counts != data.per_index:
        problems.append(f"index counts {counts} != expected {data.per_index}")
    step = max(1, data.count // samples)
    picks = list(range(0, data.count, step))[:samples] + [data.count - 1]
    docs = client.mget(docs=[{"_index": data.indexes[n], "_id": data.ids[n]} for n in picks])["docs"]
    for n, doc in zip(picks, docs, strict=True):
        if not doc.get("found"):
            problems.append(f"document {data.indexes[n]}/{data.ids[n]} not found")
        elif doc["_source"] != orjson.loads(data.values[n]):
            problems.append(f"document {data.ids[n]}: body {doc['_source']} != {data.values[n]!r}")
    return problems


# -- the limit: the client straight into Elasticsearch ----------------------------------------------


def raw_lines(data: Dataset, start: int, stop: int) -> bytes:
    dumps, indexes, ids, values = orjson.dumps, data.indexes, data.ids, data.values
    parts = []
    for n in range(start, stop):
        parts.append(dumps({"index": {"_index": indexes[n], "_id": ids[n]}}))
        parts.append(values[n])
    parts.append(b"")
    return b"\n".join(parts)


def load_raw(
    client: Elasticsearch, data: Dataset, chunk: int, threads: int, progress: Callable[[int], None]
) -> None:
    def post(start: int) -> None:
        stop = min(start + chunk, data.count)
        response = client.perform_request(
            "POST", "/_bulk", headers=BULK_HEADERS, body=raw_lines(data, start, stop)
        ).body
        if response["errors"]:
            bad = [item for item in response["items"] if next(iter(item.values()))["status"] >= 300]
            raise RuntimeError(f"bulk: {len(bad)} items failed, first: {bad[0]}")
        progress(stop - start)

    starts = range(0, data.count, chunk)
    if threads == 1:
        for start in starts:
            post(start)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(post, starts))


def helper_actions(data: Dataset) -> list[dict[str, Any]]:
    loads = orjson.loads
    return [
        {"_index": data.indexes[n], "_id": data.ids[n], "_source": loads(data.values[n])}
        for n in range(data.count)
    ]


def load_helpers(
    client: Elasticsearch,
    actions: list[dict[str, Any]],
    chunk: int,
    threads: int,
    progress: Callable[[int], None],
) -> None:
    if threads == 1:
        results = helpers.streaming_bulk(client, actions, chunk_size=chunk, max_chunk_bytes=100 * MIB)
    else:
        results = helpers.parallel_bulk(
            client,
            actions,
            thread_count=threads,
            chunk_size=chunk,
            queue_size=threads * 2,
            max_chunk_bytes=100 * MIB,
        )
    done = 0
    for ok, item in results:
        if not ok:
            raise RuntimeError(f"bulk item failed: {item}")
        done += 1
        if done == chunk:
            progress(done)
            done = 0
    if done:
        progress(done)


VARIANTS = {
    "streaming": ("helpers.streaming_bulk", 1),
    "parallel": ("helpers.parallel_bulk, 2 threads", 2),
    "raw": ("raw NDJSON (orjson) via perform_request", 1),
    "raw2": ("raw NDJSON (orjson) via perform_request, 2 threads", 2),
}


def warm_up(url: str, kafka_bootstrap: str, data: Dataset, records: int = 40_000) -> None:
    """A throwaway bulk load first, so the first limit variant does not pay for a cold
    Elasticsearch (JIT, caches) more than the others."""
    wait_for_es(url, kafka_bootstrap)
    client = es_client(url)
    sample = Dataset(
        topic=data.topic,
        start_ms=data.start_ms,
        keys=[],
        values=data.values[:records],
        timestamps=[],
        prefix=data.prefix + "warmup_",
        indexes=[data.prefix + "warmup__x"] * min(records, data.count),
        ids=data.ids[:records],
        per_index={},
    )
    load_raw(client, sample, 5000, 1, lambda n: None)
    delete_indexes(client, sample.pattern)
    client.close()


def measure_limit(
    url: str,
    kafka_bootstrap: str,
    data: Dataset,
    variant: str,
    chunk: int,
    server: ServerCpu,
    poll: float,
    fast_poll: float,
) -> Result:
    label, threads = VARIANTS[variant]
    wait_for_es(url, kafka_bootstrap)
    result = Result(f"limit: {label}, chunk {chunk}", "limit", data.count, variant=(variant, chunk))
    client = es_client(url, connections_per_node=max(2, threads + 1))
    admin = es_client(url)
    delete_indexes(admin, data.pattern)
    actions = helper_actions(data) if variant in ("streaming", "parallel") else None  # before the clock
    lock = threading.Lock()
    progress: list[tuple[float, int]] = []
    acked = 0

    def note(n: int) -> None:
        nonlocal acked
        with lock:
            acked += n
            progress.append((time.monotonic(), acked))

    poller = BackgroundPoller(EsCountPoller(url, data.pattern, data.count, poll, fast_poll))
    server.begin()
    cpu0 = self_cpu()
    started = time.monotonic()
    poller.start()
    try:
        if actions is not None:
            load_helpers(client, actions, chunk, threads, note)
        else:
            load_raw(client, data, chunk, threads, note)
        admin.indices.refresh(index=data.pattern)  # visible, as the conductor runs are timed
        visible = admin.count(index=data.pattern)["count"]
        elapsed = time.monotonic() - started
    finally:
        poller_cpu = poller.stop()
        poller.poller.close()
    result.client_cpu = self_cpu() - cpu0 - poller_cpu
    server.end()
    result.server = server
    if server.restarted:
        result.ok = False
        result.notes += server.restarted
    result.seconds = elapsed
    result.steady = steady_rate([(t - started, n) for t, n in progress], data.count)
    if visible != data.count:
        result.ok = False
        result.notes.append(f"Elasticsearch counts {visible}, not {data.count}")
    problems = check_documents(admin, data)
    if problems:
        result.ok = False
        result.notes += problems
    delete_indexes(admin, data.pattern)
    client.close()
    admin.close()
    del actions
    return result


# -- conductor end to end ----------------------------------------------------------------------------


def write_config(
    directory: Path, name: str, data: Dataset, url: str, bootstrap: str, workers: int, extra: Sequence[str]
) -> Path:
    host_port = re.sub(r"^https?://", "", url).rstrip("/")
    host, port = host_port.rsplit(":", 1)
    return write_properties(
        directory,
        name,
        [
            f"name={name}",
            "connector.class=io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
            f"tasks.max={workers}",
            f"topics={data.topic}",
            f"bootstrap.servers={bootstrap}",
            f"connect.elastic.hosts={host}",
            f"connect.elastic.port={port}",
            f"connect.elastic.kcql=INSERT INTO {data.prefix} SELECT * FROM {data.topic} "
            f"PK sensor_id, reading_id WITHINDEXSUFFIX=_{{YYYY-MM-dd}}",
            "connect.elastic.error.policy=RETRY",
            "connect.elastic.max.retries=10",
            "connect.elastic.retry.interval=5000",
            *extra,
        ],
    )


def conductor_run(
    args: argparse.Namespace,
    data: Dataset,
    workers: int,
    run_id: str,
    workdir: Path,
    server: ServerCpu,
    groups: list[str],
    attempt: int = 0,
) -> Result:
    wait_for_es(args.es, args.kafka)
    name = conductor_name(run_id, workers, attempt)
    groups.append(f"connect-{name}")
    admin = es_client(args.es)
    delete_indexes(admin, data.pattern)
    config = write_config(workdir, name, data, args.es, args.kafka, workers, args.conductor_setting)
    poller = EsCountPoller(args.es, data.pattern, data.count, args.poll, args.fast_poll)
    result = run_conductor(
        args,
        name=name,
        config=config,
        workers=workers,
        workdir=workdir,
        server=server,
        poller=poller,
        check=lambda: check_documents(admin, data),
    )
    delete_indexes(admin, data.pattern)
    admin.close()
    return result


# -- one worker under cProfile, in this process ---------------------------------------------------------


def profile_worker(
    args: argparse.Namespace, data: Dataset, run_id: str, workdir: Path, server: ServerCpu, groups: list[str]
) -> tuple[Result, str, Any]:
    wait_for_es(args.es, args.kafka)
    name = f"bench-{run_id}-profile"
    groups.append(f"connect-{name}")
    admin = es_client(args.es)
    delete_indexes(admin, data.pattern)
    config_path = write_config(workdir, name, data, args.es, args.kafka, 1, args.conductor_setting)
    result = Result("one worker in-process under cProfile", "profile", data.count)
    run = profile_in_process(config_path, data.count, args.profile_top, args.profile_out, server)
    result.seconds = run.seconds
    result.client_cpu = run.cpu
    result.server = server
    admin.indices.refresh(index=data.pattern)
    visible = admin.count(index=data.pattern)["count"]
    result.ok = run.code == 0 and visible == data.count
    result.notes.append(f"worker exit {run.code}; counts {run.counts}")
    delete_indexes(admin, data.pattern)
    admin.close()
    return result, run.text, run.stats


# -- report --------------------------------------------------------------------------------------------


def versions(es_url: str, kafka_proc: psutil.Process | None) -> dict[str, str]:
    import elasticsearch
    import kafka

    out = {
        "python": platform.python_version(),
        "elasticsearch-py": elasticsearch.__versionstr__,
        "kafka-python": kafka.__version__,
        "orjson": orjson.__version__,
    }
    try:
        client = es_client(es_url)
        nodes = client.nodes.info(filter_path="nodes.*.version")["nodes"]
        out["Elasticsearch"] = ", ".join(sorted({n["version"] for n in nodes.values()}))
        client.close()
    except Exception as exc:
        out["Elasticsearch"] = f"unknown ({exc})"
    out["Kafka"] = kafka_version(kafka_proc)
    commit = conductor_version()
    if commit is not None:
        out["conductor"] = commit
    return out


INTRO = """# Benchmarks

## Kafka -> conductor -> Elasticsearch (`bench/es_pipeline.py`)

What it measures: how fast `conductor start` moves JSON temperature readings from a Kafka topic
into daily Elasticsearch indexes, end to end, compared with **the limit**: the same documents
(same ids, same daily index names, same JSON bodies) bulk-loaded straight into Elasticsearch by
the Python client at its best settings. The limit is measured in the same run, right before the
conductor runs, because absolute times on a small shared machine drift from one run to the next;
the ratio is what to compare. The goal (from the issue): end to end >= 80% of the limit.

Method, per run of the script:

- N readings (`conductor.readings.readings`, 1 s apart, keyed by sensor) are produced to a new
  6-partition topic with the reading's time as the record timestamp, so
  `WITHINDEXSUFFIX=_{YYYY-MM-dd}` spreads them over daily indexes as in the real job
  (200,000 readings: 3 days). KCQL:
  `INSERT INTO bench_<id>_ SELECT * FROM <topic> PK sensor_id, reading_id WITHINDEXSUFFIX=_{YYYY-MM-dd}`.
- The limit: a few client variants (`helpers.streaming_bulk`, `helpers.parallel_bulk` with 2
  threads, raw NDJSON built with orjson and sent with `perform_request("POST", "/_bulk")` on 1 or
  2 threads; chunk sizes 2000-5000); indexes deleted before each; the fastest is the limit. Its
  inputs (action dicts, or the raw JSON values) are ready before the clock starts; the clock
  stops once a refresh makes all N documents countable. Right before each conductor run the
  fastest variant runs once more ("limit just before"), and "% of limit" compares with that
  one: other jobs on a shared machine change the limit within minutes.
- Each conductor run: a fresh connector name (so a fresh consumer group reading from offset 0)
  and fresh indexes; the clock starts just before `conductor start` is spawned (imports, fork,
  group join: all included) and stops at the first `_count` (after a refresh) that sees N
  documents. `_count` is polled every 0.5 s, every 0.1 s past 90% (the same poller also runs
  during the limit, so Elasticsearch does the same refreshes). "steady 10-90%" is the rate
  between the moments 10% and 90% of the documents were there (interpolated). Then SIGTERM; the
  run only counts if conductor exits 0 and the per-index counts and a sample of documents match.
- CPU: "client/conductor CPU" is the benchmark process's own CPU (user+sys, minus its count
  poller) for the limit rows, and the supervisor plus all workers for the conductor rows, in
  CPU seconds per million records. Elasticsearch and Kafka CPU are their JVMs' CPU during the
  phase (they include whatever other clients of the same servers asked meanwhile); "other CPU"
  is the machine's non-idle CPU seconds during the phase (in brackets) minus the benchmark's or
  conductor's, Elasticsearch's and Kafka's: other load on the machine, which makes a row less
  trustworthy. A phase during which Elasticsearch or Kafka restarted is run again.
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
        f"- data: {data.count:,} readings, {len(data.per_index)} daily indexes "
        f"({', '.join(f'{k}: {v:,}' for k, v in data.per_index.items())}), "
        f"produced in {produce_s:.1f}s; {PARTITIONS} partitions",
        settings_line(args),
    ]
    return render(
        begin=MARK_BEGIN,
        end=MARK_END,
        script="bench/es_pipeline.py",
        started=started,
        info=info,
        bullets=bullets,
        table_text=table(results, limit, SERVERS),
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
        default="streaming:2000,parallel:2000,raw:2000,raw:5000,raw2:5000",
        help=f"client variants for the limit, kind:chunk (kinds: {', '.join(VARIANTS)})",
    )
    parser.add_argument(
        "--es", default=os.environ.get("CONDUCTOR_ELASTICSEARCH_URL", "http://127.0.0.1:19200")
    )
    add_run_arguments(parser, poll=0.5, fast_poll=0.1, what="_count")
    add_profile_arguments(parser)
    add_output_arguments(parser, keep_help="keep the topic (indexes are always deleted)")
    args = parser.parse_args(argv)
    args.worker_counts = worker_counts(args.workers)
    args.variants = []
    for spec in args.limit_variants.split(","):
        kind, _, chunk = spec.strip().partition(":")
        if kind not in VARIANTS:
            parser.error(f"unknown limit variant {kind!r}")
        args.variants.append((kind, int(chunk or 2000)))
    return args


def es_retried(args: argparse.Namespace, run: Callable[[int], Any]) -> Any:
    """common.retried, for the errors of a server going away: Elasticsearch's and Kafka's."""
    from elastic_transport import TransportError
    from kafka.errors import KafkaError

    return retried(args, run, (TransportError, KafkaError, OSError))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the running conductor is stopped and
    # the topic, indexes and groups are deleted (conductor runs in its own session).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started_at = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-es-{run_id}-"))
    wait_for_es(args.es, args.kafka)
    server = ServerCpu(SERVERS)
    server.begin()
    if server.proc("Elasticsearch") is None:
        print("warning: Elasticsearch process not found; its CPU is not measured", file=sys.stderr)
    if server.proc("Kafka") is None:
        print("warning: Kafka process not found; its CPU is not measured", file=sys.stderr)
    groups: list[str] = []
    results: list[Result] = []
    profile_text = None
    data = None
    total = time.monotonic()
    try:
        print(f"run {run_id}: building {args.records:,} readings", flush=True)
        data = build_dataset(args.records, run_id)
        print(f"  {len(data.per_index)} daily indexes: {data.per_index}", flush=True)
        produce_s = produce(args.kafka, data)
        print(f"  produced to {data.topic} in {produce_s:.1f}s ({data.count / produce_s:,.0f}/s)", flush=True)

        es_retried(args, lambda attempt: warm_up(args.es, args.kafka, data))
        for kind, chunk in args.variants:
            r = es_retried(
                args,
                lambda attempt: measure_limit(
                    args.es, args.kafka, data, kind, chunk, server.copy(), args.poll, args.fast_poll
                ),
            )
            results.append(r)
            print(
                f"  {r.label}: {r.rate:,.0f} rec/s, steady {fmt(r.steady)}, "
                f"client CPU {r.per_million(r.client_cpu):.1f} s/M, ok={r.ok}",
                flush=True,
            )
        good = [r for r in results if r.kind == "limit" and r.ok]
        limit = max(good, key=lambda r: r.rate, default=None)

        for workers in args.worker_counts:
            adjacent = None
            if limit is not None and args.adjacent_limit:
                kind, chunk = limit.variant
                adjacent = es_retried(
                    args,
                    lambda attempt: measure_limit(
                        args.es, args.kafka, data, kind, chunk, server.copy(), args.poll, args.fast_poll
                    ),
                )
                adjacent.label = f"limit again, before --workers {workers}"
                print(f"  {adjacent.label}: {adjacent.rate:,.0f} rec/s, ok={adjacent.ok}", flush=True)
            r = es_retried(
                args,
                lambda attempt: conductor_run(
                    args, data, workers, run_id, workdir, server.copy(), groups, attempt
                ),
            )
            r.adjacent = adjacent
            results.append(r)
            pct = f"{percent(r, limit)} of limit" if limit and r.ok else ""
            print(
                f"  {r.label}: {r.rate:,.0f} rec/s, steady {fmt(r.steady)}, {pct}, "
                f"CPU {r.per_million(r.client_cpu):.1f} s/M, RSS {fmt(r.rss_mib, '.0f')} MiB, ok={r.ok}",
                flush=True,
            )
            for note in r.notes:
                print(f"    {note}", flush=True)

        if args.profile:
            r, text, stats = es_retried(
                args, lambda attempt: profile_worker(args, data, run_id, workdir, server.copy(), groups)
            )
            results.append(r)
            print(f"  {r.label}: {r.rate:,.0f} rec/s, ok={r.ok}; {'; '.join(r.notes)}", flush=True)
            print(text, flush=True)
            profile_text = profile_table(stats, r.seconds, 20)

        info = versions(args.es, server.proc("Kafka") or find_process(KAFKA.needle))
        block = render_block(args, results, limit, produce_s, data, info, profile_text, started_at)
        print()
        print(block)
        if args.output != "-":
            write_doc(Path(args.output), block, MARK_BEGIN, MARK_END, INTRO)
            print(f"\nwritten to {args.output}")
        print(f"total {time.monotonic() - total:.0f}s")
        return 0 if all(r.ok for r in results) else 1
    finally:
        cleanup(args, data, groups)
        shutil.rmtree(workdir, ignore_errors=True)


def cleanup(args: argparse.Namespace, data: Dataset | None, groups: list[str]) -> None:
    if data is None:
        return
    try:
        wait_for_es(args.es, args.kafka)
        client = es_client(args.es)
        delete_indexes(client, data.pattern)
        client.close()
    except Exception as exc:
        print(f"cleanup: indexes {data.pattern}: {exc}", file=sys.stderr)
    cleanup_kafka(args.kafka, data.topic, groups, args.keep)


if __name__ == "__main__":
    sys.exit(main())
