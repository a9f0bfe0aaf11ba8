"""PUT /connector-plugins/{class}/config/validate: what `conductor validate` finds, in Kafka
Connect's ConfigInfos shape (one entry per key given, each with its errors)."""

from __future__ import annotations

import re
from typing import Any

from conductor.api.http import HttpError
from conductor.config import keys as k
from conductor.config import parse_config
from conductor.config.secrets import Secret, is_secret_key
from conductor.errors import ConfigError

PLUGINS = (
    "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
    "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
    "conductor.aggregate",
)
PROBLEM_KEY = re.compile(r"([A-Za-z0-9_.-]+)(?:, [A-Za-z0-9_.-]+)*: ")
HIDDEN = "[hidden]"  # Kafka Connect's Password.HIDDEN
GENERAL = "connector.class"  # where a problem that names no key is shown


def validate(plugin: str, given: dict[str, Any]) -> dict[str, Any]:
    connector_class = given.get("connector.class")
    if connector_class is not None and _short(str(connector_class)) != _short(plugin):
        raise HttpError(
            400, f"Included connector type {connector_class} does not match request type {plugin}"
        )
    raw = {str(key): "" if value is None else str(value) for key, value in given.items()}
    raw.setdefault("connector.class", plugin)
    problems: list[str] = []
    defaults: dict[str, str] = {}
    shown: dict[str, Any] = dict(raw)
    try:
        config = parse_config(raw, source="validate")
        defaults = dict(config.defaults)
        shown = dict(config.raw)
        problems = _connector_problems(config)
    except ConfigError as error:
        problems = list(error.problems)
    errors: dict[str, list[str]] = {}
    for problem in problems:
        errors.setdefault(_key_of(problem, raw), []).append(problem)
    names = list(raw) + [key for key in errors if key not in raw]
    return {
        "name": plugin,
        "error_count": sum(len(found) for found in errors.values()),
        "groups": ["Common"],
        "configs": [
            _entry(name, shown.get(name), defaults.get(name), errors.get(name, [])) for name in names
        ],
    }


def _connector_problems(config: Any) -> list[str]:
    """KCQL or SQL, routes and the sink's own checks: the rest of what `conductor validate` finds
    (without asking the store, which a validate request must not wait for)."""
    from conductor.connector import build_connector

    try:
        build_connector(config)
    except ConfigError as error:
        return list(error.problems)
    return []


def _key_of(problem: str, given: dict[str, str]) -> str:
    if problem.startswith(("KCQL", "SQL")):
        for key in (k.ES + "kcql", k.CASSANDRA + "kcql", k.CONDUCTOR + "aggregate.sql"):
            if key in given:
                return key
    match = PROBLEM_KEY.match(problem)
    if match and (match[1] in k.KNOWN_KEYS or match[1] in given):
        return match[1]
    return GENERAL


def _entry(name: str, value: Any, default: str | None, errors: list[str]) -> dict[str, Any]:
    secret = isinstance(value, Secret) or is_secret_key(name)
    return {
        "definition": {
            "name": name,
            "type": "PASSWORD" if secret else "STRING",
            "required": False,
            "default_value": default,
            "importance": "MEDIUM",
            "documentation": "",
            "group": "Common",
            "width": "NONE",
            "display_name": name,
            "dependents": [],
            "order": -1,
        },
        "value": {
            "name": name,
            "value": HIDDEN if secret and value else (None if value is None else str(value)),
            "recommended_values": [],
            "errors": errors,
            "visible": True,
        },
    }


def _short(name: str) -> str:
    """Kafka Connect compares plugin names without a trailing 'Connector', by simple name too."""
    simple = name.strip()
    simple = simple[: -len("Connector")] if simple.endswith("Connector") else simple
    return simple.rsplit(".", 1)[-1].lower()
