"""The keys a connector config may hold: exact names, accepted prefixes, allowed values."""

from __future__ import annotations

ES = "connect.elastic."
CASSANDRA = "connect.cassandra."

COMMON_KEYS = (
    "name", "connector.class", "tasks.max", "topics", "topics.regex",
    "key.converter", "value.converter", "header.converter",
    "key.converter.schemas.enable", "value.converter.schemas.enable",
    "errors.tolerance", "errors.retry.timeout", "errors.retry.delay.max.ms",
    "errors.log.enable", "errors.log.include.messages",
    "errors.deadletterqueue.topic.name", "errors.deadletterqueue.topic.replication.factor",
    "errors.deadletterqueue.context.headers.enable",
    "config.providers", "config.action.reload", "transforms", "predicates",
    "connect.progress.enabled",
)  # fmt: skip
KAFKA_KEYS = (
    "bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.jaas.config",
    "sasl.kerberos.service.name",
)  # fmt: skip
SSL_KEYS = (
    "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.type",
    "ssl.keystore.location", "ssl.keystore.password", "ssl.keystore.type", "ssl.key.password",
    "ssl.protocol", "ssl.enabled.protocols", "ssl.cipher.suites",
    "ssl.endpoint.identification.algorithm", "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm", "ssl.cafile", "ssl.certfile", "ssl.keyfile",
)  # fmt: skip
ELASTIC_KEYS = tuple(
    ES + suffix
    for suffix in (
        "hosts", "port", "protocol", "kcql", "batch.size", "write.timeout", "error.policy",
        "max.retries", "retry.interval", "pk.separator", "use.http", "use.http.username",
        "use.http.password", "tableprefix", "prefix", "cluster.name", "xpack.settings",
        "xpack.plugins",
    )
)  # fmt: skip
CASSANDRA_KEYS = tuple(
    CASSANDRA + suffix
    for suffix in (
        "contact.points", "port", "key.space", "username", "password", "consistency.level",
        "load.balancing.policy", "kcql", "error.policy", "max.retries", "retry.interval",
        "threadpool.size", "batch.size", "ssl.enabled", "ssl.client.cert.auth", "ssl.cafile",
        "ssl.certfile", "ssl.keyfile", "trust.store.path", "trust.store.password",
        "trust.store.type", "key.store.path", "key.store.password", "key.store.type",
        "delete.enabled", "delete.statement", "delete.struct_flds", "default.value",
        "connect.timeout.ms", "read.timeout.ms",
    )
) + ("connect.timeout.ms", "read.timeout.ms",
     # conductor's own: not in Stream-Reactor's Cassandra sink
     "conductor.cassandra.max.in.flight", "conductor.cassandra.unlogged.batches")  # fmt: skip
WORKER_KEYS = tuple(
    "conductor." + suffix
    for suffix in (
        "batch.max.records", "batch.max.bytes", "linger.ms", "worker.rss.limit.mb", "worker.heartbeat.timeout.s",
        "drain.timeout.s", "restart.backoff.initial.s", "restart.backoff.max.s", "restart.max",
        "index.suffix.clock", "status.port", "static.membership",
    )
)  # fmt: skip
KNOWN_KEYS = frozenset(COMMON_KEYS + KAFKA_KEYS + SSL_KEYS + ELASTIC_KEYS + CASSANDRA_KEYS + WORKER_KEYS)

# Worker-level client overrides and converter/transform settings: accepted as a family.
CONSUMER_PREFIXES = ("consumer.override.", "consumer.")
KNOWN_PREFIXES = CONSUMER_PREFIXES + (
    "config.providers.", "producer.override.", "producer.", "admin.override.", "admin.",
    "key.converter.", "value.converter.", "header.converter.", "transforms.", "predicates.",
)  # fmt: skip

ERROR_POLICIES = ("NOOP", "THROW", "RETRY")
TOLERANCES = ("none", "all")
PROTOCOLS = ("http", "https")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")
OFFSET_RESETS = ("earliest", "latest")
CONSISTENCY_LEVELS = (
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE",
)  # fmt: skip
LOAD_BALANCING_POLICIES = ("ROUND_ROBIN", "TOKEN_AWARE", "LATENCY_AWARE", "DC_AWARE_ROUND_ROBIN")
DEFAULT_VALUES = ("NULL", "UNSET")
INDEX_SUFFIX_CLOCKS = ("record", "wallclock")

# Consumer overrides (after the consumer.override. / consumer. prefix).
CONSUMER_FIELDS = (
    "max.poll.records", "fetch.max.bytes", "max.partition.fetch.bytes", "session.timeout.ms",
    "heartbeat.interval.ms", "max.poll.interval.ms", "auto.offset.reset",
)  # fmt: skip
CONSUMER_SECURITY = KAFKA_KEYS + (
    "ssl.cafile", "ssl.certfile", "ssl.keyfile", "ssl.key.password", "ssl.truststore.location",
    "ssl.truststore.type", "ssl.truststore.password", "ssl.keystore.location",
    "ssl.keystore.type", "ssl.keystore.password", "ssl.endpoint.identification.algorithm",
)  # fmt: skip
# Passed to kafka-python as written: Kafka name -> (kafka-python kwarg, kind).
CONSUMER_PASSTHROUGH = {
    "client.id": ("client_id", "str"),
    "client.rack": ("client_rack", "str"),
    "fetch.min.bytes": ("fetch_min_bytes", "int"),
    "fetch.max.wait.ms": ("fetch_max_wait_ms", "int"),
    "request.timeout.ms": ("request_timeout_ms", "int"),
    "retry.backoff.ms": ("retry_backoff_ms", "int"),
    "reconnect.backoff.ms": ("reconnect_backoff_ms", "int"),
    "reconnect.backoff.max.ms": ("reconnect_backoff_max_ms", "int"),
    "metadata.max.age.ms": ("metadata_max_age_ms", "int"),
    "connections.max.idle.ms": ("connections_max_idle_ms", "int"),
    "receive.buffer.bytes": ("receive_buffer_bytes", "int"),
    "send.buffer.bytes": ("send_buffer_bytes", "int"),
    "check.crcs": ("check_crcs", "bool"),
    "isolation.level": ("isolation_level", "isolation"),
}
ISOLATION_LEVELS = ("read_uncommitted", "read_committed")
# Consumer settings conductor decides itself; an override is ignored with a warning.
CONSUMER_MANAGED = (
    "group.id", "group.instance.id", "enable.auto.commit", "auto.commit.interval.ms",
    "key.deserializer", "value.deserializer", "partition.assignment.strategy",
)  # fmt: skip

SUPPORTED_CONVERTERS = (
    "org.apache.kafka.connect.json.JsonConverter",
    "org.apache.kafka.connect.storage.StringConverter",
    "org.apache.kafka.connect.converters.ByteArrayConverter",
)


def is_known(key: str) -> bool:
    return key in KNOWN_KEYS or key.startswith(KNOWN_PREFIXES)
