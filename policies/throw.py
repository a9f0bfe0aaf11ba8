"""THROW: the task fails; nothing past the first failure is committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conductor.errors import TaskFailed
from policies.base import ErrorPolicy, describe
from sinks.base import Failure


@dataclass(frozen=True)
class ThrowPolicy(ErrorPolicy):
    def give_up(self, failures: Sequence[Failure]) -> None:
        raise TaskFailed(describe(failures), cause=failures[0].error)
