"""Every key conductor accepts has an effect, is reported as having none, or is refused.

A key has an effect when setting it changes the settings the runtime is given (or turns a
config that loads into one that is refused, or back). The settings reach the runtime whole, so
a second test checks that every field of every settings class is read outside conductor/config.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conductor.config import Secret, parse_config, settings
from conductor.config import keys as k
from conductor.config.security import Credentials, TlsSettings
from conductor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ES = {
    "name": "es-sink",
    "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
    "topics": "readings",
    "connect.elastic.kcql": "INSERT INTO readings SELECT * FROM readings",
}
AGGREGATOR = {
    "name": "aggregator",
    "connector.class": "conductor.aggregate",
    "topics": "readings",
    "conductor.aggregate.sql": "INSERT INTO counts SELECT COUNT(*) FROM readings",
}
CASSANDRA = {
    "name": "cassandra-sink",
    "connector.class": "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
    "topics": "readings",
    "connect.cassandra.key.space": "iot",
    "connect.cassandra.kcql": "INSERT INTO readings SELECT * FROM readings",
}
HTTPS = {"connect.elastic.protocol": "https"}
CASSANDRA_TLS = {"connect.cassandra.ssl.enabled": "true"}
CASSANDRA_CLIENT_CERT = {
    **CASSANDRA_TLS,
    "connect.cassandra.ssl.client.cert.auth": "true",
    "connect.cassandra.ssl.certfile": "/etc/c/client.pem",
}
SASL = {"security.protocol": "SASL_PLAINTEXT"}
DEAD_LETTER = {"errors.tolerance": "all", "errors.deadletterqueue.topic.name": "readings-dlq"}

# key -> (a value other than its default, the keys it needs beside it to matter; None: left out)
REST_HTTPS = {"listeners": "https://127.0.0.1:8443", "listeners.https.ssl.keystore.location": "/etc/k.pem"}
USERS_FILE = tempfile.mkstemp(suffix=".properties")[1]
Path(USERS_FILE).write_text("admin=pw\n")


def _pkcs12_truststore(password: str) -> str:
    """A PKCS12 truststore that opens only with its password (its password has an effect)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    from support.certs import make_certificates

    ca = x509.load_pem_x509_certificate(make_certificates(Path(tempfile.mkdtemp())).ca.read_bytes())
    encryption = serialization.BestAvailableEncryption(password.encode())
    path = tempfile.mkstemp(suffix=".p12")[1]
    Path(path).write_bytes(pkcs12.serialize_key_and_certificates(None, None, None, [ca], encryption))
    return path


TRUSTSTORE = _pkcs12_truststore("store-pass")

