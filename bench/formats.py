"""JSON values against Avro values: Kafka -> `conductor start` -> Elasticsearch, the same readings
in both formats, conductor's CPU per million records for each, in turns.

    .venv/bin/python bench/formats.py --records 500000 --rounds 3
    .venv/bin/python bench/formats.py --records 20000 --rounds 1 --output -        # smoke
    .venv/bin/python bench/formats.py --records 500000 --formats json --output - \\
        --baseline-env PYTHONPATH=/tmp/before-formats     # JSON: older code in turns with this one

One run:
  1. the same N readings as bench/es_pipeline.py (conductor.readings.readings, 1 s apart, the
     reading's time as record timestamp) are produced twice, to two new 6-partition topics: once
     as their JSON, once as Avro in Confluent's wire format (a zero byte, the 4-byte id of a
     schema registered under `<topic>-value`, the fastavro schemaless body; `timestamp` is a
     timestamp-millis long);
  2. each round runs, in turns, one `conductor start --workers 1` per series (JSON: the default
     converter, as es_pipeline runs it; Avro: `value.converter=...AvroConverter` with the
     registry's URL; `--baseline-env`: JSON again with that environment, e.g. an older checkout
     first on PYTHONPATH), each on a fresh connector name (a fresh consumer group) and fresh
     indexes, with es_pipeline's KCQL, timing, CPU sampling (supervisor + all workers) and check
     of the documents Elasticsearch holds (the same documents whatever the format);
  3. a Markdown table per run (records/s end to end, conductor CPU-s per million = us of CPU per
     record, Elasticsearch's and Kafka's, other load) and the mean per series, on stdout and in
     docs/BENCHMARKS.md between this script's markers; topics, indexes, consumer groups and the
     registry subject are deleted at the end.

Before the first run it waits (up to --load-wait s) for the 1-minute load to fall to --max-load;
a run during which other processes took more than --max-other-cpu of conductor's CPU is run
again (up to --retries times).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import io
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import orjson
import requests
from common import (
    KAFKA,
    PARTITIONS,
    ROOT,
    Result,
    ServerCpu,
    add_output_arguments,
    add_run_arguments,
    cleanup_kafka,
    find_process,
    fmt,
    produce,
    render,
    settings_line,
    write_doc,
)
from es_pipeline import (
    SERVERS,
    Dataset,
    build_dataset,
    conductor_run,
    delete_indexes,
    es_client,
    es_retried,
    versions,
    wait_for_es,
    warm_up,
)

MARK_BEGIN = "<!-- bench/formats.py: generated from here -->"
MARK_END = "<!-- bench/formats.py: generated until here -->"
AVRO_CONVERTER = "io.confluent.connect.avro.AvroConverter"
# The reading (conductor.readings) as a producer with Confluent's Avro serializer would declare it.
SCHEMA = {
    "type": "record",
    "name": "Reading",
    "namespace": "conductor.bench",
    "fields": [
        {"name": "reading_id", "type": "long"},
        {"name": "sensor_id", "type": "string"},
        {"name": "home_id", "type": "string"},
        {"name": "celsius", "type": "double"},
        {"name": "humidity", "type": "double"},
        {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


# -- the registry and the Avro values -------------------------------------------------------------


def register(url: str, subject: str, schema: dict) -> int:
    """The id the registry gives `schema` under `subject` (its Confluent-compatible REST API)."""
    answer = requests.post(
        f"{url}/subjects/{subject}/versions",
        data=orjson.dumps({"schema": orjson.dumps(schema).decode()}),
        headers={"content-type": "application/vnd.schemaregistry.v1+json"},
        timeout=10,
    )
    answer.raise_for_status()
    return int(answer.json()["id"])


def delete_subject(url: str, subject: str) -> None:
    """Soft, then permanently, as Confluent's API wants it; problems are printed."""
    for query in ("", "?permanent=true"):
        try:
            answer = requests.delete(f"{url}/subjects/{subject}{query}", timeout=10)
            if answer.status_code >= 400 and answer.status_code != 404:
                print(f"cleanup: subject {subject}: {answer.status_code} {answer.text}", file=sys.stderr)
        except requests.RequestException as exc:
            print(f"cleanup: subject {subject}: {exc}", file=sys.stderr)


def avro_values(values: Sequence[bytes], schema_id: int) -> list[bytes]:
    """Each JSON reading written with fastavro and framed as Confluent's KafkaAvroSerializer does."""
    parsed = fastavro.parse_schema(SCHEMA)
    prefix = b"\x00" + struct.pack(">I", schema_id)
    write, loads = fastavro.schemaless_writer, orjson.loads
    out = []
    buffer = io.BytesIO()
    for value in values:
        buffer.seek(0)
        buffer.truncate()
        write(buffer, parsed, loads(value))
        out.append(prefix + buffer.getvalue())
    return out


