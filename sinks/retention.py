"""Index retention: the dated indexes a connector's routes write are closed, then deleted.

An index is a route's when its name is the route's target followed by a suffix that the
route's WITHINDEXSUFFIX writes; the suffix is read back to the period it names
(kcql/dateformat.py). The age counts from that period's end, not from the index's creation: a
replay of old data retires on time, and an index is never retired while its period lasts. Everything else is left alone, and
the report says why: look-alike names, data streams, aliases, the index being written now, and
routes whose index name comes from the record.

Indexes are listed with `_resolve/index/<target>*` (open and closed; data streams and aliases
come apart there) and acted on by their concrete names only, never a wildcard. A closed index
stays closed: the sink never reopens one (sinks/elasticsearch.py says so for a late record).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from conductor.config import ElasticsearchSettings
from conductor.errors import ConductorError, SinkUnavailable
from conductor.kcql import compile_suffix, compile_suffix_reader
from conductor.routes import Route
from sinks.base import Upkeep
from sinks.search_server import SearchServer

log = logging.getLogger("conductor.retention")

DAY_MS = 86_400_000
CLOSE_KEY = "conductor.index.close.after.days"
DELETE_KEY = "conductor.index.delete.after.days"
CLOSE, DELETE, LEAVE = "close", "delete", "leave"


@dataclass(frozen=True, slots=True)
class DatedTarget:
    """A route's target and its suffix: what names its indexes have, and their dates."""

    name: str
    pattern: str
    read: Callable[[str], tuple[int, int] | None]  # suffix -> its period (start, end) in epoch ms
    write: Callable[[int], str]  # epoch ms -> suffix
    where: str  # "KCQL line 2", for reasons

    def period_of(self, index: str) -> tuple[int, int] | None:
        return self.read(index[len(self.name) :]) if index.startswith(self.name) else None


@dataclass(frozen=True, slots=True)
class Verdict:
    index: str
    action: str  # close | delete | leave
    reason: str
    closed: bool = False  # the index is closed already


@dataclass(slots=True)
class RetentionRun:
    """What one run decided and did."""

    at_ms: int
    dry_run: bool
    verdicts: list[Verdict] = field(default_factory=list)
    done: dict[str, list[str]] = field(default_factory=lambda: {CLOSE: [], DELETE: []})
    failed: dict[str, str] = field(default_factory=dict)  # index -> why its close or delete failed
    notes: list[str] = field(default_factory=list)  # routes retention cannot apply to

    def count(self, action: str) -> int:
        return sum(1 for verdict in self.verdicts if verdict.action == action)

    def lines(self) -> list[str]:
        """What `conductor retention` prints: every index looked at, what was done and why."""
        done = {CLOSE: "closed", DELETE: "deleted", LEAVE: "left"}
        if self.dry_run:
            done.update({CLOSE: "would close", DELETE: "would delete"})
        width = max((len(verdict.index) for verdict in self.verdicts), default=0)
        lines = []
        for verdict in self.verdicts:
            what, reason = done[verdict.action], verdict.reason
            if verdict.index in self.failed:
                what, reason = "FAILED", self.failed[verdict.index]
            lines.append(f"  {what:<12} {verdict.index:<{width}}  {reason}")
        lines += [f"  {note}" for note in self.notes]
        closed, deleted = ("to close", "to delete") if self.dry_run else ("closed", "deleted")
        total = f"{self.count(CLOSE)} {closed}, {self.count(DELETE)} {deleted}, {self.count(LEAVE)} left"
        if self.failed:
            total += f", {len(self.failed)} failed"
        lines.append(total + (" (dry run: nothing changed)" if self.dry_run else ""))
        return lines

    def summary(self) -> dict[str, object]:
        """For the worker's state."""
        return {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at_ms / 1000)),
            "closed": self.done[CLOSE],
            "deleted": self.done[DELETE],
            "left": self.count(LEAVE),
            "failed": self.failed,
        }


