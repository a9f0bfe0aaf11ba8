"""The dead-letter topic: records conductor skips are produced there, with Kafka Connect's
`__connect.errors.*` context headers when enabled, before the batch is committed.

It takes what errors.tolerance=all lets through: records that cannot be decoded, and records
the store refused that the NOOP policy skips (tasks/sink.py decides which). Like Kafka Connect,
it creates the topic at start when it is missing: one partition, the configured replication
factor.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence

from conductor.config import ConnectorConfig, DeadLetterSettings, KafkaSettings
from conductor.errors import TaskFailed
from policies.base import describe
from sinks.base import STAGE_CONVERTER, STAGE_TRANSFORM, Failure
from sinks.kafka import KafkaProducerSink, Message

log = logging.getLogger("conductor.policy")

# The class Kafka Connect names in __connect.errors.class.name for each stage (for the converter
# stage, the connector's value.converter).
TASK_CLASS = "org.apache.kafka.connect.sink.SinkTask"
TRANSFORM_CLASS = "org.apache.kafka.connect.transforms.Transformation"
REPLICATION_KEY = "errors.deadletterqueue.topic.replication.factor"


class DeadLetterTopic:
    """Built before the fork with settings only; `setup()` makes the producer in the worker."""

    def __init__(
        self,
        settings: DeadLetterSettings,
        kafka: KafkaSettings,
        connector: str,
        task_id: int,
        converter: str,
    ) -> None:
        self.settings = settings
        self.converter = converter
        self.connector = connector
        self.task_id = task_id
        self.producer = KafkaProducerSink(kafka)

    @classmethod
    def of(cls, config: ConnectorConfig, task_id: int) -> DeadLetterTopic | None:
        """The connector's dead-letter topic for one task, None without one."""
        if config.errors.dead_letter is None:
            return None
        return cls(
            config.errors.dead_letter, config.kafka, config.name, task_id, config.value_converter.converter
        )

    @property
    def topic(self) -> str:
        return self.settings.topic

    def setup(self) -> None:
        """The producer, and the topic if it is missing (SinkUnavailable while Kafka cannot
        answer; ConfigError for a replication factor the cluster cannot give)."""
        self.producer.setup()
        if self.producer.ensure_topic(self.topic, 1, self.settings.replication_factor, REPLICATION_KEY):
            log.info(
                "created dead-letter topic %s (1 partition, replication factor %s)",
                self.topic,
                self.settings.replication_factor,
            )

    def send(self, failures: Sequence[Failure]) -> None:
        """Produce every failed record as it came, and wait for all acknowledgements.
        SinkUnavailable when Kafka cannot take them now; TaskFailed when it refused one."""
        messages = [Message(self.topic, f.record.key, f.record.raw_value, self.headers(f)) for f in failures]
        refused = self.producer.send(messages)
        if refused:
            position, reason = refused[0]
            raise TaskFailed(
                f"could not write {failures[position].record.where} to dead-letter topic {self.topic}: {reason}"
            )
        log.warning("sent to dead-letter topic %s: %s", self.topic, describe(failures))

    def headers(self, failure: Failure) -> list[tuple[str, bytes]]:
        headers = list(failure.record.headers)
        if not self.settings.context_headers:
            return headers
        record, error = failure.record, failure.error
        cause = error.__cause__ or error
        trace = (
            "".join(traceback.format_exception(cause))
            if cause.__traceback__
            else f"{type(cause).__name__}: {cause}"
        )
        stage = failure.stage
        where = {STAGE_TRANSFORM: TRANSFORM_CLASS, STAGE_CONVERTER: self.converter}.get(stage, TASK_CLASS)
        context = {
            "__connect.errors.topic": record.consumed[0],  # as consumed, before any router
            "__connect.errors.partition": str(record.partition),
            "__connect.errors.offset": str(record.offset),
            "__connect.errors.connector.name": self.connector,
            "__connect.errors.task.id": str(self.task_id),
            "__connect.errors.stage": stage,
            "__connect.errors.class.name": where,
            "__connect.errors.exception.class.name": type(cause).__name__,
            "__connect.errors.exception.message": error.reason,
            "__connect.errors.exception.stacktrace": trace,
        }
        return headers + [(name, value.encode()) for name, value in context.items()]

    def close(self) -> None:
        self.producer.close()
