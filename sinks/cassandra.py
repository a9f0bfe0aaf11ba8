"""The Cassandra sink: KCQL routes to prepared INSERTs, run concurrently, every result read.

At setup each route's table is read from the schema and one statement is prepared for it,
`INSERT INTO ks.table (c1, ...) VALUES (?, ...) USING [TTL n AND] TIMESTAMP ?`, with one
converter per column (sinks/cassandra_types.py). The write timestamp is the record's Kafka
timestamp in microseconds plus `offset % 1000`, so a replayed or late record never overwrites
newer data, two records of one millisecond keep their order, and a batch written again
rewrites itself. Tombstones run the configured delete statement, given the same timestamp.

What write() promises (see sinks/base.py): a record is written, or returned as a Failure
(RetriableRecordError for timeouts and unavailable replicas that outlived `write_timeout_ms`),
or the call raises SinkUnavailable when no statement could reach the cluster.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.metadata import protect_name
from cassandra.policies import DCAwareRoundRobinPolicy, RoundRobinPolicy, TokenAwarePolicy
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage, ServerError
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, BoundStatement, PreparedStatement

from conductor.config import ConnectorConfig
from conductor.errors import ConfigError, RecordError, RetriableRecordError, SinkUnavailable
from conductor.routes import MISSING, Route, dig
from sinks.base import Batch, Failure, Sink
from sinks.cassandra_types import Converter, Unconvertible, converter, shown, type_name
from tasks.records import Record

log = logging.getLogger(__name__)

RETRIABLE = (
    WriteTimeout,
    ReadTimeout,
    Unavailable,
    CoordinationFailure,
    OperationTimedOut,
    NoHostAvailable,
    ConnectionException,
    OverloadedErrorMessage,
    IsBootstrappingErrorMessage,
    ServerError,
)
UNREACHABLE = (NoHostAvailable, OperationTimedOut, ConnectionException)
LOAD_BALANCING = ("ROUND_ROBIN", "TOKEN_AWARE", "LATENCY_AWARE", "DC_AWARE_ROUND_ROBIN")
TIMESTAMP_MARKER = "[timestamp]"
MIN_REQUEST_TIMEOUT_S = 1.0
MAX_FIELD_CACHE = 10_000
NOT_A_COLUMN = -1


@dataclass(frozen=True)
class CassandraSinkSettings:
    contact_points: tuple[str, ...]
    keyspace: str
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    consistency_level: str | None = None
    load_balancing_policy: str | None = None
    ssl_enabled: bool = False
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 12.0
    max_in_flight: int = 128
    batch_size: int = 100
    unlogged_batches: bool = False
    delete_enabled: bool = False
    delete_statement: str | None = None
    delete_key_fields: tuple[str, ...] = ()
    default_value: str = "UNSET"
    write_timeout_ms: int = 60_000
    retry_backoff_initial_s: float = 0.2
    retry_backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        problems = []
        if not self.contact_points:
            problems.append("cassandra contact_points: at least one host is required")
        if not self.keyspace:
            problems.append("cassandra keyspace is required")
        problems += [
            f"cassandra {name} must be positive (got {value})"
            for name, value in (
                ("connect_timeout_s", self.connect_timeout_s),
                ("request_timeout_s", self.request_timeout_s),
                ("max_in_flight", self.max_in_flight),
                ("batch_size", self.batch_size),
                ("write_timeout_ms", self.write_timeout_ms),
                ("retry_backoff_initial_s", self.retry_backoff_initial_s),
            )
            if value <= 0
        ]
        if (
            self.consistency_level is not None
            and self.consistency_level.upper() not in ConsistencyLevel.name_to_value
        ):
            problems.append(
                f"cassandra consistency_level {self.consistency_level!r} is not one of "
                f"{', '.join(ConsistencyLevel.name_to_value)}"
            )
        if self.load_balancing_policy is not None and self.load_balancing_policy not in LOAD_BALANCING:
            problems.append(
                f"cassandra load_balancing_policy {self.load_balancing_policy!r} is not "
                f"one of {', '.join(LOAD_BALANCING)}"
            )
        if self.default_value not in ("NULL", "UNSET"):
            problems.append(f"cassandra default_value must be NULL or UNSET (got {self.default_value!r})")
        if self.delete_enabled and not self.delete_statement:
            problems.append("cassandra delete_statement is required when deletes are enabled")
        if problems:
            raise ConfigError(problems, "cassandra settings")

    @property
    def where(self) -> str:
        return ", ".join(f"{host}:{self.port}" for host in self.contact_points)


@dataclass(slots=True)
class WriteStats:
    """What the last write() did; one DEBUG line per write, and for tests and benchmarks."""

    records: int = 0
    statements: int = 0
    requests: int = 0
    skipped: int = 0
    failures: int = 0
    ms: float = 0.0


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Everything about a route the per-record path needs, worked out once. `slots` maps a
    field name to its bind position (NOT_A_COLUMN if none); SELECT * fills it as names come."""

    route: Route
    table: str
    prepared: PreparedStatement
    columns: tuple[str, ...]
    types: tuple[str, ...]
    converters: tuple[Converter, ...]
    template: tuple[Any, ...]
    pk_slots: tuple[int, ...]
    slots: dict[str, int]
    wildcard: bool


