"""Every key a connector config may hold, and what conductor does with it.

Each key is one of three things:
- read: it changes what conductor does (the sections in sections.py read it);
- NO_EFFECT: accepted, because Kafka Connect and Stream-Reactor configs must run unchanged,
  and reported once at start with the reason;
- REFUSED: a config error, because going on would write other data than the user asked for.
Some keys are refused only for some values (a store that cannot be read, a converter conductor
cannot read); sections.py says so where it reads them.
"""

from __future__ import annotations

ES = "connect.elastic."
CASSANDRA = "connect.cassandra."
CONDUCTOR = "conductor."

CONNECTOR_KEYS = (
    "config.providers",  # read by the secrets resolver, with config.providers.*
    "name",
    "connector.class",
    "tasks.max",
    "topics",
    "topics.regex",
    "connect.progress.enabled",
)
# Single Message Transforms, with transforms.<alias>.* and predicates.<alias>.* (conductor/transforms).
TRANSFORM_KEYS = ("transforms", "predicates")
# Kafka Connect's worker keys for its REST listener: conductor's API, page and metrics.
HTTPS = "listeners.https."
REST_KEYS = (
    "listeners", "rest.advertised.host.name", "rest.advertised.port",
    HTTPS + "ssl.keystore.location", HTTPS + "ssl.keystore.type", HTTPS + "ssl.keystore.password",
    HTTPS + "ssl.key.password", HTTPS + "ssl.client.auth",
    "conductor.rest.users.file", "conductor.rest.token", "conductor.rest.open.reads",
    "conductor.rest.allow.unauthenticated",
)  # fmt: skip
CONVERTER_KEYS = (
    "key.converter", "value.converter", "key.converter.schemas.enable", "value.converter.schemas.enable",
)  # fmt: skip
ERROR_KEYS = (
    "errors.tolerance", "errors.log.enable", "errors.log.include.messages",
    "errors.deadletterqueue.topic.name", "errors.deadletterqueue.topic.replication.factor",
    "errors.deadletterqueue.context.headers.enable",
)  # fmt: skip
KAFKA_KEYS = (
    "bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.jaas.config", "sasl.kerberos.service.name",
)  # fmt: skip
# Unprefixed ssl.* keys are the Elasticsearch sink's, as in Stream-Reactor (Kafka's own TLS
# settings come with the consumer.override. prefix).
ELASTIC_TLS_KEYS = (
    "ssl.cafile", "ssl.certfile", "ssl.keyfile", "ssl.key.password", "ssl.truststore.location",
    "ssl.truststore.type", "ssl.truststore.password", "ssl.keystore.location", "ssl.keystore.type",
    "ssl.keystore.password", "ssl.endpoint.identification.algorithm",
)  # fmt: skip
ELASTIC_KEYS = tuple(
    ES + suffix
    for suffix in (
        "hosts", "port", "protocol", "kcql", "batch.size", "write.timeout", "error.policy", "max.retries",
        "retry.interval", "pk.separator", "use.http.username", "use.http.password",
    )
)  # fmt: skip
CASSANDRA_KEYS = tuple(
    CASSANDRA + suffix
    for suffix in (
        "contact.points", "port", "key.space", "username", "password", "consistency.level",
        "load.balancing.policy", "kcql", "error.policy", "max.retries", "retry.interval", "threadpool.size",
        "batch.size", "ssl.enabled", "ssl.client.cert.auth", "ssl.cafile", "ssl.certfile", "ssl.keyfile",
        "trust.store.path", "trust.store.type", "trust.store.password", "key.store.path", "key.store.type",
        "key.store.password",
        "delete.enabled", "delete.statement", "delete.struct_flds", "default.value", "connect.timeout.ms",
        "read.timeout.ms",
    )
) + ("connect.timeout.ms", "read.timeout.ms")  # fmt: skip
CONDUCTOR_KEYS = tuple(
    CONDUCTOR + suffix
    for suffix in (
        "batch.max.records", "batch.max.bytes", "linger.ms", "worker.rss.limit.mb",
        "worker.heartbeat.timeout.s", "drain.timeout.s", "restart.backoff.initial.s", "restart.backoff.max.s",
        "restart.max", "index.suffix.clock", "static.membership", "cassandra.max.in.flight",
        "cassandra.unlogged.batches", "aggregate.sql", "aggregate.idle.close.ms", "elastic.distribution",
        "index.close.after.days", "index.delete.after.days", "index.retention.interval.ms", "elastic.api.key",
    )
)  # fmt: skip

