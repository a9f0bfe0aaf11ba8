"""Error policies, Stream-Reactor's NOOP / THROW / RETRY, plus the dead-letter topic.

A policy answers two questions about records the store refused: how many more times to write
them (and how long to wait between tries), and what to do with those still refused after that
(`give_up`: skip them, or fail the task). The dead-letter topic (with errors.tolerance=all)
keeps what would otherwise be skipped: records that cannot be decoded, and those NOOP skips.
Nothing here waits for a store that cannot be reached: the worker does, whatever the policy.
"""

from __future__ import annotations

from conductor.config import ErrorSettings
from policies.base import FOREVER, ErrorPolicy
from policies.noop import NoopPolicy
from policies.retry import RetryPolicy
from policies.throw import ThrowPolicy

POLICIES: dict[str, type[ErrorPolicy]] = {"NOOP": NoopPolicy, "THROW": ThrowPolicy, "RETRY": RetryPolicy}


def make_policy(errors: ErrorSettings) -> ErrorPolicy:
    try:
        policy_class = POLICIES[errors.policy.upper()]
    except KeyError:
        raise ValueError(f"unknown error policy {errors.policy!r}; known: {', '.join(POLICIES)}") from None
    return policy_class(max_retries=errors.max_retries, retry_interval_s=errors.retry_interval_ms / 1000)


__all__ = ["FOREVER", "ErrorPolicy", "NoopPolicy", "RetryPolicy", "ThrowPolicy", "make_policy"]
