"""The Cassandra sink: KCQL routes to prepared, timestamped INSERTs, run concurrently, every
result read. The plans and the per-record binding are in cassandra_plan.py, the value
conversions in cassandra_types.py.

What write() promises (see sinks/base.py): a record is written, or returned as a Failure
(RetriableRecordError for timeouts, overloads and unavailable replicas), or the call raises
SinkUnavailable when no statement could reach the cluster.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import (
    AuthenticationFailed,
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
from cassandra.policies import DCAwareRoundRobinPolicy, RoundRobinPolicy, TokenAwarePolicy
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage, ServerError
from cassandra.query import BatchStatement, BatchType, BoundStatement

from conductor.config import CassandraSettings, ConnectorConfig
from conductor.errors import ConfigError, RecordError, RetriableRecordError, SinkUnavailable
from conductor.records import Record
from conductor.routes import Route
from sinks.base import Batch, Failure, Sink
from sinks.cassandra_plan import (
    DeletePlan,
    RoutePlan,
    bind_delete,
    bind_insert,
    describe,
    plan_all,
    where_of,
)

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
# What Cassandra accepts as a keyspace or table name (and Stream-Reactor's check).
CQL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


@dataclass(slots=True)
class WriteStats:
    """What the last write() did; one DEBUG line per write, and for tests and benchmarks."""

    records: int = 0
    statements: int = 0
    requests: int = 0
    skipped: int = 0
    failures: int = 0
    ms: float = 0.0


@dataclass(slots=True)
class Request:
    """One request: a bound statement or an unlogged batch, and the records it writes."""

    statement: Any
    entries: list[tuple[BoundStatement, Record, Route]]


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
        except Exception as error:  # e.g. a session shut down under us
            finish(index, error)
            continue
        future.add_callbacks(ok, failed, callback_args=(index,), errback_args=(index,))
    done.wait()
    return results


class CassandraSink(Sink):
    """Writes routed records to Cassandra tables with prepared, timestamped INSERTs."""

    name = "cassandra"

    def __init__(self, settings: CassandraSettings, routes: Sequence[Route]) -> None:
        self.settings = settings
        self.routes = tuple(routes)
        self.cluster: Cluster | None = None
        self.session: Session | None = None
        self.plans: dict[int, RoutePlan] = {}
        self.delete: DeletePlan | None = None
        self.last_write = WriteStats()

    @property
    def where(self) -> str:
        return f"Cassandra at {self.settings.where}"

    @property
    def write_timeout_s(self) -> float:
        return self.settings.write_timeout_ms / 1000

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
            elif not statement.target.is_dynamic:
                problems += [
                    f"{where}: {part!r} is not a Cassandra keyspace or table name (a letter, then "
                    f"letters, digits or '_', at most 48)"
                    for part in statement.target.path
                    if not CQL_NAME.fullmatch(part)
                ]
            if statement.primary_keys:
                log.warning("%s: PK has no effect: the table's PRIMARY KEY decides", where)
        return problems

    def describe_route(self, route: Route) -> list[str]:
        return [
            f"table: {route.statement.target.name} in keyspace {self.settings.keyspace} "
            "(primary key from the table's schema)"
        ]

    # -- lifecycle ---------------------------------------------------------------------

    def setup(self) -> None:
        self.cluster, self.session = self.connect()
        try:
            self.plans, self.delete, problems = plan_all(self.session, self.routes, self.settings)
        except BaseException:
            self.close()
            raise
        if problems:
            self.close()
            raise ConfigError(problems, f"Cassandra schema at {self.settings.where}")

    def check_access(self) -> str:
        cluster, _ = self.connect()  # the schema is check_schema's
        cluster.shutdown()
        return f"Cassandra at {self.settings.where}: answered"

    def check_schema(self) -> list[str]:
        """Every problem between the routes and the schema (for `conductor validate`)."""
        try:
            cluster, session = self.connect()
        except SinkUnavailable as error:
            return [error.reason]
        try:
            return plan_all(session, self.routes, self.settings)[2]
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
            except Exception as error:  # a boot error, with the driver's reason
                if cluster is not None:
                    cluster.shutdown()
                problem = describe(error)
                if version == 5 and isinstance(error, NoHostAvailable) and "protocol" in problem.lower():
                    continue
                refused = refusal(error, settings)
                if refused:
                    raise ConfigError([refused], source="Cassandra") from error
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
        if settings.credentials is not None:
            credentials = settings.credentials
            options["auth_provider"] = PlainTextAuthProvider(
                credentials.username, credentials.password.reveal()
            )
        context = settings.tls.context()
        if context is not None:
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

    # -- write -------------------------------------------------------------------------

    def write(self, batch: Batch) -> list[Failure]:
        if self.session is None or self.session.is_shutdown:
            raise SinkUnavailable(f"Cassandra at {self.settings.where}: the session is not open")
        started = time.monotonic()
        stats = self.last_write = WriteStats(records=len(batch))
        failures: list[Failure] = []
        requests = self.statements(batch, failures, stats)
        stats.statements = len(requests)
        if self.settings.unlogged_batches:
            requests = self.grouped(requests)
        self.execute(requests, stats, failures)
        stats.failures = len(failures)
        stats.ms = (time.monotonic() - started) * 1000
        log.debug(
            "cassandra write: %s records, %s statements, %s requests, %s tombstones skipped, %s failures, %.1f ms",
            stats.records,
            stats.statements,
            stats.requests,
            stats.skipped,
            stats.failures,
            stats.ms,
        )
        return failures

    def statements(self, batch: Batch, failures: list[Failure], stats: WriteStats) -> list[Request]:
        """A bound statement per record and route; records that have none become failures."""
        plans, delete = self.plans, self.delete
        deleted: set[int] = set()
        requests: list[Request] = []
        for record, route in batch:
            try:
                if record.value is None:
                    if delete is None or id(record) in deleted:
                        stats.skipped += 1
                        continue
                    deleted.add(id(record))
                    bound = bind_delete(delete, record)
                else:
                    bound = bind_insert(plans[id(route)], record)
            except RecordError as error:
                failures.append(Failure(record, route, error))
                continue
            requests.append(Request(bound, [(bound, record, route)]))
        return requests

    def grouped(self, requests: list[Request]) -> list[Request]:
        """Statements of one prepared statement and partition, in UNLOGGED batches of at most
        batch_size (KCQL BATCH=n for its route). Statements without a routing key go alone."""
        groups: dict[tuple[int, bytes], list[tuple[BoundStatement, Record, Route]]] = {}
        single: list[Request] = []
        for request in requests:
            bound = request.statement
            key = bound.routing_key
            if key is None:
                single.append(request)
            else:
                groups.setdefault((id(bound.prepared_statement), key), []).extend(request.entries)
        for entries in groups.values():
            if len(entries) == 1:
                single.append(Request(entries[0][0], entries))
                continue
            size = entries[0][2].statement.batch_size or self.settings.batch_size
            for start in range(0, len(entries), size):
                part = entries[start : start + size]
                batch = BatchStatement(BatchType.UNLOGGED)
                for bound, _, _ in part:
                    batch.add(bound)
                batch.is_idempotent = True
                single.append(Request(batch, part))
        return single

    def execute(self, requests: list[Request], stats: WriteStats, failures: list[Failure]) -> None:
        """Run every request once (a batch one refused statement spoiled runs again statement by
        statement). Timeouts and overloads become retriable failures; SinkUnavailable if no
        request reached the cluster."""
        settings = self.settings
        while requests:
            stats.requests += len(requests)
            errors = run_window(
                self.session,
                [r.statement for r in requests],
                settings.max_in_flight,
                settings.request_timeout_s,
            )
            again: list[Request] = []
            retriable: list[tuple[Request, BaseException]] = []
            for request, error in zip(requests, errors, strict=True):
                if error is None:
                    continue
                if isinstance(error, RETRIABLE):
                    retriable.append((request, error))
                elif len(request.entries) > 1:  # one bad statement refuses the batch: go one by one
                    again += [Request(bound, [(bound, r, route)]) for bound, r, route in request.entries]
                else:
                    failures += [
                        Failure(r, route, RecordError(f"Cassandra refused the write: {describe(error)}"))
                        for _, r, route in request.entries
                    ]
            if len(retriable) == len(requests) and all(isinstance(e, UNREACHABLE) for _, e in retriable):
                raise SinkUnavailable(
                    f"Cassandra at {settings.where} cannot take writes: {describe(retriable[0][1])}"
                )
            failures += [
                Failure(
                    r,
                    route,
                    RetriableRecordError(f"Cassandra could not take the write for now: {describe(error)}"),
                )
                for request, error in retriable
                for _, r, route in request.entries
            ]
            requests = again


def build(config: ConnectorConfig, routes: Sequence[Route]) -> CassandraSink:
    """The sink of a connector config (the registry's entry, sinks/__init__.py)."""
    assert config.cassandra is not None, "a cassandra connector config holds its settings"
    return CassandraSink(config.cassandra, routes)


def refusal(error: Exception, settings: CassandraSettings) -> str | None:
    """What the server refused, when waiting cannot fix it: credentials, or a certificate; None
    for a server that is down or busy."""
    reasons = error.errors.values() if isinstance(error, NoHostAvailable) else (error,)
    for reason in reasons:
        text = str(reason)
        where = f"Cassandra at {settings.where}"
        if isinstance(reason, AuthenticationFailed):
            if settings.credentials is None:
                return (
                    f"{where} asks for a user ({text}): set connect.cassandra.username and "
                    "connect.cassandra.password"
                )
            return (
                f"{where} refused user {settings.credentials.username!r}: {text} (check "
                "connect.cassandra.username and connect.cassandra.password)"
            )
        if "CERTIFICATE_VERIFY_FAILED" in text:
            why = text.rpartition("certificate verify failed: ")[2].partition(" (_ssl")[0]
            return (
                f"{where}: the server's certificate is not trusted ({why}); give the CA that signed it "
                "in connect.cassandra.trust.store.path (or connect.cassandra.ssl.cafile)"
            )
        if "WRONG_VERSION_NUMBER" in text:
            return f"{where} does not speak TLS on that port: is connect.cassandra.ssl.enabled=true meant?"
    return None
