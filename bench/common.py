"""What the pipeline benchmarks (bench/es_pipeline.py, bench/cassandra_pipeline.py) share: the
readings and producing them to Kafka, CPU of the servers and of conductor's processes, count
pollers and rates, running `conductor start` and stopping it, the Markdown report, retries when
a server restarted, and the Kafka clean-up. Nothing here knows the sink.
"""

from __future__ import annotations

import argparse
import cProfile
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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PARTITIONS = 6
GOAL = 0.80  # the issues' goal: end to end >= 80% of the limit
RUN_NUMBERS = itertools.count(1)  # each conductor run gets a fresh connector name (and group)
MIB = 1024 * 1024


# -- the data ---------------------------------------------------------------------------------


@dataclass
class Readings:
    """Readings as produced to Kafka: key, JSON value and record timestamp of each."""

    topic: str
    start_ms: int
    keys: list[bytes]
    values: list[bytes]
    timestamps: list[int]

    @property
    def count(self) -> int:
        return len(self.values)


def reading_records(count: int) -> tuple[int, list[bytes], list[bytes], list[int]]:
    """`conductor.readings.readings(count)`, 1 s apart ending now: start_ms, keys, values and
    timestamps (the reading's "timestamp", used as the Kafka record timestamp)."""
    from conductor.readings import readings

    start_ms = int(time.time() * 1000) - count * 1000
    keys, values, stamps = [], [], []
    for n, (key, value) in enumerate(readings(count, start_ms=start_ms)):
        keys.append(key)
        values.append(value)
        stamps.append(start_ms + n * 1000)  # what readings() writes into "timestamp"
    return start_ms, keys, values, stamps


