"""The narrow interface every sink implements (after quix-streams' BaseSink).

A sink is built before the fork from its settings only (each sink module has a
`build(config, routes)`); `setup()` runs in the worker process, creates the client and checks
the store answers. `write()` takes a batch of (record, route) pairs and makes one attempt:
it raises SinkUnavailable when the store could not be reached (nothing of the batch can be
known to be written: write it again), or returns the records the store refused, each with
its reason; everything not returned was written. A sink never waits to try again: the worker
does, so that it stays a live member of its consumer group meanwhile (tasks/sink.py).

The worker overlaps a write with its next poll: `prepare()` runs on the worker's thread, maybe
while the attempt of the batch before is in flight (so it must not change what an attempt
reads); the attempts run on the worker's writer thread (tasks/writer.py), one at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from conductor.errors import RecordError
from conductor.records import Record
from conductor.routes import Route

Batch = Sequence[tuple[Record, Route]]
# Kafka Connect's names for where in its pipeline a record failed (errors.log, dead letters).
STAGE_CONVERTER, STAGE_TRANSFORM, STAGE_PUT = "VALUE_CONVERTER", "TRANSFORMATION", "TASK_PUT"
Attempt = Callable[[], "list[Failure]"]  # one write() of a prepared batch


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

    @property
    def stage(self) -> str:
        """Where it failed, as Kafka Connect names the stage: a transform, the converter (it
        never reached routing), or the store."""
        if self.error.kind == "transform":
            return STAGE_TRANSFORM
        return STAGE_CONVERTER if self.route is None else STAGE_PUT


class Sink(ABC):
    """One store. Subclasses: a dataclass of settings in, one short module each."""

    name = "sink"

    @property
    def where(self) -> str:
        """The store's address, without credentials, for messages."""
        return self.name

    @property
    def write_timeout_s(self) -> float:
        """How long the records the store refuses for now (RetriableRecordError) are tried
        again before the error policy decides; also the longest one write() may take."""
        return 60.0

    def check_routes(self, routes: Sequence[Route]) -> list[str]:
        """Problems with KCQL clauses this sink cannot honour; reported at start, not ignored."""
        return []

    def check_access(self) -> str:
        """Whether the store takes our TLS settings and credentials (`conductor validate`): a
        line saying so; raises ConfigError for a refusal, SinkUnavailable when it does not answer."""
        self.setup()
        self.close()
        return f"{self.where}: answered"

    def check_schema(self) -> list[str]:
        """Problems between the routes and the store's schema, found by asking the store
        (`conductor validate`); [] for a store without a schema to check."""
        return []

    def describe_route(self, route: Route) -> list[str]:
        """Lines about where this sink writes a route's records, for `conductor validate`."""
        return []

    @abstractmethod
    def setup(self) -> None:
        """Create the client (after the fork) and check the store answers: raise
        SinkUnavailable when it does not, ConfigError when it cannot hold the routes."""

    @abstractmethod
    def write(self, batch: Batch) -> list[Failure]:
        """Write the batch once; return the records that were refused."""

    def prepare(self, batch: Batch) -> Attempt:
        """write() in two parts: what needs no store is done here (the request bodies), the
        attempt returned talks to the store and returns what write() returns. By default
        all of it happens in the attempt."""
        return partial(self.write, batch)

    def close(self) -> None:  # noqa: B027 - optional: a sink without a client has nothing to release
        """Release the client."""

    def upkeep(self) -> Upkeep | None:
        """Work to do now and then beside the writes (index retention), or None."""
        return None


class Upkeep(ABC):
    """A sink's periodic work. One worker of the group runs it, on a thread of its own, so it
    makes its own connection; `run()` returns what it did, for the worker's state."""

    name: str  # its key in the worker's state
    interval_s: float

    @abstractmethod
    def run(self) -> dict[str, object]:
        """Do it once; raise when it could not be done."""

    def describe(self) -> str:
        """One line for `conductor validate`."""
        return self.name

    def close(self) -> None:  # noqa: B027 - optional
        """Release the connection."""