SAMPLES: dict[str, tuple[str, Mapping[str, str | None]]] = {
    "bootstrap.servers": ("k1:9092,k2:9092", {}),
    "conductor.aggregate.idle.close.ms": ("5000", {}),
    "conductor.aggregate.sql": ("INSERT INTO out SELECT COUNT(*) FROM readings", {}),
    "conductor.batch.max.bytes": ("1000", {}),
    "conductor.batch.max.records": ("10", {}),
    "conductor.cassandra.max.in.flight": ("7", {}),
    "conductor.cassandra.unlogged.batches": ("false", {}),
    "conductor.drain.timeout.s": ("3", {}),
    "conductor.index.suffix.clock": ("wallclock", {}),
    "conductor.elastic.distribution": ("opensearch", {}),
    "conductor.elastic.api.key": ("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==", {}),
    "conductor.rest.allow.unauthenticated": ("true", {}),
    "conductor.rest.open.reads": ("true", {}),
    "conductor.rest.token": ("a-token-of-more-than-16-characters", {}),
    "conductor.rest.users.file": (USERS_FILE, {}),
    "listeners.https.ssl.keystore.location": ("/etc/k.pem", {"listeners": "https://127.0.0.1:8443"}),
    "listeners.https.ssl.keystore.type": ("PKCS12", REST_HTTPS),
    "listeners.https.ssl.keystore.password": ("store-pass", REST_HTTPS),
    "listeners.https.ssl.key.password": ("key-pass", REST_HTTPS),
    "listeners.https.ssl.client.auth": ("required", REST_HTTPS),
    "conductor.index.close.after.days": ("7", {}),
    "conductor.index.delete.after.days": ("30", {}),
    "conductor.index.retention.interval.ms": ("60000", {}),
    "conductor.linger.ms": ("5", {}),
    "conductor.restart.backoff.initial.s": ("2", {}),
    "conductor.restart.backoff.max.s": ("20", {}),
    "conductor.restart.max": ("3", {}),
    "conductor.static.membership": ("false", {}),
    "conductor.worker.heartbeat.timeout.s": ("90", {}),
    "conductor.worker.rss.limit.mb": ("2048", {}),
    "config.action.reload": ("restart", {}),
    "config.providers": ("mine", {
        "config.providers.mine.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "connect.elastic.hosts": "${mine:ES_HOST}",
    }),
    "connect.cassandra.batch.size": ("50", {}),
    "connect.cassandra.connect.timeout.ms": ("7000", {}),
    "connect.cassandra.consistency.level": ("QUORUM", {}),
    "connect.cassandra.contact.points": ("c1,c2", {}),
    "connect.cassandra.default.value": ("NULL", {}),
    "connect.cassandra.delete.enabled": ("true", {"connect.cassandra.delete.statement": "DELETE FROM t WHERE k = ?"}),
    "connect.cassandra.delete.statement": ("DELETE FROM t WHERE k = ?", {"connect.cassandra.delete.enabled": "true"}),
    "connect.cassandra.delete.struct_flds": ("a,b", {
        "connect.cassandra.delete.enabled": "true",
        "connect.cassandra.delete.statement": "DELETE FROM t WHERE a = ? AND b = ?",
    }),
    "connect.cassandra.error.policy": ("NOOP", {}),
    "connect.cassandra.kcql": ("INSERT INTO other SELECT * FROM readings", {}),
    "connect.cassandra.key.space": ("other", {}),
    "connect.cassandra.key.store.password": ("pw", CASSANDRA_CLIENT_CERT),
    "connect.cassandra.key.store.path": ("/etc/c/client.pem", {**CASSANDRA_TLS, "connect.cassandra.ssl.client.cert.auth": "true"}),
    "connect.cassandra.key.store.type": ("PEM", {
        **CASSANDRA_TLS,
        "connect.cassandra.ssl.client.cert.auth": "true",
        "connect.cassandra.key.store.path": "/etc/c/client.store",
    }),
    "connect.cassandra.load.balancing.policy": ("ROUND_ROBIN", {}),
    "connect.cassandra.max.retries": ("3", {}),
    "connect.cassandra.password": ("pw", {"connect.cassandra.username": "user"}),
    "connect.cassandra.port": ("9043", {}),
    "connect.cassandra.read.timeout.ms": ("30000", {}),
    "connect.cassandra.retry.interval": ("1000", {}),
    "connect.cassandra.ssl.cafile": ("/etc/c/ca.pem", CASSANDRA_TLS),
    "connect.cassandra.ssl.certfile": ("/etc/c/client.pem", {**CASSANDRA_TLS, "connect.cassandra.ssl.client.cert.auth": "true"}),
    "connect.cassandra.ssl.client.cert.auth": ("true", {**CASSANDRA_TLS, "connect.cassandra.ssl.certfile": "/etc/c/client.pem"}),
    "connect.cassandra.ssl.enabled": ("true", {}),
    "connect.cassandra.ssl.keyfile": ("/etc/c/client.key", CASSANDRA_CLIENT_CERT),
    "connect.cassandra.threadpool.size": ("8", {}),
    "connect.cassandra.trust.store.password": ("store-pass", {**CASSANDRA_TLS, "connect.cassandra.trust.store.path": TRUSTSTORE}),
    "connect.cassandra.trust.store.path": ("/etc/c/ca.pem", CASSANDRA_TLS),
    "connect.cassandra.trust.store.type": ("PEM", {**CASSANDRA_TLS, "connect.cassandra.trust.store.path": "/etc/c/ca.store"}),
    "connect.cassandra.username": ("user", {"connect.cassandra.password": "pw"}),
    "connect.elastic.batch.size": ("10", {}),
    "connect.elastic.cluster.name": ("prod", {}),
    "connect.elastic.error.policy": ("NOOP", {}),
    "connect.elastic.hosts": ("es1,es2", {}),
    "connect.elastic.kcql": ("INSERT INTO other SELECT * FROM readings", {}),
    "connect.elastic.max.retries": ("3", {}),
    "connect.elastic.pk.separator": ("|", {}),
    "connect.elastic.port": ("9201", {}),
    "connect.elastic.protocol": ("https", {}),
    "connect.elastic.retry.interval": ("1000", {}),
    "connect.elastic.tableprefix": ("dev_", {}),
    "connect.elastic.use.http": ("http", {}),
    "connect.elastic.use.http.password": ("pw", {"connect.elastic.use.http.username": "elastic"}),
    "connect.elastic.use.http.username": ("elastic", {"connect.elastic.use.http.password": "pw"}),
    "connect.elastic.write.timeout": ("1000", {}),
    "connect.elastic.xpack.plugins": ("x", {}),
    "connect.elastic.xpack.settings": ("xpack.security.user=a:b", {}),
    "connect.progress.enabled": ("false", {}),
    "connect.timeout.ms": ("7000", {}),
    "connector.class": ("io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector", {
        "connect.cassandra.key.space": "iot",
        "connect.cassandra.kcql": "INSERT INTO readings SELECT * FROM readings",
    }),
    "errors.deadletterqueue.context.headers.enable": ("true", DEAD_LETTER),
    "errors.deadletterqueue.topic.name": ("readings-dlq", {"errors.tolerance": "all"}),
    "errors.deadletterqueue.topic.replication.factor": ("1", DEAD_LETTER),
    "errors.log.enable": ("true", {}),
    "errors.log.include.messages": ("true", {}),
    "errors.retry.delay.max.ms": ("1000", {}),
    "errors.retry.timeout": ("60000", {}),
    "errors.tolerance": ("all", {}),
    "header.converter": ("org.apache.kafka.connect.storage.SimpleHeaderConverter", {}),
    # Converters are read to refuse what conductor cannot decode as Kafka Connect would.
    "key.converter": ("io.confluent.connect.avro.AvroConverter", {}),
    "listeners": ("http://0.0.0.0:8090", {}),
    "rest.advertised.host.name": ("conductor-1.example", {}),
    "rest.advertised.port": ("18083", {}),
    "key.converter.schemas.enable": ("true", {}),
    "name": ("other", {}),
    # A Filter that drops tombstones once the predicate is declared (without it: refused).
    "predicates": ("tomb", {
        "transforms": "drop",
        "transforms.drop.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.drop.predicate": "tomb",
        "predicates.tomb.type": "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
    }),
    "read.timeout.ms": ("30000", {}),
    "sasl.jaas.config": ('PlainLoginModule required username="u" password="p";', {**SASL, "sasl.mechanism": "PLAIN"}),
    "sasl.kerberos.service.name": ("kafka-svc", SASL),
    "sasl.mechanism": ("SCRAM-SHA-512", {**SASL, "sasl.jaas.config": 'ScramLoginModule required username="u" password="p";'}),
    "security.protocol": ("SSL", {}),
    "ssl.cafile": ("/etc/es/ca.pem", HTTPS),
    "ssl.certfile": ("/etc/es/client.pem", HTTPS),
    "ssl.cipher.suites": ("TLS_AES_128_GCM_SHA256", HTTPS),
    "ssl.enabled.protocols": ("TLSv1.3", HTTPS),
    "ssl.endpoint.identification.algorithm": ("", HTTPS),
    "ssl.key.password": ("pw", {**HTTPS, "ssl.certfile": "/etc/es/client.pem"}),
    "ssl.keyfile": ("/etc/es/client.key", {**HTTPS, "ssl.certfile": "/etc/es/client.pem"}),
    "ssl.keymanager.algorithm": ("PKIX", HTTPS),
    "ssl.keystore.location": ("/etc/es/client.pem", HTTPS),
    "ssl.keystore.password": ("pw", {**HTTPS, "ssl.certfile": "/etc/es/client.pem"}),
    "ssl.keystore.type": ("PEM", {**HTTPS, "ssl.keystore.location": "/etc/es/client.store"}),
    "ssl.protocol": ("TLSv1.3", HTTPS),
    "ssl.trustmanager.algorithm": ("PKIX", HTTPS),
    "ssl.truststore.location": ("/etc/es/ca.pem", HTTPS),
    "ssl.truststore.password": ("store-pass", {**HTTPS, "ssl.truststore.location": TRUSTSTORE}),
    "ssl.truststore.certificates": ("-----BEGIN CERTIFICATE-----", HTTPS),
    "ssl.keystore.certificate.chain": ("-----BEGIN CERTIFICATE-----", HTTPS),
    "ssl.keystore.key": ("-----BEGIN PRIVATE KEY-----", HTTPS),
    "ssl.truststore.type": ("PEM", {**HTTPS, "ssl.truststore.location": "/etc/es/ca.store"}),
    "tasks.max": ("3", {}),
    "topics": ("readings,more", {"connect.elastic.kcql": "INSERT INTO a SELECT * FROM readings; INSERT INTO b SELECT * FROM more"}),
    "topics.regex": ("read.*", {"topics": None}),
    "transforms": ("flatten", {"transforms.flatten.type": "org.apache.kafka.connect.transforms.Flatten$Value"}),
    "value.converter": ("io.confluent.connect.avro.AvroConverter", {}),
    "value.converter.schemas.enable": ("true", {}),
}  # fmt: skip


