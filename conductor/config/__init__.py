"""Connector configs: an existing Kafka Connect / Stream-Reactor sink config, run unchanged.

``load_config(path)`` reads .properties, .json or .yaml, resolves ``${env:...}`` and
``${file:...}`` references, validates every key and returns a frozen `ConnectorConfig`, or
raises one ConfigError listing every problem.  Secrets stay wrapped in `Secret`.
"""

from __future__ import annotations

from conductor.config.loader import load_config, parse_config
from conductor.config.readers import read_raw
from conductor.config.secrets import Secret
from conductor.config.settings import (
    CassandraSettings,
    ConnectorConfig,
    ElasticSettings,
    KafkaSettings,
    WorkerSettings,
)

__all__ = [
    "CassandraSettings",
    "ConnectorConfig",
    "ElasticSettings",
    "KafkaSettings",
    "Secret",
    "WorkerSettings",
    "load_config",
    "parse_config",
    "read_raw",
]