@dataclass(frozen=True, slots=True)
class DeletePlan:
    prepared: PreparedStatement
    timestamp_slots: tuple[int, ...]
    key_slots: tuple[tuple[int, tuple[str, ...], Converter, str], ...]  # slot, path, convert, name


@dataclass(slots=True)
class Pending:
    """One request: a bound statement or an unlogged batch, and the records it writes."""

    statement: Any
    entries: list[tuple[BoundStatement, Record, Route]]


def where_of(route: Route) -> str:
    statement = route.statement
    return f"KCQL line {statement.line} ({statement.target.name} <- {statement.topic})"


def find(mapping: Any, name: str) -> Any:
    """Exact name first (a quoted identifier), then the lowercase one CQL folds names to."""
    found = mapping.get(name)
    return found if found is not None else mapping.get(name.lower())


def describe(error: BaseException) -> str:
    if isinstance(error, NoHostAvailable) and error.errors:
        return "; ".join(f"{host}: {reason}" for host, reason in error.errors.items())
    return f"{type(error).__name__}: {error}"


def write_timestamp(record: Record) -> int:
    """Microseconds: the Kafka timestamp, plus the offset's last three digits as a tie-break."""
    if record.timestamp < 0:
        return time.time_ns() // 1000
    return record.timestamp * 1000 + record.offset % 1000


def with_timestamp(delete: str) -> str:
    """The delete statement given `USING TIMESTAMP ?` (bound to the tombstone's timestamp),
    unless it has one or is conditional (`IF ...` takes no custom timestamp)."""
    if re.search(r"\bUSING\s+TIMESTAMP\b|\bIF\b", delete, re.IGNORECASE):
        return delete
    return re.sub(r"\s+WHERE\s", " USING TIMESTAMP ? WHERE ", delete, count=1, flags=re.IGNORECASE)


def run_window(
    session: Session, statements: Sequence[Any], window: int, timeout: float
) -> list[BaseException | None]:
    """Execute every statement with at most `window` in flight; the error of each, or None."""
    results: list[BaseException | None] = [None] * len(statements)
    if not statements:
        return results
    free = threading.Semaphore(window)
    done = threading.Event()
    lock = threading.Lock()
    left = [len(statements)]

    def finish(index: int, error: BaseException | None) -> None:
        results[index] = error
        free.release()
        with lock:
            left[0] -= 1
            if not left[0]:
                done.set()

    ok = lambda _rows, index: finish(index, None)
    failed = lambda error, index: finish(index, error)
    for index, statement in enumerate(statements):
        free.acquire()
        try:
            future = session.execute_async(statement, timeout=timeout)
        except Exception as error:
            finish(index, error)
            continue
        future.add_callbacks(ok, failed, callback_args=(index,), errback_args=(index,))
    done.wait()
    return results