def base_for(key: str) -> dict[str, str]:
    cassandra_keys = k.CASSANDRA_KEYS + (
        "conductor.cassandra.max.in.flight",
        "conductor.cassandra.unlogged.batches",
    )
    if key.startswith("conductor.aggregate."):
        return dict(AGGREGATOR)
    return dict(CASSANDRA if key in cassandra_keys else ES)


def plain(value: Any) -> Any:
    """Settings as plain data, secrets revealed: what the runtime is given."""
    if isinstance(value, Secret):
        return ("secret", value.reveal())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    return value


def outcome(raw: dict[str, str]) -> tuple[str, Any, tuple[str, ...]]:
    """("loads", the settings, notices) or ("refused", the problems, ())."""
    try:
        config = parse_config(raw, environ={"ES_HOST": "es-from-env"})
    except ConfigError as error:
        return "refused", error.problems, ()
    fields = plain(config)
    for kept in ("raw", "defaults", "notices", "warnings", "source"):
        fields.pop(kept)
    return "loads", fields, config.notices


@pytest.mark.parametrize("key", sorted(k.KNOWN_KEYS))
def test_every_key_has_an_effect_is_reported_or_is_refused(key: str) -> None:
    assert key in SAMPLES, f"{key} is accepted: say here what value shows its effect"
    value, companions = SAMPLES[key]
    without = {**base_for(key), **companions}
    without.pop(key, None)
    before = outcome({name: v for name, v in without.items() if v is not None})
    after = outcome({name: v for name, v in {**without, key: value}.items() if v is not None})
    reported = [notice for notice in after[2] if notice.startswith(f"{key} has no effect here")]
    if key in k.REFUSED:
        assert after[0] == "refused" and any(problem.startswith(f"{key}: ") for problem in after[1]), after
    elif key in k.NO_EFFECT:
        assert reported, f"{key} must be reported as having no effect; notices: {after[2]}"
        assert after[:2] == before[:2], f"{key} is reported as having no effect, yet it changes the settings"
    else:
        assert not reported, reported
        assert after[:2] != before[:2], f"{key}={value!r} changes nothing the runtime is given"


