"""RETRY: write the refused records again every retry.interval, max.retries times (-1: for
ever), then fail the task as THROW does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conductor.errors import TaskFailed
from policies.base import ErrorPolicy, describe
from sinks.base import Failure


@dataclass(frozen=True)
class RetryPolicy(ErrorPolicy):
    @property
    def retries(self) -> int:
        return self.max_retries

    def give_up(self, failures: Sequence[Failure]) -> None:
        raise TaskFailed(
            f"RETRY gave up after {self.max_retries} retries: {describe(failures)}", cause=failures[0].error
        )