# -- the series and their runs ---------------------------------------------------------------------


@dataclass
class Series:
    """What one kind of run reads and how conductor is started for it."""

    label: str
    data: Dataset  # values: the JSON the documents must equal, whatever the topic holds
    settings: list[str] = field(default_factory=list)  # extra config lines
    env: list[str] = field(default_factory=list)  # extra environment
    bytes_per_value: float = 0.0


@dataclass
class Run:
    series: Series
    round: int
    result: Result
    load: float  # 1-minute load average just before


def imported_from(env: Sequence[str]) -> str:
    """Where `conductor` and `tasks` are imported from with this extra environment, by the
    Python the conductor CLI runs on (what `--baseline-env PYTHONPATH=...` must change); `-P`:
    as for the CLI, a script, the working directory is not put first on sys.path."""
    probe = "import conductor, tasks; print(conductor.__file__.rsplit('/', 2)[0], tasks.__file__.rsplit('/', 2)[0])"
    answer = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        env={**os.environ, **dict(item.split("=", 1) for item in env)},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    found = answer.stdout.split()
    if len(found) != 2:
        return f"unknown ({answer.stderr.strip().splitlines()[-1:] or answer.returncode})"
    return (
        f"conductor and tasks from {found[0]}"
        if found[0] == found[1]
        else f"conductor from {found[0]}, tasks from {found[1]}"
    )


def wait_for_quiet(args: argparse.Namespace) -> float:
    """The 1-minute load once it is at most --max-load, or after --load-wait s."""
    waited = 0.0
    while (load := os.getloadavg()[0]) > args.max_load and waited < args.load_wait:
        print(f"  1-minute load {load:.2f} > {args.max_load}: waiting ({waited:.0f}s so far)", flush=True)
        time.sleep(30)
        waited += 30
    return load


def run_series(
    args: argparse.Namespace,
    series: Series,
    round_: int,
    run_id: str,
    workdir: Path,
    groups: list[str],
) -> Run:
    """One es_pipeline conductor run with the series' settings and environment; again when
    other processes took more than --max-other-cpu of conductor's CPU meanwhile."""
    ns = copy.copy(args)
    ns.conductor_setting = [*args.conductor_setting, *series.settings]
    ns.conductor_env = [*args.conductor_env, *series.env]
    earlier: list[float] = []
    while True:
        load = os.getloadavg()[0]
        r = es_retried(
            ns,
            lambda attempt: conductor_run(
                ns, series.data, args.workers, run_id, workdir, ServerCpu(SERVERS), groups, attempt
            ),
        )
        r.label = f"{series.label}, round {round_}"
        other = other_cpu(r)
        print(
            f"  {r.label}: {r.rate:,.0f} rec/s, CPU {r.per_million(r.client_cpu):.2f} s/M, "
            f"other {fmt(other, '.1f')} CPU-s, load before {load:.2f}, ok={r.ok}",
            flush=True,
        )
        if not r.ok:
            for note in r.notes:
                print(f"    {note}", flush=True)
        if not (other > args.max_other_cpu * r.client_cpu) or len(earlier) >= args.retries:
            if earlier:
                r.notes.append(
                    f"attempt {len(earlier) + 1}; other load took {', '.join(f'{o:.1f}' for o in earlier)} "
                    "CPU-s in the earlier ones"
                )
            return Run(series, round_, r, load)
        earlier.append(other)
        print(f"    other load took {other:.1f} CPU-s during the run: running it again", flush=True)


def other_cpu(r: Result) -> float:
    """The machine's busy CPU-s during the run minus conductor's, Elasticsearch's and Kafka's."""
    if r.server is None:
        return float("nan")
    return r.server.used[-1] - r.client_cpu - sum(x for x in r.server.used[:-1] if x == x)


# -- report ------------------------------------------------------------------------------------------


