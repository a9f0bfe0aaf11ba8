"""NOOP: the records the store refused are skipped (the worker logs them, or sends them to the
dead-letter topic when there is one); the batch is committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.base import ErrorPolicy
from sinks.base import Failure


@dataclass(frozen=True)
class NoopPolicy(ErrorPolicy):
    def give_up(self, failures: Sequence[Failure]) -> None:
        """Nothing fails the task."""
