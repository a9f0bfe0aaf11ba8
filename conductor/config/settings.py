"""The validated settings: one frozen dataclass per part of a connector, whose repr never shows
a secret.

Secret fields (passwords) hold a `Secret`. Other fields hold plain values even when they came
from a ``${...}`` reference, so a caller can use them directly; such fields are named in
``masked`` and shown as '******' by repr. The sinks and tasks take these classes as they are:
there is one settings class per store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from conductor.config.keystores import PrivateKeyEntry
from conductor.config.secrets import MASK, Secret, is_secret_key
from conductor.config.security import Credentials, TlsSettings
from conductor.errors import ConfigError
from conductor.transforms import Chain

# Records per write-and-commit for a Cassandra connector: connect.cassandra.batch.size bounds an
# unlogged batch statement there, and a commit per 100 rows would stall the writes.
CASSANDRA_WORKER_BATCH = 2000


class Masked:
    """Mixin: a dataclass repr that shows the fields named in ``self.masked`` as '******'."""

    masked: frozenset[str]

    def __repr__(self) -> str:
        shown = (
            f"{f.name}={MASK if f.name in self.masked else repr(getattr(self, f.name))}"
            for f in fields(self)  # type: ignore[arg-type]
            if f.repr
        )
        return f"{type(self).__name__}({', '.join(shown)})"


def masked_field() -> Any:
    return field(default=frozenset(), repr=False, compare=False)


def _positive(where: str, values: Mapping[str, float]) -> list[str]:
    return [f"{where} {name} must be positive (got {value})" for name, value in values.items() if value <= 0]


def redact(url: str) -> str:
    """A URL without its user:password, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@dataclass(frozen=True, repr=False)
class KafkaSecurity(Masked):
    """How one Kafka client proves who it is, and checks who the broker is."""

    protocol: str = "PLAINTEXT"  # security.protocol
    sasl_mechanism: str | None = None
    credentials: Credentials | None = None  # SASL PLAIN and SCRAM
    kerberos_service_name: str | None = None
    tls: TlsSettings = field(default_factory=TlsSettings)
    masked: frozenset[str] = masked_field()

    def kwargs(self) -> dict[str, Any]:
        """kafka-python's keywords; the only place the Kafka secrets are revealed."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
        if self.credentials is not None:
            kwargs["sasl_plain_username"] = self.credentials.username
            kwargs["sasl_plain_password"] = self.credentials.password.reveal()
        if self.kerberos_service_name:
            kwargs["sasl_kerberos_service_name"] = self.kerberos_service_name
        context = self.tls.context()
        if context is not None:
            kwargs["ssl_context"] = context
        return kwargs


@dataclass(frozen=True, repr=False)
class KafkaSettings(Masked):
    """How the workers reach Kafka: brokers, security, and the settings of each client.

    ``consumer``, ``producer`` and ``admin`` hold further kafka-python keywords for that client
    (``consumer.override.client.id`` -> consumer ``client_id``); ``security`` is the consumer's,
    and the others' unless ``producer_security`` or ``admin_security`` is set.
    """

    bootstrap_servers: tuple[str, ...]
    group_id: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    producer_security: KafkaSecurity | None = None
    admin_security: KafkaSecurity | None = None
    consumer: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    producer: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    admin: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    masked: frozenset[str] = masked_field()

    def securities(self) -> dict[str, KafkaSecurity]:
        """Each client's security, by the clients that use it ("consumer", "producer", ...)."""
        found: dict[str, KafkaSecurity] = {"consumer": self.security}
        for client, security in (("producer", self.producer_security), ("admin", self.admin_security)):
            if security is not None and security != self.security:
                found[client] = security
        return found

    def connection_kwargs(self, security: KafkaSecurity | None = None) -> dict[str, Any]:
        """kafka-python keywords every client needs (the consumer's security by default)."""
        return {"bootstrap_servers": list(self.bootstrap_servers), **(security or self.security).kwargs()}

    def consumer_kwargs(self) -> dict[str, Any]:
        """KafkaConsumer keywords: the group, no auto-commit (conductor commits after each
        write), and the consumer overrides. The caller adds group_instance_id."""
        return {
            **self.connection_kwargs(),
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            **self.consumer,
        }

    def producer_kwargs(self) -> dict[str, Any]:
        return {**self.connection_kwargs(self.producer_security), **self.producer}

    def admin_kwargs(self) -> dict[str, Any]:
        return {**self.connection_kwargs(self.admin_security), **self.admin}


