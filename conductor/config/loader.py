"""Load a connector config: read the file, apply overrides, resolve ${...}, type and check.

Every problem is collected and raised at the end as one ConfigError. What is not a problem is
kept for the caller to report: ``notices`` (keys given that have no effect here, and why) and
``warnings`` (what looks like a mistake: unknown keys, duplicates).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from conductor.config import keys as k
from conductor.config.converters import converter_settings
from conductor.config.readers import read_file, read_properties, scalar
from conductor.config.secrets import REFERENCE, Resolver, Secret, reveal
from conductor.config.sections import (
    aggregate_settings,
    cassandra_settings,
    elastic_settings,
    error_settings,
    kafka_settings,
    rest_settings,
    worker_settings,
)
from conductor.config.settings import ConnectorConfig
from conductor.config.values import Reader, Section
from conductor.errors import ConfigError
from conductor.transforms import build_chain

SINKS = {"elasticsearch": k.ES, "cassandra": k.CASSANDRA}
AGGREGATE = "aggregate"  # the aggregator job's kind, where a sink connector names its store
AGGREGATOR_CLASS = "conductor.aggregate"
CLASS_WORDS = {"elasticsearch": "elastic", "cassandra": "cassandra"}  # in connector.class


def load_config(
    path: str | Path,
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectorConfig:
    """Read ``path`` (.properties, .json, .yaml/.yml), apply ``overrides`` on top, validate."""
    raw, warnings = read_file(path)
    raw.update(overrides or {})
    return _parse(raw, str(path), environ, warnings)


def parse_config(
    raw: Mapping[str, str],
    source: str = "config",
    environ: Mapping[str, str] | None = None,
) -> ConnectorConfig:
    """Validate a flat ``{key: value}`` config; ``environ`` defaults to os.environ."""
    return _parse(raw, source, environ, [])


def _parse(
    raw: Mapping[str, Any], source: str, environ: Mapping[str, str] | None, warnings: list[str]
) -> ConnectorConfig:
    environ = os.environ if environ is None else environ
    given = {str(key).strip(): scalar(value).strip() for key, value in raw.items() if value is not None}
    given.pop("", None)
    resolver = Resolver(given, environ, read_properties)
    values: dict[str, str | Secret] = {}
    problems: list[str] = []
    unresolved: set[str] = set()
    for key, value in given.items():
        values[key], failed = resolver.resolve(key, value)
        problems.extend(failed)
        if failed:
            unresolved.add(key)
    referenced = frozenset(
        key for key in values if isinstance(values[key], Secret) and REFERENCE.search(given[key])
    )
    r = Reader(values, referenced, frozenset(unresolved))
    r.problems.extend(problems)
    r.warnings.extend(warnings)
    fields = _build(r, environ)
    r.warnings.extend(_unknown_keys(values))
    if r.problems:
        raise ConfigError(r.problems, source)
    defaults = {key: value for key, value in r.defaults.items() if key not in given or not given[key]}
    return ConnectorConfig(
        **fields,
        raw=MappingProxyType(values),
        defaults=MappingProxyType(defaults),
        references=MappingProxyType({key: given[key] for key in referenced}),
        notices=tuple(r.notices),
        warnings=tuple(r.warnings),
        source=source,
    )


def _build(r: Reader, environ: Mapping[str, str]) -> dict[str, Any]:
    """ConnectorConfig's kwargs (all but raw/defaults/notices/warnings/source); problems go to ``r``."""
    s = Section(r)
    name = s.required("name", "name")
    connector_class = s.string("connector_class", "connector.class")
    sink = _sink(r, connector_class)
    s.put("sink", "connector.class", sink or "")
    topics = s.listing("topics", "topics")
    regex = s.string("topics_regex", "topics.regex")
    if topics and regex:
        r.problems.append("topics, topics.regex: set exactly one of them, not both")
    elif not topics and not regex:
        r.problems.append("topics: required (or topics.regex), but missing")
    if regex:
        try:
            re.compile(regex)
        except re.error as err:
            r.problems.append(f"topics.regex: not a valid regular expression ({err})")
    s.integer("tasks_max", "tasks.max", default=1, minimum=1)
    prefix = SINKS.get(sink or "", "")
    s.put("kcql", prefix + "kcql", r.required(prefix + "kcql", why=f" for the {sink} sink") if prefix else "")
    s.put("aggregate", k.CONDUCTOR + "aggregate.sql", aggregate_settings(r) if sink == AGGREGATE else None)
    s.put("errors", (), error_settings(r, prefix, topics))
    s.put("transforms", k.TRANSFORM_KEYS, _transforms(r, sink))
    value_converter = converter_settings(r, "value")
    key_converter = converter_settings(r, "key")
    s.put("value_converter", ("value.converter",), value_converter)
    s.put("key_converter", ("key.converter",), key_converter)
    _declared(r)
    elastic = elastic_settings(r) if sink == "elasticsearch" else None
    s.put("kafka", (), kafka_settings(r, f"connect-{name}", environ))
    s.put("elastic", (), elastic)
    s.put("cassandra", (), cassandra_settings(r) if sink == "cassandra" else None)
    s.put("worker", (), worker_settings(r, elastic))
    s.put("rest", (), rest_settings(r))
    if sink:
        _other_store(r, sink)
    r.settle()
    return s.kwargs()


