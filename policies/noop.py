"""NOOP: log and count the failed records, skip them, commit."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from policies.base import ErrorPolicy, describe
from sinks.base import Failure

log = logging.getLogger("conductor.policy")


@dataclass(frozen=True)
class NoopPolicy(ErrorPolicy):
    @property
    def retries_when_unavailable(self) -> int | None:
        return None  # a store that is down is waited for, not a reason to skip records

    def give_up(self, failures: Sequence[Failure]) -> None:
        log.warning("NOOP policy skips %s", describe(failures))