@dataclass(frozen=True, repr=False)
class ElasticsearchSettings(Masked):
    """The Elasticsearch sink. ``hosts`` are full URLs (protocol://host:port)."""

    hosts: tuple[str, ...]
    credentials: Credentials | None = None
    api_key: Secret | None = None  # an Elasticsearch API key, encoded (the `encoded` of its creation)
    tls: TlsSettings = field(default_factory=TlsSettings)
    batch_size: int = 4000  # actions per bulk request (connect.elastic.batch.size)
    max_bytes: int = 5_000_000  # bytes per bulk request (conductor.batch.max.bytes)
    write_timeout_ms: int = 300_000
    pk_separator: str = "-"
    suffix_clock: str = "record"  # "record": WITHINDEXSUFFIX dates come from the record's timestamp
    distribution: str = "auto"  # elasticsearch | opensearch | auto: read from the server's root
    # Retention of the routes' dated indexes (sinks/retention.py); None: never.
    close_after_days: int | None = None
    delete_after_days: int | None = None
    retention_interval_ms: int = 3_600_000
    masked: frozenset[str] = masked_field()

    def __post_init__(self) -> None:
        problems = [] if self.hosts else ["elasticsearch hosts: at least one URL is required"]
        problems += _positive(
            "elasticsearch",
            {
                "batch_size": self.batch_size,
                "max_bytes": self.max_bytes,
                "write_timeout_ms": self.write_timeout_ms,
                "retention_interval_ms": self.retention_interval_ms,
                **{
                    name: days
                    for name, days in (
                        ("close_after_days", self.close_after_days),
                        ("delete_after_days", self.delete_after_days),
                    )
                    if days is not None
                },
            },
        )
        if self.distribution not in ("auto", "elasticsearch", "opensearch"):
            problems.append(
                f"elasticsearch distribution must be auto, elasticsearch or opensearch (got {self.distribution!r})"
            )
        if self.suffix_clock not in ("record", "wallclock"):
            problems.append(
                f"elasticsearch suffix_clock must be 'record' or 'wallclock' (got {self.suffix_clock!r})"
            )
        if problems:
            raise ConfigError(problems, "elasticsearch settings")

    @property
    def where(self) -> str:
        """The hosts without any user:password, for messages."""
        return ", ".join(redact(host) for host in self.hosts)

    def client_kwargs(self) -> dict[str, Any]:
        """The HTTP client's `basic_auth`, `api_key` and `ssl_context` (sinks/search_server.py);
        reveals the password."""
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs["basic_auth"] = (self.credentials.username, self.credentials.password.reveal())
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key.reveal()
        context = self.tls.context()
        if context is not None:
            kwargs["ssl_context"] = context
        return kwargs


