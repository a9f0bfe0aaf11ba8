"""The store-side steps of examples/demo.sh: Kafka topics and groups, Elasticsearch, Cassandra.

    demo_stores.py schema FILE       run each statement of a .cql file (there may be no cqlsh)
    demo_stores.py reset             start clean: output and internal topics, consumer groups, stores
    demo_stores.py check --count N --sensors S --start-ms MS
                                     wait until both stores hold the aggregates of the readings
                                     produced with these options, compare every window of the topic
                                     and the stores with the truth computed here, print some; exit
                                     1 on any difference

Addresses come from `compose/local env` (CONDUCTOR_KAFKA_BOOTSTRAP, CONDUCTOR_ELASTICSEARCH_URL,
CONDUCTOR_CASSANDRA_HOSTS, CONDUCTOR_CASSANDRA_PORT); the names below are those of
examples/pipeline/*.properties.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

INPUT, OUTPUT, PARTITIONS = "temperatures", "temperatures.aggregated", 6
GROUPS = {  # connect-<name>: the topic it reads
    "connect-temperatures-aggregator": INPUT,
    "connect-temperatures-aggregates-es": OUTPUT,
    "connect-temperatures-aggregates-cassandra": OUTPUT,
}
INTERNAL = "connect-temperatures-aggregator-"  # the aggregator's repartition and changelog topics
INDICES = "temperatures_by_home_*"  # temperatures_by_home + _{YYYY-MM-dd}
TABLE = "iot.temperatures_by_home"
MINUTE = 60_000
WAIT_S = 60.0  # for a stopped conductor's members to expire, and for topics to be deleted
SHOWN = "home-00000"  # whose windows are printed


def elasticsearch():
    from elasticsearch import Elasticsearch

    return Elasticsearch(os.environ.get("CONDUCTOR_ELASTICSEARCH_URL", "http://127.0.0.1:19200"))


def cassandra():
    from cassandra.cluster import Cluster

    hosts = os.environ.get("CONDUCTOR_CASSANDRA_HOSTS", "127.0.0.1").split(",")
    cluster = Cluster(hosts, port=int(os.environ.get("CONDUCTOR_CASSANDRA_PORT", "19042")))
    return cluster, cluster.connect()


def bootstrap() -> str:
    return os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def schema(path: Path) -> int:
    statements = [s.strip() for s in path.read_text().split(";") if s.strip()]
    cluster, session = cassandra()
    try:
        for statement in statements:
            session.execute(statement, timeout=60)
    finally:
        cluster.shutdown()
    print(f"schema: {len(statements)} statement(s) of {path} applied")
    return 0


# -- reset --------------------------------------------------------------------------------------


def reset() -> int:
    """Start clean (examples/demo.sh says why): the aggregator's internal topics and the output
    topic deleted, the output made again empty (Kafka drops the offsets of a deleted topic), each
    group at the end of its topic, the index deleted and the table truncated."""
    from kafka.admin import OffsetSpec
    from kafka.structs import TopicPartition

    from conductor.admin import admin_client, ensure_topic, retrying

    admin = admin_client({"bootstrap_servers": bootstrap()})
    try:
        # A member that a stopped conductor left behind expires after session.timeout.ms (45 s by
        # default): wait for it. One that stays belongs to a running conductor: stop, don't race it.
        def members() -> dict[str, int]:
            groups = retrying(lambda: admin.describe_groups(list(GROUPS)), "describe the demo's groups")
            return {g: len(d["members"]) for g, d in groups.items() if d["members"]}

        busy, deadline = members(), time.monotonic() + WAIT_S
        if busy:
            print(f"reset: waiting up to {WAIT_S:.0f}s for the members of {busy} to leave", flush=True)
        while busy and time.monotonic() < deadline:
            time.sleep(1)
            busy = members()
        if busy:
            print(
                f"reset: a conductor of the demo is running (group members: {busy}); "
                "stop it (SIGTERM) and run the demo again",
                file=sys.stderr,
            )
            return 1
        doomed = [
            t for t in retrying(admin.list_topics, "list topics") if t == OUTPUT or t.startswith(INTERNAL)
        ]
        if doomed:
            retrying(lambda: admin.delete_topics(doomed), f"delete {doomed}")
            deadline = time.monotonic() + WAIT_S
            while left := set(doomed) & set(retrying(admin.list_topics, "list topics")):
                if time.monotonic() > deadline:
                    print(
                        f"reset: {sorted(left)} still there {WAIT_S:.0f}s after deleting them",
                        file=sys.stderr,
                    )
                    return 1
                time.sleep(0.2)
        for topic in (INPUT, OUTPUT):
            ensure_topic(admin, topic, PARTITIONS, replication_factor=1)
        retrying(lambda: admin.wait_for_topics([INPUT, OUTPUT]), "wait for the topics' leaders")
        for group, topic in GROUPS.items():
            (found,) = retrying(lambda topic=topic: admin.describe_topics([topic]), f"describe {topic}")
            latest = {
                TopicPartition(topic, p["partition_index"]): OffsetSpec.LATEST for p in found["partitions"]
            }
            results = retrying(lambda g=group, o=latest: admin.reset_group_offsets(g, o), f"reset {group}")
            failed = {tp.partition: r["error"].__name__ for tp, r in results.items() if r["error"].errno}
            if failed:
                print(f"reset: moving {group} to the end of {topic} failed: {failed}", file=sys.stderr)
                return 1
    finally:
        admin.close()
    es = elasticsearch()
    # Elasticsearch refuses wildcard deletes (action.destructive_requires_name): one name at a time.
    names = [row["index"] for row in es.cat.indices(index=INDICES, format="json")]
    for name in names:
        es.indices.delete(index=name)
    cluster, session = cassandra()
    try:
        session.execute(f"TRUNCATE {TABLE}", timeout=120)
    finally:
        cluster.shutdown()
    print(
        f"reset: {len(doomed)} topic(s) of an earlier run deleted, {OUTPUT} empty, {len(GROUPS)} consumer "
        f"groups at the end of their topics, {len(names)} {INDICES} index(es) deleted, {TABLE} truncated"
    )
    return 0


# -- check --------------------------------------------------------------------------------------

Window = tuple[str, int]  # (home_id, window_start)


def truth(count: int, sensors: int, start_ms: int) -> dict[Window, dict]:
    """What the aggregator must write for these readings, computed from the same generator as
    `conductor produce-readings` and without conductor's code: one result per (home, minute)."""
    from conductor.readings import readings

    celsius: dict[Window, list[float]] = defaultdict(list)
    for _, value in readings(count, sensors=sensors, start_ms=start_ms):
        reading = json.loads(value)
        time_ms = reading["timestamp"]
        celsius[(reading["home_id"], time_ms - time_ms % MINUTE)].append(reading["celsius"])
    return {
        (home, start): {
            "window_end": start + MINUTE,
            "readings": len(found),
            "avg_celsius": sum(found) / len(found),
            "min_celsius": min(found),
            "max_celsius": max(found),
        }
        for (home, start), found in celsius.items()
    }


