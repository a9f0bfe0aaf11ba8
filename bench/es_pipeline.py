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
prints its hot spots. Only for benchmarks: it drives tasks.worker._WorkerRun directly.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import itertools
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from elasticsearch import Elasticsearch, helpers
from elasticsearch.serializer import OrjsonSerializer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conductor.readings import readings  # noqa: E402

PARTITIONS = 6
BULK_HEADERS = {"content-type": "application/x-ndjson", "accept": "application/json"}
MARK_BEGIN = "<!-- bench/es_pipeline.py: generated from here -->"
MARK_END = "<!-- bench/es_pipeline.py: generated until here -->"
GOAL = 0.80  # the issue's goal: end to end >= 80% of the limit
RUN_NUMBERS = itertools.count(1)  # each conductor run gets a fresh connector name (and group)
MIB = 1024 * 1024


# -- the data ---------------------------------------------------------------------------------


@dataclass
class Dataset:
    topic: str
    prefix: str  # KCQL target; the daily indexes are prefix + "_YYYY-MM-dd"
    start_ms: int
    keys: list[bytes]
    values: list[bytes]
    timestamps: list[int]
    indexes: list[str]  # per record
    ids: list[str]  # per record
    per_index: dict[str, int]

    @property
    def count(self) -> int:
        return len(self.values)

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
    return Dataset(f"bench-{run_id}", prefix, start_ms, keys, values, stamps, indexes, ids, per_index)


def produce(bootstrap: str, data: Dataset) -> float:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(data.topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        admin.close()
    started = time.monotonic()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024,
                             acks="all", max_request_size=4 * MIB)
    futures = []
    for key, value, stamp in zip(data.keys, data.values, data.timestamps):
        futures.append(producer.send(data.topic, key=key, value=value, timestamp_ms=stamp))
    producer.flush()
    for future in futures:
        future.get(timeout=60)
    producer.close()
    return time.monotonic() - started


# -- machine and server processes ----------------------------------------------------------------


def find_process(*needles: str) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if any(needle in cmdline for needle in needles):
            return proc
    return None


def cpu_of(proc: psutil.Process | None) -> float:
    if proc is None:
        return float("nan")
    try:
        times = proc.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return float("nan")


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


ES_NEEDLE = "org.elasticsearch.bootstrap.Elasticsearch"
KAFKA_NEEDLE = "kafka.Kafka "


def alive(proc: psutil.Process | None) -> bool:
    try:
        return proc is not None and proc.is_running()
    except psutil.Error:
        return False


@dataclass
class ServerCpu:
    """CPU seconds Elasticsearch, Kafka and the whole machine spent during one phase. The
    server processes are looked up again at each phase (tests on a shared machine restart them);
    a server that restarted during the phase is reported, since the phase is then not valid."""

    es: psutil.Process | None = None
    kafka: psutil.Process | None = None
    start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    used: tuple[float, float, float] = (0.0, 0.0, 0.0)
    restarted: list[str] = field(default_factory=list)

    def begin(self) -> None:
        if not alive(self.es):
            self.es = find_process(ES_NEEDLE)
        if not alive(self.kafka):
            self.kafka = find_process(KAFKA_NEEDLE)
        self.start = (cpu_of(self.es), cpu_of(self.kafka), machine_busy())

    def end(self) -> None:
        now = (cpu_of(self.es), cpu_of(self.kafka), machine_busy())
        self.used = tuple(b - a for a, b in zip(self.start, now))  # type: ignore[assignment]
        for name, proc, needle in (("Elasticsearch", self.es, ES_NEEDLE), ("Kafka", self.kafka, KAFKA_NEEDLE)):
            if proc is not None and not alive(proc):
                self.restarted.append(f"{name} (pid {proc.pid}) stopped or restarted during this phase: "
                                      f"numbers not valid")

    def copy(self) -> ServerCpu:
        return ServerCpu(self.es, self.kafka)