class Retention(Upkeep):
    """The retention of one Elasticsearch connector: run once by `conductor retention`, and
    periodically by one worker of the group (tasks/upkeep.py), on a connection of its own."""

    name = "retention"

    def __init__(self, settings: ElasticsearchSettings, routes: Sequence[Route]) -> None:
        self.settings = settings
        self.close_after = settings.close_after_days
        self.delete_after = settings.delete_after_days
        self.targets: list[DatedTarget] = []
        self.notes: list[str] = []
        seen: set[tuple[str, str]] = set()
        for route in routes:
            statement = route.statement
            where = f"KCQL line {statement.line}"
            if statement.index_suffix is None:
                continue
            if statement.target.is_dynamic:
                self.notes.append(
                    f"{where} ({statement.target.name}): left alone: its index name comes from the record"
                )
                continue
            read = compile_suffix_reader(statement.index_suffix)
            if read is None:
                self.notes.append(
                    f"{where} ({statement.target.name}{statement.index_suffix}): left alone: its suffix "
                    f"does not name one period (it needs the year, and each field down to its finest)"
                )
                continue
            key = (statement.target.name, statement.index_suffix)
            if key in seen:
                continue
            seen.add(key)
            self.targets.append(
                DatedTarget(key[0], key[1], read, compile_suffix(statement.index_suffix), where)
            )
        self.server: SearchServer | None = None

    @property
    def interval_s(self) -> float:
        return self.settings.retention_interval_ms / 1000

    def describe(self) -> str:
        rules = []
        if self.close_after is not None:
            rules.append(f"close after {self.close_after} days")
        if self.delete_after is not None:
            rules.append(f"delete after {self.delete_after} days")
        targets = ", ".join(f"{t.name}{t.pattern}" for t in self.targets) or "no dated index"
        return "; ".join(
            [
                f"{' and '.join(rules)}, counted from the end of the period in the name ({targets})",
                *self.notes,
            ]
        )

    def run(self) -> dict[str, object]:
        return self.apply().summary()

    def apply(self, dry_run: bool = False, now_ms: int | None = None) -> RetentionRun:
        """List, decide, then close and delete (unless `dry_run`). Raises SinkUnavailable when
        the server cannot be reached; an index it refuses to close or delete is reported."""
        if self.server is None:
            self.server = SearchServer(self.settings)
        outcome = RetentionRun(now_ms if now_ms is not None else int(time.time() * 1000), dry_run)
        outcome.notes = list(self.notes)
        outcome.verdicts = self.decide(outcome.at_ms)
        if not dry_run:
            for verdict in outcome.verdicts:
                if verdict.action != LEAVE:
                    self.act(verdict, outcome)
        return outcome

    def decide(self, now_ms: int) -> list[Verdict]:
        verdicts: dict[str, Verdict] = {}
        for target in self.targets:
            for verdict in self.judge(target, now_ms):
                # An index under two targets (readings, readings_eu): the route it belongs to decides.
                known = verdicts.get(verdict.index)
                if known is None or (known.action == LEAVE and verdict.action != LEAVE):
                    verdicts[verdict.index] = verdict
        return sorted(verdicts.values(), key=lambda verdict: verdict.index)

    def judge(self, target: DatedTarget, now_ms: int) -> list[Verdict]:
        listing = self.listing(target.name)
        verdicts = [
            Verdict(stream["name"], LEAVE, "a data stream, not an index")
            for stream in listing.get("data_streams", [])
        ]
        verdicts += [
            Verdict(alias["name"], LEAVE, "an alias, not an index") for alias in listing.get("aliases", [])
        ]
        written_now = target.name + target.write(now_ms)
        for index in listing.get("indices", []):
            name, attributes = index["name"], index.get("attributes", [])
            closed = "closed" in attributes
            if index.get("data_stream"):
                verdicts.append(Verdict(name, LEAVE, f"backs data stream {index['data_stream']}", closed))
                continue
            period = target.period_of(name)
            if period is None:
                reason = f"not a name {target.where} writes ({target.name} + {target.pattern})"
                verdicts.append(Verdict(name, LEAVE, reason, closed))
            elif name == written_now:
                verdicts.append(Verdict(name, LEAVE, "written now", closed))
            else:
                verdicts.append(self.by_age(name, (now_ms - period[1]) / DAY_MS, closed))
        return verdicts

    def by_age(self, name: str, age_days: float, closed: bool) -> Verdict:
        """`age_days`: since the period the name covers ended (its last record's day), so an
        index is never retired while its period can still be written."""
        days = int(age_days)
        age = "ended today" if days == 0 else f"ended {days} day{'' if days == 1 else 's'} ago"
        if age_days < 0:
            return Verdict(name, LEAVE, "its period has not ended", closed)
        if self.delete_after is not None and age_days >= self.delete_after:
            return Verdict(name, DELETE, f"{age} ({DELETE_KEY}={self.delete_after})", closed)
        if self.close_after is not None and age_days >= self.close_after:
            if closed:
                return Verdict(name, LEAVE, f"{age}, closed already", closed)
            return Verdict(name, CLOSE, f"{age} ({CLOSE_KEY}={self.close_after})", closed)
        return Verdict(name, LEAVE, age + (", closed" if closed else ""), closed)

    def listing(self, prefix: str) -> dict:
        """Every index, alias and data stream whose name starts with `prefix`, open or closed."""
        path = f"/_resolve/index/{quote(prefix, safe='')}*?expand_wildcards=open,closed"
        answer = self.server.request("GET", path)
        if not answer.ok:
            raise RetentionRefused(f"listing {prefix}* was refused: {answer.describe()}")
        return answer.body

    def act(self, verdict: Verdict, outcome: RetentionRun) -> None:
        name = quote(verdict.index, safe="")
        timeout_s = self.settings.write_timeout_ms / 1000
        try:
            if verdict.action == CLOSE:
                answer = self.server.request("POST", f"/{name}/_close", timeout_s=timeout_s)
            else:
                answer = self.server.request("DELETE", f"/{name}", timeout_s=timeout_s)
        except SinkUnavailable as error:  # it may still happen on the server: the next run sees
            outcome.failed[verdict.index] = f"{verdict.action}: {error.reason}"
            log.warning("retention: could not %s index %s: %s", verdict.action, verdict.index, error.reason)
            return
        if answer.status == 404:  # gone meanwhile (deleted by hand, or by another run)
            log.info("retention: index %s is gone already", verdict.index)
            return
        if answer.ok:
            outcome.done[verdict.action].append(verdict.index)
            past = "closed" if verdict.action == CLOSE else "deleted"
            log.info("retention: %s index %s: %s", past, verdict.index, verdict.reason)
        else:
            outcome.failed[verdict.index] = f"{verdict.action} refused: {answer.describe()}"
            log.warning(
                "retention: could not %s index %s: %s", verdict.action, verdict.index, answer.describe()
            )

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


class RetentionRefused(ConductorError):
    """The server refused to list the indexes (a missing privilege, say)."""


def retention_of(settings: ElasticsearchSettings, routes: Sequence[Route]) -> Retention | None:
    """The connector's retention, or None when neither key is set."""
    if settings.close_after_days is None and settings.delete_after_days is None:
        return None
    return Retention(settings, routes)
