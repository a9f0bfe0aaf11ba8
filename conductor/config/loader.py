"""Load a connector config: read the file, apply overrides, resolve ${...}, type and check.

Every problem is collected and raised at the end as one ConfigError; warnings (unknown keys,
settings conductor ignores) are logged on "conductor.config" and kept in ``warnings``.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from conductor.config import keys as k
from conductor.config.readers import read_file, read_properties, scalar
from conductor.config.secrets import REFERENCE, Resolver, Secret
from conductor.config.sections import (
    cassandra_settings,
    elastic_settings,
    kafka_settings,
    worker_settings,
)
from conductor.config.settings import ConnectorConfig
from conductor.config.values import Reader, Section
from conductor.errors import ConfigError

log = logging.getLogger("conductor.config")

SINKS = {"elasticsearch": k.ES, "cassandra": k.CASSANDRA}
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
    for warning in r.warnings:
        log.warning("%s: %s", source, warning)
    if r.problems:
        raise ConfigError(r.problems, source)
    defaults = {key: value for key, value in r.defaults.items() if key not in given or not given[key]}
    return ConnectorConfig(
        **fields,
        raw=MappingProxyType(values),
        defaults=MappingProxyType(defaults),
        warnings=tuple(r.warnings),
        source=source,
    )


def _build(r: Reader, environ: Mapping[str, str]) -> dict[str, Any]:
    """ConnectorConfig's kwargs (all but raw/defaults/warnings/source); problems go to ``r``."""
    s = Section(r)
    name = s("name", r.required, "name")
    connector_class = s("connector_class", r.string, "connector.class")
    sink = _sink(r, connector_class)
    s.put("sink", "connector.class", sink or "")
    topics = s("topics", r.listing, "topics")
    regex = s("topics_regex", r.string, "topics.regex")
    if topics and regex:
        r.problems.append("topics, topics.regex: set exactly one of them, not both")
    elif not topics and not regex:
        r.problems.append("topics: required (or topics.regex), but missing")
    if regex:
        try:
            re.compile(regex)
        except re.error as err:
            r.problems.append(f"topics.regex: not a valid regular expression ({err})")
    s("tasks_max", r.integer, "tasks.max", 1, 1)
    prefix = SINKS.get(sink or "")
    if prefix:
        s("kcql", r.required, prefix + "kcql", f" for the {sink} sink")
        s("error_policy", r.choice, prefix + "error.policy", k.ERROR_POLICIES, "THROW")
        s("max_retries", r.integer, prefix + "max.retries", 20, 0)
        s("retry_interval_ms", r.integer, prefix + "retry.interval", 60_000, 0)
    else:
        s.values.update(kcql="", error_policy="THROW", max_retries=20, retry_interval_ms=60_000)
    tolerance = s("errors_tolerance", r.choice, "errors.tolerance", k.TOLERANCES, "none")
    s("errors_retry_timeout_ms", r.integer, "errors.retry.timeout", 0, -1)
    s("errors_retry_delay_max_ms", r.integer, "errors.retry.delay.max.ms", 60_000, 0)
    s("errors_log_enable", r.boolean, "errors.log.enable", False)
    s("errors_log_include_messages", r.boolean, "errors.log.include.messages", False)
    dlq = s("dlq_topic", r.string, "errors.deadletterqueue.topic.name")
    factor = s(
        "dlq_replication_factor",
        r.integer,
        "errors.deadletterqueue.topic.replication.factor",
        1,
        -1,
    )
    if factor == 0:
        r.problems.append(
            "errors.deadletterqueue.topic.replication.factor: expected -1 or an integer >= 1, got '0'"
        )
    s("dlq_context_headers", r.boolean, "errors.deadletterqueue.context.headers.enable", False)
    if dlq and dlq in topics:
        r.problems.append(
            f"errors.deadletterqueue.topic.name: {dlq!r} is also in topics; failed records would loop"
        )
    if dlq and tolerance == "none":
        r.warnings.append(
            "errors.deadletterqueue.topic.name is set but errors.tolerance is none: nothing goes to the DLQ"
        )
    for side in ("key", "value"):
        converter = s(f"{side}_converter", r.string, f"{side}.converter")
        s(f"{side}_converter_schemas_enable", r.boolean, f"{side}.converter.schemas.enable", None)
        if converter and converter not in k.SUPPORTED_CONVERTERS:
            r.warnings.append(
                f"{side}.converter {converter!r} is not supported: conductor decodes JSON values "
                "and string or bytes keys"
            )
    s("progress_enabled", r.boolean, "connect.progress.enabled", False)
    transforms = r.string("transforms")
    if transforms:
        r.warnings.append(f"transforms {transforms!r} are not supported by conductor and are ignored")
    s.put("kafka", (), kafka_settings(r, f"connect-{name}", environ))
    s.put("elastic", (), elastic_settings(r) if sink == "elasticsearch" else None)
    s.put("cassandra", (), cassandra_settings(r) if sink == "cassandra" else None)
    s.put("worker", (), worker_settings(r))
    return s.kwargs()


def _sink(r: Reader, connector_class: str | None) -> str | None:
    """The sink named by connector.class, else by which connect.<sink>.* keys are present."""
    present = {sink for sink, prefix in SINKS.items() if any(key.startswith(prefix) for key in r.values)}
    if connector_class:
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
                "(e.g. io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector)"
            )
            return None
        for other in present - {chosen}:
            r.warnings.append(f"{SINKS[other]}* keys are ignored: connector.class names the {chosen} sink")
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
