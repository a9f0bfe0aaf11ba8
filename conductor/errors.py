"""The root of conductor's exceptions; subclasses carry the data a caller needs."""

from __future__ import annotations

import traceback


class ConductorError(Exception):
    """Base class for every error conductor raises on purpose."""


class ConfigError(ConductorError):
    """A connector config that cannot run; `problems` lists every problem found, each one line."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class RecordError(ConductorError):
    """One record could not be decoded, routed or written; handed to the error policy."""

    retriable = False

    def __init__(self, reason: str, kind: str = "refused") -> None:
        self.reason = reason
        self.kind = kind  # what the metrics count it as: mapping, version_conflict, 429, ...
        super().__init__(reason)


class RetriableRecordError(RecordError):
    """A record the store refused for now (429, 5xx, timeout): worth another try."""

    retriable = True


class SinkUnavailable(ConductorError):
    """The store could not take the batch at all (connection refused, timeout): the worker waits
    for it and writes the batch again."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class KafkaUnavailable(ConductorError):
    """Kafka kept answering "not yet" (no coordinator, no leader, not connected) for too long."""

    def __init__(self, what: str, cause: BaseException, waited_s: float) -> None:
        self.what = what
        self.cause = cause
        super().__init__(f"Kafka did not answer for {waited_s:.0f}s: {what}: {type(cause).__name__}: {cause}")


class TaskFailed(ConductorError):
    """The task stops: THROW, or RETRY ran out. Carries the error kept for status."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        self.reason = reason
        self.cause = cause
        super().__init__(reason)

    def trace(self) -> str:
        """Where the task failed, then what caused it, as Kafka Connect's task trace shows them."""
        text = "".join(traceback.format_exception(self))
        if self.cause is not None and self.cause is not self:
            text += "Caused by: " + "".join(traceback.format_exception(self.cause))
        return text
