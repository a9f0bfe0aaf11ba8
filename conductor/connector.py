"""A connector config turned into what the workers run: routes and a sink, or every problem.

Shared by `conductor validate` and `conductor start`, so both see exactly the same problems.
Sinks are named in a registry (name -> "module:builder") and imported only when chosen.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from conductor.config import ConnectorConfig
from conductor.errors import ConfigError
from conductor.kcql import Statement, parse_kcql_many
from conductor.routes import Route, compile_route
from sinks.base import Sink

SINK_BUILDERS = {
    "elasticsearch": "conductor.connector:build_elasticsearch_sink",
    "cassandra": "sinks.cassandra:build_cassandra_sink",
}


@dataclass(frozen=True)
class Connector:
    config: ConnectorConfig
    statements: tuple[Statement, ...]
    routes: dict[str, tuple[Route, ...]]
    sink: Sink


def build_connector(config: ConnectorConfig) -> Connector:
    """Parse the KCQL, compile the routes, build the sink; raise ConfigError listing every
    problem (all KCQL errors, clauses the sink cannot honour, topics without a statement)."""
    problems: list[str] = []
    statements, errors = parse_kcql_many(config.kcql)
    problems += [f"KCQL: {error}" for error in errors]
    routes = [compile_route(statement) for statement in statements]
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
    try:
        sink = _builder(config.sink)(config, routes)
    except ConfigError as error:
        problems += error.problems
        sink = None
    if sink is not None:
        problems += sink.check_routes(routes)
    if problems:
        raise ConfigError(problems, source=config.source)
    by_topic: dict[str, list[Route]] = {}
    for route in routes:
        by_topic.setdefault(route.topic, []).append(route)
    return Connector(config, tuple(statements), {t: tuple(r) for t, r in by_topic.items()}, sink)


def _builder(name: str):
    try:
        target = SINK_BUILDERS[name]
    except KeyError:
        raise ConfigError([f"no sink named {name!r}; known: {', '.join(SINK_BUILDERS)}"]) from None
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


def build_elasticsearch_sink(config: ConnectorConfig, routes: list[Route]) -> Sink:
    from sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink

    elastic = config.elastic
    client_kwargs = {
        k: v for k, v in elastic.to_client_kwargs().items() if k not in ("hosts", "request_timeout")
    }
    settings = ElasticsearchSettings(
        hosts=tuple(elastic.hosts),
        client_kwargs=client_kwargs,
        batch_size=elastic.batch_size,
        max_bytes=config.worker.batch_max_bytes,
        write_timeout_ms=elastic.write_timeout_ms,
        pk_separator=elastic.pk_separator,
        suffix_clock=config.worker.index_suffix_clock,
    )
    return ElasticsearchSink(settings, routes)
