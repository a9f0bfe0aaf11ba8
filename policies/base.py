"""What every error policy answers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from sinks.base import Failure


@dataclass(frozen=True)
class ErrorPolicy(ABC):
    max_retries: int = 0
    retry_interval_s: float = 60.0

    @property
    def retries(self) -> int:
        """How many more times the worker writes the retriable failures of a batch."""
        return 0

    @property
    def retries_when_unavailable(self) -> int | None:
        """How many times a batch is written again when the store cannot be reached at all;
        None means until it answers (nothing is lost while a store is down)."""
        return self.retries

    @abstractmethod
    def give_up(self, failures: Sequence[Failure]) -> None:
        """Records still failing: skip them (return) or fail the task (raise TaskFailed)."""


def describe(failures: Sequence[Failure], most: int = 3) -> str:
    shown = "; ".join(f"{f.record.where}: {f.error.reason}" for f in failures[:most])
    more = f" (and {len(failures) - most} more)" if len(failures) > most else ""
    return f"{len(failures)} record(s) failed: {shown}{more}"
