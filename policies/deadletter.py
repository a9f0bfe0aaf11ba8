"""The dead-letter topic: failed records are produced there, with Kafka Connect's
`__connect.errors.*` context headers when enabled, before the batch is committed."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from conductor.errors import TaskFailed
from policies.base import describe
from sinks.base import Failure

log = logging.getLogger("conductor.policy")

_STAGE_CONVERTER = "VALUE_CONVERTER"
_STAGE_PUT = "TASK_PUT"


class DeadLetterTopic:
    """Created before the fork with settings only; `setup()` makes the producer in the worker."""

    def __init__(
        self,
        topic: str,
        producer_kwargs: dict[str, Any],
        connector: str,
        task_id: int,
        context_headers: bool,
        connector_class: str = "conductor",
    ) -> None:
        self.topic = topic
        self.producer_kwargs = producer_kwargs
        self.connector = connector
        self.task_id = task_id
        self.context_headers = context_headers
        self.connector_class = connector_class
        self._producer = None

    def setup(self) -> None:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(acks="all", linger_ms=5, **self.producer_kwargs)

    def give_up(self, failures: Sequence[Failure]) -> None:
        """Produce every failed record and wait for the broker to acknowledge all of them."""
        futures = [
            self._producer.send(
                self.topic, key=f.record.key, value=f.record.raw_value, headers=self._headers(f)
            )
            for f in failures
        ]
        self._producer.flush()
        for future in futures:
            try:
                future.get(timeout=30)
            except Exception as exc:
                raise TaskFailed(
                    f"could not write to dead-letter topic {self.topic}: {exc}", cause=exc
                ) from exc
        log.warning("sent to dead-letter topic %s: %s", self.topic, describe(failures))

    def _headers(self, failure: Failure) -> list[tuple[str, bytes]]:
        headers = [(name, value) for name, value in failure.record.headers if value is not None]
        if not self.context_headers:
            return headers
        record, error = failure.record, failure.error
        cause = error.__cause__ or error
        trace = (
            "".join(traceback.format_exception(cause))
            if cause.__traceback__
            else f"{type(cause).__name__}: {cause}"
        )
        context = {
            "__connect.errors.topic": record.topic,
            "__connect.errors.partition": str(record.partition),
            "__connect.errors.offset": str(record.offset),
            "__connect.errors.connector.name": self.connector,
            "__connect.errors.task.id": str(self.task_id),
            "__connect.errors.stage": _STAGE_CONVERTER if failure.route is None else _STAGE_PUT,
            "__connect.errors.class.name": self.connector_class,
            "__connect.errors.exception.class.name": type(cause).__name__,
            "__connect.errors.exception.message": error.reason,
            "__connect.errors.exception.stacktrace": trace,
        }
        return headers + [(name, value.encode()) for name, value in context.items()]

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