def produce(bootstrap: str, data: Readings, placed: list[tuple[int, int]] | None = None) -> float:
    """Create the topic (PARTITIONS partitions) and produce every reading with its timestamp;
    the seconds it took. `placed`, if given, receives (partition, offset) of each record."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        # Kept whatever the records' age: a million readings 1 s apart reach back 11.6 days, and
        # the broker's default 7-day retention deleted the oldest segments mid-run (817,297 left).
        admin.create_topics(
            [
                NewTopic(
                    data.topic,
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
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all", max_request_size=4 * MIB
    )
    futures = []
    for key, value, stamp in zip(data.keys, data.values, data.timestamps, strict=True):
        futures.append(producer.send(data.topic, key=key, value=value, timestamp_ms=stamp))
    producer.flush()
    for future in futures:
        metadata = future.get(timeout=60)
        if placed is not None:
            placed.append((metadata.partition, metadata.offset))
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


def alive(proc: psutil.Process | None) -> bool:
    try:
        return proc is not None and proc.is_running()
    except psutil.Error:
        return False


@dataclass(frozen=True)
class Server:
    """A server process whose CPU a benchmark reports: its name, the name in table headers,
    and a string of its command line."""

    name: str
    short: str
    needle: str


KAFKA = Server("Kafka", "Kafka", "kafka.Kafka ")


class ServerCpu:
    """CPU seconds the servers and the whole machine spent during one phase: `used` holds one
    entry per server, in the order given, then the machine's. The server processes are looked
    up again at each phase (tests on a shared machine restart them); a server that restarted
    during the phase is reported, since the phase is then not valid."""

    def __init__(
        self, servers: Sequence[Server], procs: Sequence[psutil.Process | None] | None = None
    ) -> None:
        self.servers = tuple(servers)
        self.procs: list[psutil.Process | None] = (
            list(procs) if procs is not None else [None] * len(self.servers)
        )
        self.start: tuple[float, ...] = (0.0,) * (len(self.servers) + 1)
        self.used: tuple[float, ...] = (0.0,) * (len(self.servers) + 1)
        self.restarted: list[str] = []

    def proc(self, name: str) -> psutil.Process | None:
        return self.procs[[s.name for s in self.servers].index(name)]

    def begin(self) -> None:
        for n, spec in enumerate(self.servers):
            if not alive(self.procs[n]):
                self.procs[n] = find_process(spec.needle)
        self.start = tuple(cpu_of(p) for p in self.procs) + (machine_busy(),)

    def end(self) -> None:
        now = tuple(cpu_of(p) for p in self.procs) + (machine_busy(),)
        self.used = tuple(b - a for a, b in zip(self.start, now, strict=True))
        for spec, proc in zip(self.servers, self.procs, strict=True):
            if proc is not None and not alive(proc):
                self.restarted.append(
                    f"{spec.name} (pid {proc.pid}) stopped or restarted during this phase: numbers not valid"
                )

    def copy(self) -> ServerCpu:
        return ServerCpu(self.servers, self.procs)


def kafka_answers(bootstrap: str) -> Callable[[], None]:
    """A check for wait_for_servers: Kafka answers a metadata request."""

    def check() -> None:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        admin.close()

    return check


def wait_for_servers(checks: Sequence[Callable[[], None]], timeout: float = 180) -> None:
    """Wait until every check passes (other test runs on this machine stop and start the
    servers); a check raises while its server does not answer."""
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        problem = None
        try:
            for check in checks:
                check()
        except Exception as exc:
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


# -- progress: what the store counts ---------------------------------------------------------------


class CountPoller:
    """Asks the store how many records it holds every `interval` s (faster near the end);
    subclasses say how (`count`). The same poller runs during the limit and the conductor runs,
    so the store does the same extra work in both."""

    def __init__(self, target: int, interval: float, fast_interval: float) -> None:
        self.target = target
        self.interval, self.fast_interval = interval, fast_interval
        self.samples: list[tuple[float, int]] = []
        self.errors = 0

    def count(self) -> int:
        raise NotImplementedError

    def poll(self) -> int:
        count = self.count()
        self.samples.append((time.monotonic(), count))
        return count

    def next_pause(self) -> float:
        last = self.samples[-1][1] if self.samples else 0
        return self.fast_interval if last >= 0.9 * self.target else self.interval

    def close(self) -> None:
        pass


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


# -- results ---------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    kind: str  # "limit" | "conductor" | "profile" | "reference" (a limit-like row that is not the limit)
    records: int
    seconds: float = float("nan")
    steady: float | None = None
    client_cpu: float = float("nan")  # benchmark process (limit) or all conductor processes
    rss_mib: float | None = None  # max RSS of one worker
    server: ServerCpu | None = None
    notes: list[str] = field(default_factory=list)
    ok: bool = True
    variant: Any = None  # limit rows: what to run again before each conductor run
    adjacent: Result | None = None  # conductor rows: the limit measured right before
    committed_s: float | None = None  # conductor rows: until the group had committed everything

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds and self.seconds == self.seconds else float("nan")

    def per_million(self, cpu: float) -> float:
        return cpu / self.records * 1e6


# -- conductor end to end ----------------------------------------------------------------------------


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


def stop(process: subprocess.Popen, timeout: float = 90) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def conductor_name(run_id: str, workers: int, attempt: int = 0) -> str:
    return f"bench-{run_id}-w{workers}-{next(RUN_NUMBERS)}" + (f"-retry{attempt}" if attempt else "")


def run_conductor(
    args: argparse.Namespace,
    *,
    name: str,
    config: Path,
    workers: int,
    workdir: Path,
    server: ServerCpu,
    poller: CountPoller,
    check: Callable[[], list[str]],
    unit: str = "document",
    settle: Callable[[], bool] | None = None,
) -> Result:
    """`conductor start --workers W --config CONFIG`, timed from just before the spawn until
    `poller` counts poller.target records; CPU and RSS of all its processes sampled at each poll.
    With `settle` (e.g. "the group committed everything"), conductor keeps running after that,
    polled every --fast-poll s until settle() is true; that time is `committed_s`, while CPU is
    taken when the count was reached. Then SIGTERM (exit 0 wanted) and `check()` for problems
    with what the store holds. The caller prepares the store and the config and cleans up."""
    target = poller.target
    result = Result(f"conductor start --workers {workers}", "conductor", target)
    state_root = workdir / f"state-{name}"
    log_path = workdir / f"conductor-{name}.log"
    env = {
        **os.environ,
        **dict(item.split("=", 1) for item in args.conductor_env),
        "CONDUCTOR_STATE_DIR": str(state_root),
    }
    command = [
        args.conductor,
        "--log-level",
        args.conductor_log_level,
        "start",
        "--workers",
        str(workers),
        "--config",
        str(config),
    ]
    log_file = log_path.open("wb")
    server.begin()
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
    )
    sampler = ProcessSampler(process.pid)
    done_at = None
    first_doc = None
    ended = False
    cpu_at_done = None
    try:
        while True:
            sampler.sample()
            count = poller.poll()
            if first_doc is None and count > 0:
                first_doc = time.monotonic() - started
            if count >= target:
                done_at = time.monotonic()
                sampler.sample()
                break
            if process.poll() is not None:
                result.notes.append(f"conductor exited early with {process.returncode}")
                break
            if time.monotonic() - started > args.timeout:
                result.notes.append(f"timed out after {args.timeout:.0f}s at {count} {unit}s")
                break
            time.sleep(poller.next_pause())
        if done_at is not None and settle is not None:
            server.end()
            ended = True
            cpu_at_done = sampler.total_cpu
            while True:
                if settle():
                    result.committed_s = time.monotonic() - started
                    break
                if process.poll() is not None:
                    result.notes.append(
                        f"conductor exited with {process.returncode} before committing everything"
                    )
                    break
                if time.monotonic() - started > args.timeout:
                    result.notes.append(f"timed out after {args.timeout:.0f}s waiting for the commits")
                    break
                time.sleep(args.fast_poll)
                sampler.sample()
    finally:
        if not ended:
            server.end()
        result.server = server
        result.client_cpu = sampler.total_cpu if cpu_at_done is None else cpu_at_done
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
        result.steady = steady_rate([(t - started, n) for t, n in poller.samples], target)
    if settle is not None and done_at is not None and result.committed_s is None:
        result.ok = False
    if code != 0:
        result.ok = False
        result.notes.append(f"exit code {code} after SIGTERM (want 0)")
    states = read_worker_states(state_root / name)
    written = sum(int(s.get("written", 0)) for s in states)
    lag = [p.get("lag") for s in states for p in s.get("partitions", []) or []]
    result.notes.append(
        f"first {unit} visible after {first_doc:.1f}s"
        if first_doc is not None
        else f"no {unit} became visible"
    )
    result.notes.append(f"{unit}s by second: " + timeline(poller.samples, started))
    if result.committed_s is not None:
        result.notes.append(f"group committed every offset at {result.committed_s:.1f}s")
    result.notes.append(
        f"SIGTERM -> exit {code} in {stop_s:.1f}s; workers seen {sampler.workers_seen}; "
        f"'written' summed over worker states {written}"
    )
    if any(lag):
        result.notes.append(f"lag left in worker states: {lag}")
    rss = sorted(round(r / MIB) for r in sampler.worker_rss)
    sup = sampler.rss.get(process.pid, 0) / MIB
    result.notes.append(f"max RSS MiB: workers {rss}, supervisor {sup:.0f}")
    if done_at is not None:
        problems = check()
        if problems:
            result.ok = False
            result.notes += problems
    if not result.ok:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        result.notes.append("log tail:\n      " + "\n      ".join(tail))
    if args.logs:
        target_dir = Path(args.logs) / name
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, target_dir / log_path.name)
        if (state_root / name).is_dir():
            shutil.copytree(state_root / name, target_dir / "state", dirs_exist_ok=True)
        result.notes.append(f"log kept in {target_dir}")
    return result


def write_properties(directory: Path, name: str, lines: Sequence[str]) -> Path:
    path = directory / f"{name}.properties"
    # A free port for conductor's REST server: Kafka Connect, the peer, listens on 8083.
    lines = [*lines, "listeners=http://127.0.0.1:0"]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- one worker under cProfile, in this process ---------------------------------------------------------


def stop_after(done: Callable[[], bool], state_dir: Path) -> Any:
    """A real WorkerControl, but the stop comes once `done()` says so (checked every loop)."""
    from conductor.workercontrol import HeartbeatFile, WorkerControl

    class StopAfter(WorkerControl):
        @property
        def stop_requested(self) -> bool:
            return done()

    _, boot = os.pipe()
    return StopAfter(0, HeartbeatFile(), boot, state_dir)


@dataclass
class Profiled:
    seconds: float
    cpu: float
    code: int
    counts: dict[str, int]
    text: str
    stats: pstats.Stats


def profile_in_process(
    config_path: Path, count: int, top: int, out: str | None, server: ServerCpu
) -> Profiled:
    """One worker (the one `conductor start` forks, run in this process) under cProfile until
    it wrote `count` records; `server` measures the same span."""
    from conductor.config import load_config
    from conductor.connector import build_connector

    connector = build_connector(load_config(config_path))
    run: Any = None
    control = stop_after(
        lambda: run is not None and run.task.counts["written"] >= count, config_path.parent / "state"
    )
    run = connector.worker().build(0, control)
    profiler = cProfile.Profile()
    server.begin()
    cpu0 = self_cpu()
    started = time.monotonic()
    profiler.enable()
    code = run.run()
    profiler.disable()
    seconds = time.monotonic() - started
    cpu = self_cpu() - cpu0
    server.end()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    if out:
        stats.dump_stats(out)
    return Profiled(seconds, cpu, code, dict(run.task.counts), text.getvalue(), stats)


def profile_table(stats: pstats.Stats, seconds: float, top: int) -> str:
    rows = []
    for (filename, line, function), (_cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
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


Column = tuple[str, Callable[[Result], str]]  # header, cell


def table(
    results: list[Result], limit: Result | None, servers: Sequence[Server], extra: Sequence[Column] = ()
) -> str:
    """One row per result; `servers` as in the results' ServerCpu; `extra` columns go after
    "wall s"."""
    head = (
        "| run | records/s | steady 10-90% rec/s | limit just before, rec/s | % of limit | wall s | "
        + "".join(f"{header} | " for header, _ in extra)
        + "client/conductor CPU s per M | max RSS per worker MiB | "
        + "".join(f"{s.short} CPU s per M | " for s in servers)
        + "other CPU s (machine busy) | ok |"
    )
    lines = [head, "|---|" + "---:|" * (8 + len(extra) + len(servers)) + "---|"]
    for r in results:
        server = r.server
        if r is limit:
            pct = "limit"
        elif r.kind in ("limit", "reference"):
            pct = f"{100 * r.rate / limit.rate:.0f}%" if limit and r.ok else ""
        else:
            pct = percent(r, limit)
        name = f"**{r.label}**" if r is limit else r.label
        other = busy = None
        if server:
            busy = server.used[-1]
            ours = r.client_cpu + sum(x for x in server.used[:-1] if x == x)
            other = busy - ours
        lines.append(
            f"| {name} | {fmt(r.rate)} | {fmt(r.steady)} | {fmt(r.adjacent.rate) if r.adjacent else ''} | "
            f"{pct} | {fmt(r.seconds, '.1f')} | "
            + "".join(f"{cell(r)} | " for _, cell in extra)
            + f"{fmt(r.per_million(r.client_cpu), '.1f')} | {fmt(r.rss_mib, '.0f') if r.rss_mib else ''} | "
            + "".join(
                f"{fmt(r.per_million(server.used[n]) if server else None, '.1f')} | "
                for n in range(len(servers))
            )
            + f"{fmt(other, '.1f')} ({fmt(busy, '.1f')}) | {'yes' if r.ok else 'NO'} |"
        )
    return "\n".join(lines)


def best_line(results: list[Result], limit: Result | None) -> list[str]:
    """The verdict: the fastest good conductor run against the limit measured just before it."""
    if limit is None:
        return []
    goal = [r for r in results if r.kind == "conductor" and r.ok]
    best = max(goal, key=lambda r: r.rate, default=None)
    if best is None:
        return []
    ref = best.adjacent if best.adjacent and best.adjacent.ok else limit
    verdict = "meets" if best.rate >= GOAL * ref.rate else "misses"
    return [
        f"Best end to end: {best.label} at {best.rate:,.0f} records/s = "
        f"{100 * best.rate / ref.rate:.0f}% of the limit measured just before it "
        f"({ref.rate:,.0f} records/s; {100 * best.rate / limit.rate:.0f}% of the best limit "
        f"of the sweep, {limit.rate:,.0f} records/s): this {verdict} the 80% goal.",
        "",
    ]


def settings_line(args: argparse.Namespace) -> str:
    return (
        "- conductor settings: defaults of the example config"
        + (f", plus {', '.join(args.conductor_setting)}" if args.conductor_setting else "")
        + (f", environment {', '.join(args.conductor_env)}" if args.conductor_env else "")
        + f"; log level {args.conductor_log_level}"
    )


def render(
    *,
    begin: str,
    end: str,
    script: str,
    started: Any,
    info: dict[str, str],
    bullets: Sequence[str],
    table_text: str,
    results: list[Result],
    limit: Result | None,
    profile: str | None,
    extra: Sequence[str] = (),
) -> str:
    """The generated block: run header, the table, the verdict, notes per run, the profile."""
    command = f".venv/bin/python {script} " + " ".join(sys.argv[1:])
    lines = [
        begin,
        "",
        f"### Latest run: {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; `nproc` = {os.cpu_count()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        *bullets,
        "",
        table_text,
        "",
    ]
    lines += best_line(results, limit)
    lines += extra
    lines.append("Notes per run:")
    lines.append("")
    for r in results:
        if r.notes:
            lines.append(f"- {r.label}: " + "; ".join(r.notes))
    lines.append("")
    if profile:
        lines += ["#### One worker in-process under cProfile (hot spots, by own time)", "", profile, ""]
    lines.append(end)
    return "\n".join(lines)


def kafka_version(kafka_proc: psutil.Process | None) -> str:
    if kafka_proc is not None and not kafka_proc.is_running():  # restarted since: ask the new one
        kafka_proc = find_process(KAFKA.needle)
    try:
        cmdline = " ".join(kafka_proc.cmdline()) if kafka_proc else ""
    except psutil.Error:
        cmdline = ""
    match = re.search(r"kafka[_-](\d+\.\d+\.\d+)", cmdline)
    return match.group(1) if match else "unknown"


def conductor_version() -> str | None:
    """The commit, and whether tracked files differ from it."""
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip() + (
            " (+ uncommitted changes)"
            if subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            else ""
        )
    except OSError:
        return None


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model or platform.processor() or 'unknown'}), "
        f"{psutil.virtual_memory().total / 1024**3:.1f} GiB RAM, {platform.system()} {platform.release()}"
    )


def write_doc(path: Path, block: str, begin: str, end: str, new_file: str, new_section: str = "") -> None:
    """Replace the text between `begin` and `end` in `path` with `block` (which holds both
    markers) and keep the rest. Without the markers the block goes at the end, after
    `new_section` (its heading and method text); a new file starts with `new_file`."""
    exists = path.exists()
    text = path.read_text() if exists else new_file
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = (
            text.rstrip("\n")
            + "\n\n"
            + (new_section.strip("\n") + "\n\n" if new_section else "")
            + block
            + "\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- arguments, retries, clean-up ------------------------------------------------------------------------


def add_run_arguments(parser: argparse.ArgumentParser, poll: float, fast_poll: float, what: str) -> None:
    """The options every pipeline benchmark has: Kafka, the conductor CLI and its settings,
    polling, time-outs, the adjacent limit and retries. `what` names what is polled."""
    parser.add_argument("--kafka", default=os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument(
        "--conductor",
        default=shutil.which("conductor", path=os.path.dirname(sys.executable)) or "conductor",
        help="the conductor CLI (default: next to this Python)",
    )
    parser.add_argument("--conductor-log-level", default="WARNING")
    parser.add_argument(
        "--conductor-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra line for the generated .properties (repeatable)",
    )
    parser.add_argument(
        "--conductor-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for `conductor start` (repeatable), e.g. PYTHONPATH=...",
    )
    parser.add_argument(
        "--poll", type=float, default=poll, help=f"{what} poll interval in s (default {poll:g})"
    )
    parser.add_argument(
        "--fast-poll", type=float, default=fast_poll, help=f"poll interval past 90%% (default {fast_poll:g})"
    )
    parser.add_argument("--timeout", type=float, default=300, help="per conductor run, s (default 300)")
    parser.add_argument(
        "--no-adjacent-limit",
        dest="adjacent_limit",
        action="store_false",
        help="do not measure the best limit variant again right before each conductor run",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="run a phase again when a server restarted during it (default 2)",
    )


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", action="store_true", help="also profile one worker in-process (cProfile)"
    )
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--profile-out", default=None, help="write the cProfile stats here")


def add_output_arguments(parser: argparse.ArgumentParser, keep_help: str) -> None:
    parser.add_argument(
        "--output",
        default=str(ROOT / "docs" / "BENCHMARKS.md"),
        help="Markdown file to update ('-' for none)",
    )
    parser.add_argument(
        "--logs", default=None, metavar="DIR", help="copy each conductor run's log (and state files) into DIR"
    )
    parser.add_argument("--keep", action="store_true", help=keep_help)


def worker_counts(text: str) -> list[int]:
    return [int(w) for w in text.split(",") if w.strip()]


def retried(
    args: argparse.Namespace, run: Callable[[int], Any], errors: tuple[type[BaseException], ...]
) -> Any:
    """Run a phase again (up to --retries times) when a server went away (one of `errors`) or
    restarted during it: other test runs on a shared machine stop and start the servers."""
    attempt = 0
    while True:
        try:
            result = run(attempt)
        except errors as exc:
            if attempt >= args.retries:
                raise
            attempt += 1
            print(
                f"  a server went away during the run ({type(exc).__name__}); running it again "
                f"(attempt {attempt + 1})",
                flush=True,
            )
            continue
        disturbed = isinstance(result, Result) and bool(result.server and result.server.restarted)
        if not disturbed or attempt >= args.retries:
            if attempt and isinstance(result, Result):
                result.notes.append(f"attempt {attempt + 1} (earlier ones disturbed by a server restart)")
            return result
        attempt += 1
        print(
            f"  {result.label}: a server restarted during the run; running it again (attempt {attempt + 1})",
            flush=True,
        )


def delete_group(admin: Any, group: str) -> None:
    """Static members stay in the group after their consumer closed: remove them, then delete."""
    from kafka.admin import MemberToRemove

    description = admin.describe_groups([group]).get(group) or {}
    static = [
        m.get("group_instance_id") for m in description.get("members", []) if m.get("group_instance_id")
    ]
    if static:
        admin.remove_group_members(group, [MemberToRemove(group_instance_id=i) for i in static])
    answer = admin.delete_groups([group])
    pairs = answer.items() if isinstance(answer, dict) else answer
    for group_id, error in pairs:
        if error and str(error) not in ("OK", "NoError") and "NotFound" not in str(error):
            raise RuntimeError(f"{group_id}: {error}")


def cleanup_kafka(bootstrap: str, topic: str, groups: list[str], keep: bool) -> None:
    """Delete the consumer groups, and the topic unless `keep`; problems are printed."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    except Exception as exc:
        print(f"cleanup: Kafka admin: {exc}", file=sys.stderr)
        return
    try:
        for group in groups:
            try:
                delete_group(admin, group)
            except Exception as exc:
                print(f"cleanup: consumer group {group}: {exc}", file=sys.stderr)
        if not keep:
            try:
                admin.delete_topics([topic])
            except Exception as exc:
                print(f"cleanup: topic {topic}: {exc}", file=sys.stderr)
    finally:
        admin.close()
