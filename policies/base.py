"""What every error policy answers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from sinks.base import Failure

FOREVER = -1


@dataclass(frozen=True)
class ErrorPolicy(ABC):
    max_retries: int = 0
    retry_interval_s: float = 60.0

    @property
    def retries(self) -> int:
        """How many more times the worker writes the records the store keeps refusing, once
        the sink's write timeout has passed; FOREVER (-1) for no limit."""
        return 0

    @abstractmethod
    def give_up(self, failures: Sequence[Failure]) -> None:
        """Records the store refused for good: skip them (return) or fail the task (raise
        TaskFailed)."""


def describe(failures: Sequence[Failure], most: int = 3) -> str:
    shown = "; ".join(f"{f.record.where}: {f.error.reason}" for f in failures[:most])
    more = f" (and {len(failures) - most} more)" if len(failures) > most else ""
    return f"{len(failures)} record(s) failed: {shown}{more}"