@dataclass(frozen=True, repr=False)
class CassandraSettings(Masked):
    """The Cassandra sink (Stream-Reactor's connect.cassandra.* keys). ``consistency_level`` and
    ``load_balancing_policy`` are None for the driver's default."""

    contact_points: tuple[str, ...]
    keyspace: str
    port: int = 9042
    credentials: Credentials | None = None
    tls: TlsSettings = field(default_factory=TlsSettings)
    consistency_level: str | None = None
    load_balancing_policy: str | None = None
    max_in_flight: int = 128  # requests a worker keeps in flight
    batch_size: int = 100  # statements per unlogged batch (connect.cassandra.batch.size)
    unlogged_batches: bool = True  # group a batch's rows by partition key
    delete_enabled: bool = False
    delete_statement: str | None = None
    delete_key_fields: tuple[str, ...] = ()
    default_value: str = "UNSET"  # what a column the record does not fill gets: UNSET or NULL
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 12.0
    write_timeout_ms: int = 60_000  # one write retries timeouts and overloads this long
    masked: frozenset[str] = masked_field()

    def __post_init__(self) -> None:
        problems = [] if self.contact_points else ["cassandra contact_points: at least one host is required"]
        if not self.keyspace:
            problems.append("cassandra keyspace is required")
        problems += _positive(
            "cassandra",
            {
                "connect_timeout_s": self.connect_timeout_s,
                "request_timeout_s": self.request_timeout_s,
                "max_in_flight": self.max_in_flight,
                "batch_size": self.batch_size,
                "write_timeout_ms": self.write_timeout_ms,
            },
        )
        if self.default_value not in ("NULL", "UNSET"):
            problems.append(f"cassandra default_value must be NULL or UNSET (got {self.default_value!r})")
        if self.delete_enabled and not self.delete_statement:
            problems.append("cassandra delete_statement is required when deletes are enabled")
        if problems:
            raise ConfigError(problems, "cassandra settings")

    @property
    def where(self) -> str:
        return ", ".join(f"{host}:{self.port}" for host in self.contact_points)


@dataclass(frozen=True)
class DeadLetterSettings:
    """Kafka Connect's dead-letter topic (errors.deadletterqueue.*)."""

    topic: str
    replication_factor: int = 3  # when conductor creates it; -1: the broker's default
    context_headers: bool = False


@dataclass(frozen=True, repr=False)
class ErrorSettings(Masked):
    """What happens to a record that fails.

    ``tolerance`` (Kafka Connect's errors.tolerance) governs records that cannot be decoded:
    "none" fails the task, "all" skips them, to ``dead_letter`` when there is one. ``policy``
    (Stream-Reactor's error.policy) governs records the store refused: RETRY writes them again
    ``max_retries`` times (-1: forever), ``retry_interval_ms`` apart, then fails the task; THROW
    fails it at once; NOOP skips them, to ``dead_letter`` when there is one. ``dead_letter`` is
    None unless tolerance is "all", as in Kafka Connect.
    """

    policy: str = "THROW"
    max_retries: int = 20
    retry_interval_ms: int = 60_000
    tolerance: str = "none"
    log_enable: bool = False
    log_include_messages: bool = False
    dead_letter: DeadLetterSettings | None = None
    masked: frozenset[str] = masked_field()


@dataclass(frozen=True, repr=False)
class AggregateSettings(Masked):
    """The aggregator job (connector.class=conductor.aggregate): its SQL, unparsed, and when
    windows close without input."""

    sql: str
    idle_close_ms: int = 60_000  # caught up and idle this long: stream time moves to the clock
    masked: frozenset[str] = masked_field()


@dataclass(frozen=True, repr=False)
class WorkerSettings(Masked):
    """conductor's own keys (conductor.*): batching, worker limits, restarts; and the progress line."""

    batch_max_records: int = 4000  # records a worker gathers before it writes and commits
    batch_max_bytes: int = 5_000_000
    linger_ms: int = 500
    rss_limit_mb: int = 1024  # 0 = no limit
    heartbeat_timeout_s: float = 60.0
    drain_timeout_s: float = 30.0
    restart_backoff_initial_s: float = 1.0
    restart_backoff_max_s: float = 300.0
    restart_max: int = 10  # failed-task restarts before giving up; 0 = never restart
    static_membership: bool = True
    progress: bool = True  # a progress line per worker every minute (connect.progress.enabled)
    masked: frozenset[str] = masked_field()


