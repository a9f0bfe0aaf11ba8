"""A connector config turned into what the workers run, or every problem.

A sink connector is routes and a sink; the aggregator is its SQL statements and their topology.
Shared by `conductor validate` and `conductor start`, so both see exactly the same problems.
This is wiring: it picks the sink from the registry (sinks/__init__.py), and builds the worker
and the supervisor's settings for `conductor start`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import sinks
from conductor import kafka_check
from conductor.config import ConnectorConfig
from conductor.errors import ConfigError, SinkUnavailable
from conductor.kcql import Statement, parse_kcql_many
from conductor.routes import Route, by_topic, compile_route
from conductor.sql import Aggregation, parse_sql_many
from conductor.status import state_dir_for
from conductor.supervisor import SupervisorSettings
from sinks.base import Sink
from tasks.aggregation import Plan
from tasks.aggregator import AggregatorWorker
from tasks.topology import Topology
from tasks.worker import SinkWorker

# A worker sends no heartbeat while one write runs; it may take the sink's write timeout.
WRITE_HEARTBEAT_MARGIN_S = 30.0


def supervisor_settings_for(
    config: ConnectorConfig, workers: int | None, heartbeat_timeout_s: float
) -> SupervisorSettings:
    worker = config.worker
    return SupervisorSettings(
        workers=workers or config.tasks_max,
        heartbeat_timeout_s=heartbeat_timeout_s,
        drain_timeout_s=worker.drain_timeout_s,
        rss_limit_mb=worker.rss_limit_mb,
        restart_backoff_initial_s=worker.restart_backoff_initial_s,
        restart_backoff_max_s=worker.restart_backoff_max_s,
        restart_max=worker.restart_max,
        name=config.name,
        state_dir=state_dir_for(config.name),
    )


@dataclass(frozen=True)
class Connector:
    """A sink connector: KCQL routes and the store they write to."""

    config: ConnectorConfig
    statements: tuple[Statement, ...]
    routes: dict[str, tuple[Route, ...]]  # by topic
    sink: Sink

    def worker(self) -> SinkWorker:
        """What the supervisor forks; built in the supervisor's process."""
        return SinkWorker(self.config, self.routes, self.sink, supervisor_pid=os.getpid())

    def supervisor_settings(self, workers: int | None = None) -> SupervisorSettings:
        heartbeat = max(
            self.config.worker.heartbeat_timeout_s, self.sink.write_timeout_s + WRITE_HEARTBEAT_MARGIN_S
        )
        return supervisor_settings_for(self.config, workers, heartbeat)

    def check_schema(self) -> list[str]:
        return self.sink.check_schema()

    def check_servers(self) -> tuple[list[str], list[str]]:
        return check_servers(self.config, self.sink)

    def describe(self) -> list[str]:
        """What `conductor validate` prints about the routes."""
        lines = []
        for number, statement in enumerate(self.statements, start=1):
            route = next(r for r in self.routes[statement.topic] if r.statement is statement)
            lines.append(
                f"route {number}: {statement.topic} -> {statement.target.name}"
                f"{statement.index_suffix or ''} ({statement.write_mode})"
            )
            lines.append(f"  fields: {', '.join(spelled(f) for f in statement.fields)}")
            if statement.ignored:
                lines.append(f"  ignore: {', '.join(i.dotted for i in statement.ignored)}")
            lines += [f"  {line}" for line in self.sink.describe_route(route)]
            for clause, value in (
                ("autocreate", statement.autocreate),
                ("pipeline", statement.pipeline),
                ("batch", statement.batch_size),
                ("ttl", statement.ttl),
                ("properties", dict(statement.properties) or None),
            ):
                if value:
                    lines.append(f"  {clause}: {value}")
        upkeep = self.sink.upkeep()
        if upkeep is not None:
            lines.append(f"{upkeep.name}: {upkeep.describe()}")
        return lines


def check_servers(config: ConnectorConfig, sink: Sink | None) -> tuple[list[str], list[str]]:
    """What `conductor validate` asks the servers before anything runs: does Kafka, and the
    store, take these TLS settings and credentials? (lines about each, problems). A server
    that does not answer is said so, not counted a problem: the start waits for it."""
    lines: list[str] = []
    problems: list[str] = []
    try:
        lines.append(kafka_check.check(config.kafka))
    except kafka_check.Unreachable as error:
        lines.append(f"Kafka does not answer ({error}): not checked; the start waits for it")
    except ConfigError as error:
        problems += error.problems
    if sink is not None:
        try:
            lines.append(sink.check_access())
        except SinkUnavailable as error:
            lines.append(f"{error.reason}: not checked; the start waits for it")
        except ConfigError as error:
            problems += error.problems
    return lines, problems


