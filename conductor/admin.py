"""Kafka admin calls that wait out a broker which cannot answer yet.

Right after a start a broker has no group coordinator until it has created __consumer_offsets,
no leader for a topic just created, or does not listen yet; kafka-python raises these as
retriable errors. Each call here is tried again with backoff until `timeout_s`, then fails with
what it was doing and the broker's last answer. Anything not retriable is raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from conductor.errors import KafkaUnavailable

log = logging.getLogger("conductor.kafka")

T = TypeVar("T")
TIMEOUT_S = 60.0
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 2.0


def retriable(error: BaseException) -> bool:
    return bool(getattr(error, "retriable", False))


def retrying(call: Callable[[], T], what: str, timeout_s: float = TIMEOUT_S) -> T:
    """call(), again while it raises a retriable Kafka error, until timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    delay = FIRST_DELAY_S
    while True:
        try:
            return call()
        except Exception as error:
            if not retriable(error):
                raise
            if time.monotonic() + delay > deadline:
                raise KafkaUnavailable(what, error, timeout_s) from error
            log.debug("%s: %s; trying again in %.1fs", what, error, delay)
        time.sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)


def admin_client(client_kwargs: Mapping[str, Any], timeout_s: float = TIMEOUT_S) -> Any:
    """A KafkaAdminClient, waiting for the brokers to answer."""
    from kafka.admin import KafkaAdminClient

    where = client_kwargs.get("bootstrap_servers")
    return retrying(lambda: KafkaAdminClient(**client_kwargs), f"connect to Kafka at {where}", timeout_s)


def ensure_topic(
    admin: Any,
    name: str,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = TIMEOUT_S,
) -> bool:
    """Create the topic unless it exists; True if this call created it. replication_factor -1
    is the broker's default."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    topic = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication_factor,
        topic_configs=dict(configs or {}),
    )
    try:
        retrying(lambda: admin.create_topics([topic]), f"create topic {name}", timeout_s)
    except TopicAlreadyExistsError:
        return False
    return True
