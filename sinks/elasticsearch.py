"""The Elasticsearch sink: KCQL routes to `_bulk` requests, every response item read.

Each record becomes one bulk action (index, update-as-upsert or delete): its document
serialized once with orjson, behind an action line made from a template kept per index. The
actions are sent as raw NDJSON in requests bounded by an action count and a byte size; the
bodies are built by prepare() on the worker's thread, and the attempt only sends them.
Document ids are deterministic (the PK, else topic-partition-offset), so a batch that is
written again after a crash or a retry overwrites itself.

What write() promises (see sinks/base.py): a record is either written, or returned as a
Failure whose error says why (RetriableRecordError for what Elasticsearch refused for now: an
item or a whole request answered 429 or 5xx), or the whole call raises SinkUnavailable (the
server could not be reached). Stream-Reactor ignores per-item bulk errors; this sink never does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from elastic_transport import OrjsonSerializer

from conductor.config import ConnectorConfig, ElasticsearchSettings
from conductor.errors import RecordError, RetriableRecordError, SinkUnavailable
from conductor.kcql import compile_suffix
from conductor.records import Record
from conductor.routes import Route
from sinks.base import Attempt, Batch, Failure, Sink
from sinks.bulk_items import Action, read_items
from sinks.retention import CLOSE_KEY, DELETE_KEY, Retention, retention_of
from sinks.search_server import SearchServer

log = logging.getLogger(__name__)

NULL_VALUES_KEY = "behavior.on.null.values"
NULL_BEHAVIOURS = ("IGNORE", "DELETE", "FAIL")
KNOWN_PROPERTIES = (NULL_VALUES_KEY,)
BULK_HEADERS = {"content-type": "application/x-ndjson", "accept": "application/json"}
RETRY_ON_CONFLICT = 3
MIN_REQUEST_TIMEOUT_S = 1.0
# One write() stays under this, so that the worker polls its consumer group at least as often
# (what is not sent by then comes back retriable, and the worker writes it again).
ATTEMPT_S = 60.0
NEWLINE_AFTER = orjson.OPT_APPEND_NEWLINE
# Only what reading the items needs: on success Elasticsearch answers ~25 bytes per item
# instead of ~200, which the worker would otherwise parse for every document it writes.
BULK_PATH = "/_bulk?filter_path=errors,items.*.status,items.*.error"
# ... and an answer that begins so has nothing to read in its items: it is not parsed at all.
NO_ERRORS = b'{"errors":false,'
MAX_HEADS = 1000  # action line templates kept per route (one per index name)


@dataclass(slots=True)
class WriteStats:
    """What the last write() did; one DEBUG line per write, and for tests and benchmarks."""

    actions: int = 0
    requests: int = 0
    bytes: int = 0
    failures: int = 0
    ms: float = 0.0


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Everything about a route the per-record path needs, worked out once."""

    route: Route
    op: str  # "index" | "update"
    on_null: str
    index_of: Callable[[Record, int], str]
    id_of: Callable[[Record], str]
    body_of: Callable[[Record], Any]  # the document line's object
    tail: bytes  # the action line after the document id
    autocreate: bool
    pk_from_value: bool
    heads: dict[str, bytes] = field(default_factory=dict)  # index -> action line up to the id

    def head(self, index: str) -> bytes:
        """`{"index":{"_index":"<index>","_id":` (or update), made once per index name."""
        if len(self.heads) >= MAX_HEADS:  # a target read from the records can name many
            self.heads.clear()
        head = self.heads[index] = b'{"%b":{"_index":%b,"_id":' % (self.op.encode(), orjson.dumps(index))
        return head


def null_behaviour(route: Route) -> str:
    return route.statement.properties.get(NULL_VALUES_KEY, "IGNORE").upper()


