"""A drain on SIGTERM when the workers hold a batch for a linger longer than the drain timeout.

Before the fix in tasks/sink.py (read(): a poll with a pending batch waits at most IDLE_POLL_S) a
worker polled Kafka for the rest of the linger and saw the stop only when that poll returned, so
the supervisor killed it after the drain timeout with nothing written or committed (and a linger
beyond conductor.worker.heartbeat.timeout.s got it killed as hung)."""

from __future__ import annotations

import os
import signal
import time

from deploy.test_container import (
    DRAIN_TIMEOUT_S,
    assigned,
    containers,  # noqa: F401 - the fixture
    elastic_env,
    group_members,
    held_batch_env,
    needs_namespaces,
)
from support.pipeline import (
    committed_offsets,
    create_topic,
    end_offsets,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
)

from conductor import exitcodes


@needs_namespaces
def test_sigterm_drains_a_batch_held_for_a_linger_longer_than_the_drain_timeout(
    kafka,
    elasticsearch,
    index,
    containers,  # noqa: F811
) -> None:
    total = 2_000
    topic = create_topic(kafka, partitions=3)
    name = unique("container-linger")
    environment = {**elastic_env(name, topic, index, elasticsearch, kafka), **held_batch_env(600_000)}
    running = containers.start({**environment, "CONDUCTOR_WORKERS": "2"})
    pid1 = running.pid1()
    wait_for(lambda: assigned(running, 3), 60, "the 3 partitions held by running workers")
    now = int(time.time() * 1000)
    produce(kafka, topic, ((str(n).encode(), reading(n, now), now) for n in range(total)))
    time.sleep(3)
    assert es_count(elasticsearch, index) == 0

    os.kill(pid1, signal.SIGTERM)
    stopped_at = time.monotonic()
    assert running.wait(DRAIN_TIMEOUT_S + 10) == exitcodes.STOPPED, running.log()
    assert time.monotonic() - stopped_at <= 5, running.log()  # a poll's wait, a write and a commit
    assert "did not stop within" not in running.log()
    assert group_members(kafka, f"connect-{name}") == ("Empty", [])
    assert es_count(elasticsearch, index) == total
    assert committed_offsets(kafka, f"connect-{name}") == end_offsets(kafka, topic)