class CassandraSink(Sink):
    """Writes routed records to Cassandra tables with prepared, timestamped INSERTs."""

    name = "cassandra"

    def __init__(self, settings: CassandraSinkSettings, routes: Sequence[Route]) -> None:
        self.settings = settings
        self.routes = tuple(routes)
        self.cluster: Cluster | None = None
        self.session: Session | None = None
        self.plans: dict[int, RoutePlan] = {}
        self.delete: DeletePlan | None = None
        self.last_write = WriteStats()

    def check_routes(self, routes: Sequence[Route]) -> list[str]:
        problems = []
        for route in routes:
            statement = route.statement
            where = where_of(route)
            clauses = [
                ("WITHINDEXSUFFIX", statement.index_suffix is not None),
                ("WITHPIPELINE", statement.pipeline is not None),
                ("WITHDOCTYPE", statement.doc_type is not None),
                ("a dynamic target", statement.target.is_dynamic),
            ]
            problems += [
                f"{where}: {clause} is not supported by the Cassandra sink"
                for clause, given in clauses
                if given
            ]
            if statement.autocreate:
                problems.append(
                    f"{where}: AUTOCREATE is not supported by the Cassandra sink "
                    f"(it does not create tables: create the table with CQL)"
                )
            problems += [
                f"{where}: PROPERTIES key {key!r} is not supported by the Cassandra sink"
                for key in statement.properties
            ]
            if len(statement.target.path) > 2:
                problems.append(
                    f"{where}: target {statement.target.name!r} is not 'table' or 'keyspace.table'"
                )
            if statement.primary_keys:
                log.warning("%s: PK is ignored: the table's PRIMARY KEY decides", where)
        return problems

    # -- lifecycle ---------------------------------------------------------------------

    def setup(self) -> None:
        self.cluster, self.session = self.connect()
        try:
            self.plans, self.delete, problems = self.plan_all(self.session, self.routes)
        except BaseException:
            self.close()
            raise
        if problems:
            self.close()
            raise ConfigError(problems, f"Cassandra schema at {self.settings.where}")

    def check_schema(self, routes: Sequence[Route] | None = None) -> list[str]:
        """Every problem between the routes and the schema (for `conductor validate`)."""
        try:
            cluster, session = self.connect()
        except SinkUnavailable as error:
            return [error.reason]
        try:
            return self.plan_all(session, self.routes if routes is None else routes)[2]
        finally:
            cluster.shutdown()

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
        self.cluster = self.session = None

    def connect(self) -> tuple[Cluster, Session]:
        """A cluster and session; protocol v5, else v4 for servers older than 4.0."""
        settings = self.settings
        options = self.cluster_options()
        for version in (5, 4):
            cluster = None
            try:
                cluster = Cluster(
                    list(settings.contact_points), port=settings.port, protocol_version=version, **options
                )
                return cluster, cluster.connect()
            except Exception as error:
                if cluster is not None:
                    cluster.shutdown()
                problem = describe(error)
                if version == 5 and isinstance(error, NoHostAvailable) and "protocol" in problem.lower():
                    continue
            raise SinkUnavailable(f"Cassandra at {settings.where} does not answer: {problem}")
        raise AssertionError("unreachable")

    def cluster_options(self) -> dict[str, Any]:
        settings = self.settings
        profile = ExecutionProfile(
            load_balancing_policy=self.load_balancing(), request_timeout=settings.request_timeout_s
        )
        if settings.consistency_level:
            profile.consistency_level = ConsistencyLevel.name_to_value[settings.consistency_level.upper()]
        options: dict[str, Any] = {
            "execution_profiles": {EXEC_PROFILE_DEFAULT: profile},
            "connect_timeout": settings.connect_timeout_s,
            "control_connection_timeout": settings.connect_timeout_s,
        }
        if settings.username:
            options["auth_provider"] = PlainTextAuthProvider(settings.username, settings.password or "")
        if settings.ssl_enabled:
            context = ssl.create_default_context(cafile=settings.ssl_cafile)
            context.check_hostname = settings.ssl_check_hostname
            if settings.ssl_certfile:
                context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
            options["ssl_context"] = context
        return options

    def load_balancing(self) -> Any:
        chosen = self.settings.load_balancing_policy
        if chosen == "ROUND_ROBIN":
            return RoundRobinPolicy()
        if chosen == "DC_AWARE_ROUND_ROBIN":
            return DCAwareRoundRobinPolicy()
        if chosen == "LATENCY_AWARE":
            log.warning("LATENCY_AWARE load balancing is not in the Python driver; using TOKEN_AWARE")
        return TokenAwarePolicy(DCAwareRoundRobinPolicy())

    # -- plans -------------------------------------------------------------------------

    def plan_all(
        self, session: Session, routes: Sequence[Route]
    ) -> tuple[dict[int, RoutePlan], DeletePlan | None, list[str]]:
        """Plan every route and the delete statement; every problem found, or none."""
        plans: dict[int, RoutePlan] = {}
        delete: DeletePlan | None = None
        problems: list[str] = []
        keyspace = find(session.cluster.metadata.keyspaces, self.settings.keyspace)
        if keyspace is not None:
            session.set_keyspace(protect_name(keyspace.name))
        else:
            problems.append(
                f"keyspace {self.settings.keyspace!r} (connect.cassandra.key.space) does not exist"
            )
        for route in routes:
            plan, found = self.plan_route(session, route)
            problems += found
            if plan is not None:
                plans[id(route)] = plan
        if self.settings.delete_enabled and keyspace is not None:
            delete, found = self.plan_delete(session)
            problems += found
        return plans, delete, problems

    def plan_route(self, session: Session, route: Route) -> tuple[RoutePlan | None, list[str]]:
        statement, where = route.statement, where_of(route)
        path = statement.target.path
        if statement.target.is_dynamic or len(path) > 2:
            return None, [f"{where}: the target must be 'table' or 'keyspace.table'"]
        keyspace_name, table_name = path if len(path) == 2 else (self.settings.keyspace, path[0])
        keyspace = find(session.cluster.metadata.keyspaces, keyspace_name)
        if keyspace is None:
            return None, [f"{where}: keyspace {keyspace_name!r} does not exist"]
        table = find(keyspace.tables, table_name)
        if table is None:
            return None, [
                f"{where}: table {keyspace.name}.{table_name} does not exist (the sink "
                f"does not create tables: create it with CQL)"
            ]
        qualified = f"{keyspace.name}.{table.name}"
        problems = []
        if any(column.cql_type == "counter" for column in table.columns.values()):
            problems.append(f"{where}: {qualified} is a counter table, which INSERT cannot write")
        wildcard = any(f.wildcard for f in statement.fields)
        slots: dict[str, int] = {}
        chosen: list[str] = list(table.columns) if wildcard else []
        for selected in statement.fields:
            if selected.wildcard:
                continue
            column = find(table.columns, selected.name)
            if column is None:
                problems.append(
                    f"{where}: field {selected.name!r} matches no column of {qualified} "
                    f"(columns: {', '.join(table.columns)})"
                )
            elif column.name not in chosen:
                chosen.append(column.name)
            if column is not None:
                slots[selected.name] = chosen.index(column.name)
        unfilled = [c.name for c in table.primary_key if c.name not in chosen]
        if unfilled:
            problems.append(
                f"{where}: primary key column(s) {', '.join(unfilled)} of {qualified} "
                f"are never written: no selected field has that name"
            )
        if problems:
            return None, problems
        ttl = f"TTL {statement.ttl} AND " if statement.ttl else ""
        cql = (
            f"INSERT INTO {protect_name(keyspace.name)}.{protect_name(table.name)} "
            f"({', '.join(map(protect_name, chosen))}) VALUES ({', '.join('?' * len(chosen))}) "
            f"USING {ttl}TIMESTAMP ?"
        )
        try:
            prepared = self.prepare(session, cql)
        except Exception as error:
            return None, [f"{where}: cannot prepare {cql}: {describe(error)}"]
        bound_types = [m.type for m in prepared.column_metadata]
        keys = {c.name for c in table.primary_key}
        default = None if self.settings.default_value == "NULL" else UNSET_VALUE
        slots.update({name: index for index, name in enumerate(chosen) if name not in slots})
        return RoutePlan(
            route,
            qualified,
            prepared,
            tuple(chosen),
            tuple(table.columns[name].cql_type for name in chosen),
            tuple(converter(t) for t in bound_types[:-1]),
            tuple(None if name in keys else default for name in chosen) + (None,),
            tuple(index for index, name in enumerate(chosen) if name in keys),
            slots,
            wildcard,
        ), []

    def plan_delete(self, session: Session) -> tuple[DeletePlan | None, list[str]]:
        settings = self.settings
        try:
            prepared = session.prepare(with_timestamp(settings.delete_statement or ""))
        except Exception as error:
            return None, [f"connect.cassandra.delete.statement cannot be prepared: {describe(error)}"]
        markers = list(enumerate(prepared.column_metadata))
        keys = [(i, m) for i, m in markers if m.name != TIMESTAMP_MARKER]
        fields = settings.delete_key_fields
        if len(keys) != max(len(fields), 1):
            return None, [
                f"connect.cassandra.delete.statement has {len(keys)} key marker(s) but "
                f"connect.cassandra.delete.struct_flds names {len(fields)} field(s) "
                f"(none: one marker for the whole key)"
            ]
        paths = [tuple(f.split(".")) for f in fields] or [()]
        return DeletePlan(
            prepared,
            tuple(i for i, m in markers if m.name == TIMESTAMP_MARKER),
            tuple((i, path, converter(m.type), m.name) for (i, m), path in zip(keys, paths, strict=True)),
        ), []

    def prepare(self, session: Session, cql: str) -> PreparedStatement:
        prepared = session.prepare(cql)
        prepared.is_idempotent = True  # explicit timestamps: writing twice is harmless
        return prepared

    def plan(self, route: Route) -> RoutePlan:
        """A route not given at construction (tests, reloads): planned on first use."""
        plan, problems = self.plan_route(self.session, route)
        if plan is None:
            raise RecordError("; ".join(problems))
        self.plans[id(route)] = plan
        return plan

    # -- write -------------------------------------------------------------------------

    def write(self, batch: Batch) -> list[Failure]:
        if self.session is None or self.session.is_shutdown:
            raise SinkUnavailable(f"Cassandra at {self.settings.where}: the session is not open")
        started = time.monotonic()
        deadline = started + self.settings.write_timeout_ms / 1000
        stats = self.last_write = WriteStats(records=len(batch))
        failures: list[Failure] = []
        pending = self.statements(batch, failures, stats)
        stats.statements = len(pending)
        if self.settings.unlogged_batches:
            pending = self.grouped(pending)
        self.execute(pending, deadline, stats, failures)
        stats.failures = len(failures)
        stats.ms = (time.monotonic() - started) * 1000
        log.debug(
            "cassandra write: %s records, %s statements, %s requests, %s tombstones skipped, "
            "%s failures, %.1f ms",
            stats.records,
            stats.statements,
            stats.requests,
            stats.skipped,
            stats.failures,
            stats.ms,
        )
        return failures

    def statements(self, batch: Batch, failures: list[Failure], stats: WriteStats) -> list[Pending]:
        """A bound statement per record and route; records that have none become failures."""
        plans = self.plans
        deleted: set[int] = set()
        pending: list[Pending] = []
        for record, route in batch:
            try:
                if record.value is None:
                    if not self.settings.delete_enabled or id(record) in deleted:
                        stats.skipped += 1
                        continue
                    deleted.add(id(record))
                    bound = self.bind_delete(record)
                else:
                    bound = self.bind_insert(plans.get(id(route)) or self.plan(route), record)
            except RecordError as error:
                failures.append(Failure(record, route, error))
                continue
            pending.append(Pending(bound, [(bound, record, route)]))
        return pending

    def bind_insert(self, plan: RoutePlan, record: Record) -> BoundStatement:
        values = list(plan.template)
        slots, converters = plan.slots, plan.converters
        slot, value = NOT_A_COLUMN, None
        try:
            for name, value in plan.route.project(record).items():
                slot = slots.get(name)
                if slot is None:
                    slot = self.resolve(plan, name)
                if slot >= 0:
                    values[slot] = None if value is None else converters[slot](value)
        except (Unconvertible, ValueError, TypeError, OverflowError) as error:
            detail = f" ({error.detail})" if isinstance(error, Unconvertible) and error.detail else ""
            raise RecordError(
                f"column {plan.columns[slot]} ({plan.types[slot]}): cannot convert {shown(value)}{detail}"
            ) from None
        for slot in plan.pk_slots:
            if values[slot] is None:
                raise RecordError(f"missing primary key column {plan.columns[slot]} (table {plan.table})")
        values[-1] = write_timestamp(record)
        try:
            return plan.prepared.bind(values)
        except Exception as error:
            raise RecordError(f"cannot bind record for {plan.table}: {error}") from None

    def resolve(self, plan: RoutePlan, name: str) -> int:
        """The bind position of a field SELECT * brought that was not seen before."""
        lowered = name.lower()
        slot = plan.columns.index(lowered) if lowered in plan.columns else NOT_A_COLUMN
        if len(plan.slots) < MAX_FIELD_CACHE:
            plan.slots[name] = slot
            if slot == NOT_A_COLUMN:
                log.debug(
                    "%s: field %r matches no column of %s: not written",
                    where_of(plan.route),
                    name,
                    plan.table,
                )
        return slot

    def bind_delete(self, record: Record) -> BoundStatement:
        plan = self.delete
        assert plan is not None, "delete_enabled without a prepared delete statement"
        values: list[Any] = [None] * len(plan.prepared.column_metadata)
        for slot in plan.timestamp_slots:
            values[slot] = write_timestamp(record)
        key = record.key_object()
        whole = key if key is not None and type(key) not in (dict, list) else record.key_text()
        for slot, path, convert, name in plan.key_slots:
            if path and type(key) is dict:
                value = dig(key, path)
            else:  # no struct_flds, or a key that is not a JSON object: the whole key
                value = whole if len(plan.key_slots) == 1 else MISSING
            if value is None or value is MISSING:
                raise RecordError(
                    f"tombstone: key field {'.'.join(path) or '(the key)'} for "
                    f"{name} of the delete statement is missing"
                )
            try:
                values[slot] = convert(value)
            except (Unconvertible, ValueError, TypeError) as error:
                raise RecordError(
                    f"tombstone: key value {shown(value)} does not fit {name} "
                    f"({type_name(plan.prepared.column_metadata[slot].type)}) {error}"
                ) from None
        try:
            return plan.prepared.bind(values)
        except Exception as error:
            raise RecordError(f"tombstone: cannot bind the delete statement: {error}") from None

    def grouped(self, pending: list[Pending]) -> list[Pending]:
        """Statements of one prepared statement and partition, in UNLOGGED batches of at most
        batch_size (KCQL BATCH=n for its route). Statements without a routing key go alone."""
        groups: dict[tuple[int, bytes], list[tuple[BoundStatement, Record, Route]]] = {}
        single: list[Pending] = []
        for unit in pending:
            bound = unit.statement
            key = bound.routing_key
            if key is None:
                single.append(unit)
            else:
                groups.setdefault((id(bound.prepared_statement), key), []).extend(unit.entries)
        for entries in groups.values():
            if len(entries) == 1:
                single.append(Pending(entries[0][0], entries))
                continue
            size = entries[0][2].statement.batch_size or self.settings.batch_size
            for start in range(0, len(entries), size):
                part = entries[start : start + size]
                batch = BatchStatement(BatchType.UNLOGGED)
                for bound, _, _ in part:
                    batch.add(bound)
                batch.is_idempotent = True
                single.append(Pending(batch, part))
        return single

    def execute(
        self, pending: list[Pending], deadline: float, stats: WriteStats, failures: list[Failure]
    ) -> None:
        """Run every request; retry timeouts and overloads with backoff until the deadline.
        Raise SinkUnavailable if no request reached the cluster (first try, or at the end)."""
        settings = self.settings
        delay = settings.retry_backoff_initial_s
        first = True
        while pending:
            stats.requests += len(pending)
            timeout = max(min(settings.request_timeout_s, deadline - time.monotonic()), MIN_REQUEST_TIMEOUT_S)
            errors = run_window(
                self.session, [unit.statement for unit in pending], settings.max_in_flight, timeout
            )
            again: list[Pending] = []
            retry: list[tuple[Pending, BaseException]] = []
            for unit, error in zip(pending, errors, strict=True):
                if error is None:
                    continue
                if isinstance(error, RETRIABLE):
                    retry.append((unit, error))
                elif len(unit.entries) > 1:  # one bad statement refuses the batch: go one by one
                    again += [Pending(bound, [(bound, r, route)]) for bound, r, route in unit.entries]
                else:
                    failures += [
                        Failure(r, route, RecordError(f"Cassandra refused the write: {describe(error)}"))
                        for _, r, route in unit.entries
                    ]
            past_deadline = time.monotonic() >= deadline
            if (
                retry
                and all(isinstance(e, UNREACHABLE) for _, e in retry)
                and ((first and len(retry) == len(pending)) or past_deadline)
            ):
                raise SinkUnavailable(
                    f"Cassandra at {settings.where} cannot take writes: {describe(retry[0][1])}",
                    retry_after=delay,
                )
            first = False
            if retry and past_deadline:
                failures += [
                    Failure(
                        r,
                        route,
                        RetriableRecordError(
                            f"{describe(error)} (still failing after {settings.write_timeout_ms} ms)"
                        ),
                    )
                    for unit, error in retry
                    for _, r, route in unit.entries
                ]
                retry = []
            if retry:
                log.debug(
                    "cassandra: retrying %d requests in %.1fs: %s", len(retry), delay, describe(retry[0][1])
                )
                time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
                delay = min(delay * 2, settings.retry_backoff_max_s)
            pending = again + [unit for unit, _ in retry]


