"""The worker's writer thread: the store's answer to one batch is awaited there, while the
worker's own thread reads and builds the next batch.

kafka-python's consumer is not thread-safe, so the writer never touches it: it runs the
attempt a sink prepared (sinks/base.py `prepare`) and keeps the outcome. Everything else (the
waits before writing again, settling, committing) stays on the worker's thread, which takes
the outcome with `answer()`. One attempt at a time: the worker takes each answer before it
sends the next attempt, so batches are settled and committed in the order they were read.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from sinks.base import Attempt, Failure

TICK_S = 1.0  # how often a worker waiting for an answer says it lives (and reports its state)


class Writer:
    """Made in the worker process; its thread starts with the first attempt. A daemon thread:
    a worker that stops while waiting for something else leaves an attempt behind, uncommitted."""

    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self.attempts: queue.SimpleQueue[tuple[Attempt, Future[list[Failure]]]] = queue.SimpleQueue()
        self.outcome: Future[list[Failure]] | None = None  # sent, its answer not taken yet
        self.thread: threading.Thread | None = None
        self.answered_at = 0.0  # monotonic, when the last answer came

    @property
    def busy(self) -> bool:
        """An attempt was sent and its answer not yet taken."""
        return self.outcome is not None

    @property
    def answered(self) -> bool:
        """The attempt sent has its answer (taking it does not wait)."""
        return self.outcome is not None and self.outcome.done()

    def send(self, attempt: Attempt) -> None:
        assert self.outcome is None, "one attempt at a time"
        if self.thread is None:
            self.thread = threading.Thread(target=self.serve, name=f"writer-{self.worker_id}", daemon=True)
            self.thread.start()
        self.outcome = Future()
        self.attempts.put((attempt, self.outcome))

    def answer(self, tick: Callable[[], None]) -> list[Failure]:
        """The records the store refused; raises what the attempt raised (SinkUnavailable).
        `tick` is called every TICK_S while the answer is awaited."""
        outcome, self.outcome = self.outcome, None
        assert outcome is not None, "no attempt was sent"
        while True:
            try:
                return outcome.result(timeout=TICK_S)
            except TimeoutError:
                tick()

    def serve(self) -> None:
        while True:
            attempt, outcome = self.attempts.get()
            try:
                failed = attempt()
            except BaseException as error:  # re-raised on the worker's thread, by answer()
                self.answered_at = time.monotonic()
                outcome.set_exception(error)
            else:
                self.answered_at = time.monotonic()
                outcome.set_result(failed)
