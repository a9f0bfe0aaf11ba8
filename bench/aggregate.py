"""Kafka -> conductor's aggregator -> Kafka, against quix-streams computing the same windowed
aggregation exactly once, on the same topic data, measured in the same run.

The data, the truth and the quix-streams runner are bench/aggregate_peer.py's: N JSON readings
keyed by sensor_id and placed on partitions by home_id, then one closer per sensor that closes
every window. Each round runs, in turns:

- conductor by key: `... FROM <in> KEYED BY sensor_id WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY
  sensor_id` (no repartition), `conductor start --workers W`;
- conductor by field: the same grouped by home_id without KEYED BY (a repartition topic), with a
  GRACE PERIOD from the first reading to the closers: conductor's stream time is per partition,
  and a repartition partition mixes input partitions read at different paces (at grace 0 most
  readings are late); the windows then close by idle close, so the readings are written that
  far in the past;
- the by-field job again, with one worker killed -9 once half the input is committed: the
  "restored ... in X s" lines the workers log after it, and the results must still be exact;
- quix-streams by sensor_id and by home_id, W processes, exactly-once, at each commit interval.

Each run is timed from just before the spawn until every window of the truth is in the output
topic (read_committed); CPU of the whole process tree, max RSS per worker, Kafka's CPU and the
machine's are taken at that moment; then SIGTERM, and every result is checked (counts exact,
floats to 1e-9, no window twice). A run waits for a quiet machine, and one during which other
load took more than --max-other-cpu is run again. Method and results: docs/BENCHMARKS.md.

    .venv/bin/python bench/aggregate.py --records 1000000 --rounds 2 --profile home_id sensor_id
    .venv/bin/python bench/aggregate.py --records 50000 --quix-commit 5 --output -   # smoke
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import itertools
import os
import platform
import pstats
import re
import shutil
import signal
import statistics
import subprocess
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aggregate_peer import (
    CLOSER_GAP_MS,
    GROUPINGS,
    MIB,
    PER_MINUTE,
    WINDOW_MS,
    CommittedPoller,
    Produced,
    ResultReader,
    cleanup,
    create_topic,
    expected,
    produce_readings,
    run_quix,
    verify,
)
from common import (
    KAFKA,
    ROOT,
    ProcessSampler,
    ServerCpu,
    _short,
    conductor_version,
    find_process,
    kafka_version,
    machine,
    machine_busy,
    read_worker_states,
    self_cpu,
    stop,
    stop_after,
    write_doc,
)

MARK_BEGIN = "<!-- bench/aggregate.py: generated from here -->"
MARK_END = "<!-- bench/aggregate.py: generated until here -->"
SHORT = {"sensor_id": "key", "home_id": "field"}
RUNS = itertools.count(1)  # a fresh connector name (and group) for every conductor run
RESTORED = re.compile(
    r"^(\S+ \S+) INFO \[(\d+)\] conductor\.worker: worker (\d+): restored (\d+) open window\(s\) of "
    r"(\d+) partition\(s\) from (\d+) changelog record\(s\) in ([\d.]+)s"
)


def statement(by: str, source: str, output: str, grace_s: int) -> str:
    keyed = " KEYED BY sensor_id" if by == "sensor_id" else ""
    grace = f", GRACE PERIOD {grace_s} SECONDS" if grace_s and by != "sensor_id" else ""
    return (
        f"INSERT INTO {output} SELECT {by}, COUNT(*) AS n, AVG(celsius) AS avg, MIN(celsius) AS lo, "
        f"MAX(celsius) AS hi FROM {source}{keyed} WINDOW TUMBLING (SIZE 1 MINUTE{grace}) GROUP BY {by}"
    )


@dataclass
class Phase:
    """One measured run of conductor or quix-streams."""

    label: str
    system: str  # "conductor" | "quix"
    by: str
    commit: str  # how often it commits, as said in the table
    round: int
    records: int
    seconds: float = float("nan")
    cpu: float = float("nan")  # the whole process tree
    kafka_cpu: float = float("nan")
    busy: float = float("nan")  # the machine's non-idle CPU during the run
    bench_cpu: float = 0.0  # this process (the result reader) during the run
    rss_mib: list[float] = field(default_factory=list)  # max per worker process
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    restore: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds == self.seconds else float("nan")

    @property
    def per_cpu_s(self) -> float:
        return self.records / self.cpu

    @property
    def other(self) -> float:
        return self.busy - self.cpu - self.kafka_cpu - self.bench_cpu

    def per_million(self, cpu: float) -> float:
        return cpu / self.records * 1e6


# -- conductor ----------------------------------------------------------------------------------------


def write_config(workdir: Path, name: str, args: argparse.Namespace, sql: str) -> Path:
    path = workdir / f"{name}.properties"
    lines = [
        f"name={name}",
        "connector.class=conductor.aggregate",
        f"tasks.max={args.workers}",
        f"topics={args.topic}",
        f"bootstrap.servers={args.kafka}",
        "listeners=http://127.0.0.1:0",
        f"conductor.aggregate.sql={sql}",
        # Closes what stream time has not (by field, with a grace as long as the data, everything)
        # once the whole group is caught up; the closers' own windows with it.
        f"conductor.aggregate.idle.close.ms={args.idle_close_ms}",
        *args.conductor_setting,
    ]
    path.write_text("\n".join(lines) + "\n")
    checked = subprocess.run(
        [args.conductor, "validate", "--config", str(path)], capture_output=True, text=True
    )
    if checked.returncode != 0:
        raise SystemExit(f"conductor validate --config {path}:\n{checked.stdout}{checked.stderr}")
    return path


def conductor_phase(args: argparse.Namespace, truth: dict, by: str, round_: int, kill: bool = False) -> Phase:
    """`conductor start --workers W` until every window of `truth` is in its output."""
    name = f"bench-agg-{args.run_id}-{SHORT[by]}-{next(RUNS)}"
    output = f"{name}-out"
    label = f"conductor --workers {args.workers}, by {by}" + (", one worker killed -9 at 50%" if kill else "")
    phase = Phase(label, "conductor", by, "a transaction per poll (<= 2,000 records)", round_, args.records)
    create_topic(args.kafka, output, args.partitions)
    sql = statement(by, args.topic, output, args.grace_s)
    config = write_config(args.workdir, name, args, sql)
    state_root = args.workdir / f"state-{name}"
    log_path = args.workdir / f"{name}.log"
    env = {**os.environ, "CONDUCTOR_STATE_DIR": str(state_root)}
    command = [args.conductor, "--log-level", args.conductor_log_level, "start", "--workers", str(args.workers)]  # fmt: skip
    reader = ResultReader(args.kafka, output, by)
    progress = CommittedPoller(args.kafka, f"connect-{name}", args.topic)
    input_end = args.records + args.closers
    closer_start = args.closer_ts - args.closer_ts % WINDOW_MS
    read, read_changed = 0, 0.0
    killed: tuple[float, float, int, int] | None = None  # monotonic, wall, pid, log offset
    server = ServerCpu([KAFKA])
    log_file = log_path.open("wb")
    server.begin()
    own = self_cpu()
    started = time.monotonic()
    process = subprocess.Popen(
        [*command, "--config", str(config)], stdout=log_file, stderr=subprocess.STDOUT, env=env,
        cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    sampler = ProcessSampler(process.pid)
    done_at = None
    last_sample = 0.0
    try:
        while True:
            count = reader.poll(200)
            now = time.monotonic()
            if now - last_sample > 0.5:
                sampler.sample()
                progress.poll()
                last_sample = now
                states = read_worker_states(state_root / name)
                if sum(int(s.get("read", 0)) for s in states) != read:
                    read, read_changed = sum(int(s.get("read", 0)) for s in states), now
                committed = progress.samples[-1][1] if progress.samples else 0
                if committed >= input_end and now - read_changed > args.quiet_stop:
                    phase.problems.append(
                        f"all input committed and nothing read for {args.quiet_stop:.0f}s: stopped with "
                        f"{count} of {len(truth)} windows"
                    )
                    break
                if kill and killed is None and committed >= input_end // 2:
                    workers = sorted(p.pid for p in sampler.root.children())
                    log_file.flush()
                    killed = (now, time.time(), workers[0], log_path.stat().st_size)
                    os.kill(workers[0], signal.SIGKILL)
                    print(f"    killed worker pid {workers[0]} -9 at {now - started:.1f}s", flush=True)
            if count >= len(truth) and all(key in reader.results for key in truth):
                done_at = time.monotonic()
                sampler.sample()
                break
            if process.poll() is not None:
                phase.problems.append(f"conductor exited early with {process.returncode}")
                break
            if now - started > args.timeout:
                phase.problems.append(
                    f"timed out after {args.timeout:.0f}s with {count} of {len(truth)} windows"
                )
                break
    finally:
        server.end()
        phase.bench_cpu = self_cpu() - own
        phase.cpu = sampler.total_cpu
        code = stop(process)
        log_file.close()
        for _ in range(5):  # whatever committed while stopping: a window twice would show here
            reader.poll(400)
        reader.close()
        progress.close()
    phase.seconds = done_at - started if done_at else float("nan")
    phase.kafka_cpu, phase.busy = server.used[0], server.used[-1]
    phase.rss_mib = sorted(
        rss / MIB for pid, rss in sampler.rss.items() if sampler.roles.get(pid) == "worker"
    )
    states = read_worker_states(state_root / name)
    late = sum(int(s.get("late", 0)) for s in states)
    results = {
        key: {"count": v["n"], "avg": v["avg"], "min": v["lo"], "max": v["hi"]}
        for key, v in reader.results.items()
        if key[1] != closer_start
    }
    closing = len(reader.results) - len(results)
    phase.problems += verify(results, truth) + server.restarted
    if reader.duplicates:
        phase.problems.append(f"{reader.duplicates} windows written more than once")
    if late:
        phase.problems.append(f"{late:,} readings late (dropped): a GRACE PERIOD is needed")
    if code != 0:
        phase.problems.append(f"exit code {code} after SIGTERM (want 0)")
    phase.ok = done_at is not None and not phase.problems
    phase.notes.append(
        f"workers seen {sampler.workers_seen}; summed over the last worker states: read "
        f"{sum(int(s.get('read', 0)) for s in states):,}, results {sum(int(s.get('results', 0)) for s in states):,}, "
        f"late {late}, open windows {sum(int(s.get('open_windows', 0)) for s in states):,}, idle close "
        f"deferred {sum(int(s.get('idle_close_deferred', 0)) for s in states)} time(s)"
    )
    if reader.first_at is not None:
        phase.notes.append(f"first window visible after {reader.first_at - started:.1f}s")
    if closing:
        phase.notes.append(f"{closing} windows of the closers (not checked) closed by idle close")
    if killed is not None:
        phase.restore, note = restores(log_path, killed, started)
        phase.notes.append(note)
    if not phase.ok:
        tail = log_path.read_text(errors="replace").splitlines()[-20:]
        phase.notes.append("log tail:\n      " + "\n      ".join(tail))
    if args.logs:
        target = Path(args.logs) / name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, target / log_path.name)
        if (state_root / name).is_dir():
            shutil.copytree(state_root / name, target / "state", dirs_exist_ok=True)
    if not args.keep:
        remove_conductor_topics(args.kafka, name, output)
    return phase


def restores(log_path: Path, killed: tuple[float, float, int, int], started: float) -> tuple[str, str]:
    """The restore lines logged after the kill: the table's cell and a note."""
    at_mono, at_wall, pid, offset = killed
    with log_path.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    cells, notes = [], []
    for line in lines:
        found = RESTORED.match(line)
        if not found:
            continue
        stamp, proc, worker, windows, parts, entries, seconds = found.groups()
        when = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() - at_wall
        cells.append(f"w{worker}: {int(windows):,} windows, {float(seconds):.2f} s")
        notes.append(
            f"worker {worker} (pid {proc}) restored {int(windows):,} open windows of {parts} partitions from "
            f"{int(entries):,} changelog records in {seconds}s, logged {when:.1f}s after the kill"
        )
    head = f"killed worker pid {pid} -9 at {at_mono - started:.1f}s (half the input committed); "
    if not cells:
        return "none logged", head + "no restore line logged after it (log level must be INFO)"
    return "; ".join(cells), head + "; ".join(notes)