def runs_table(runs: list[Run]) -> str:
    lines = [
        "| run | records/s | steady 10-90% rec/s | wall s | conductor CPU-s per M | max RSS per worker MiB | "
        "ES CPU-s per M | Kafka CPU-s per M | other CPU-s (machine busy) | load before | ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        r = run.result
        server = r.server
        lines.append(
            f"| {r.label} | {fmt(r.rate)} | {fmt(r.steady)} | {fmt(r.seconds, '.1f')} | "
            f"{fmt(r.per_million(r.client_cpu), '.2f')} | {fmt(r.rss_mib, '.0f')} | "
            + "".join(f"{fmt(r.per_million(server.used[n]) if server else None, '.1f')} | " for n in range(2))
            + f"{fmt(other_cpu(r), '.1f')} ({fmt(server.used[-1] if server else None, '.1f')}) | "
            f"{run.load:.2f} | {'yes' if r.ok else 'NO'} |"
        )
    return "\n".join(lines)


def means_table(runs: list[Run], series: list[Series]) -> str:
    """Per series over its good runs: mean (min-max) of records/s and CPU-s per M, and the CPU
    against the first JSON series without extra environment."""
    cpu: dict[str, list[float]] = {}
    rate: dict[str, list[float]] = {}
    for run in runs:
        if run.result.ok:
            cpu.setdefault(run.series.label, []).append(run.result.per_million(run.result.client_cpu))
            rate.setdefault(run.series.label, []).append(run.result.rate)
    reference = next((s.label for s in series if s.label == "json"), series[0].label)
    ref = statistics.mean(cpu[reference]) if cpu.get(reference) else None
    lines = [
        "| series | good runs | bytes per value | records/s, mean (range) | conductor CPU-s per M, mean (range) | "
        f"CPU vs {reference} |",
        "|---|---:|---:|---|---|---:|",
    ]
    for s in series:
        c, r = cpu.get(s.label, []), rate.get(s.label, [])
        if not c:
            lines.append(f"| {s.label} | 0 | {s.bytes_per_value:.0f} | | | |")
            continue
        mean = statistics.mean(c)
        versus = "" if ref is None or s.label == reference else f"{100 * (mean / ref - 1):+.0f}%"
        lines.append(
            f"| {s.label} | {len(c)} | {s.bytes_per_value:.0f} | "
            f"{statistics.mean(r):,.0f} ({min(r):,.0f}-{max(r):,.0f}) | "
            f"{mean:.2f} ({min(c):.2f}-{max(c):.2f}) | {versus} |"
        )
    return "\n".join(lines)


def render_block(
    args: argparse.Namespace,
    runs: list[Run],
    series: list[Series],
    started: dt.datetime,
    info: dict[str, str],
    produced: dict[str, float],
    imports: dict[str, str],
    load: float,
) -> str:
    data = series[0].data
    bullets = [
        f"- data: {data.count:,} readings, {len(data.per_index)} daily indexes, {PARTITIONS} partitions "
        "per topic; produced in "
        + ", ".join(f"{label} {seconds:.1f}s" for label, seconds in produced.items()),
        f"- series, in turns, {args.rounds} round(s), `--workers {args.workers}`: "
        + "; ".join(
            f"{s.label}" + (f" ({', '.join(s.settings + s.env)})" if s.settings or s.env else "")
            for s in series
        ),
        "- code imported: " + "; ".join(f"{label}: {where}" for label, where in imports.items()),
        settings_line(args),
        f"- 1-minute load before the first run: {load:.2f}",
    ]
    return render(
        begin=MARK_BEGIN,
        end=MARK_END,
        script="bench/formats.py",
        started=started,
        info=info,
        bullets=bullets,
        table_text=runs_table(runs),
        results=[run.result for run in runs],
        limit=None,
        profile=None,
        extra=["Mean per series:", "", means_table(runs, series), ""],
    )


# -- main ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=500_000, help="readings to produce (default 500000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per series, in turns (default 3)")
    parser.add_argument("--workers", type=int, default=1, help="conductor workers (default 1)")
    parser.add_argument(
        "--formats", default="json,avro", help="series to run: json, avro or both (default json,avro)"
    )
    parser.add_argument(
        "--baseline-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also run the JSON series with this extra environment, first in each round "
        "(repeatable), e.g. PYTHONPATH=<a worktree of older code>",
    )
    parser.add_argument(
        "--es", default=os.environ.get("CONDUCTOR_ELASTICSEARCH_URL", "http://127.0.0.1:19200")
    )
    parser.add_argument(
        "--registry",
        default=os.environ.get("CONDUCTOR_SCHEMA_REGISTRY_URL", "http://127.0.0.1:18081/apis/ccompat/v7"),
        help="the Schema Registry's Confluent-compatible API",
    )
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for this 1-minute load first")
    parser.add_argument("--load-wait", type=float, default=1200, help="at most this long, s (default 1200)")
    parser.add_argument(
        "--max-other-cpu",
        type=float,
        default=0.25,
        help="run again a run during which other processes took more than this fraction of "
        "conductor's CPU (default 0.25)",
    )
    add_run_arguments(parser, poll=0.5, fast_poll=0.1, what="_count")
    add_output_arguments(parser, keep_help="keep the topics and the registry subject (indexes are deleted)")
    args = parser.parse_args(argv)
    args.format_list = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = set(args.format_list) - {"json", "avro"}
    if unknown or not args.format_list:
        parser.error(f"--formats: json and/or avro, not {args.formats!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started_at = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-formats-{run_id}-"))
    wait_for_es(args.es, args.kafka)
    groups: list[str] = []
    runs: list[Run] = []
    topics: list[str] = []
    subject = None
    data = None
    total = time.monotonic()
    try:
        print(f"run {run_id}: building {args.records:,} readings", flush=True)
        data = build_dataset(args.records, run_id)
        series: list[Series] = []
        produced: dict[str, float] = {}
        json_data = avro_data = None
        if "json" in args.format_list or args.baseline_env:
            json_data = dataclasses.replace(data, topic=f"bench-{run_id}-json")
            topics.append(json_data.topic)
            produced["json"] = produce(args.kafka, json_data)
            print(f"  JSON to {json_data.topic} in {produced['json']:.1f}s", flush=True)
        if "avro" in args.format_list:
            avro_data = dataclasses.replace(data, topic=f"bench-{run_id}-avro")
            subject = f"{avro_data.topic}-value"
            schema_id = register(args.registry, subject, SCHEMA)
            encoded = avro_values(data.values, schema_id)
            topics.append(avro_data.topic)
            produced["avro"] = produce(args.kafka, dataclasses.replace(avro_data, values=encoded))
            avro_bytes = sum(map(len, encoded)) / len(encoded)
            del encoded
            print(
                f"  Avro (schema id {schema_id}) to {avro_data.topic} in {produced['avro']:.1f}s", flush=True
            )
        json_bytes = sum(map(len, data.values)) / data.count
        if args.baseline_env and json_data is not None:
            label = "json, " + " ".join(args.baseline_env)
            series.append(Series(label, json_data, env=list(args.baseline_env), bytes_per_value=json_bytes))
        if "json" in args.format_list and json_data is not None:
            series.append(Series("json", json_data, bytes_per_value=json_bytes))
        if avro_data is not None:
            converter = [
                f"value.converter={AVRO_CONVERTER}",
                f"value.converter.schema.registry.url={args.registry}",
            ]
            series.append(Series("avro", avro_data, settings=converter, bytes_per_value=avro_bytes))
        imports = {s.label: imported_from([*args.conductor_env, *s.env]) for s in series}
        for label, where in imports.items():
            print(f"  {label}: {where}", flush=True)

        es_retried(args, lambda attempt: warm_up(args.es, args.kafka, data))
        load = wait_for_quiet(args)
        print(f"  1-minute load {load:.2f}: measuring", flush=True)
        for round_ in range(1, args.rounds + 1):
            for s in series:
                runs.append(run_series(args, s, round_, run_id, workdir, groups))

        kafka = find_process(KAFKA.needle)
        info = versions(args.es, kafka)
        info["fastavro"] = fastavro.__version__
        block = render_block(args, runs, series, started_at, info, produced, imports, load)
        print()
        print(block)
        if args.output != "-":
            heading = "## JSON and Avro values (`bench/formats.py`)"  # only without the markers
            write_doc(Path(args.output), block, MARK_BEGIN, MARK_END, "# Benchmarks\n", heading)
            print(f"\nwritten to {args.output}")
        print(f"total {time.monotonic() - total:.0f}s")
        return 0 if all(run.result.ok for run in runs) else 1
    finally:
        cleanup(args, data, topics, groups, subject)
        shutil.rmtree(workdir, ignore_errors=True)


def cleanup(
    args: argparse.Namespace, data: Dataset | None, topics: list[str], groups: list[str], subject: str | None
) -> None:
    if data is not None:
        try:
            wait_for_es(args.es, args.kafka)
            client = es_client(args.es)
            delete_indexes(client, data.pattern)
            client.close()
        except Exception as exc:
            print(f"cleanup: indexes {data.pattern}: {exc}", file=sys.stderr)
    for n, topic in enumerate(topics):
        cleanup_kafka(args.kafka, topic, groups if n == 0 else [], args.keep)
    if not topics and groups:
        cleanup_kafka(args.kafka, "", groups, keep=True)
    if subject and not args.keep:
        delete_subject(args.registry, subject)


if __name__ == "__main__":
    sys.exit(main())