def differences(where: str, got: dict[Window, dict], want: dict[Window, dict]) -> list[str]:
    """Every window missing, extra or not equal to the truth (AVG to 1e-9: summing order differs)."""
    found = [f"{where}: {w} missing" for w in sorted(want.keys() - got.keys())]
    found += [
        f"{where}: {w} not among the {len(want)} windows expected" for w in sorted(got.keys() - want.keys())
    ]
    for window in sorted(want.keys() & got.keys()):
        have, should = got[window], want[window]
        for name, value in should.items():
            held = have.get(name)
            if held != value and not (
                name == "avg_celsius"
                and held is not None
                and abs(held - value) <= 1e-9 * max(1.0, abs(value))
            ):
                found.append(f"{where}: {window} {name} = {held}, expected {value}")
    return found


def from_topic() -> tuple[dict[Window, dict], list[Window]]:
    """Every result in the output topic, read_committed from the start; a window twice is a problem."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap(),
        group_id=None,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    got: dict[Window, dict] = {}
    twice: list[Window] = []
    try:
        partitions = [TopicPartition(OUTPUT, p) for p in consumer.partitions_for_topic(OUTPUT) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        # A partition's last offset can be a transaction marker, which no poll returns.
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for messages in consumer.poll(timeout_ms=500).values():
                for message in messages:
                    value = json.loads(message.value)
                    window = (value["home_id"], value["window_start"])
                    if window in got:
                        twice.append(window)
                    got[window] = value
    finally:
        consumer.close()
    return got, twice


def from_elasticsearch(es) -> dict[Window, dict]:
    from elasticsearch.helpers import scan

    return {
        (hit["_source"]["home_id"], hit["_source"]["window_start"]): hit["_source"]
        for hit in scan(es, index=INDICES, query={"query": {"match_all": {}}})
    }


def from_cassandra(session) -> dict[Window, dict]:
    got = {}
    for row in session.execute(f"SELECT * FROM {TABLE}", timeout=60):
        value = row._asdict()
        for column in ("window_start", "window_end"):  # the driver gives naive UTC datetimes
            value[column] = round(value[column].replace(tzinfo=UTC).timestamp() * 1000)
        got[(row.home_id, value["window_start"])] = value
    return got


def check(count: int, sensors: int, start_ms: int, timeout: float) -> int:
    want = truth(count, sensors, start_ms)
    es = elasticsearch()
    cluster, session = cassandra()
    try:
        docs = rows = 0
        problem = None
        started = time.monotonic()
        while True:
            # A daily index the sink just created answers 503 until its shard is active: not yet, not failed.
            try:
                docs = es.count(index=INDICES)["count"]
                rows = session.execute(f"SELECT COUNT(*) FROM {TABLE}", timeout=60).one()[0]
                problem = None
            except Exception as error:
                problem = error
            waited = time.monotonic() - started
            if (problem is None and docs >= len(want) and rows >= len(want)) or waited >= timeout:
                break
            time.sleep(1)
        if problem is not None:
            print(f"check: after {waited:.0f}s the stores still did not answer: {problem!r}", file=sys.stderr)
            return 1
        in_topic, twice = from_topic()
        in_es = from_elasticsearch(es)
        in_cassandra = from_cassandra(session)
    finally:
        cluster.shutdown()

    print(
        f"\n{count} readings of {sensors} sensors from {moment(start_ms)} on: "
        f"{len(want)} (home, minute) windows expected"
    )
    print(f"Kafka: {len(in_topic)} results in {OUTPUT} (read_committed)")
    print(f"Elasticsearch: {len(in_es)} documents in {INDICES}")
    for row in es.cat.indices(index=INDICES, format="json", h="index,docs.count", s="index"):
        print(f"  {row['index']}  {row['docs.count']} docs")
    for window in sorted(w for w in in_es if w[0] == SHOWN)[:3]:
        print(f"  {'-'.join(map(str, window))} {json.dumps(in_es[window])}")
    print(f"Cassandra: {len(in_cassandra)} rows in {TABLE}")
    for window in sorted(w for w in in_cassandra if w[0] == SHOWN)[:3]:
        row = in_cassandra[window]
        print(
            f"  {row['home_id']} {moment(row['window_start'])} readings={row['readings']} "
            f"avg={row['avg_celsius']:.2f} min={row['min_celsius']} max={row['max_celsius']}"
        )

    problems = [f"{OUTPUT}: {len(twice)} window(s) written more than once, first {twice[0]}"] if twice else []
    for where, got in ((OUTPUT, in_topic), ("Elasticsearch", in_es), ("Cassandra", in_cassandra)):
        found = differences(where, got, want)
        if found:
            problems.append(f"{where}: {len(got)} windows, {len(found)} difference(s) with the truth")
            problems += found[:5]
    if problems:
        for line in problems:
            print(f"check: {line}", file=sys.stderr)
        print(f"check: FAILED after {waited:.0f}s", file=sys.stderr)
        return 1
    print(
        f"check: every one of the {len(want)} windows, once in {OUTPUT}, in Elasticsearch and in "
        f"Cassandra, with the exact readings count, min, max and average (waited {waited:.0f}s)"
    )
    return 0


def moment(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("schema").add_argument("file", type=Path)
    commands.add_parser("reset")
    check_parser = commands.add_parser("check")
    check_parser.add_argument("--count", type=int, required=True)
    check_parser.add_argument("--sensors", type=int, required=True)
    check_parser.add_argument("--start-ms", type=int, required=True)
    check_parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    if args.command == "schema":
        return schema(args.file)
    if args.command == "reset":
        return reset()
    return check(args.count, args.sensors, args.start_ms, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