def test_every_sample_is_a_known_key() -> None:
    assert set(SAMPLES) - k.KNOWN_KEYS == set()


SETTINGS_CLASSES = (
    settings.KafkaSettings,
    settings.ElasticsearchSettings,
    settings.CassandraSettings,
    settings.DeadLetterSettings,
    settings.ErrorSettings,
    settings.WorkerSettings,
    TlsSettings,
    Credentials,
)
RUNTIME = ("conductor", "sinks", "tasks", "policies")


def test_every_settings_field_is_read_by_the_runtime() -> None:
    """A field the config fills but nothing reads would be a key that silently does nothing."""
    sources = [
        path.read_text()
        for package in RUNTIME
        for path in (ROOT / package).rglob("*.py")
        # the config package builds the settings; of it, only the methods the runtime calls read them
        if "config" not in path.relative_to(ROOT).parts[:2] or path.name in ("settings.py", "security.py")
    ]
    text = "\n".join(sources)
    unread = [
        f"{kind.__name__}.{field.name}"
        for kind in SETTINGS_CLASSES
        for field in dataclasses.fields(kind)
        if field.name != "masked" and not re.search(rf"\.{field.name}\b", text)
    ]
    assert unread == []


def test_every_key_without_effect_or_refused_is_documented() -> None:
    documented = (ROOT / "docs" / "CONFIG.md").read_text()
    missing = [key for key in (*k.NO_EFFECT, *k.REFUSED) if f"`{key}`" not in documented]
    assert missing == []
