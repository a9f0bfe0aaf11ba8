"""A connector config from environment variables, named as Kafka Connect's images name theirs.

Confluent's cp-kafka-connect turns ``CONNECT_BOOTSTRAP_SERVERS`` into ``bootstrap.servers``: the
prefix dropped, lower case, ``_`` a dot, ``__`` an underscore, ``___`` a dash (the rule of its
``dub`` templates). conductor reads the worker's keys so from ``CONNECT_*``, and the connector's
from ``CONNECTOR_*``: Stream-Reactor's keys begin with ``connect.``, which ``CONNECT_`` would
swallow, so ``connect.elastic.hosts`` is ``CONNECTOR_CONNECT_ELASTIC_HOSTS``. A connector key
wins over the same worker key, as a connector's converter wins over the worker's in Kafka Connect.
Values are taken as written; ``${file:...}`` and ``${directory:...}`` in them are resolved by the
loader, as in a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from conductor.config import keys as k
from conductor.errors import ConfigError

SELECTOR = "env:"  # `conductor start --config env:`
WORKER_PREFIX = "CONNECT_"
CONNECTOR_PREFIX = "CONNECTOR_"
SOURCE = "the environment (CONNECTOR_*, CONNECT_*)"
# cp-kafka-connect's variables for log4j, not for the worker's config.
NOT_CONFIG = ("CONNECT_LOG4J_", "CONNECT_TOOLS_LOG4J_")
SINGLE_UNDERSCORE = re.compile(r"(?<=[^_])_(?=[^_])")


def property_name(variable: str, prefix: str) -> str:
    """``CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE`` -> ``value.converter.schemas.enable``."""
    name = variable[len(prefix) :].lower()
    dotted = ".".join(SINGLE_UNDERSCORE.split(name))
    return "_".join("-".join(dotted.split("___")).split("__"))


def variable_name(key: str, prefix: str) -> str:
    """The variable that spells `key` under `prefix` (property_name's inverse, for messages)."""
    return prefix + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def config_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The flat config the ``CONNECT_*`` and ``CONNECTOR_*`` variables of `environ` spell.

    ConfigError when no ``CONNECTOR_*`` variable is set, when two variables spell one key, or when
    a ``CONNECT_*`` variable names a connector key (``CONNECT_ELASTIC_HOSTS``)."""
    worker = _read(environ, WORKER_PREFIX)
    connector = _read(environ, CONNECTOR_PREFIX)
    problems = _twice(worker) + _twice(connector)
    for key, variables in worker.items():
        if not k.is_known(key) and k.is_known("connect." + key):
            right = variable_name("connect." + key, CONNECTOR_PREFIX)
            problems.append(f"{variables[0]} sets {key!r}; for 'connect.{key}' write {right}")
    if not connector:
        problems.append(
            "no CONNECTOR_* variable is set: give the connector's keys as CONNECTOR_NAME, "
            "CONNECTOR_CONNECTOR_CLASS, CONNECTOR_TOPICS, CONNECTOR_CONNECT_ELASTIC_HOSTS, ..."
        )
    if problems:
        raise ConfigError(problems, SOURCE)
    merged = {key: environ[variables[0]] for key, variables in worker.items()}
    merged.update({key: environ[variables[0]] for key, variables in connector.items()})
    return merged


def _read(environ: Mapping[str, str], prefix: str) -> dict[str, list[str]]:
    """key -> the variables (normally one) that spell it under `prefix`."""
    found: dict[str, list[str]] = {}
    for variable in sorted(environ):
        if not variable.startswith(prefix) or variable.startswith(NOT_CONFIG):
            continue
        key = property_name(variable, prefix)
        if key:
            found.setdefault(key, []).append(variable)
    return found


def _twice(found: Mapping[str, list[str]]) -> list[str]:
    return [
        f"{', '.join(variables)}: each sets {key!r}; keep one"
        for key, variables in found.items()
        if len(variables) > 1
    ]