def spelled(field) -> str:
    wildcard = (".*" if field.dotted else "*") if field.wildcard else ""
    return field.dotted + wildcard + (f" AS {field.alias}" if field.alias else "")


@dataclass(frozen=True)
class AggregatorConnector:
    """The aggregator job: windowed SQL statements, exactly once through Kafka transactions."""

    config: ConnectorConfig
    statements: tuple[Aggregation, ...]
    topology: Topology

    def worker(self) -> AggregatorWorker:
        return AggregatorWorker(self.config, self.topology, supervisor_pid=os.getpid())

    def supervisor_settings(self, workers: int | None = None) -> SupervisorSettings:
        return supervisor_settings_for(self.config, workers, self.config.worker.heartbeat_timeout_s)

    def check_schema(self) -> list[str]:
        return []

    def check_servers(self) -> tuple[list[str], list[str]]:
        return check_servers(self.config, None)

    def describe(self) -> list[str]:
        lines = []
        for plan, flow in zip(self.topology.plans, self.topology.describe(), strict=True):
            statement = plan.statement
            window = statement.window
            shape = f"{window.kind.lower()} {window.size_ms} ms"
            if window.kind == "HOPPING":
                shape += f" every {window.advance_ms} ms"
            lines.append(flow)
            lines.append(
                f"  window: {shape}, grace {window.grace_ms} ms; group by "
                f"{', '.join(ref.dotted for ref in statement.group_by)}; emit {statement.emit.lower()}"
            )
            lines.append(
                f"  results: {', '.join(item.alias for item in statement.items)}, window_start, window_end"
            )
        idle = self.config.aggregate.idle_close_ms
        lines.append(f"idle close: {f'{idle} ms' if idle else 'off'}")
        return lines


def build_aggregator(config: ConnectorConfig) -> AggregatorConnector:
    """Parse the SQL and work out the topology; ConfigError with every problem."""
    sql = config.aggregate.sql
    statements, errors = parse_sql_many(sql)
    problems = [f"SQL: {error}" for error in errors]
    read = {statement.input_topic for statement in statements}
    if not config.topics_regex and not errors:
        problems += [
            f"topic {t!r} is in 'topics' but no SQL statement reads it"
            for t in config.topics
            if t not in read
        ]
        problems += [
            f"SQL statement at line {s.line} reads topic {s.input_topic!r}, which is not in 'topics' "
            f"({', '.join(config.topics)})"
            for s in statements
            if s.input_topic not in config.topics
        ]
    if config.topics_regex:
        problems.append("topics.regex: the aggregator reads the topics its statements name; set topics")
    for statement in statements:
        for topic in (statement.input_topic, statement.output_topic):
            if not KAFKA_TOPIC.fullmatch(topic):
                problems.append(
                    f"SQL statement at line {statement.line}: {topic!r} is not a Kafka topic name"
                )
    if problems:
        raise ConfigError(problems, source=config.source)
    plans = [Plan.compile(index, statement) for index, statement in enumerate(statements)]
    return AggregatorConnector(config, tuple(statements), Topology.of(config.name, plans))


KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def build_connector(config: ConnectorConfig) -> Connector | AggregatorConnector:
    """Parse the KCQL, compile the routes, build the sink; raise ConfigError listing every
    problem (all KCQL errors, clauses the sink cannot honour, topics without a statement).
    The aggregator: its SQL and topology instead."""
    if config.aggregate is not None:
        return build_aggregator(config)
    problems: list[str] = []
    statements, errors = parse_kcql_many(config.kcql)
    problems += [f"KCQL: {error}" for error in errors]
    routes = [compile_route(statement) for statement in statements]
    problems += [
        f"KCQL statement at line {s.line} reads {s.topic!r}, which is not a Kafka topic name "
        f"(letters, digits, '.', '_' and '-', at most 249)"
        for s in statements
        if not KAFKA_TOPIC.fullmatch(s.topic)
    ]
    topics_read = {statement.topic for statement in statements}
    # a router (RegexRouter, TimestampRouter) hands KCQL other topics than those consumed
    rerouted = config.transforms is not None and config.transforms.routes
    if not config.topics_regex and not rerouted:
        problems += [
            f"topic {topic!r} is in 'topics' but no KCQL statement reads it"
            for topic in config.topics
            if topic not in topics_read and not errors
        ]
        problems += [
            f"KCQL statement at line {s.line} reads topic {s.topic!r}, which is not in 'topics' "
            f"({', '.join(config.topics)})"
            for s in statements
            if s.topic not in config.topics
        ]
    sink = None
    try:
        sink = sinks.load(config.sink)(config, routes)
    except ConfigError as error:
        problems += error.problems
    if sink is not None:
        problems += sink.check_routes(routes)
    if problems:
        raise ConfigError(problems, source=config.source)
    return Connector(config, tuple(statements), by_topic(routes), sink)
