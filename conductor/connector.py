"""A connector config turned into what the workers run: routes and a sink, or every problem.

Shared by `conductor validate` and `conductor start`, so both see exactly the same problems.
This is wiring: it picks the sink from the registry (sinks/__init__.py), and builds the worker
and the supervisor's settings for `conductor start`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import sinks
from conductor.config import ConnectorConfig
from conductor.errors import ConfigError
from conductor.kcql import Statement, parse_kcql_many
from conductor.routes import Route, by_topic, compile_route
from conductor.status import state_dir_for
from conductor.supervisor import SupervisorSettings
from sinks.base import Sink
from tasks.worker import SinkWorker

# A worker sends no heartbeat while one write runs; it may take the sink's write timeout.
WRITE_HEARTBEAT_MARGIN_S = 30.0


@dataclass(frozen=True)
class Connector:
    config: ConnectorConfig
    statements: tuple[Statement, ...]
    routes: dict[str, tuple[Route, ...]]  # by topic
    sink: Sink

    def worker(self) -> SinkWorker:
        """What the supervisor forks; built in the supervisor's process."""
        return SinkWorker(self.config, self.routes, self.sink, supervisor_pid=os.getpid())

    def supervisor_settings(self, workers: int | None = None) -> SupervisorSettings:
        config, worker = self.config, self.config.worker
        return SupervisorSettings(
            workers=workers or config.tasks_max,
            heartbeat_timeout_s=max(
                worker.heartbeat_timeout_s, self.sink.write_timeout_s + WRITE_HEARTBEAT_MARGIN_S
            ),
            drain_timeout_s=worker.drain_timeout_s,
            rss_limit_mb=worker.rss_limit_mb,
            restart_backoff_initial_s=worker.restart_backoff_initial_s,
            restart_backoff_max_s=worker.restart_backoff_max_s,
            restart_max=worker.restart_max,
            name=config.name,
            state_dir=state_dir_for(config.name),
        )


KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def build_connector(config: ConnectorConfig) -> Connector:
    """Parse the KCQL, compile the routes, build the sink; raise ConfigError listing every
    problem (all KCQL errors, clauses the sink cannot honour, topics without a statement)."""
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
    if not config.topics_regex:
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
