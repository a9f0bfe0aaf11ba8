"""Kafka as a sink: records to topics through a producer, each acknowledged before the write returns.

`send()` takes ready messages (the dead-letter topic writes the failed records as they came);
`write()` takes routed records like every sink, each projected to JSON and sent to its route's
target topic, keyed and with the headers of the record. Like every sink it makes one attempt:
SinkUnavailable when Kafka cannot take the messages now (the worker waits and writes them
again), and the messages Kafka refused for good come back as failures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from conductor.admin import admin_client, ensure_topic
from conductor.config import KafkaSettings
from conductor.errors import ConfigError, KafkaUnavailable, RecordError, SinkUnavailable
from sinks.base import Batch, Failure, Sink

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class KafkaProducerSink(Sink):
    """A producer that waits for every acknowledgement (acks=all)."""

    name = "kafka"

    def __init__(self, kafka: KafkaSettings, linger_ms: int = 5) -> None:
        self.kafka = kafka
        self.linger_ms = linger_ms
        self.producer: Any = None

    @property
    def write_timeout_s(self) -> float:
        return ACK_TIMEOUT_S

    def setup(self) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            self.producer = KafkaProducer(
                acks="all", linger_ms=self.linger_ms, **self.kafka.producer_kwargs()
            )
        except KafkaError as error:
            raise SinkUnavailable(f"{self.where} does not answer: {error}") from None

    @property
    def where(self) -> str:
        return f"Kafka at {', '.join(self.kafka.bootstrap_servers)}"

    def ensure_topic(self, name: str, partitions: int, replication_factor: int, what: str) -> bool:
        """Create the topic unless it exists (True if created). A replication factor the
        cluster cannot give is a ConfigError naming `what` set it."""
        from kafka.errors import InvalidReplicationFactorError, KafkaError

        try:
            admin = admin_client(self.kafka.admin_kwargs())
        except KafkaUnavailable as error:
            raise SinkUnavailable(str(error)) from None
        try:
            return ensure_topic(admin, name, partitions, replication_factor)
        except InvalidReplicationFactorError as error:
            raise ConfigError(
                [f"{what}: cannot create topic {name} with replication factor {replication_factor}: {error}"]
            ) from None
        except KafkaUnavailable as error:
            raise SinkUnavailable(str(error)) from None
        except KafkaError as error:
            raise ConfigError(
                [f"cannot create topic {name} ({what}): {type(error).__name__}: {error}"]
            ) from None
        finally:
            admin.close()

    def send(self, messages: Sequence[Message]) -> list[tuple[int, str]]:
        """Send every message and wait for its acknowledgement; (position, reason) of each one
        Kafka refused for good. SinkUnavailable if any could not be sent for now."""
        from kafka.errors import KafkaError

        refused: list[tuple[int, str]] = []
        unavailable: list[str] = []

        def failed(position: int, error: KafkaError) -> None:
            reason = f"{type(error).__name__}: {error}"
            if getattr(error, "retriable", False):
                unavailable.append(reason)
            else:
                refused.append((position, reason))

        futures = []
        for position, m in enumerate(messages):
            # kafka-python refuses a header without a value: such headers are left out
            headers = [h for h in m.headers if h[1] is not None]
            try:  # a message too large is refused here, before it is sent
                futures.append(
                    (position, self.producer.send(m.topic, key=m.key, value=m.value, headers=headers))
                )
            except KafkaError as error:
                failed(position, error)
        self.producer.flush(timeout=ACK_TIMEOUT_S)
        for position, future in futures:
            try:
                future.get(timeout=ACK_TIMEOUT_S)
            except KafkaError as error:
                failed(position, error)
        if unavailable:
            raise SinkUnavailable(
                f"{self.where} did not take {len(unavailable)} message(s): {unavailable[0]}"
            )
        return refused

    def write(self, batch: Batch) -> list[Failure]:
        messages: list[Message] = []
        sent: list[int] = []
        failures: list[Failure] = []
        for position, (record, route) in enumerate(batch):
            try:
                value = route.project(record)
                body = None if value is None else orjson.dumps(value)
                messages.append(Message(route.target(record), record.key, body, record.headers))
                sent.append(position)
            except RecordError as error:
                failures.append(Failure(record, route, error))
            except orjson.JSONEncodeError as error:
                failures.append(
                    Failure(record, route, RecordError(f"record {record.where} is not JSON: {error}"))
                )
        for position, reason in self.send(messages):
            record, route = batch[sent[position]]
            failures.append(Failure(record, route, RecordError(f"Kafka refused the record: {reason}")))
        return failures

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close(timeout=10)
            self.producer = None
