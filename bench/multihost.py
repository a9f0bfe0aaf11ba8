"""Records/s of one connector on 1, 2 and 3 conductor hosts in one run: each host a network
namespace of its own running `conductor start --workers 2`, all in one consumer group, against a
Kafka and an Elasticsearch bound to the bridge's address.

    .venv/bin/python bench/multihost.py --records 200000 --hosts 1,2,3

Needs root (network namespaces). The network (a bridge on 10.231.0.1/24, one veth pair per host)
is tests/support/netns.py's, as tests/tasks/test_multihost.py uses it: bench imports it from
tests/support rather than keeping a second copy of code that runs `ip` as root. The servers are
`CONDUCTOR_BIND_HOST=10.231.0.1 compose/local up kafka elasticsearch` (39092, 39200): started here
unless they answer, and then stopped at the end.

One run: N readings (`conductor.readings.readings`, keyed by sensor) are produced once to a new
topic (12 partitions); then per host count, in turns for --rounds, a phase with a fresh connector
name (a fresh group, from offset 0) and a fresh index (`PK reading_id`, so N documents), every host
started at once. The clock starts just before the first host is spawned and stops when the group's
committed offsets add up to N (polled every 0.25 s); Elasticsearch must then count N documents and
every host exit 0 on SIGTERM. CPU: all conductor processes of the phase, Kafka's and
Elasticsearch's JVMs, and the machine's (other load makes a row less trustworthy). The table goes to
stdout and into docs/BENCHMARKS.md between this script's markers (its section at the end the first
time); `--output -` writes nothing. Topic, indexes and groups are deleted at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    ROOT,
    ProcessSampler,
    Server,
    ServerCpu,
    cleanup_kafka,
    conductor_version,
    fmt,
    machine,
    write_doc,
    write_properties,
)

sys.path.insert(0, str(ROOT / "tests"))
from support import netns

MARK_BEGIN = "<!-- bench/multihost.py: generated from here -->"
MARK_END = "<!-- bench/multihost.py: generated until here -->"
SECTION = """## One connector on 1, 2 and 3 hosts (`bench/multihost.py`)

What it measures: records/s of one connector whose worker group spans hosts, each host a network
namespace with its own network stack (`ip netns`, a veth pair to a bridge) running `conductor start
--workers 2`, all reaching Kafka and Elasticsearch over those links (both bound to the bridge's
address with `CONDUCTOR_BIND_HOST`). Every host shares this machine's cores, so the table shows
what spreading a group over hosts costs here (joins, rebalances, more processes on the same
cores), not what more machines would gain. Method: a topic of N readings (12 partitions) produced
once; per host count a fresh group and a fresh index (`PK reading_id`), every host started at
once; timed from the first spawn until the group's committed offsets add up to N; Elasticsearch
must then count N documents and every host exit 0 on SIGTERM. The correctness of the same set-up
under a cut link is tests/tasks/test_multihost.py's (no timing there)."""
KAFKA = Server("Kafka", "Kafka", "kafka-hosts/server.properties")
ELASTICSEARCH = Server("Elasticsearch", "ES", "elasticsearch-hosts/")
SERVERS = (KAFKA, ELASTICSEARCH)


@dataclass
class Phase:
    hosts: int
    workers: int  # per host
    records: int
    seconds: float = float("nan")
    first_commit_s: float | None = None
    conductor_cpu: float = float("nan")
    server: ServerCpu | None = None
    stop_s: float = float("nan")  # SIGTERM until every host exited
    ok: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds == self.seconds else float("nan")

    def per_million(self, cpu: float) -> float:
        return cpu / self.records * 1e6