_JAVA_TLS = "it tunes Java's TLS; Python's ssl module negotiates with its own defaults"
_NO_RETRIABLE_CONVERSION = (
    "Kafka Connect retries converters and transforms with it; conductor's JSON decoding and transforms "
    "never fail in a way that a retry could mend"
)
NO_EFFECT: dict[str, str] = {
    "errors.retry.timeout": _NO_RETRIABLE_CONVERSION,
    "errors.retry.delay.max.ms": _NO_RETRIABLE_CONVERSION,
    "header.converter": "conductor reads header values as UTF-8 text",
    "config.action.reload": "conductor reads its config once at start; restart it to apply a change",
    ES + "tableprefix": (
        "Stream-Reactor hands it to its HTTP client as a URL path prefix, which that client drops; "
        "index names come from the KCQL target"
    ),
    ES + "cluster.name": "it named the cluster for Stream-Reactor's old TCP client; conductor speaks HTTP",
    ES + "use.http": "Stream-Reactor 2 and later always speak HTTP, as conductor does",
    ES + "xpack.settings": (
        "X-Pack settings were for Stream-Reactor's old TCP client; use connect.elastic.use.http.username "
        "and connect.elastic.use.http.password"
    ),
    ES + "xpack.plugins": "X-Pack plugins were for Stream-Reactor's old TCP client",
    "ssl.protocol": _JAVA_TLS,
    "ssl.enabled.protocols": _JAVA_TLS,
    "ssl.cipher.suites": _JAVA_TLS,
    "ssl.keymanager.algorithm": _JAVA_TLS,
    "ssl.trustmanager.algorithm": _JAVA_TLS,
}

_INLINE_PEM = "PEM text inside the config is not supported yet: give a PEM file in "
REFUSED: dict[str, str] = {
    "ssl.truststore.certificates": _INLINE_PEM + "ssl.truststore.location",
    "ssl.keystore.certificate.chain": _INLINE_PEM + "ssl.keystore.location",
    "ssl.keystore.key": _INLINE_PEM + "ssl.keystore.location",
}

KNOWN_KEYS = frozenset(
    CONNECTOR_KEYS
    + TRANSFORM_KEYS
    + REST_KEYS
    + CONVERTER_KEYS
    + ERROR_KEYS
    + KAFKA_KEYS
    + ELASTIC_TLS_KEYS
    + ELASTIC_KEYS
    + CASSANDRA_KEYS
    + CONDUCTOR_KEYS
    + tuple(NO_EFFECT)
    + tuple(REFUSED)
)

# Families of keys, by prefix. Client overrides are read key by key (sections.py); the others:
CONFIG_PROVIDER_PREFIX = "config.providers"  # read by the secrets resolver
CONSUMER_PREFIXES = ("consumer.override.", "consumer.")  # the first one given wins
PRODUCER_PREFIXES = ("producer.override.", "producer.")  # the dead-letter topic's producer
ADMIN_PREFIXES = ("admin.override.", "admin.")  # creating the dead-letter topic
TRANSFORM_PREFIXES = ("transforms.", "predicates.")  # each transform reads its own (transforms/)
CONVERTER_PREFIXES = ("key.converter.", "value.converter.")  # read by config/converters.py
NO_EFFECT_PREFIXES: dict[str, str] = {
    "header.converter.": "conductor reads header values as UTF-8 text",
}
KNOWN_PREFIXES = (
    (CONFIG_PROVIDER_PREFIX + ".",)
    + CONSUMER_PREFIXES
    + PRODUCER_PREFIXES
    + ADMIN_PREFIXES
    + TRANSFORM_PREFIXES
    + CONVERTER_PREFIXES
    + tuple(NO_EFFECT_PREFIXES)
)

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
DISTRIBUTIONS = ("auto", "elasticsearch", "opensearch")
ISOLATION_LEVELS = ("read_uncommitted", "read_committed")

