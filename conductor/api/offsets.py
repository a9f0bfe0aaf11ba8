"""The connector's offsets (KIP-875): its consumer group's committed offsets, read, altered and
reset with Kafka's admin API, in Kafka Connect's sink shape and with its messages."""

from __future__ import annotations

from typing import Any

from conductor.admin import admin_client
from conductor.api.http import HttpError
from conductor.config import KafkaSettings

ADMIN_TIMEOUT_S = 15.0
FRAMEWORK_MESSAGE = (
    "The Connect framework-managed offsets for this connector have been {0} successfully. However, if "
    "this connector manages offsets externally, they will need to be manually {0} in the system that "
    "the connector uses."
)


class OffsetStore:
    def __init__(self, kafka: KafkaSettings, group_id: str) -> None:
        self.kafka = kafka
        self.group_id = group_id
        self._cluster_id: str | None = None

    def admin(self) -> Any:
        try:
            return admin_client(self.kafka.admin_kwargs(), timeout_s=ADMIN_TIMEOUT_S)
        except Exception as error:
            raise HttpError(500, f"Kafka cannot be reached: {error}") from None

    def cluster_id(self) -> str | None:
        if self._cluster_id is None:
            try:
                admin = self.admin()
            except HttpError:
                return None
            try:
                self._cluster_id = admin.describe_cluster().get("cluster_id")
            except Exception:
                return None
            finally:
                admin.close()
        return self._cluster_id

    def read(self) -> list[dict[str, Any]]:
        admin = self.admin()
        try:
            found = admin.list_group_offsets(self.group_id).get(self.group_id, {})
        finally:
            admin.close()
        return [
            {
                "partition": {"kafka_topic": tp.topic, "kafka_partition": tp.partition},
                "offset": {"kafka_offset": committed.offset},
            }
            for tp, committed in sorted(found.items())
            if committed is not None and committed.offset >= 0
        ]

    def alter(self, body: Any) -> None:
        """Set each partition's offset; a null offset removes the partition's commit."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        to_set, to_remove = {}, []
        for (topic, partition), offset in parse(body):
            if offset is None:
                to_remove.append(TopicPartition(topic, partition))
            else:
                to_set[TopicPartition(topic, partition)] = OffsetAndMetadata(offset, "", -1)
        admin = self.admin()
        try:
            if to_set:
                _check(admin.alter_group_offsets(self.group_id, to_set), "alter")
            if to_remove:
                _check(admin.delete_group_offsets(self.group_id, to_remove), "reset")
        finally:
            admin.close()

    def reset(self) -> None:
        """Remove every committed offset of the group: the next start reads from
        consumer.auto.offset.reset (earliest, as Kafka Connect's sinks)."""
        admin = self.admin()
        try:
            found = admin.list_group_offsets(self.group_id).get(self.group_id, {})
            if found:
                _check(admin.delete_group_offsets(self.group_id, list(found)), "reset")
        finally:
            admin.close()

    @staticmethod
    def message(done: str) -> str:
        return FRAMEWORK_MESSAGE.format(done)


def _check(result: Any, what: str) -> None:
    """kafka-python answers per partition; any error there fails the request, naming it."""
    errors = {}
    if isinstance(result, dict):
        for tp, error in result.items():
            if error is not None and getattr(error, "errno", 0):
                errors[f"{tp.topic}-{tp.partition}"] = type(error).__name__
    if errors:
        raise HttpError(500, f"Kafka refused to {what} the offsets of {errors}")


def parse(body: Any) -> list[tuple[tuple[str, int], int | None]]:
    """Kafka Connect's sink offsets: [{"partition": {kafka_topic, kafka_partition}, "offset":
    {kafka_offset} or null}]; HttpError 400 with Kafka Connect's texts otherwise."""
    offsets = body.get("offsets") if isinstance(body, dict) else None
    if not offsets or not isinstance(offsets, list):
        raise HttpError(400, "Partitions / offsets need to be provided for an alter offsets request")
    parsed = []
    for entry in offsets:
        partition = entry.get("partition") if isinstance(entry, dict) else None
        if not isinstance(partition, dict):
            raise HttpError(400, "The partition for a sink connector offset cannot be null or missing")
        if "kafka_topic" not in partition or "kafka_partition" not in partition:
            raise HttpError(
                400,
                "The partition for a sink connector offset must contain the keys 'kafka_topic' and "
                "'kafka_partition'",
            )
        topic = partition["kafka_topic"]
        if not isinstance(topic, str) or not topic:
            raise HttpError(400, "Kafka topic names must be valid strings and may not be null")
        number = _integer(partition["kafka_partition"], "Kafka partition", "Partition")
        offset = entry.get("offset")
        if offset is not None:
            if not isinstance(offset, dict) or "kafka_offset" not in offset:
                raise HttpError(
                    400,
                    "The offset for a sink connector should either be null or contain the key 'kafka_offset'",
                )
            offset = _integer(offset["kafka_offset"], "Kafka offset", "Offset")
            if offset < 0:
                raise HttpError(400, f"Kafka offsets cannot be negative: {offset} for {topic}-{number}")
        parsed.append(((topic, number), offset))
    return parsed


def _integer(value: Any, what: str, kind: str) -> int:
    if isinstance(value, bool) or value is None:
        text = repr(value)
    elif isinstance(value, int):
        return value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    else:
        text = str(value)
    raise HttpError(
        400,
        f"Failed to parse the following {what} value in the provided offsets: '{text}'. {kind} values "
        "for sink connectors need to be integers.",
    )
