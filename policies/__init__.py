"""Error policies, Stream-Reactor's NOOP / THROW / RETRY, plus the dead-letter topic.

A policy answers two questions about records the sink refused: how many times to write the
retriable ones again (and how long to wait between tries), and what to do with those that are
still failing after that (`give_up`). The dead-letter topic, when configured, takes the place
of `give_up`: the records are kept in Kafka instead of skipped or failing the task.
"""

from __future__ import annotations

from policies.base import ErrorPolicy
from policies.noop import NoopPolicy
from policies.retry import RetryPolicy
from policies.throw import ThrowPolicy

POLICIES: dict[str, type[ErrorPolicy]] = {"NOOP": NoopPolicy, "THROW": ThrowPolicy, "RETRY": RetryPolicy}


def make_policy(name: str, max_retries: int, retry_interval_s: float) -> ErrorPolicy:
    try:
        policy_class = POLICIES[name.upper()]
    except KeyError:
        raise ValueError(f"unknown error policy {name!r}; known: {', '.join(POLICIES)}") from None
    return policy_class(max_retries=max_retries, retry_interval_s=retry_interval_s)


__all__ = ["ErrorPolicy", "NoopPolicy", "RetryPolicy", "ThrowPolicy", "make_policy"]