def wait_for_servers(es_url: str, bootstrap: str, timeout: float = 180) -> None:
    """Wait until Elasticsearch answers a cluster health and Kafka a metadata request (other test
    runs on this machine stop and start the servers)."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout
    waited = False
    while True:
        problem = None
        try:
            client = Elasticsearch(es_url, request_timeout=5)
            try:
                client.cluster.health(wait_for_status="yellow", timeout="5s")
            finally:
                client.close()
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            admin.close()
        except Exception as exc:  # noqa: BLE001
            problem = exc
        if problem is None:
            if waited:
                print("  servers answer again", flush=True)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"servers not answering after {timeout:.0f}s: {problem}")
        if not waited:
            print(f"  waiting for the servers ({type(problem).__name__}: {problem})", flush=True)
            waited = True
        time.sleep(2)


# -- progress: Elasticsearch's count ---------------------------------------------------------------


class CountPoller:
    """Refresh + _count every `interval` s (faster near the end) on its own client; the same
    load on Elasticsearch in the limit and in the conductor runs."""

    def __init__(self, url: str, pattern: str, target: int, interval: float, fast_interval: float) -> None:
        self.client = Elasticsearch(url, request_timeout=30)
        self.pattern, self.target = pattern, target
        self.interval, self.fast_interval = interval, fast_interval
        self.samples: list[tuple[float, int]] = []
        self.errors = 0

    def count(self) -> int:
        try:
            self.client.indices.refresh(index=self.pattern, ignore_unavailable=True, allow_no_indices=True)
            return self.client.count(index=self.pattern, ignore_unavailable=True,
                                     allow_no_indices=True)["count"]
        except Exception:  # noqa: BLE001 - an index being auto-created; next poll
            self.errors += 1
            return self.samples[-1][1] if self.samples else 0

    def poll(self) -> int:
        count = self.count()
        self.samples.append((time.monotonic(), count))
        return count

    def next_pause(self) -> float:
        last = self.samples[-1][1] if self.samples else 0
        return self.fast_interval if last >= 0.9 * self.target else self.interval

    def close(self) -> None:
        self.client.close()


class BackgroundPoller(threading.Thread):
    """A CountPoller on a thread (during the limit), with its own CPU time so it can be left out."""

    def __init__(self, poller: CountPoller) -> None:
        super().__init__(daemon=True)
        self.poller = poller
        self.stopping = threading.Event()
        self.cpu = 0.0

    def run(self) -> None:
        started = time.thread_time()
        while not self.stopping.is_set():
            self.poller.poll()
            self.stopping.wait(self.poller.next_pause())
        self.cpu = time.thread_time() - started

    def stop(self) -> float:
        self.stopping.set()
        self.join()
        return self.cpu


def crossing(samples: Sequence[tuple[float, int]], level: float) -> float | None:
    """When the count first reached `level`, linearly interpolated between samples."""
    previous = None
    for t, n in samples:
        if n >= level:
            if previous is None or n == previous[1]:
                return t
            t0, n0 = previous
            return t0 + (t - t0) * (level - n0) / (n - n0)
        previous = (t, n)
    return None


def steady_rate(samples: Sequence[tuple[float, int]], count: int) -> float | None:
    t10, t90 = crossing(samples, 0.1 * count), crossing(samples, 0.9 * count)
    if t10 is None or t90 is None or t90 <= t10:
        return None
    return 0.8 * count / (t90 - t10)


# -- Elasticsearch housekeeping -----------------------------------------------------------------


def es_client(url: str, **kwargs: Any) -> Elasticsearch:
    return Elasticsearch(url, request_timeout=120, serializers={"application/json": OrjsonSerializer()}, **kwargs)


def delete_indexes(client: Elasticsearch, pattern: str) -> None:
    names = list(client.indices.get(index=pattern, ignore_unavailable=True, allow_no_indices=True,
                                    expand_wildcards="all"))
    for start in range(0, len(names), 50):
        client.indices.delete(index=",".join(names[start:start + 50]))


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
    for n, doc in zip(picks, docs):
        if not doc.get("found"):
            problems.append(f"document {data.indexes[n]}/{data.ids[n]} not found")
        elif doc["_source"] != orjson.loads(data.values[n]):
            problems.append(f"document {data.ids[n]}: body {doc['_source']} != {data.values[n]!r}")
    return problems


# -- the limit: the client straight into Elasticsearch ----------------------------------------------


@dataclass
class Result:
    label: str
    kind: str  # "limit" | "conductor" | "profile"
    records: int
    seconds: float = float("nan")
    steady: float | None = None
    client_cpu: float = float("nan")  # benchmark process (limit) or all conductor processes
    rss_mib: float | None = None  # max RSS of one worker
    server: ServerCpu | None = None
    notes: list[str] = field(default_factory=list)
    ok: bool = True
    variant: tuple[str, int] | None = None  # limit rows: (kind, chunk)
    adjacent: Result | None = None  # conductor rows: the limit measured right before

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds and self.seconds == self.seconds else float("nan")

    def per_million(self, cpu: float) -> float:
        return cpu / self.records * 1e6


def raw_lines(data: Dataset, start: int, stop: int) -> bytes:
    dumps, indexes, ids, values = orjson.dumps, data.indexes, data.ids, data.values
    parts = []
    for n in range(start, stop):
        parts.append(dumps({"index": {"_index": indexes[n], "_id": ids[n]}}))
        parts.append(values[n])
    parts.append(b"")
    return b"\n".join(parts)


def load_raw(client: Elasticsearch, data: Dataset, chunk: int, threads: int,
             progress: Callable[[int], None]) -> None:
    def post(start: int) -> None:
        stop = min(start + chunk, data.count)
        response = client.perform_request("POST", "/_bulk", headers=BULK_HEADERS,
                                          body=raw_lines(data, start, stop)).body
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
    return [{"_index": data.indexes[n], "_id": data.ids[n], "_source": loads(data.values[n])}
            for n in range(data.count)]


def load_helpers(client: Elasticsearch, actions: list[dict[str, Any]], chunk: int, threads: int,
                 progress: Callable[[int], None]) -> None:
    if threads == 1:
        results = helpers.streaming_bulk(client, actions, chunk_size=chunk, max_chunk_bytes=100 * MIB)
    else:
        results = helpers.parallel_bulk(client, actions, thread_count=threads, chunk_size=chunk,
                                        queue_size=threads * 2, max_chunk_bytes=100 * MIB)
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
    wait_for_servers(url, kafka_bootstrap)
    client = es_client(url)
    sample = Dataset(data.topic, data.prefix + "warmup_", data.start_ms, [], data.values[:records],
                     [], [data.prefix + "warmup__x"] * min(records, data.count), data.ids[:records], {})
    load_raw(client, sample, 5000, 1, lambda n: None)
    delete_indexes(client, sample.pattern)
    client.close()


def measure_limit(url: str, kafka_bootstrap: str, data: Dataset, variant: str, chunk: int,
                  server: ServerCpu, poll: float, fast_poll: float) -> Result:
    label, threads = VARIANTS[variant]
    wait_for_servers(url, kafka_bootstrap)
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

    poller = BackgroundPoller(CountPoller(url, data.pattern, data.count, poll, fast_poll))
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


def write_config(directory: Path, name: str, data: Dataset, url: str, bootstrap: str, workers: int,
                 extra: Sequence[str]) -> Path:
    host_port = re.sub(r"^https?://", "", url).rstrip("/")
    host, port = host_port.rsplit(":", 1)
    lines = [
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
    ]
    path = directory / f"{name}.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


class ProcessSampler:
    """CPU (user+sys) and RSS of a process tree, sampled; a pid that went away keeps its last sample."""

    def __init__(self, root_pid: int) -> None:
        self.root = psutil.Process(root_pid)
        self.cpu: dict[int, float] = {}
        self.rss: dict[int, int] = {}
        self.roles: dict[int, str] = {root_pid: "supervisor"}

    def sample(self) -> None:
        try:
            procs = [self.root] + self.root.children(recursive=True)
        except psutil.Error:
            return
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    rss = proc.memory_info().rss
            except psutil.Error:
                continue
            self.cpu[proc.pid] = times.user + times.system
            self.rss[proc.pid] = max(self.rss.get(proc.pid, 0), rss)
            self.roles.setdefault(proc.pid, "worker")

    @property
    def total_cpu(self) -> float:
        return sum(self.cpu.values())

    @property
    def worker_rss(self) -> list[int]:
        return [rss for pid, rss in self.rss.items() if self.roles.get(pid) == "worker"]

    @property
    def workers_seen(self) -> int:
        return sum(1 for role in self.roles.values() if role == "worker")


def read_worker_states(state_dir: Path) -> list[dict[str, Any]]:
    states = []
    for path in sorted(state_dir.glob("worker-*.json")):
        try:
            states.append(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            pass
    return states


def run_conductor(args: argparse.Namespace, data: Dataset, workers: int, run_id: str, workdir: Path,
                  server: ServerCpu, groups: list[str], attempt: int = 0) -> Result:
    wait_for_servers(args.es, args.kafka)
    name = f"bench-{run_id}-w{workers}-{next(RUN_NUMBERS)}" + (f"-retry{attempt}" if attempt else "")
    groups.append(f"connect-{name}")
    result = Result(f"conductor start --workers {workers}", "conductor", data.count)
    admin = es_client(args.es)
    delete_indexes(admin, data.pattern)
    config = write_config(workdir, name, data, args.es, args.kafka, workers, args.conductor_setting)
    state_root = workdir / f"state-{name}"
    log_path = workdir / f"conductor-{name}.log"
    env = {**os.environ, **dict(item.split("=", 1) for item in args.conductor_env),
           "CONDUCTOR_STATE_DIR": str(state_root)}
    command = [args.conductor, "--log-level", args.conductor_log_level, "start", "--workers", str(workers),
               "--config", str(config)]
    poller = CountPoller(args.es, data.pattern, data.count, args.poll, args.fast_poll)
    log_file = log_path.open("wb")
    server.begin()
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                               start_new_session=True)
    sampler = ProcessSampler(process.pid)
    done_at = None
    first_doc = None
    try:
        while True:
            sampler.sample()
            count = poller.poll()
            if first_doc is None and count > 0:
                first_doc = time.monotonic() - started
            if count >= data.count:
                done_at = time.monotonic()
                sampler.sample()
                break
            if process.poll() is not None:
                result.notes.append(f"conductor exited early with {process.returncode}")
                break
            if time.monotonic() - started > args.timeout:
                result.notes.append(f"timed out after {args.timeout:.0f}s at {count} documents")
                break
            time.sleep(poller.next_pause())
    finally:
        server.end()
        result.server = server
        result.client_cpu = sampler.total_cpu
        if server.restarted:
            result.ok = False
            result.notes += server.restarted
        stop_started = time.monotonic()
        code = stop(process)
        log_file.close()
        poller.close()
    stop_s = time.monotonic() - stop_started
    result.rss_mib = max(sampler.worker_rss, default=0) / MIB
    if done_at is None:
        result.ok = False
    else:
        result.seconds = done_at - started
        result.steady = steady_rate([(t - started, n) for t, n in poller.samples], data.count)
    if code != 0:
        result.ok = False
        result.notes.append(f"exit code {code} after SIGTERM (want 0)")
    states = read_worker_states(state_root / name)
    written = sum(int(s.get("written", 0)) for s in states)
    lag = [p.get("lag") for s in states for p in s.get("partitions", []) or []]
    result.notes.append(f"first document visible after {first_doc:.1f}s" if first_doc is not None
                        else "no document became visible")
    result.notes.append("documents by second: " + timeline(poller.samples, started))
    result.notes.append(f"SIGTERM -> exit {code} in {stop_s:.1f}s; workers seen {sampler.workers_seen}; "
                        f"'written' summed over worker states {written}")
    if any(lag):
        result.notes.append(f"lag left in worker states: {lag}")
    rss = sorted(round(r / MIB) for r in sampler.worker_rss)
    sup = sampler.rss.get(process.pid, 0) / MIB
    result.notes.append(f"max RSS MiB: workers {rss}, supervisor {sup:.0f}")
    if done_at is not None:
        problems = check_documents(admin, data)
        if problems:
            result.ok = False
            result.notes += problems
    if not result.ok:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        result.notes.append("log tail:\n      " + "\n      ".join(tail))
    delete_indexes(admin, data.pattern)
    admin.close()
    if args.logs:
        target = Path(args.logs) / name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, target / log_path.name)
        if (state_root / name).is_dir():
            shutil.copytree(state_root / name, target / "state", dirs_exist_ok=True)
        result.notes.append(f"log kept in {target}")
    return result


def timeline(samples: Sequence[tuple[float, int]], started: float) -> str:
    """The count at each whole second (the last sample before it), e.g. `1s 0, 2s 8000, ...`."""
    out, second = [], 1
    last = 0
    for t, n in samples:
        while t - started >= second:
            out.append(f"{second}s {last:,}")
            second += 1
        last = n
    out.append(f"{samples[-1][0] - started:.1f}s {last:,}" if samples else "none")
    return ", ".join(out)


def stop(process: subprocess.Popen, timeout: float = 90) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


# -- one worker under cProfile, in this process ---------------------------------------------------------


class _Control:
    """What _WorkerRun needs from its supervisor: stop once `done()` says so."""

    def __init__(self, done: Callable[[], bool]) -> None:
        self.done = done

    @property
    def stop_requested(self) -> bool:
        return self.done()

    def heartbeat(self) -> None:
        pass

    def notify_booted(self) -> None:
        pass

    def record_state(self, **fields: Any) -> None:
        pass


def profile_worker(args: argparse.Namespace, data: Dataset, run_id: str, workdir: Path, server: ServerCpu,
                   groups: list[str]) -> tuple[Result, str, pstats.Stats]:
    from conductor.config import load_config
    from conductor.connector import build_connector
    from tasks.worker import SinkWorker, _WorkerRun

    wait_for_servers(args.es, args.kafka)
    name = f"bench-{run_id}-profile"
    groups.append(f"connect-{name}")
    admin = es_client(args.es)
    delete_indexes(admin, data.pattern)
    config_path = write_config(workdir, name, data, args.es, args.kafka, 1, args.conductor_setting)
    connector = build_connector(load_config(config_path))
    worker = SinkWorker(connector.config, connector.routes, connector.sink, supervisor_pid=os.getpid())
    run: Any = None
    control = _Control(lambda: run is not None and run.counts["written"] >= data.count)
    run = _WorkerRun(worker, 0, control)
    result = Result("one worker in-process under cProfile", "profile", data.count)
    profiler = cProfile.Profile()
    server.begin()
    cpu0 = self_cpu()
    started = time.monotonic()
    profiler.enable()
    code = run.run()
    profiler.disable()
    result.seconds = time.monotonic() - started
    result.client_cpu = self_cpu() - cpu0
    server.end()
    result.server = server
    admin.indices.refresh(index=data.pattern)
    visible = admin.count(index=data.pattern)["count"]
    result.ok = code == 0 and visible == data.count
    result.notes.append(f"worker exit {code}; counts {run.counts}")
    delete_indexes(admin, data.pattern)
    admin.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.profile_top)
    stats.sort_stats("cumulative").print_stats(args.profile_top)
    if args.profile_out:
        stats.dump_stats(args.profile_out)
    return result, out.getvalue(), stats


def profile_table(stats: pstats.Stats, seconds: float, top: int) -> str:
    rows = []
    for (filename, line, function), (cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tt, ct, nc, f"{_short(filename)}:{line} {function}"))
    out = ["| self s | self % of wall | cumulative s | calls | function |", "|---:|---:|---:|---:|---|"]
    for tt, ct, nc, where in sorted(rows, reverse=True)[:top]:
        out.append(f"| {tt:.2f} | {100 * tt / seconds:.1f} | {ct:.2f} | {nc:,} | `{where}` |")
    return "\n".join(out)


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# -- report --------------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None or value != value else format(value, spec)


def percent(r: Result, limit: Result | None) -> str:
    ref = r.adjacent or limit
    if ref is None or not r.ok or not ref.ok:
        return ""
    return f"{100 * r.rate / ref.rate:.0f}%"


def table(results: list[Result], limit: Result | None) -> str:
    head = ("| run | records/s | steady 10-90% rec/s | limit just before, rec/s | % of limit | wall s | "
            "client/conductor CPU s per M | max RSS per worker MiB | ES CPU s per M | Kafka CPU s per M | "
            "other CPU s (machine busy) | ok |")
    lines = [head, "|---|" + "---:|" * 10 + "---|"]
    for r in results:
        server = r.server
        if r is limit:
            pct = "limit"
        elif r.kind == "limit":
            pct = f"{100 * r.rate / limit.rate:.0f}%" if limit and r.ok else ""
        else:
            pct = percent(r, limit)
        name = f"**{r.label}**" if r is limit else r.label
        other = busy = None
        if server:
            busy = server.used[2]
            ours = r.client_cpu + sum(x for x in server.used[:2] if x == x)
            other = busy - ours
        lines.append(
            f"| {name} | {fmt(r.rate)} | {fmt(r.steady)} | {fmt(r.adjacent.rate) if r.adjacent else ''} | "
            f"{pct} | {fmt(r.seconds, '.1f')} | "
            f"{fmt(r.per_million(r.client_cpu), '.1f')} | {fmt(r.rss_mib, '.0f') if r.rss_mib else ''} | "
            f"{fmt(r.per_million(server.used[0]) if server else None, '.1f')} | "
            f"{fmt(r.per_million(server.used[1]) if server else None, '.1f')} | "
            f"{fmt(other, '.1f')} ({fmt(busy, '.1f')}) | {'yes' if r.ok else 'NO'} |")
    return "\n".join(lines)


def versions(es_url: str, kafka_proc: psutil.Process | None) -> dict[str, str]:
    import elasticsearch
    import kafka

    out = {"python": platform.python_version(), "elasticsearch-py": elasticsearch.__versionstr__,
           "kafka-python": kafka.__version__, "orjson": orjson.__version__}
    try:
        client = es_client(es_url)
        nodes = client.nodes.info(filter_path="nodes.*.version")["nodes"]
        out["Elasticsearch"] = ", ".join(sorted({n["version"] for n in nodes.values()}))
        client.close()
    except Exception as exc:  # noqa: BLE001
        out["Elasticsearch"] = f"unknown ({exc})"
    cmdline = " ".join(kafka_proc.cmdline()) if kafka_proc else ""
    match = re.search(r"kafka[_-](\d+\.\d+\.\d+)", cmdline)
    out["Kafka"] = match.group(1) if match else "unknown"
    try:
        out["conductor"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                          capture_output=True, text=True).stdout.strip() + \
            (" (+ uncommitted changes)" if subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True).stdout.strip() else "")
    except OSError:
        pass
    return out


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({model or platform.processor() or 'unknown'}), "
            f"{psutil.virtual_memory().total / 1024 ** 3:.1f} GiB RAM, {platform.system()} {platform.release()}")


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


def render(args: argparse.Namespace, results: list[Result], limit: Result | None, produce_s: float,
           data: Dataset, info: dict[str, str], profile: str | None, started: dt.datetime) -> str:
    command = "/work/venv/bin/python bench/es_pipeline.py " + " ".join(sys.argv[1:])
    lines = [
        MARK_BEGIN,
        "",
        f"### Latest run: {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; `nproc` = {os.cpu_count()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        f"- data: {data.count:,} readings, {len(data.per_index)} daily indexes "
        f"({', '.join(f'{k}: {v:,}' for k, v in data.per_index.items())}), "
        f"produced in {produce_s:.1f}s; {PARTITIONS} partitions",
        f"- conductor settings: defaults of the example config"
        + (f", plus {', '.join(args.conductor_setting)}" if args.conductor_setting else "")
        + (f", environment {', '.join(args.conductor_env)}" if args.conductor_env else "")
        + f"; log level {args.conductor_log_level}",
        "",
        table(results, limit),
        "",
    ]
    if limit is not None:
        goal = [r for r in results if r.kind == "conductor" and r.ok]
        best = max(goal, key=lambda r: r.rate, default=None)
        if best is not None:
            ref = best.adjacent if best.adjacent and best.adjacent.ok else limit
            verdict = "meets" if best.rate >= GOAL * ref.rate else "misses"
            lines += [f"Best end to end: {best.label} at {best.rate:,.0f} records/s = "
                      f"{100 * best.rate / ref.rate:.0f}% of the limit measured just before it "
                      f"({ref.rate:,.0f} records/s; {100 * best.rate / limit.rate:.0f}% of the best limit "
                      f"of the sweep, {limit.rate:,.0f} records/s): this {verdict} the 80% goal.", ""]
    lines.append("Notes per run:")
    lines.append("")
    for r in results:
        if r.notes:
            lines.append(f"- {r.label}: " + "; ".join(r.notes))
    lines.append("")
    if profile:
        lines += ["#### One worker in-process under cProfile (hot spots, by own time)", "", profile, ""]
    lines.append(MARK_END)
    return "\n".join(lines)


def write_doc(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else INTRO
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- main ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000, help="readings to produce (default 200000)")
    parser.add_argument("--workers", default="1,2,3", help="worker counts to run, comma-separated (default 1,2,3)")
    parser.add_argument("--limit-variants", default="streaming:2000,parallel:2000,raw:2000,raw:5000,raw2:5000",
                        help="client variants for the limit, kind:chunk (kinds: %s)" % ", ".join(VARIANTS))
    parser.add_argument("--es", default=os.environ.get("CONDUCTOR_ELASTICSEARCH_URL", "http://127.0.0.1:19200"))
    parser.add_argument("--kafka", default=os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--conductor", default=shutil.which("conductor", path=os.path.dirname(sys.executable))
                        or "conductor", help="the conductor CLI (default: next to this Python)")
    parser.add_argument("--conductor-log-level", default="WARNING")
    parser.add_argument("--conductor-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="extra line for the generated .properties (repeatable)")
    parser.add_argument("--conductor-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for `conductor start` (repeatable), e.g. PYTHONPATH=...")
    parser.add_argument("--poll", type=float, default=0.5, help="_count poll interval in s (default 0.5)")
    parser.add_argument("--fast-poll", type=float, default=0.1, help="poll interval past 90%% (default 0.1)")
    parser.add_argument("--timeout", type=float, default=300, help="per conductor run, s (default 300)")
    parser.add_argument("--no-adjacent-limit", dest="adjacent_limit", action="store_false",
                        help="do not measure the best limit variant again right before each conductor run")
    parser.add_argument("--retries", type=int, default=2,
                        help="run a phase again when a server restarted during it (default 2)")
    parser.add_argument("--profile", action="store_true", help="also profile one worker in-process (cProfile)")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--profile-out", default=None, help="write the cProfile stats here")
    parser.add_argument("--output", default=str(ROOT / "docs" / "BENCHMARKS.md"),
                        help="Markdown file to update ('-' for none)")
    parser.add_argument("--logs", default=None, metavar="DIR",
                        help="copy each conductor run's log (and state files) into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the topic (indexes are always deleted)")
    args = parser.parse_args(argv)
    args.worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    args.variants = []
    for spec in args.limit_variants.split(","):
        kind, _, chunk = spec.strip().partition(":")
        if kind not in VARIANTS:
            parser.error(f"unknown limit variant {kind!r}")
        args.variants.append((kind, int(chunk or 2000)))
    return args


def retried(args: argparse.Namespace, run: Callable[[int], Any]) -> Any:
    """Run a phase again (up to --retries times) when Elasticsearch or Kafka restarted during it:
    other test runs on a shared machine stop and start the servers."""
    from elastic_transport import TransportError
    from kafka.errors import KafkaError

    attempt = 0
    while True:
        try:
            result = run(attempt)
        except (TransportError, KafkaError, OSError) as exc:
            if attempt >= args.retries:
                raise
            attempt += 1
            print(f"  a server went away during the run ({type(exc).__name__}); running it again "
                  f"(attempt {attempt + 1})", flush=True)
            continue
        disturbed = isinstance(result, Result) and bool(result.server and result.server.restarted)
        if not disturbed or attempt >= args.retries:
            if attempt and isinstance(result, Result):
                result.notes.append(f"attempt {attempt + 1} (earlier ones disturbed by a server restart)")
            return result
        attempt += 1
        print(f"  {result.label}: a server restarted during the run; running it again "
              f"(attempt {attempt + 1})", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the running conductor is stopped and
    # the topic, indexes and groups are deleted (conductor runs in its own session).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started_at = dt.datetime.now(dt.timezone.utc)
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-es-{run_id}-"))
    wait_for_servers(args.es, args.kafka)
    server = ServerCpu()
    server.begin()
    if server.es is None:
        print("warning: Elasticsearch process not found; its CPU is not measured", file=sys.stderr)
    if server.kafka is None:
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

        retried(args, lambda attempt: warm_up(args.es, args.kafka, data))
        for kind, chunk in args.variants:
            r = retried(args, lambda attempt: measure_limit(args.es, args.kafka, data, kind, chunk, server.copy(),
                                                            args.poll, args.fast_poll))
            results.append(r)
            print(f"  {r.label}: {r.rate:,.0f} rec/s, steady {fmt(r.steady)}, "
                  f"client CPU {r.per_million(r.client_cpu):.1f} s/M, ok={r.ok}", flush=True)
        good = [r for r in results if r.kind == "limit" and r.ok]
        limit = max(good, key=lambda r: r.rate, default=None)

        for workers in args.worker_counts:
            adjacent = None
            if limit is not None and args.adjacent_limit:
                kind, chunk = limit.variant
                adjacent = retried(args, lambda attempt: measure_limit(
                    args.es, args.kafka, data, kind, chunk, server.copy(), args.poll, args.fast_poll))
                adjacent.label = f"limit again, before --workers {workers}"
                print(f"  {adjacent.label}: {adjacent.rate:,.0f} rec/s, ok={adjacent.ok}", flush=True)
            r = retried(args, lambda attempt: run_conductor(args, data, workers, run_id, workdir, server.copy(),
                                                            groups, attempt))
            r.adjacent = adjacent
            results.append(r)
            pct = f"{percent(r, limit)} of limit" if limit and r.ok else ""
            print(f"  {r.label}: {r.rate:,.0f} rec/s, steady {fmt(r.steady)}, {pct}, "
                  f"CPU {r.per_million(r.client_cpu):.1f} s/M, RSS {fmt(r.rss_mib, '.0f')} MiB, ok={r.ok}",
                  flush=True)
            for note in r.notes:
                print(f"    {note}", flush=True)

        if args.profile:
            r, text, stats = retried(args, lambda attempt: profile_worker(args, data, run_id, workdir,
                                                                          server.copy(), groups))
            results.append(r)
            print(f"  {r.label}: {r.rate:,.0f} rec/s, ok={r.ok}; {'; '.join(r.notes)}", flush=True)
            print(text, flush=True)
            profile_text = profile_table(stats, r.seconds, 20)

        info = versions(args.es, server.kafka or find_process(KAFKA_NEEDLE))
        block = render(args, results, limit, produce_s, data, info, profile_text, started_at)
        print()
        print(block)
        if args.output != "-":
            write_doc(Path(args.output), block)
            print(f"\nwritten to {args.output}")
        print(f"total {time.monotonic() - total:.0f}s")
        return 0 if all(r.ok for r in results) else 1
    finally:
        cleanup(args, data, groups)
        shutil.rmtree(workdir, ignore_errors=True)


def delete_group(admin: Any, group: str) -> None:
    """Static members stay in the group after their consumer closed: remove them, then delete."""
    from kafka.admin import MemberToRemove

    description = admin.describe_groups([group]).get(group) or {}
    static = [m.get("group_instance_id") for m in description.get("members", []) if m.get("group_instance_id")]
    if static:
        admin.remove_group_members(group, [MemberToRemove(group_instance_id=i) for i in static])
    answer = admin.delete_groups([group])
    pairs = answer.items() if isinstance(answer, dict) else answer
    for group_id, error in pairs:
        if error and str(error) not in ("OK", "NoError") and "NotFound" not in str(error):
            raise RuntimeError(f"{group_id}: {error}")


def cleanup(args: argparse.Namespace, data: Dataset | None, groups: list[str]) -> None:
    if data is None:
        return
    try:
        wait_for_servers(args.es, args.kafka)
        client = es_client(args.es)
        delete_indexes(client, data.pattern)
        client.close()
    except Exception as exc:  # noqa: BLE001
        print(f"cleanup: indexes {data.pattern}: {exc}", file=sys.stderr)
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=args.kafka)
    except Exception as exc:  # noqa: BLE001
        print(f"cleanup: Kafka admin: {exc}", file=sys.stderr)
        return
    try:
        for group in groups:
            try:
                delete_group(admin, group)
            except Exception as exc:  # noqa: BLE001
                print(f"cleanup: consumer group {group}: {exc}", file=sys.stderr)
        if not args.keep:
            try:
                admin.delete_topics([data.topic])
            except Exception as exc:  # noqa: BLE001
                print(f"cleanup: topic {data.topic}: {exc}", file=sys.stderr)
    finally:
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