# Client settings after a consumer./producer./admin. prefix, passed to kafka-python as
# written: Kafka's name -> (kafka-python's keyword, kind). The connection settings apply to
# every client; the others to the client named.
CONNECTION_SETTINGS = {
    "client.id": ("client_id", "str"),
    "client.rack": ("client_rack", "str"),
    "request.timeout.ms": ("request_timeout_ms", "int"),
    "retry.backoff.ms": ("retry_backoff_ms", "int"),
    "reconnect.backoff.ms": ("reconnect_backoff_ms", "int"),
    "reconnect.backoff.max.ms": ("reconnect_backoff_max_ms", "int"),
    "metadata.max.age.ms": ("metadata_max_age_ms", "int"),
    "connections.max.idle.ms": ("connections_max_idle_ms", "int"),
    "receive.buffer.bytes": ("receive_buffer_bytes", "int"),
    "send.buffer.bytes": ("send_buffer_bytes", "int"),
}
CONSUMER_SETTINGS = {
    **CONNECTION_SETTINGS,
    "max.poll.records": ("max_poll_records", "int"),
    "fetch.min.bytes": ("fetch_min_bytes", "int"),
    "fetch.max.bytes": ("fetch_max_bytes", "int"),
    "fetch.max.wait.ms": ("fetch_max_wait_ms", "int"),
    "max.partition.fetch.bytes": ("max_partition_fetch_bytes", "int"),
    "session.timeout.ms": ("session_timeout_ms", "int"),
    "heartbeat.interval.ms": ("heartbeat_interval_ms", "int"),
    "max.poll.interval.ms": ("max_poll_interval_ms", "int"),
    "auto.offset.reset": ("auto_offset_reset", "offset_reset"),
    "check.crcs": ("check_crcs", "bool"),
    "isolation.level": ("isolation_level", "isolation"),
}
PRODUCER_SETTINGS = {
    **CONNECTION_SETTINGS,
    "linger.ms": ("linger_ms", "int"),
    "batch.size": ("batch_size", "int"),
    "max.request.size": ("max_request_size", "int"),
    "compression.type": ("compression_type", "compression"),
    "delivery.timeout.ms": ("delivery_timeout_ms", "int"),
}
ADMIN_SETTINGS = dict(CONNECTION_SETTINGS)
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
# The consumer's TLS and SASL, after the consumer. prefixes (the bare SASL keys are read too).
CONSUMER_SECURITY = KAFKA_KEYS + (
    "ssl.cafile", "ssl.certfile", "ssl.keyfile", "ssl.key.password", "ssl.truststore.location",
    "ssl.truststore.type", "ssl.truststore.password", "ssl.keystore.location", "ssl.keystore.type",
    "ssl.keystore.password", "ssl.endpoint.identification.algorithm",
)  # fmt: skip
# Client settings conductor decides itself, and why: reported, not used.
MANAGED_SETTINGS = {
    "group.id": "the group is connect-<name>, as Kafka Connect's",
    "group.instance.id": "each worker gets its own static member id",
    "enable.auto.commit": "offsets are committed after each write",
    "auto.commit.interval.ms": "offsets are committed after each write",
    "key.deserializer": "records are read as bytes and decoded by conductor",
    "value.deserializer": "records are read as bytes and decoded by conductor",
    "partition.assignment.strategy": "conductor uses the cooperative sticky assignor",
    "acks": "the dead-letter producer waits for all replicas",
    "enable.idempotence": "the dead-letter producer decides it",
}

JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"
BYTES_CONVERTER = "org.apache.kafka.connect.converters.ByteArrayConverter"


def is_known(key: str) -> bool:
    return key in KNOWN_KEYS or key.startswith(KNOWN_PREFIXES)
