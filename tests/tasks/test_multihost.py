"""One connector's worker group across hosts, for real: three `conductor start --workers 2`, each
in a network namespace of its own (tests/support/netns.py), reading one 12-partition topic from a
Kafka and writing to an Elasticsearch bound to the bridge's address, the only one they share.

Records are produced all along, so each host joins a group that is writing. Then one host's link is
cut: its partitions move to the others once its members' session times out (10 s here), and the
link comes back only when the others have committed past every record that host could have read,
so a commit it still sent for them would move an offset back. The group's committed offsets are
polled all along and read, every commit the broker took, from __consumer_offsets at the end: none
goes back. Conductor's default, static membership, is what runs: the one production uses, and the
harder case, as the cut-off members come back under the group.instance.ids they had (the broker
keys static members by it) with commits of a generation that is over.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from support import netns
from support.pipeline import (
    ROOT,
    Conductor,
    create_topic,
    end_offsets,
    es_count,
    reading,
    unique,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.servers

PARTITIONS = 12
HOSTS = 3
RATE = 3000  # records/s, from the first host's start until the group has settled after the cut
SESSION_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def network():
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)  # as root, a namespace that cannot be made fails the test instead
    with netns.Network(HOSTS) as network:
        yield network


@pytest.fixture(scope="module")
def bound(network: netns.Network) -> dict[str, str]:
    """Kafka and Elasticsearch on the bridge's address: what `compose/local env` says of them."""
    with netns.bound_servers(network.gateway) as settings:
        yield settings


@dataclass
class ConductorOn(Conductor):
    """`conductor start` inside a host's network namespace (`ip netns exec` execs it: the process
    is the supervisor itself)."""

    host: netns.Host | None = None

    def start(self) -> ConductorOn:
        assert self.host is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "conductor.cli", "start", "--workers", str(self.workers)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.host.command([*command, "--config", str(self.config)]),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CONDUCTOR_STATE_DIR": str(self.state_dir)},
                cwd=ROOT,
            )
        return self

    def written(self) -> int:
        return self.total("written")


class Stream(threading.Thread):
    """Readings 0, 1, 2, ... produced at `rate` per second until stop(), which has every one acked."""

    def __init__(self, bootstrap: str, topic: str, rate: int) -> None:
        super().__init__(daemon=True)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
        self.topic, self.rate = topic, rate
        self.sent = 0
        self.errors: list[Exception] = []
        self.halt = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.halt.is_set():
            due = int((time.monotonic() - started) * self.rate)
            for n in range(self.sent, due):
                stamp = int(time.time() * 1000)
                self.producer.send(
                    self.topic,
                    key=f"sensor-{n % 500:04d}".encode(),
                    value=reading(n, stamp),
                    timestamp_ms=stamp,
                ).add_errback(self.errors.append)
            self.sent = max(self.sent, due)
            self.halt.wait(0.05)

    def stop(self) -> int:
        self.close()
        assert not self.errors, self.errors[:3]
        return self.sent

    def close(self) -> None:
        if not self.halt.is_set():
            self.halt.set()
            self.join()
            self.producer.flush(timeout=60)
            self.producer.close()


class CommitWatch(threading.Thread):
    """The group's committed offsets, polled every 0.5 s: each partition's, as seen, must never go
    back."""

    def __init__(self, bootstrap: str, group: str) -> None:
        super().__init__(daemon=True)
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        self.group = group
        self.last: dict[int, int] = {}
        self.backwards: list[str] = []
        self.polls = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.5):
            try:
                offsets = self.admin.list_group_offsets(self.group)[self.group]
            except KafkaError:
                continue  # the coordinator moving or loading: asked again
            self.polls += 1
            for tp, meta in offsets.items():
                before = self.last.get(tp.partition, -1)
                if meta.offset < before:
                    self.backwards.append(f"partition {tp.partition}: {before} -> {meta.offset}")
                self.last[tp.partition] = max(before, meta.offset)

    def stop(self) -> None:
        if not self.halt.is_set():
            self.halt.set()
            self.join()
            self.admin.close()