def build_cassandra_sink(config: ConnectorConfig, routes: list[Route]) -> CassandraSink:
    """The sink from a ConnectorConfig's connect.cassandra.* settings."""
    cassandra = config.cassandra
    settings = CassandraSinkSettings(
        contact_points=tuple(cassandra.contact_points),
        keyspace=cassandra.keyspace,
        port=cassandra.port,
        username=cassandra.username,
        password=None if cassandra.password is None else cassandra.password.reveal(),
        consistency_level=cassandra.consistency_level,
        load_balancing_policy=cassandra.load_balancing_policy,
        ssl_enabled=cassandra.ssl_enabled,
        ssl_cafile=cassandra.ssl_cafile,
        ssl_certfile=cassandra.ssl_certfile,
        ssl_keyfile=cassandra.ssl_keyfile,
        connect_timeout_s=cassandra.connect_timeout_ms / 1000,
        request_timeout_s=cassandra.read_timeout_ms / 1000,
        batch_size=cassandra.batch_size,
        max_in_flight=cassandra.max_in_flight,
        unlogged_batches=cassandra.unlogged_batches,
        delete_enabled=cassandra.delete_enabled,
        delete_statement=cassandra.delete_statement,
        delete_key_fields=tuple(cassandra.delete_struct_fields),
        default_value=cassandra.default_value or "UNSET",
    )
    return CassandraSink(settings, routes)