def plan_route(route: Route, settings: ElasticsearchSettings) -> RoutePlan:
    statement = route.statement
    target = route.target
    if statement.target.is_dynamic:
        index_of = lambda record, now_ms: target(record)
    else:
        name = statement.target.name
        index_of = lambda record, now_ms: name
    if statement.index_suffix is not None:
        suffix, named = compile_suffix(statement.index_suffix), index_of
        if settings.suffix_clock == "wallclock":
            index_of = lambda record, now_ms: named(record, now_ms) + suffix(now_ms)
        else:

            def index_of(record: Record, now_ms: int) -> str:
                stamp = record.timestamp
                return named(record, now_ms) + suffix(stamp if stamp >= 0 else now_ms)

    if route.has_primary_key:
        separator, pk_text = settings.pk_separator, route.primary_key_text
        id_of = lambda record: pk_text(record, separator)
    else:
        id_of = lambda record: f"{record.topic}-{record.partition}-{record.offset}"
    project = route.project
    if statement.write_mode == "UPSERT":
        op, tail = "update", b',"retry_on_conflict":%d}}\n' % RETRY_ON_CONFLICT
        body_of = lambda record: {"doc": project(record), "doc_as_upsert": True}
    else:
        op, tail, body_of = "index", b"}}\n", project
        if statement.pipeline is not None:
            tail = b',"pipeline":%b}}\n' % orjson.dumps(statement.pipeline)
    return RoutePlan(
        route,
        op,
        null_behaviour(route),
        index_of,
        id_of,
        body_of,
        tail,
        statement.autocreate,
        any(pk.source == "value" for pk in statement.primary_keys),
    )


def plan_requests(sizes: Sequence[int], max_actions: int, max_bytes: int) -> list[range]:
    """Cut actions of these byte sizes into runs of at most `max_actions` and `max_bytes`
    (an action larger than `max_bytes` goes alone)."""
    if len(sizes) <= max_actions and sum(sizes) <= max_bytes:
        return [range(len(sizes))] if sizes else []  # the usual batch: one request
    runs: list[range] = []
    start, total = 0, 0
    for position, size in enumerate(sizes):
        if position > start and (position - start >= max_actions or total + size > max_bytes):
            runs.append(range(start, position))
            start, total = position, 0
        total += size
    if start < len(sizes):
        runs.append(range(start, len(sizes)))
    return runs


class AnswerSerializer(OrjsonSerializer):
    """orjson, but a bulk answer without errors is left unparsed: its items (2xx statuses) are
    not read, and parsing them cost a tenth of a worker's CPU (py-spy)."""

    def json_loads(self, data: bytes) -> Any:
        if data.startswith(NO_ERRORS):
            return {"errors": False}
        return orjson.loads(data)