def _transforms(r: Reader, sink: str | None) -> Any:
    """The Single Message Transforms chain, or None; its problems name the alias and key."""
    given = {
        key: reveal(value)
        for key, value in r.values.items()
        if key in k.TRANSFORM_KEYS or key.startswith(k.TRANSFORM_PREFIXES)
    }
    if not given.get("transforms", "").strip():
        for key in sorted(given):
            if key != "transforms" and r.given(key):
                r.no_effect(key, "transforms lists no transform, so it configures nothing")
        return None
    chain, problems, warnings = build_chain(given)
    r.problems.extend(problems)
    r.warnings.extend(warnings)
    if chain is not None and chain.routes and sink == AGGREGATE:
        r.problems.append(
            "transforms: a router (RegexRouter, TimestampRouter) changes the topic, and the aggregator's "
            "statements read the topics they name; route with the SQL instead"
        )
    return chain


def _declared(r: Reader) -> None:
    """The keys declared as refused or as having no effect (keys.py), when given."""
    for key in sorted(r.values):
        if not r.given(key):
            continue
        if key in k.REFUSED:
            r.problems.append(f"{key}: {k.REFUSED[key]}")
        elif key in k.NO_EFFECT:
            r.no_effect(key, k.NO_EFFECT[key])
        elif key not in k.KNOWN_KEYS:
            prefix = next((p for p in k.NO_EFFECT_PREFIXES if key.startswith(p)), None)
            if prefix is not None:
                r.no_effect(key, k.NO_EFFECT_PREFIXES[prefix])


STORE_KEYS = {
    "elasticsearch": k.ELASTIC_KEYS + k.ELASTIC_TLS_KEYS + (k.CONDUCTOR + "index.suffix.clock",),
    "cassandra": k.CASSANDRA_KEYS
    + (k.CONDUCTOR + "cassandra.max.in.flight", k.CONDUCTOR + "cassandra.unlogged.batches"),
    AGGREGATE: (k.CONDUCTOR + "aggregate.sql", k.CONDUCTOR + "aggregate.idle.close.ms"),
}


def _other_store(r: Reader, sink: str) -> None:
    """Keys of the store this connector does not write to."""
    for store, keys in STORE_KEYS.items():
        if store != sink:
            for key in keys:
                if r.given(key):
                    why = f"it belongs to the {describe_kind(store)}, and connector.class names the {describe_kind(sink)}"
                    if key in k.ELASTIC_TLS_KEYS:
                        r.unused(key, why)  # Kafka's too
                    else:
                        r.no_effect(key, why)


def describe_kind(kind: str) -> str:
    return "aggregator" if kind == AGGREGATE else f"{kind} sink"


def _sink(r: Reader, connector_class: str | None) -> str | None:
    """The sink named by connector.class, else by which connect.<sink>.* keys are present."""
    present = {sink for sink, prefix in SINKS.items() if any(key.startswith(prefix) for key in r.values)}
    if connector_class:
        if connector_class.strip().lower() == AGGREGATOR_CLASS:
            return AGGREGATE
        simple = connector_class.rsplit(".", 1)[-1].lower()
        chosen = next((sink for sink, word in CLASS_WORDS.items() if word in connector_class.lower()), None)
        if "source" in simple:
            r.problems.append(
                f"connector.class: {connector_class} is a source connector; conductor runs sinks"
            )
            return None
        if chosen is None:
            r.problems.append(
                f"connector.class: {connector_class} is not supported; conductor runs the "
                "Elasticsearch and Cassandra sinks "
                "(e.g. io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector) and the "
                f"aggregator ({AGGREGATOR_CLASS})"
            )
            return None
        return chosen
    if len(present) == 1:
        return present.pop()
    if present:
        r.problems.append(
            "connector.class: missing, and both connect.elastic.* and connect.cassandra.* keys are "
            "set; set connector.class to choose the sink"
        )
    else:
        r.problems.append(
            "connector.class: missing, and no connect.elastic.* or connect.cassandra.* keys tell "
            "which sink to run"
        )
    return None


def _unknown_keys(values: Mapping[str, object]) -> list[str]:
    warnings = []
    for key in sorted(values):
        if k.is_known(key):
            continue
        close = difflib.get_close_matches(key, k.KNOWN_KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        warnings.append(f"unknown key {key!r}{hint}")
    return warnings
