"""A commit a rebalance refused is made again while the worker still holds the partition: on a
quiet topic nothing else would commit those written records (tests/tasks/test_multihost.py met
it once in ten runs, after a host's link came back). Against the real Kafka; the refusal itself
is the one call (`GroupMember.refused`) that both of the commit's refusal branches make, since
a broker refuses a commit only inside a rebalance whose timing a test cannot pin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata, TopicPartition
from support.pipeline import create_topic, produce, unique, wait_for

from conductor.config import parse_config
from conductor.workercontrol import HeartbeatFile, WorkerControl
from tasks.consumer import GroupMember

pytestmark = pytest.mark.servers


def member(kafka: str, topic: str, tmp_path: Path) -> GroupMember:
    config = parse_config(
        {
            "name": unique("refused-commits"),
            "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
            "topics": topic,
            "bootstrap.servers": kafka,
            "connect.elastic.hosts": "127.0.0.1",
            "connect.elastic.kcql": f"INSERT INTO unused SELECT * FROM {topic}",
        },
        environ={},
    )
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    control = WorkerControl(0, HeartbeatFile(), write_fd, tmp_path)
    return GroupMember(config, control, unique("instance"), on_revoked=lambda keys: None)


def group_committed(kafka: str, group: str, topic: str) -> int | None:
    reader = KafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    try:
        return reader.committed(TopicPartition(topic, 0))
    finally:
        reader.close()


def test_a_refused_commit_is_made_again_while_the_partition_is_held(kafka, tmp_path: Path) -> None:
    topic = create_topic(kafka, partitions=1)
    produce(kafka, topic, [(b"k", b"{}", None)] * 10)
    worker = member(kafka, topic, tmp_path)
    worker.join()
    try:
        wait_for(
            lambda: worker.poll_once(0.5) is not None and worker.consumer.assignment(), 30, "partition 0"
        )
        group = worker.config.group_id
        worker.refused({(topic, 0): 10}, CommitFailedError("the generation moved on"))
        assert group_committed(kafka, group, topic) is None  # nothing committed yet
        worker.poll_once(0.2)  # a quiet topic: nothing new comes, and the owed commit is made
        assert group_committed(kafka, group, topic) == 10
        assert worker.owed == {}

        # Where the group has committed further meanwhile (another member, while this one was
        # cut off), the owed offset is dropped, not committed: that would move the group back.
        worker.consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(10, "", -1)})
        worker.refused({(topic, 0): 7}, CommitFailedError("the generation moved on"))
        worker.poll_once(0.2)
        assert group_committed(kafka, group, topic) == 10
        assert worker.owed == {}

        # A partition that went to another member is its new owner's to commit.
        worker.refused({(topic, 0): 12}, CommitFailedError("the generation moved on"))
        worker.revoked({TopicPartition(topic, 0)}, "revoked")
        assert worker.owed == {}
    finally:
        worker.close(leave=True)