def commit_history(bootstrap: str, group: str, topic: str) -> dict[int, list[int]]:
    """Every offset commit of `group` on `topic` the broker took, in order, per partition, as
    __consumer_offsets holds them (key v0/v1: group, topic, partition; value: version, offset)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    history: dict[int, list[int]] = {}
    try:
        parts = [
            TopicPartition("__consumer_offsets", p)
            for p in consumer.partitions_for_topic("__consumer_offsets")
        ]
        ends = consumer.end_offsets(parts)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                for message in messages:
                    of_group, of_topic, partition = _offset_commit_key(message.key)
                    if (of_group, of_topic) == (group, topic) and message.value is not None:
                        offset = struct.unpack_from(">hq", message.value)[1]
                        history.setdefault(partition, []).append(offset)
    finally:
        consumer.close()
    return history


def _offset_commit_key(raw: bytes) -> tuple[str, str, int]:
    version = struct.unpack_from(">h", raw)[0]
    if version not in (0, 1):
        return ("", "", -1)  # a group's metadata, not an offset
    position, fields = 2, []
    for _ in range(2):
        (length,) = struct.unpack_from(">h", raw, position)
        fields.append(raw[position + 2 : position + 2 + length].decode())
        position += 2 + length
    return fields[0], fields[1], struct.unpack_from(">i", raw, position)[0]


@dataclass(frozen=True)
class GroupView:
    """The group as its coordinator describes it: state, and each member's address and partitions."""

    state: str
    members: frozenset[tuple[str, str, frozenset[int]]]  # (member id, client address, partitions)

    def count_by_address(self) -> dict[str, int]:
        return dict(Counter(address for _, address, _ in self.members))

    def partitions_of(self, address: str) -> set[int]:
        return set().union(*(held for _, at, held in self.members if at == address))

    def partitions(self) -> set[int]:
        return set().union(*(held for _, _, held in self.members))


def group_view(bootstrap: str, group: str) -> GroupView:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    members = frozenset(
        (
            member["member_id"],
            member["client_host"].lstrip("/"),
            frozenset(
                p
                for assigned in (member.get("member_assignment") or {}).get("assigned_partitions", [])
                for p in assigned["partitions"]
            ),
        )
        for member in described.get("members") or []
    )
    return GroupView(described.get("group_state", ""), members)


def settled(view: GroupView, network: netns.Network) -> bool:
    """Stable, two members from each host's address, each host holding partitions, all of them held."""
    return (
        view.state == "Stable"
        and view.count_by_address() == {host.address: 2 for host in network.hosts}
        and all(view.partitions_of(host.address) for host in network.hosts)
        and view.partitions() == set(range(PARTITIONS))
    )


def committed(bootstrap: str, group: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp.partition: m.offset for tp, m in admin.list_group_offsets(group)[group].items()}
    finally:
        admin.close()


def diagnosis(kafka: str, group: str, hosts: list[ConductorOn], ends: dict[int, int]) -> str:
    """What the group committed against the log ends, and what each host's workers say."""
    lines = [f"committed {committed(kafka, group)}", f"ends      {ends}"]
    for host in hosts:
        for state in host.states():
            lines.append(
                f"{host.host.name} worker {state.get('worker_id')}: {state.get('state')}, "
                f"{state.get('group')}, partitions {state.get('partitions')}, "
                f"refused {state.get('commits_refused')}, rejoins {state.get('rejoins')}"
            )
        lines.append(f"{host.host.name} log:\n{host.output()[-3000:]}")
    return "\n".join(lines)


