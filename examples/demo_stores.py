"""The store-side steps of examples/demo.sh: Elasticsearch, Cassandra and the demo's consumer groups.

    demo_stores.py schema FILE          run each statement of a .cql file (there may be no cqlsh)
    demo_stores.py reset                empty the demo's stores, move its consumer groups to the topic's end
    demo_stores.py check --count N      wait until both stores hold the N readings just produced,
                                        print what they hold; exit 1 if either is short

Addresses come from `compose/local env` (CONDUCTOR_KAFKA_BOOTSTRAP, CONDUCTOR_ELASTICSEARCH_URL,
CONDUCTOR_CASSANDRA_HOSTS, CONDUCTOR_CASSANDRA_PORT); the names below are those of
examples/es-sink.properties and examples/cassandra-sink.properties.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

TOPIC = "temperatures.aggregated"
GROUPS = ("connect-temperatures-es", "connect-temperatures-cassandra")  # connect-<name>
INDICES = "temperatures_*"  # temperatures_ + _{YYYY-MM-dd}
TABLE = "iot.readings"
MEMBERS_WAIT_S = 60.0


def elasticsearch():
    from elasticsearch import Elasticsearch

    return Elasticsearch(os.environ.get("CONDUCTOR_ELASTICSEARCH_URL", "http://127.0.0.1:19200"))


def cassandra():
    from cassandra.cluster import Cluster

    hosts = os.environ.get("CONDUCTOR_CASSANDRA_HOSTS", "127.0.0.1").split(",")
    cluster = Cluster(hosts, port=int(os.environ.get("CONDUCTOR_CASSANDRA_PORT", "19042")))
    return cluster, cluster.connect()


def kafka_admin():
    from conductor.admin import admin_client

    return admin_client({"bootstrap_servers": os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092")})


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


def reset() -> int:
    from kafka.admin import OffsetSpec
    from kafka.structs import TopicPartition

    from conductor.admin import retrying

    admin = kafka_admin()
    try:
        # A member that a stopped conductor left behind expires after session.timeout.ms (45 s by
        # default): wait for it. One that stays belongs to a running conductor: stop, don't race it.
        def members() -> dict[str, int]:
            groups = retrying(lambda: admin.describe_groups(list(GROUPS)), f"describe groups {GROUPS}")
            return {g: len(d["members"]) for g, d in groups.items() if d["members"]}

        busy, deadline = members(), time.monotonic() + MEMBERS_WAIT_S
        if busy:
            print(
                f"reset: waiting up to {MEMBERS_WAIT_S:.0f}s for the members of {busy} to leave", flush=True
            )
        while busy and time.monotonic() < deadline:
            time.sleep(1)
            busy = members()
        if busy:
            print(
                f"reset: a conductor of these connectors is running (group members: {busy}); "
                "stop it (SIGTERM) and run the demo again",
                file=sys.stderr,
            )
            return 1
        partitions = [
            tp
            for t in retrying(lambda: admin.describe_topics([TOPIC]), f"describe topic {TOPIC}")
            if not t["error_code"]
            for tp in (TopicPartition(TOPIC, p["partition_index"]) for p in t["partitions"])
        ]
        for group in GROUPS:
            if partitions:
                latest = {tp: OffsetSpec.LATEST for tp in partitions}
                results = retrying(
                    lambda group=group: admin.reset_group_offsets(group, latest),
                    f"reset the offsets of {group}",
                )
                failed = {tp.partition: r["error"].__name__ for tp, r in results.items() if r["error"].errno}
                if failed:
                    print(f"reset: moving {group} to the end of {TOPIC} failed: {failed}", file=sys.stderr)
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
        f"reset: {len(GROUPS)} consumer groups at the end of {TOPIC} ({len(partitions)} partitions), "
        f"{len(names)} {INDICES} index(es) deleted, {TABLE} truncated"
    )
    return 0


def expected(count: int) -> tuple[int, int]:
    """Documents and rows the `count` readings of `conductor produce-readings` make: distinct
    (sensor_id, reading_id), the document id (PK sensor_id, reading_id), and distinct (sensor_id, ts),
    the table's primary key. Readings are 1 s apart, so today both are `count`; counted rather than
    assumed so the check stays exact if conductor/readings.py changes."""
    from conductor.readings import readings

    ids, keys = set(), set()
    for _, value in readings(count, start_ms=0):
        reading = json.loads(value)
        ids.add((reading["sensor_id"], reading["reading_id"]))
        keys.add((reading["sensor_id"], reading["timestamp"]))
    return len(ids), len(keys)


def check(count: int, timeout: float) -> int:
    want_docs, want_rows = expected(count)
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
            if (problem is None and docs >= want_docs and rows >= want_rows) or waited >= timeout:
                break
            time.sleep(1)
        if problem is not None:
            print(f"check: after {waited:.0f}s the stores still did not answer: {problem!r}", file=sys.stderr)
            return 1

        print(f"\nElasticsearch: {docs} documents in {INDICES} (expected {want_docs})")
        for row in es.cat.indices(index=INDICES, format="json", h="index,docs.count", s="index"):
            print(f"  {row['index']}  {row['docs.count']} docs")
        latest = es.search(
            index=INDICES, size=1, sort=[{"timestamp": {"order": "desc", "unmapped_type": "long"}}]
        )["hits"]["hits"]
        for hit in latest:
            print(f"  latest: {hit['_index']}/{hit['_id']} {json.dumps(hit['_source'])}")

        print(f"Cassandra: {rows} rows in {TABLE} (expected {want_rows})")
        for row in session.execute(f"SELECT * FROM {TABLE} WHERE sensor_id = 'sensor-00000' LIMIT 3"):
            print(
                f"  {row.sensor_id} {row.ts:%Y-%m-%d %H:%M:%S} celsius={row.celsius} "
                f"humidity={row.humidity:.1f} home_id={row.home_id} reading_id={row.reading_id}"
            )
    finally:
        cluster.shutdown()

    if (docs, rows) != (want_docs, want_rows):
        print(
            f"check: after {waited:.0f}s, Elasticsearch has {docs} of {want_docs} documents, "
            f"Cassandra {rows} of {want_rows} rows",
            file=sys.stderr,
        )
        return 1
    print(f"check: both stores hold the {count} readings (waited {waited:.0f}s for them)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("schema").add_argument("file", type=Path)
    commands.add_parser("reset")
    check_parser = commands.add_parser("check")
    check_parser.add_argument("--count", type=int, required=True)
    check_parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    if args.command == "schema":
        return schema(args.file)
    if args.command == "reset":
        return reset()
    return check(args.count, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
