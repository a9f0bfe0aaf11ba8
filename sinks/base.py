"""The narrow interface every sink implements (after quix-streams' BaseSink).

A sink is created before the fork with its settings only; `setup()` runs in the worker process
and creates the client, pings the store and fails fast. `write()` takes a batch of
(record, route) pairs and either raises SinkUnavailable (nothing of the batch can be known to
be written: retry it whole) or returns the records the store refused, each with its reason.
Everything not returned was written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from conductor.errors import RecordError
from conductor.routes import Route
from tasks.records import Record

Batch = Sequence[tuple[Record, Route]]


@dataclass(slots=True)
class Failure:
    """A record that was not written, and why. `route` is None for a record that never got
    as far as routing (it could not be decoded)."""

    record: Record
    route: Route | None
    error: RecordError

    @property
    def retriable(self) -> bool:
        return self.error.retriable


class Sink(ABC):
    """One store. Subclasses: a dataclass of settings in, one short module each."""

    name = "sink"

    def check_routes(self, routes: Sequence[Route]) -> list[str]:
        """Problems with KCQL clauses this sink cannot honour; reported at start, not ignored."""
        return []

    @abstractmethod
    def setup(self) -> None:
        """Create the client (after the fork), check the store answers; raise on failure."""

    @abstractmethod
    def write(self, batch: Batch) -> list[Failure]:
        """Write the batch; return the records that were refused."""

    def close(self) -> None:  # noqa: B027 - optional: a sink without a client has nothing to release
        """Release the client."""