def test_three_hosts_join_under_load_and_a_host_cut_off_commits_nothing_stale(
    network: netns.Network, bound: dict[str, str], tmp_path: Path
) -> None:
    kafka, url = bound["CONDUCTOR_KAFKA_BOOTSTRAP"], bound["CONDUCTOR_ELASTICSEARCH_URL"]
    topic = create_topic(kafka, PARTITIONS)
    name, index = unique("multihost"), unique("multihost").replace("-", "_")
    group = f"connect-{name}"
    config = write_config(
        tmp_path,
        name,
        topic,
        kcql=f"INSERT INTO {index} SELECT * FROM {topic} PK reading_id",
        elasticsearch=url,
        kafka=kafka,
        consumer__override__session__timeout__ms=SESSION_TIMEOUT_MS,
        consumer__override__heartbeat__interval__ms=1000,
    )
    hosts = [
        ConductorOn(config, tmp_path / f"state-{host.name}", workers=2, host=host) for host in network.hosts
    ]
    first, victim, third = hosts
    stream = Stream(kafka, topic, RATE)
    watch = CommitWatch(kafka, group)
    try:
        stream.start()
        watch.start()
        first.start()
        wait_for(lambda: first.written() > 0, 60, "host 1 writing")
        for joined, joining in ((hosts[:1], victim), (hosts[:2], third)):
            before = sum(h.written() for h in joined)
            joining.start()
            wait_for(
                lambda joining=joining: joining.partitions() and joining.written() > 0,
                60,
                f"{joining.host.name} holding partitions and writing",
            )
            wait_for(
                lambda joined=joined, before=before: sum(h.written() for h in joined) > before,
                30,
                "the hosts already in the group writing on",
            )
        wait_for(
            lambda: settled(group_view(kafka, group), network),
            60,
            "the group stable with two members from each host's address, each holding partitions",
        )

        # The cut: what the victim could have read ends at the log ends of this moment.
        held = group_view(kafka, group).partitions_of(victim.host.address)
        network.cut(victim.host)
        cut_at = time.monotonic()
        ends_at_cut = end_offsets(kafka, topic)
        others = {first.host.address, third.host.address}

        def taken_over() -> bool:
            view = group_view(kafka, group)
            if set(view.count_by_address()) != others or view.partitions() != set(range(PARTITIONS)):
                return False
            now = committed(kafka, group)
            return all(now.get(p, -1) > ends_at_cut[p] for p in range(PARTITIONS))

        wait_for(
            taken_over,
            SESSION_TIMEOUT_MS / 1000 + 60,
            "hosts 1 and 3 holding every partition and committing past what host 2 could read",
        )
        taken_over_s = time.monotonic() - cut_at
        refused_before = victim.total("commits_refused")
        network.restore(victim.host)

        # The load goes on until the group has settled again and every partition has committed
        # records produced after that: a commit the settling refused is covered by a later one.
        mark: dict[str, object] = {}

        def settled_and_committing() -> bool:
            view = group_view(kafka, group)
            if not settled(view, network):
                return False
            if mark.get("view") != view:
                mark.update(view=view, ends=end_offsets(kafka, topic))
                return False
            now = committed(kafka, group)
            return all(now.get(p, -1) > mark["ends"][p] for p in range(PARTITIONS))

        wait_for(settled_and_committing, 120, "host 2 back, the group settled and committing")

        total = stream.stop()
        wait_for(lambda: es_count(url, index) == total, 120, f"{total} documents")
        ends = end_offsets(kafka, topic)
        assert sum(ends.values()) == total
        try:
            wait_for(lambda: committed(kafka, group) == ends, 60, "offsets committed to the end")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{diagnosis(kafka, group, hosts, ends)}") from None
        for host in hosts:
            assert host.stop() == 0, host.output()
        watch.stop()

        print(
            f"\n{total} records; host 2 held {sorted(held)} when cut; its partitions taken over and "
            f"committed past its reach {taken_over_s:.1f}s after the cut; its workers' refused commits: "
            f"{refused_before} before the link came back, {victim.total('commits_refused')} at the end; "
            f"committed offsets polled {watch.polls} times"
        )
        assert held, "host 2 held partitions when cut"
        assert watch.backwards == [], watch.backwards
        history = commit_history(kafka, group, topic)
        backwards = [
            f"partition {p}: {a} -> {b}"
            for p, offsets in history.items()
            for a, b in pairwise(offsets)
            if b < a
        ]
        assert backwards == [], backwards
        assert {p: offsets[-1] for p, offsets in history.items()} == ends
        assert es_count(url, index) == total  # ids are reading_id: one document each, none twice
        assert committed(kafka, group) == ends
    finally:
        stream.close()
        watch.stop()
        for host in hosts:
            if host.process and host.process.poll() is None:
                host.process.send_signal(signal.SIGINT)
                host.process.send_signal(signal.SIGINT)  # a second SIGINT: stop now
                try:
                    host.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    host.process.kill()  # the supervisor; its workers see it gone and exit
        client = Elasticsearch(url, request_timeout=30)
        try:
            client.indices.delete(index=index, ignore_unavailable=True)
        finally:
            client.close()
        admin = KafkaAdminClient(bootstrap_servers=kafka)
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
