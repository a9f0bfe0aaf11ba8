"""Connector configs: an existing Kafka Connect / Stream-Reactor sink config, run unchanged.

``load_config(path)`` reads .properties, .json or .yaml, resolves ``${env:...}`` and
``${file:...}`` references, validates every key and returns a frozen `ConnectorConfig`, or
raises one ConfigError listing every problem. Secrets stay wrapped in `Secret`. What each key
does, or why it does nothing here, is in keys.py.
"""

from __future__ import annotations

from conductor.config.loader import load_config, parse_config
from conductor.config.readers import read_raw
from conductor.config.secrets import Secret
from conductor.config.security import Credentials, TlsSettings
from conductor.config.settings import (
    AggregateSettings,
    CassandraSettings,
    ConnectorConfig,
    DeadLetterSettings,
    ElasticsearchSettings,
    ErrorSettings,
    KafkaSecurity,
    KafkaSettings,
    RestSettings,
    WorkerSettings,
)

__all__ = [
    "AggregateSettings",
    "CassandraSettings",
    "ConnectorConfig",
    "Credentials",
    "DeadLetterSettings",
    "ElasticsearchSettings",
    "ErrorSettings",
    "KafkaSecurity",
    "KafkaSettings",
    "RestSettings",
    "Secret",
    "TlsSettings",
    "WorkerSettings",
    "load_config",
    "parse_config",
    "read_raw",
]