def produce(bootstrap: str, topic: str, partitions: int, count: int) -> float:
    """The topic, and `count` readings in it; the seconds it took."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    from conductor.readings import readings

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs={"retention.ms": "-1"})]  # readings are old
        )
    finally:
        admin.close()
    started = time.monotonic()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all")
    futures = [producer.send(topic, key=key, value=value) for key, value in readings(count)]
    producer.flush()
    for future in futures:
        future.get(timeout=60)
    producer.close()
    return time.monotonic() - started


def es_count(url: str, index: str) -> int:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=60)
    try:
        client.indices.refresh(index=index)
        return client.count(index=index)["count"]
    finally:
        client.close()


def start_host(host: netns.Host, config: Path, workers: int, state: Path, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "conductor.cli",
        "start",
        "--workers",
        str(workers),
        "--config",
        str(config),
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            host.command(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CONDUCTOR_STATE_DIR": str(state)},
            cwd=ROOT,
        )


def run_phase(
    args: argparse.Namespace,
    network: netns.Network,
    settings: dict[str, str],
    topic: str,
    hosts: int,
    work: Path,
    records: int,
) -> tuple[Phase, str]:
    """One phase over the `records` of `topic`; the result and the group it used."""
    from kafka import KafkaAdminClient

    kafka, url = settings["CONDUCTOR_KAFKA_BOOTSTRAP"], settings["CONDUCTOR_ELASTICSEARCH_URL"]
    name = f"bench-mh-{uuid.uuid4().hex[:8]}-h{hosts}"
    index = name.replace("-", "_")
    es_host, es_port = url.removeprefix("http://").split(":")
    config = write_properties(
        work,
        name,
        [
            f"name={name}",
            "connector.class=io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
            f"tasks.max={hosts * args.workers}",
            f"topics={topic}",
            f"bootstrap.servers={kafka}",
            f"connect.elastic.hosts={es_host}",
            f"connect.elastic.port={es_port}",
            f"connect.elastic.kcql=INSERT INTO {index} SELECT * FROM {topic} PK reading_id",
            *args.conductor_setting,
        ],
    )
    phase = Phase(hosts, args.workers, records)
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    server = ServerCpu(SERVERS)
    server.begin()
    started = time.monotonic()
    processes = [
        start_host(
            host, config, args.workers, work / f"state-{name}-{host.name}", work / f"{name}-{host.name}.log"
        )
        for host in network.hosts[:hosts]
    ]
    samplers = [ProcessSampler(process.pid) for process in processes]
    try:
        while True:
            for sampler in samplers:
                sampler.sample()
            offsets = admin.list_group_offsets(f"connect-{name}").get(f"connect-{name}", {})
            done = sum(meta.offset for meta in offsets.values())
            if done and phase.first_commit_s is None:
                phase.first_commit_s = time.monotonic() - started
            if done >= records:
                phase.seconds = time.monotonic() - started
                break
            exited = [p.returncode for p in processes if p.poll() is not None]
            if exited or time.monotonic() - started > args.timeout:
                phase.ok = False
                phase.notes.append(
                    f"{done:,} committed; exits {exited}" if exited else f"timed out at {done:,}"
                )
                break
            time.sleep(0.25)
    finally:
        server.end()
        phase.server = server
        for sampler in samplers:
            sampler.sample()
        phase.conductor_cpu = sum(sampler.total_cpu for sampler in samplers)
        stopping = time.monotonic()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in processes:
            try:
                codes.append(process.wait(timeout=90))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        admin.close()
        phase.stop_s = time.monotonic() - stopping
    if phase.ok:
        count = es_count(url, index)
        if count != records:
            phase.ok = False
            phase.notes.append(f"Elasticsearch counts {count:,} documents")
    if any(codes):
        phase.ok = False
        phase.notes.append(f"exit codes after SIGTERM {codes} (want 0)")
    if server.restarted:
        phase.ok = False
        phase.notes += server.restarted
    _delete_index(url, index)
    return phase, f"connect-{name}"


def _delete_index(url: str, index: str) -> None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=60)
    try:
        client.indices.delete(index=index, ignore_unavailable=True)
    finally:
        client.close()


def table(phases: list[Phase]) -> str:
    one = [p.rate for p in phases if p.hosts == 1 and p.ok]
    base = sum(one) / len(one) if one else None
    lines = [
        "| hosts | workers | records/s to all committed | s to all committed | first commit s | vs 1 host | "
        "conductor CPU s per M | Kafka CPU s per M | ES CPU s per M | other CPU s (machine busy) | ok |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in phases:
        used = p.server.used if p.server else (float("nan"),) * 3
        other = used[2] - p.conductor_cpu - used[0] - used[1]
        lines.append(
            f"| {p.hosts} | {p.hosts * p.workers} | {fmt(p.rate)} | {fmt(p.seconds, '.1f')} | "
            f"{fmt(p.first_commit_s, '.1f')} | {f'{p.rate / base:.2f}x' if base and p.ok else ''} | "
            f"{fmt(p.per_million(p.conductor_cpu), '.1f')} | {fmt(p.per_million(used[0]), '.1f')} | "
            f"{fmt(p.per_million(used[1]), '.1f')} | {fmt(other, '.1f')} ({fmt(used[2], '.1f')}) | "
            f"{'yes' if p.ok else 'NO'} |"
        )
    return "\n".join(lines)


def render(args: argparse.Namespace, started: dt.datetime, produced_s: float, phases: list[Phase]) -> str:
    command = ".venv/bin/python bench/multihost.py " + " ".join(sys.argv[1:])
    lines = [
        MARK_BEGIN,
        "",
        f"### Latest run: {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; conductor {conductor_version()}",
        f"- {args.records:,} readings in a {args.partitions}-partition topic (produced in {produced_s:.1f}s), "
        f"read by each phase; before them a warm-up phase over {args.warmup_records:,} others; "
        f"each host `conductor start --workers {args.workers}` in its own network namespace"
        + (f"; settings {', '.join(args.conductor_setting)}" if args.conductor_setting else ""),
        "",
        table(phases),
        "",
    ]
    rates = {n: sorted(p.rate for p in phases if p.hosts == n and p.ok) for n in {p.hosts for p in phases}}
    medians = [f"{n} host(s) {fmt(found[len(found) // 2])}" for n, found in sorted(rates.items()) if found]
    if len(phases) > len(rates):
        lines += [f"Median records/s over the rounds: {', '.join(medians)}.", ""]
    notes = [f"- {p.hosts} host(s): " + "; ".join(p.notes) for p in phases if p.notes]
    lines += [*notes, *([""] if notes else []), MARK_END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--hosts", default="1,2,3", help="host counts, in this order each round")
    parser.add_argument("--workers", type=int, default=2, help="workers per host")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=1, help="every host count this many times, in turns")
    parser.add_argument(
        "--warmup-records",
        type=int,
        default=100_000,
        help="a phase with every host over a topic of its own first, not in the table (the servers' "
        "JIT, the page cache); 0: none",
    )
    parser.add_argument("--subnet", default=netns.SUBNET, help="a /24 for the bridge (.1) and hosts")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per phase")
    parser.add_argument("--conductor-setting", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", default=str(ROOT / "docs" / "BENCHMARKS.md"), help="'-': write nothing")
    args = parser.parse_args()
    counts = [int(n) for n in args.hosts.split(",")]
    reason = netns.unavailable()
    if reason:
        print(f"bench/multihost.py: {reason}", file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.UTC)
    phases: list[Phase] = []
    groups: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-multihost-") as work,
        netns.Network(max(counts), args.subnet) as network,
        netns.bound_servers(network.gateway) as settings,
    ):
        kafka = settings["CONDUCTOR_KAFKA_BOOTSTRAP"]
        topic, warmup = (f"bench-multihost-{uuid.uuid4().hex[:8]}" for _ in range(2))
        topics = [topic, *([warmup] if args.warmup_records else [])]
        try:
            if args.warmup_records:
                produce(kafka, warmup, args.partitions, args.warmup_records)
                phase, group = run_phase(
                    args, network, settings, warmup, max(counts), Path(work), args.warmup_records
                )
                groups.append(group)
                print(
                    f"  warm-up, {max(counts)} host(s): {fmt(phase.rate)} records/s; stopped in {phase.stop_s:.1f}s",
                    flush=True,
                )
            produced_s = produce(kafka, topic, args.partitions, args.records)
            print(f"{args.records:,} readings produced to {topic} in {produced_s:.1f}s", flush=True)
            for _ in range(args.rounds):
                for hosts in counts:
                    phase, group = run_phase(args, network, settings, topic, hosts, Path(work), args.records)
                    phases.append(phase)
                    groups.append(group)
                    print(
                        f"  {hosts} host(s) x {args.workers} workers: {fmt(phase.rate)} records/s "
                        f"({fmt(phase.seconds, '.1f')}s; stopped in {phase.stop_s:.1f}s)"
                        + ("" if phase.ok else " NOT OK: " + "; ".join(phase.notes)),
                        flush=True,
                    )
        finally:
            for n, topic in enumerate(topics):  # the groups once, with the first topic
                cleanup_kafka(kafka, topic, groups if n == 0 else [], keep=False)
    block = render(args, started, produced_s, phases)
    print("\n" + block)
    if args.output != "-":
        write_doc(Path(args.output), block, MARK_BEGIN, MARK_END, "# Benchmarks\n", SECTION)
    return 0 if all(p.ok for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