class ElasticsearchSink(Sink):
    """Writes routed records to Elasticsearch 8 or 9, or OpenSearch 2 or 3, with `_bulk`."""

    name = "elasticsearch"

    def __init__(self, settings: ElasticsearchSettings, routes: Sequence[Route]) -> None:
        self.settings = settings
        self.routes = tuple(routes)
        self.server: SearchServer | None = None
        self.plans: dict[int, RoutePlan] = {}
        self.created: set[str] = set()
        self.last_write = WriteStats()
        # KCQL BATCH=n caps every request of this sink: one request mixes routes, so the
        # smallest cap wins (simpler than chunking each route apart, and never above a cap).
        self.max_actions = min(
            [settings.batch_size] + [r.statement.batch_size for r in self.routes if r.statement.batch_size]
        )

    @property
    def where(self) -> str:
        server = self.server.name_of_server() if self.server is not None else "Elasticsearch"
        return f"{server} at {self.settings.where}"

    @property
    def write_timeout_s(self) -> float:
        return self.settings.write_timeout_ms / 1000

    def check_routes(self, routes: Sequence[Route]) -> list[str]:
        problems = []
        for route in routes:
            statement = route.statement
            where = f"KCQL line {statement.line} ({statement.target.name} <- {statement.topic})"
            if any(f.source == "now" for f in statement.fields):
                problems.append(f"{where}: now() is Cassandra's function; Elasticsearch has no use for it")
            if statement.ttl is not None:
                problems.append(
                    f"{where}: TTL is not supported by Elasticsearch "
                    f"(use index suffixes or ILM to expire documents)"
                )
            if statement.write_mode == "UPSERT" and not statement.primary_keys:
                problems.append(f"{where}: UPSERT requires a PK (the document id to merge into)")
            for key, value in statement.properties.items():
                if key not in KNOWN_PROPERTIES:
                    problems.append(
                        f"{where}: unknown PROPERTIES key {key!r} (known: {', '.join(KNOWN_PROPERTIES)})"
                    )
                elif value.upper() not in NULL_BEHAVIOURS:
                    problems.append(f"{where}: {key}={value!r} must be one of {', '.join(NULL_BEHAVIOURS)}")
            if statement.doc_type is not None:
                log.warning(
                    "%s: WITHDOCTYPE=%s has no effect: Elasticsearch 8 has no mapping types",
                    where,
                    statement.doc_type,
                )
            if statement.pipeline is not None and statement.write_mode == "UPSERT":
                log.warning(
                    "%s: WITHPIPELINE=%s has no effect on UPSERT (bulk update) documents",
                    where,
                    statement.pipeline,
                )
        retention = self.upkeep()
        if retention is not None and not retention.targets and not retention.notes:
            keys = [
                key
                for key, days in ((CLOSE_KEY, retention.close_after), (DELETE_KEY, retention.delete_after))
                if days
            ]
            problems.append(
                f"{' and '.join(keys)}: no KCQL route has a WITHINDEXSUFFIX with a date, so there "
                f"are no dated indexes to retire"
            )
        return problems

    def describe_route(self, route: Route) -> list[str]:
        keys = ", ".join(key.dotted for key in route.statement.primary_keys)
        separator = self.settings.pk_separator
        document_id = f"{keys} joined by {separator!r}" if keys else "topic-partition-offset"
        return [f"document id: {document_id}"]

    def setup(self) -> None:
        settings = self.settings
        # orjson parses the answers, ~2x faster than json on a 4000-item answer.
        self.server = SearchServer(settings, AnswerSerializer())
        self.plans = {id(route): plan_route(route, settings) for route in self.routes}
        distribution = self.server.identify()
        self.server.check_health()
        log.debug("writing to %s at %s", distribution, settings.where)

    def upkeep(self) -> Retention | None:
        return retention_of(self.settings, self.routes)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def write(self, batch: Batch) -> list[Failure]:
        return self.prepare(batch)()

    def prepare(self, batch: Batch) -> Attempt:
        """The bulk bodies of the batch; the attempt sends them (and creates new indexes first)."""
        refused: list[Failure] = []
        actions, new_indices = self.actions(batch, refused)
        sizes = [len(action[0]) for action in actions]
        requests = [
            (part, b"".join([action[0] for action in part]))
            for part in (
                actions[run.start : run.stop]
                for run in plan_requests(sizes, self.max_actions, self.settings.max_bytes)
            )
        ]
        return partial(self.send, requests, new_indices, refused)

    def send(
        self, requests: list[tuple[list[Action], bytes]], new_indices: set[str], refused: list[Failure]
    ) -> list[Failure]:
        """One attempt at the prepared requests; `refused`: records that had no bulk line."""
        started = time.monotonic()
        stats = self.last_write = WriteStats(actions=sum(len(part) for part, _ in requests))
        failures = list(refused)
        if new_indices:
            self.create_indices(new_indices)
        deadline = started + min(self.write_timeout_s, ATTEMPT_S)
        for part, body in requests:
            self.send_request(part, body, deadline, stats, failures)
        stats.failures = len(failures)
        stats.ms = (time.monotonic() - started) * 1000
        log.debug(
            "bulk write: %s actions, %s requests, %s bytes, %s failures, %.1f ms",
            stats.actions,
            stats.requests,
            stats.bytes,
            stats.failures,
            stats.ms,
        )
        return failures

    def actions(self, batch: Batch, failures: list[Failure]) -> tuple[list[Action], set[str]]:
        """The bulk lines of every record; the records that have none become failures."""
        plans, created, dumps = self.plans, self.created, orjson.dumps
        now_ms = int(time.time() * 1000)
        actions: list[Action] = []
        new_indices: set[str] = set()
        for record, route in batch:
            plan = plans[id(route)]
            if record.value is None and (plan.on_null != "DELETE" or plan.pk_from_value):
                if plan.on_null == "IGNORE":
                    continue
                failures.append(Failure(record, route, RecordError(tombstone(plan))))
                continue
            try:
                index = plan.index_of(record, now_ms)
                if record.value is None:
                    line = dumps(
                        {"delete": {"_index": index, "_id": plan.id_of(record)}}, option=NEWLINE_AFTER
                    )
                else:
                    line = b"".join(
                        (
                            plan.heads.get(index) or plan.head(index),
                            dumps(plan.id_of(record)),
                            plan.tail,
                            dumps(plan.body_of(record), default=exact_decimal, option=NEWLINE_AFTER),
                        )
                    )
            except RecordError as err:
                failures.append(Failure(record, route, err))
                continue
            except orjson.JSONEncodeError as err:
                failures.append(
                    Failure(
                        record, route, RecordError(f"record {record.where} cannot be written as JSON: {err}")
                    )
                )
                continue
            if plan.autocreate and index not in created:
                new_indices.add(index)
            actions.append((line, record, route))
        return actions, new_indices

    def create_indices(self, names: set[str]) -> None:
        """AUTOCREATE: create each index the first time it is seen. A name Elasticsearch
        refuses is left to the bulk request, whose items then say why per record."""
        for name in sorted(names):
            answer = self.server.request(
                "PUT", "/" + quote(name, safe=""), timeout_s=min(self.write_timeout_s, ATTEMPT_S)
            )
            if not answer.ok and answer.error_type != "resource_already_exists_exception":
                log.warning("AUTOCREATE of index %s failed: %s", name, answer.describe())
                continue
            self.created.add(name)

    def send_request(
        self, part: list[Action], body: bytes, deadline: float, stats: WriteStats, failures: list[Failure]
    ) -> None:
        """One bulk request (halved while Elasticsearch answers 413); its items read. A request
        refused for now (429, 5xx), or not sent before the write timeout, makes all its records
        retriable failures."""
        stack: list[tuple[list[Action], bytes | None]] = [(part, body)]  # None: a half, joined here
        while stack:
            part, joined = stack.pop()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = f"not sent: the write took longer than {min(self.write_timeout_s, ATTEMPT_S):.0f}s"
                failures.extend(
                    Failure(record, route, RetriableRecordError(reason, "timeout"))
                    for _, record, route in part
                )
                continue
            body = joined if joined is not None else b"".join([action[0] for action in part])
            stats.requests += 1
            stats.bytes += len(body)
            answer = self.server.request(
                "POST", BULK_PATH, body, max(remaining, MIN_REQUEST_TIMEOUT_S), BULK_HEADERS
            )
            status = answer.status
            if not answer.ok:
                if status == 429 or status >= 500:
                    reason = (
                        f"{self.server.name_of_server()} refused a bulk request for now: {answer.describe()}"
                    )
                    kind = "429" if status == 429 else "server_error"
                    failures.extend(
                        Failure(record, route, RetriableRecordError(reason, kind))
                        for _, record, route in part
                    )
                elif status != 413:
                    raise SinkUnavailable(f"{self.where} refused a bulk request: {answer.describe()}")
                elif len(part) == 1:
                    _, record, route = part[0]
                    failures.append(
                        Failure(
                            record,
                            route,
                            RecordError(
                                f"record {record.where} is too large for Elasticsearch "
                                f"({len(body)} bytes; see http.max_content_length)",
                                "too_large",
                            ),
                        )
                    )
                else:
                    middle = len(part) // 2
                    stack += [(part[middle:], None), (part[:middle], None)]
                continue
            if answer.body["errors"]:
                read_items(part, answer.body["items"], failures, self.server.name_of_server())


def exact_decimal(value: Any) -> Any:
    """A Decimal (a Connect Decimal, from schema'd JSON) as the JSON number it is, every digit kept."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def tombstone(plan: RoutePlan) -> str:
    if plan.on_null != "DELETE":
        return f"null value (tombstone) with {NULL_VALUES_KEY}={plan.on_null}"
    fields = ", ".join(pk.dotted for pk in plan.route.statement.primary_keys)
    return (
        f"null value (tombstone) with {NULL_VALUES_KEY}=DELETE: the document id comes "
        f"from PK {fields} of the value, which a tombstone does not have"
    )


def build(config: ConnectorConfig, routes: Sequence[Route]) -> ElasticsearchSink:
    """The sink of a connector config (the registry's entry, sinks/__init__.py)."""
    assert config.elastic is not None, "an elasticsearch connector config holds its settings"
    return ElasticsearchSink(config.elastic, routes)