@dataclass(frozen=True, repr=False)
class RestSettings(Masked):
    """Where conductor serves Kafka Connect's REST API, its page and its metrics (`listeners`)."""

    host: str = "127.0.0.1"
    port: int = 8083  # 0: a free port, named in the supervisor's state
    advertised_host: str | None = None  # rest.advertised.host.name: the host in worker_id
    advertised_port: int | None = None
    # https: a PEM file with the certificate chain and the private key (listeners.https.ssl.*),
    # or a PKCS12 or JKS keystore, whose key entry is read at load
    certfile: str | None = None
    key_password: Secret | None = None
    key_entry: PrivateKeyEntry | None = None
    # Authentication (conductor/api/auth.py): users and their passwords, a bearer token.
    users: Mapping[str, Secret] = field(default_factory=lambda: MappingProxyType({}))
    token: Secret | None = None
    open_reads: bool = False  # GET endpoints answer without credentials
    allow_unauthenticated: bool = False  # listen beyond the loopback without authentication
    masked: frozenset[str] = masked_field()

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

    @property
    def authenticates(self) -> bool:
        return bool(self.users) or self.token is not None


@dataclass(frozen=True, repr=False)
class ConverterSettings(Masked):
    """How one side of a record (key or value) is read: Kafka Connect's `key.converter` and
    `value.converter`, with their prefixed settings.

    ``format``: "json" (plain JSON; a key is also taken as text), "connect-json" (JsonConverter's
    {"schema", "payload"} envelope), or one of the Schema Registry formats "avro", "protobuf",
    "json-schema", which name a ``registry_url``. ``converter`` is the Kafka Connect class given
    (JsonConverter when none is). ``options`` are the converter's own settings
    conductor reads (conductor/formats)."""

    format: str = "json"
    registry_url: str | None = None
    registry_user_info: Secret | None = None
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    converter: str = "org.apache.kafka.connect.json.JsonConverter"  # the class, as dead letters name it
    masked: frozenset[str] = masked_field()

    @property
    def registered(self) -> bool:
        return self.registry_url is not None


@dataclass(frozen=True, repr=False)
class ConnectorConfig(Masked):
    """One connector config, validated.

    ``sink`` is the registry name of the store ("elasticsearch" or "cassandra"), whose settings
    are in ``elastic`` or ``cassandra`` (the other one is None); or "aggregate" for the
    aggregator job, whose SQL is in ``aggregate``. ``topics`` is () with a
    ``topics_regex``. ``kcql`` is the sink's KCQL text, unparsed. ``raw`` holds every key as
    given after ${...} resolution, secret values as `Secret`; ``defaults`` the default used for
    each known key not given; ``notices`` the keys given that have no effect here, and why;
    ``warnings`` what looks like a mistake (unknown keys); ``source`` where it came from.
    ``transforms`` is the Single Message Transforms chain, None when `transforms` lists none.
    """

    name: str
    connector_class: str | None
    sink: str
    topics: tuple[str, ...]
    topics_regex: str | None
    tasks_max: int
    kcql: str
    errors: ErrorSettings
    kafka: KafkaSettings
    elastic: ElasticsearchSettings | None
    cassandra: CassandraSettings | None
    worker: WorkerSettings
    rest: RestSettings
    aggregate: AggregateSettings | None
    raw: Mapping[str, str | Secret] = field(repr=False)
    defaults: Mapping[str, str] = field(repr=False)
    references: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    notices: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    source: str = "config"
    transforms: Chain | None = None
    value_converter: ConverterSettings = ConverterSettings()
    key_converter: ConverterSettings = ConverterSettings()
    masked: frozenset[str] = masked_field()

    @property
    def group_id(self) -> str:
        """Kafka Connect's consumer group for a sink connector."""
        return self.kafka.group_id

    def describe(self) -> dict[str, str]:
        """Every setting (given, or the default used), secrets as '******'; sorted by key."""
        merged: dict[str, str | Secret] = {**self.raw, **self.defaults}  # defaults: keys left empty
        return {
            key: MASK if isinstance(value, Secret) or is_secret_key(key) else value
            for key, value in sorted(merged.items())
        }
