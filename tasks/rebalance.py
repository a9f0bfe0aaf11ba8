"""Before partitions are released in a rebalance, write what is held and commit it.

kafka-python 3 runs rebalance callbacks on its IO loop, which also drives heartbeats and
commits. The listener is async: it runs the worker's flush on a short-lived thread and awaits
it, so the loop stays free to heartbeat and to carry the flush's own offset commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.future import Future

log = logging.getLogger("conductor.worker")


class FlushOnRevoke(AsyncConsumerRebalanceListener):
    def __init__(self, flush: Callable[[set[tuple[str, int]]], None], loop_of: Callable[[], Any]) -> None:
        self._flush = flush
        self._loop_of = loop_of  # the consumer's network loop, for call_soon_threadsafe
        self.error: BaseException | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if not revoked:
            return
        loop = self._loop_of()
        done: Future = Future()

        def flush_then_signal() -> None:
            try:
                self._flush({(tp.topic, tp.partition) for tp in revoked})
            except BaseException as exc:
                self.error = exc
            loop.call_soon_threadsafe(lambda: done.success(None))

        log.info(
            "partitions revoked: %s; writing and committing what is held",
            ", ".join(f"{tp.topic}-{tp.partition}" for tp in sorted(revoked)),
        )
        threading.Thread(target=flush_then_signal, name="flush-on-revoke", daemon=True).start()
        await done

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned:
            log.info(
                "partitions assigned: %s", ", ".join(f"{tp.topic}-{tp.partition}" for tp in sorted(assigned))
            )