def remove_conductor_topics(bootstrap: str, name: str, output: str) -> None:
    """The output, and the connector's repartition and changelog topics (connect-<name>-...)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        internal = [t for t in admin.list_topics() if t.startswith(f"connect-{name}-")]
    finally:
        admin.close()
    cleanup(bootstrap, f"connect-{name}", [output, *internal])


def profile_phase(args: argparse.Namespace, truth: dict, by: str) -> str:
    """One aggregator worker (what `conductor start` forks) in this process under cProfile, on
    all partitions, until it has closed every window of the truth."""
    from conductor.config import load_config
    from conductor.connector import build_connector
    from tasks.aggregator import AggregatorRun

    name = f"bench-agg-{args.run_id}-{SHORT[by]}-profile"
    output = f"{name}-out"
    create_topic(args.kafka, output, args.partitions)
    config = load_config(
        write_config(args.workdir, name, args, statement(by, args.topic, output, args.grace_s))
    )
    connector: Any = build_connector(config)
    holder: list[Any] = []
    (args.workdir / name).mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.timeout  # with late readings the truth is never complete
    control = stop_after(
        lambda: bool(holder) and (holder[0].counts["results"] >= len(truth) or time.monotonic() > deadline),
        args.workdir / name,
    )
    control._supervisor_pid = os.getppid()  # in-process: the "supervisor" is this process's parent
    run = AggregatorRun(config, connector.topology, 0, control, os.getpid())
    holder.append(run)
    # Wall time (cProfile's default clock; time.thread_time costs a system call per event and
    # inflates functions called often): waits show as `acquire` of a lock, and kafka-python's IO
    # thread is the difference between the process's CPU and the worker thread's.
    profiler = cProfile.Profile()
    cpu, thread_cpu, started = self_cpu(), time.thread_time(), time.monotonic()
    profiler.enable()
    code = run.run()
    profiler.disable()
    seconds, cpu = time.monotonic() - started, self_cpu() - cpu
    thread_cpu = time.thread_time() - thread_cpu
    stats = pstats.Stats(profiler)
    if args.profile_out:
        stats.dump_stats(f"{args.profile_out}.{SHORT[by]}")
    if not args.keep:
        remove_conductor_topics(args.kafka, name, output)
    return (
        f"One worker in-process under cProfile, by {by}, all {args.partitions} partitions: exit {code}, "
        f"{seconds:.1f}s, {cpu:.1f} CPU-s of which {thread_cpu:.1f} on the worker's thread "
        f"({args.records / cpu:,.0f} readings per CPU-s under the profiler); counts {run.counts}\n\n"
        + hot_spots(stats, seconds, args.profile_top)
    )


def hot_spots(stats: pstats.Stats, seconds: float, top: int) -> str:
    """The functions with the most own time, then the most time below them (the worker's thread)."""
    rows = [
        (tt, ct, nc, f"{_short(filename)}:{line} {function}")
        for (filename, line, function), (_cc, nc, tt, ct, _) in stats.stats.items()  # type: ignore[attr-defined]
    ]
    out = ["| own s | % of wall | with callees s | calls | function |", "|---:|---:|---:|---:|---|"]
    for tt, ct, nc, where in sorted(rows, reverse=True)[:top]:
        out.append(f"| {tt:.2f} | {100 * tt / seconds:.1f} | {ct:.2f} | {nc:,} | `{where}` |")
    out += ["", "| with callees s | % of wall | calls | function |", "|---:|---:|---:|---|"]
    for _tt, ct, nc, where in sorted(rows, key=lambda r: r[1], reverse=True)[:top]:
        out.append(f"| {ct:.2f} | {100 * ct / seconds:.1f} | {nc:,} | `{where}` |")
    return "\n".join(out)


# -- quix-streams ---------------------------------------------------------------------------------------


def quix_phase(args: argparse.Namespace, produced: Produced, by: str, interval: float, round_: int) -> Phase:
    found = run_quix(
        args.kafka, args.topic, args.records, args.workers, by, readings=produced.readings,
        partitions=args.partitions, commit_interval=interval, timeout=args.timeout,
        logs=args.logs and str(Path(args.logs) / f"quix-{SHORT[by]}-{interval:g}s-r{round_}"), keep=args.keep,
    )  # fmt: skip
    return Phase(
        f"quix-streams {args.workers} processes, by {by}",
        "quix",
        by,
        f"every {interval:g} s (exactly-once)",
        round_,
        args.records,
        seconds=found["seconds"],
        cpu=found["cpu_s"],
        kafka_cpu=found["kafka_cpu_s_per_million"] * args.records / 1e6,
        busy=found["machine_busy_s"],
        bench_cpu=found["bench_cpu_s"],
        rss_mib=[float(r) for r in found["rss_mib_per_worker"]],
        ok=found["ok"],
        problems=found["problems"],
        notes=[n for n in found["notes"] if not n.startswith("input committed by second")],
    )


# -- one phase: wait for a quiet machine, run, run again if disturbed ------------------------------------


def other_load(seconds: float = 3.0) -> float:
    """Cores busy with anything but Kafka over `seconds` (nothing of ours is running)."""
    kafka = find_process(KAFKA.needle)
    k0, b0 = (kafka.cpu_times() if kafka else None), machine_busy()
    time.sleep(seconds)
    k1, b1 = (kafka.cpu_times() if kafka else None), machine_busy()
    used = (k1.user + k1.system - k0.user - k0.system) if kafka and k0 and k1 else 0.0
    return (b1 - b0 - used) / seconds


def busiest(count: int = 3) -> str:
    """The processes using the most CPU over a second, as `ps` would show them."""
    procs = list(psutil.process_iter())
    for proc in procs:
        proc.cpu_percent()  # the first call only starts the count
    time.sleep(1.0)
    rows = []
    for proc in procs:
        try:
            rows.append((proc.cpu_percent(), proc.pid, " ".join(proc.cmdline()[:3])[:80]))
        except psutil.Error:
            pass
    return ", ".join(f"{pct:.0f}% pid {pid} {cmd}" for pct, pid, cmd in sorted(rows, reverse=True)[:count])


def measured(args: argparse.Namespace, run: Callable[[], Phase]) -> Phase:
    attempts: list[Phase] = []
    while True:
        waited = 0.0
        while (load := other_load()) > args.quiet_cores and waited < args.quiet_wait:
            print(f"    machine busy ({load:.2f} cores besides Kafka: {busiest()}); waiting", flush=True)
            time.sleep(10)
            waited += 13
        phase = run()
        phase.notes.insert(0, f"other load just before: {load:.2f} cores")
        attempts.append(phase)
        print(summary_line(phase), flush=True)
        for line in phase.problems + phase.notes:
            print(f"      {line}", flush=True)
        disturbed = phase.other > args.max_other_cpu * phase.cpu
        if not disturbed or len(attempts) > args.retries:
            if len(attempts) > 1:
                before = ", ".join(f"{p.other:.1f}" for p in attempts[:-1])
                phase.notes.append(
                    f"attempt {len(attempts)}; other load took {before} CPU-s in the earlier ones"
                )
            return phase
        print(f"    other load took {phase.other:.1f} CPU-s during the run: running it again", flush=True)


def summary_line(p: Phase) -> str:
    return (
        f"  r{p.round} {p.label}, commit {p.commit}: {p.rate:,.0f} rec/s, {p.per_million(p.cpu):.1f} CPU-s/M "
        f"({p.per_cpu_s:,.0f} rec per CPU-s), RSS {max(p.rss_mib, default=0):.0f} MiB, "
        f"other {p.other:.1f} CPU-s, ok={p.ok}" + (f", restore {p.restore}" if p.restore else "")
    )


# -- the report ---------------------------------------------------------------------------------------


def ratio_to_quix(p: Phase, phases: list[Phase], interval: str) -> str:
    if p.system != "conductor":
        return ""
    peer = next((q for q in phases if q.system == "quix" and q.by == p.by and q.round == p.round
                 and q.commit.startswith(f"every {interval} s")), None)  # fmt: skip
    return f"{p.per_cpu_s / peer.per_cpu_s:.2f}x" if peer else ""


def table(phases: list[Phase], intervals: Sequence[str]) -> str:
    head = (
        "| run | round | commits | records/s | wall s | CPU-s per M | records per CPU-s | "
        + "".join(f"vs quix {i} s | " for i in intervals)
        + "max RSS per worker MiB | restore after kill -9 | Kafka CPU-s per M | other CPU-s (machine busy) | ok |"
    )
    lines = [
        head,
        "|---|---:|---|---:|---:|---:|---:|" + "---:|" * len(intervals) + "---:|---|---:|---:|---|",
    ]
    for p in phases:
        lines.append(
            f"| {p.label} | {p.round} | {p.commit} | {p.rate:,.0f} | {p.seconds:.1f} | {p.per_million(p.cpu):.1f} | "
            f"{p.per_cpu_s:,.0f} | "
            + "".join(f"{ratio_to_quix(p, phases, i)} | " for i in intervals)
            + f"{max(p.rss_mib, default=0):.0f} | {p.restore} | {p.per_million(p.kafka_cpu):.1f} | "
            f"{p.other:.1f} ({p.busy:.1f}) | {'yes' if p.ok else 'NO'} |"
        )
    return "\n".join(lines)


def spread(phases: list[Phase]) -> list[str]:
    """Per kind of run: median and range over the rounds."""
    kinds: dict[tuple[str, str], list[Phase]] = {}
    for p in phases:
        kinds.setdefault((p.label, p.commit), []).append(p)
    out = []
    for (label, commit), runs in kinds.items():
        rates, per_cpu = [p.rate for p in runs], [p.per_cpu_s for p in runs]
        out.append(
            f"- {label}, commits {commit}: {statistics.median(rates):,.0f} records/s "
            f"({min(rates):,.0f}-{max(rates):,.0f}), {statistics.median(per_cpu):,.0f} records per CPU-s "
            f"({min(per_cpu):,.0f}-{max(per_cpu):,.0f}) over {len(runs)} round(s)"
        )
    return out


def versions(at_start: str | None) -> str:
    import kafka

    peers = subprocess.run(
        [str(ROOT / ".venv-peers" / "bin" / "python"), "-W", "ignore", "-c",
         "import quixstreams, confluent_kafka; print(quixstreams.__version__, confluent_kafka.libversion()[0])"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    quix, librdkafka = (peers + ["?", "?"])[:2]
    return (
        f"python {platform.python_version()}, kafka-python {kafka.__version__}, orjson {orjson.__version__}, "
        f"quix-streams {quix} (librdkafka {librdkafka}), Kafka {kafka_version(find_process(KAFKA.needle))}, "
        f"conductor {conductor_version()}"
        + ("" if conductor_version() == at_start else f" (at the start of the run: {at_start})")
    )


def render(args: argparse.Namespace, produced: Produced, windows: dict[str, int], phases: list[Phase],
           profiles: list[str], started: dt.datetime) -> str:  # fmt: skip
    intervals = [f"{i:g}" for i in args.quix_commit]
    lines = [
        MARK_BEGIN,
        "",
        f"### Latest run: {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- command: `.venv/bin/python bench/aggregate.py {' '.join(sys.argv[1:])}`",
        f"- machine: {machine()}; `nproc` = {os.cpu_count()}",
        f"- versions: {versions(args.code_at_start)}",
        f"- data: {args.records:,} readings + {produced.closers:,} closers, {args.partitions} partitions, keyed by "
        f"sensor_id, placed by home_id, produced in {produced.seconds:.1f}s; windows: "
        + ", ".join(f"{n:,} by {by}" for by, n in windows.items()),
        f"- conductor: `--workers {args.workers}`, by-field `GRACE PERIOD {args.grace_s} SECONDS`, "
        f"`conductor.aggregate.idle.close.ms={args.idle_close_ms}`"
        + (f", plus {', '.join(args.conductor_setting)}" if args.conductor_setting else "")
        + f"; quix-streams: {args.workers} processes, exactly-once, grace 0, closing strategy key",
        "",
        table(phases, intervals),
        "",
        "Median (range) over the rounds:",
        "",
        *spread(phases),
        "",
        "Notes per run:",
        "",
    ]
    for p in phases:
        lines.append(f"- r{p.round} {p.label}, commits {p.commit}: " + "; ".join(p.problems + p.notes))
    lines.append("")
    for text in profiles:
        lines += ["#### " + text.split("\n", 1)[0], "", text.split("\n", 1)[1].strip(), ""]
    lines.append(MARK_END)
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2, help="conductor workers and quix-streams processes")
    parser.add_argument("--rounds", type=int, default=1, help="run every phase this many times, in turns")
    parser.add_argument("--by", nargs="+", choices=GROUPINGS, default=list(GROUPINGS))
    parser.add_argument("--quix-commit", type=float, nargs="*", default=[5.0, 1.0], help="s (default 5 1)")
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="skip the kill -9 run")
    parser.add_argument(
        "--grace-s",
        type=int,
        default=None,
        help="GRACE PERIOD of the by-field statement (default: from the first reading to the closers)",
    )
    parser.add_argument("--idle-close-ms", type=int, default=1000, help="conductor.aggregate.idle.close.ms")
    parser.add_argument(
        "--quiet-stop", type=float, default=30, help="stop a run that read nothing for this long"
    )
    parser.add_argument("--profile", nargs="*", choices=GROUPINGS, default=[], help="profile one worker")
    parser.add_argument("--profile-top", type=int, default=20)
    parser.add_argument(
        "--profile-out", default=None, help="dump the cProfile stats to this path + .key/.field"
    )
    parser.add_argument("--kafka", default=os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--conductor", default=str(Path(sys.executable).parent / "conductor"))
    parser.add_argument("--conductor-log-level", default="INFO", help="INFO: the restore lines are needed")
    parser.add_argument("--conductor-setting", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=600, help="per run, s")
    parser.add_argument("--quiet-cores", type=float, default=0.3, help="wait while other load is above this")
    parser.add_argument("--quiet-wait", type=float, default=120, help="at most this long, s")
    parser.add_argument("--max-other-cpu", type=float, default=0.1, help="fraction of the run's own CPU")
    parser.add_argument("--retries", type=int, default=2, help="runs again of a disturbed run")
    parser.add_argument("--output", default=str(ROOT / "docs" / "BENCHMARKS.md"), help="'-' for none")
    parser.add_argument("--logs", default=None, metavar="DIR", help="keep logs and worker states here")
    parser.add_argument("--keep", action="store_true", help="keep the topics and groups")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = dt.datetime.now(dt.UTC)
    args.run_id = uuid.uuid4().hex[:6]
    args.code_at_start = conductor_version()  # others commit while it runs: said if it changed
    args.topic = f"bench-agg-{args.run_id}-in"
    args.workdir = Path(tempfile.mkdtemp(prefix=f"bench-agg-{args.run_id}-"))
    total = time.monotonic()
    phases: list[Phase] = []
    profiles: list[str] = []
    try:
        # By field, conductor needs a grace from the first reading to the closers (see the
        # section's notes), and the data that much older than now, so that idle close (stream time
        # moved to the wall clock) closes every window.
        span = args.records * WINDOW_MS // PER_MINUTE + CLOSER_GAP_MS
        if args.grace_s is None:
            args.grace_s = (span // WINDOW_MS + 2) * WINDOW_MS // 1000
        start_ms = (
            (int(time.time() * 1000) - span - args.grace_s * 1000 - 3 * WINDOW_MS) // WINDOW_MS * WINDOW_MS
        )
        produced = produce_readings(args.kafka, args.topic, args.records, args.partitions, start_ms=start_ms)
        args.closers, args.closer_ts = produced.closers, produced.closer_ts
        truths = {by: expected(produced.readings, by) for by in args.by}
        windows = {by: len(t) for by, t in truths.items()}
        print(f"run {args.run_id}: {args.records:,} readings + {produced.closers} closers to {args.topic} in "
              f"{produced.seconds:.1f}s; windows {windows}", flush=True)  # fmt: skip
        for round_ in range(1, args.rounds + 1):
            for by in args.by:
                for kill in (False, True) if by == "home_id" and args.kill else (False,):
                    phases.append(
                        measured(args, lambda b=by, k=kill: conductor_phase(args, truths[b], b, round_, k))
                    )
                for interval in args.quix_commit:
                    phases.append(
                        measured(args, lambda b=by, i=interval: quix_phase(args, produced, b, i, round_))
                    )
        for by in args.profile:
            profiles.append(profile_phase(args, truths[by], by))
            print(profiles[-1], flush=True)
        block = render(args, produced, windows, phases, profiles, started)
        print()
        print(block)
        if args.output != "-":
            heading = "## Aggregator vs quix-streams (`bench/aggregate.py`)"  # the first time only
            write_doc(Path(args.output), block, MARK_BEGIN, MARK_END, "# Benchmarks\n", heading)
            print(f"\nwritten to {args.output}")
        print(f"total {time.monotonic() - total:.0f}s")
        return 0 if all(p.ok for p in phases) else 1
    finally:
        if not args.keep:
            cleanup(args.kafka, None, [args.topic])
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
