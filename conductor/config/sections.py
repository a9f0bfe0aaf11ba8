"""One builder per settings section: Kafka, the two stores, errors, the worker and the REST
server (the TLS keys, which all three servers read the same way, are tls_keys.py's)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from conductor.config import keys as k
from conductor.config.readers import parse_properties
from conductor.config.secrets import Secret, reveal
from conductor.config.security import Credentials
from conductor.config.settings import (
    CASSANDRA_WORKER_BATCH,
    AggregateSettings,
    CassandraSettings,
    DeadLetterSettings,
    ElasticsearchSettings,
    ErrorSettings,
    KafkaSecurity,
    KafkaSettings,
    RestSettings,
    WorkerSettings,
)
from conductor.config.tls_keys import (
    CASSANDRA_TLS,
    ELASTIC_TLS,
    kafka_tls_keys,
    key_entry,
    prefixed,
    read_store,
    tls_settings,
)
from conductor.config.values import Reader, Section
from conductor.errors import ConfigError

T = TypeVar("T")

BARE_HOST = re.compile(r"(\[[^\]]+\]|[^:/\s\[\]]+)(?::(\d{1,5}))?")
JAAS_OPTION = re.compile(r'([\w.]+)\s*=\s*"((?:[^"\\]|\\.)*)"')
USERNAME_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_KEYS = ("sasl.mechanism", "sasl.jaas.config", "sasl.kerberos.service.name")


def _settings(r: Reader, kind: type[T], s: Section) -> T | None:
    """The settings object, or None when its keys had problems (already listed in `r`); its
    own checks add theirs otherwise."""
    try:
        return kind(**s.kwargs())
    except ConfigError as error:
        if not r.problems:
            r.problems.extend(error.problems)
        return None


# -- Kafka -------------------------------------------------------------------------------------


def kafka_settings(r: Reader, group_id: str, environ: Mapping[str, str]) -> KafkaSettings:
    """Bare keys, overridden by consumer.X, overridden by consumer.override.X (as in Connect).
    The producer (dead-letter topic, aggregator) and the admin client use the consumer's
    security, unless producer.* or admin.* security keys are given: then theirs, over the bare
    keys, as a Kafka Connect worker reads them."""
    s = Section(r)
    default_servers = environ.get("CONDUCTOR_KAFKA_BOOTSTRAP") or "localhost:9092"
    s.listing(
        "bootstrap_servers", _client_keys(k.CONSUMER_PREFIXES, "bootstrap.servers"), default=default_servers
    )
    s.put("security", (), kafka_security(r, k.CONSUMER_PREFIXES))
    for client, prefixes in (("producer", k.PRODUCER_PREFIXES), ("admin", k.ADMIN_PREFIXES)):
        if any(r.given(key) for name in k.CONSUMER_SECURITY for key in prefixed(prefixes, name)):
            s.put(f"{client}_security", (), kafka_security(r, prefixes))
    handled = set(k.CONSUMER_SECURITY)
    s.put("consumer", (), client_settings(r, k.CONSUMER_PREFIXES, k.CONSUMER_SETTINGS, handled, "consumer"))
    s.put("producer", (), client_settings(r, k.PRODUCER_PREFIXES, k.PRODUCER_SETTINGS, handled, "producer"))
    s.put("admin", (), client_settings(r, k.ADMIN_PREFIXES, k.ADMIN_SETTINGS, handled, "admin"))
    return KafkaSettings(group_id=group_id, **s.kwargs())


def kafka_security(r: Reader, prefixes: tuple[str, ...]) -> KafkaSecurity:
    """One client's security.protocol, SASL and TLS: its prefixed keys, then the bare ones."""
    s = Section(r)
    protocol = s.choice(
        "protocol", _client_keys(prefixes, "security.protocol"), k.SECURITY_PROTOCOLS, default="PLAINTEXT"
    )
    if protocol.startswith("SASL"):
        _sasl(r, s, prefixes)
    else:
        for name in SASL_KEYS:
            key, value = r.find(_client_keys(prefixes, name))
            if value is not None:
                r.unused(key, f"security.protocol is {protocol}, without SASL")
    tls_keys = kafka_tls_keys(prefixes + ("",))
    s.put(
        "tls",
        (),
        tls_settings(r, tls_keys, "SSL" in protocol, f"security.protocol is {protocol}, without SSL"),
    )
    return KafkaSecurity(**s.kwargs())


def _client_keys(prefixes: tuple[str, ...], name: str) -> tuple[str, ...]:
    return prefixed(prefixes, name) + (name,)


def _sasl(r: Reader, s: Section, prefixes: tuple[str, ...]) -> None:
    mechanism = s.choice(
        "sasl_mechanism", _client_keys(prefixes, "sasl.mechanism"), k.SASL_MECHANISMS, default="GSSAPI"
    )
    jaas_key, jaas = r.find(_client_keys(prefixes, "sasl.jaas.config"))
    options = _jaas_options(reveal(jaas)) if jaas is not None else {}
    username, password = options.get("username"), options.get("password")
    credentials = None
    if mechanism in USERNAME_MECHANISMS:
        if username is None or password is None:
            r.problems.append(
                f'{jaas_key}: sasl.mechanism {mechanism} needs username="..." password="..." in the JAAS config'
            )
        else:
            credentials = Credentials(username, Secret(password))
    s.put("credentials", jaas_key, credentials)
    if jaas is not None:
        s.masked.add("credentials")  # the user name comes out of a secret value
    s.string("kerberos_service_name", _client_keys(prefixes, "sasl.kerberos.service.name"))
    r.use(r.find(_client_keys(prefixes, name))[0] for name in SASL_KEYS)


def _jaas_options(text: str) -> dict[str, str]:
    """``username="u" password="p"`` out of a login module line (PlainLoginModule, Scram...)."""
    return {m.group(1): re.sub(r"\\(.)", r"\1", m.group(2)) for m in JAAS_OPTION.finditer(text)}


def client_settings(
    r: Reader,
    prefixes: tuple[str, ...],
    table: Mapping[str, tuple[str, str]],
    handled: set[str],
    client: str,
) -> Mapping[str, Any]:
    """One client's overrides as kafka-python keywords (the first prefix wins); the keys given
    that it cannot use are reported."""
    readers: dict[str, Callable[[str], Any]] = {
        "str": r.string,
        "int": lambda key: r.integer(key, minimum=0),
        "bool": r.boolean,
        "isolation": lambda key: r.choice(key, k.ISOLATION_LEVELS),
        "offset_reset": lambda key: r.choice(key, k.OFFSET_RESETS),
        "compression": lambda key: r.choice(key, k.COMPRESSION_TYPES),
    }
    found: dict[str, Any] = {}
    for prefix in reversed(prefixes):  # the plainest first, so the most specific one wins
        for key in sorted(r.values):
            if not key.startswith(prefix) or any(key.startswith(p) for p in prefixes if len(p) > len(prefix)):
                continue
            setting = key[len(prefix) :]
            if setting in handled:  # read by kafka_security
                continue
            if setting in table:
                keyword, kind = table[setting]
                value = readers[kind](key)
                if value is not None:
                    found[keyword] = None if value == "none" and kind == "compression" else value
            elif setting in k.MANAGED_SETTINGS:
                r.no_effect(key, f"conductor sets {setting} itself: {k.MANAGED_SETTINGS[setting]}")
            else:
                r.no_effect(key, f"conductor's Kafka {client} has no such setting")
    return MappingProxyType(found)


# -- Elasticsearch -------------------------------------------------------------------------------


def elastic_settings(r: Reader) -> ElasticsearchSettings | None:
    s = Section(r)
    es = k.ES
    protocol = r.choice(es + "protocol", k.PROTOCOLS, default="http")
    port = r.integer(es + "port", default=9200, minimum=1, maximum=65535)
    text = r.string(es + "hosts", default="localhost") or ""
    hosts = s.put("hosts", (es + "hosts", es + "port", es + "protocol"), host_urls(r, text, protocol, port))
    username = r.string(es + "use.http.username")
    password = r.secret(es + "use.http.password")
    if username and password:
        s.put(
            "credentials",
            (es + "use.http.username", es + "use.http.password"),
            Credentials(username, password),
        )
    elif username or password:
        given = es + ("use.http.username" if username else "use.http.password")
        r.no_effect(given, "Stream-Reactor sends credentials only when both user name and password are set")
    api_key = s.secret("api_key", k.CONDUCTOR + "elastic.api.key")
    if api_key is not None and username and password:
        r.problems.append(
            f"{k.CONDUCTOR}elastic.api.key and {es}use.http.username/password: give one way to sign in, not both"
        )
    tls_on = any(url.startswith("https://") for url in hosts)
    s.put("tls", (), tls_settings(r, ELASTIC_TLS, tls_on, "no Elasticsearch host uses https"))
    s.integer("batch_size", es + "batch.size", default=4000, minimum=1)
    s.integer("max_bytes", k.CONDUCTOR + "batch.max.bytes", default=5_000_000, minimum=1)
    s.integer("write_timeout_ms", es + "write.timeout", default=300_000, minimum=1)
    s.string("pk_separator", es + "pk.separator", default="-")
    s.choice("suffix_clock", k.CONDUCTOR + "index.suffix.clock", k.INDEX_SUFFIX_CLOCKS, default="record")
    s.choice("distribution", k.CONDUCTOR + "elastic.distribution", k.DISTRIBUTIONS, default="auto")
    s.integer("close_after_days", k.CONDUCTOR + "index.close.after.days", minimum=1)
    s.integer("delete_after_days", k.CONDUCTOR + "index.delete.after.days", minimum=1)
    s.integer(
        "retention_interval_ms", k.CONDUCTOR + "index.retention.interval.ms", default=3_600_000, minimum=1000
    )
    return _settings(r, ElasticsearchSettings, s)


def host_urls(r: Reader, text: str, protocol: str, port: int) -> tuple[str, ...]:
    """Stream-Reactor's ``protocol://host:port`` per host; full URLs are kept (port filled in)."""
    urls: list[str] = []
    for host in (h.strip() for h in text.split(",")):
        if not host:
            continue
        if "://" in host:
            url = _full_url(host, port)
            if url is None:
                r.problem(k.ES + "hosts", host, "host names or http(s)://host:port URLs")
            else:
                urls.append(url)
            continue
        match = BARE_HOST.fullmatch(host)
        if match is None or int(match.group(2) or port) > 65535:
            r.problem(k.ES + "hosts", host, "host names or http(s)://host:port URLs")
        else:
            urls.append(f"{protocol}://{match.group(1)}:{match.group(2) or port}")
    if not urls and not any(p.startswith(k.ES + "hosts") for p in r.problems):
        r.problems.append(f"{k.ES}hosts: no host given")
    return tuple(urls)


def _full_url(text: str, port: int) -> str | None:
    parts = urlsplit(text)
    try:
        has_port = parts.port is not None
    except ValueError:
        return None
    if parts.scheme.lower() not in k.PROTOCOLS or not parts.hostname:
        return None
    if has_port:
        return text
    return urlunsplit((parts.scheme, f"{parts.netloc}:{port}", parts.path, parts.query, parts.fragment))


# -- Cassandra -----------------------------------------------------------------------------------


def cassandra_settings(r: Reader) -> CassandraSettings | None:
    s = Section(r)
    c = k.CASSANDRA
    s.listing("contact_points", c + "contact.points", default="localhost")
    s.integer("port", c + "port", default=9042, minimum=1, maximum=65535)
    s.required("keyspace", c + "key.space", why=" for the cassandra sink")
    username, password = r.string(c + "username"), r.secret(c + "password")
    if username and password:
        s.put("credentials", (c + "username", c + "password"), Credentials(username, password))
    elif username or password:
        given = c + ("username" if username else "password")
        r.no_effect(given, "Stream-Reactor sends credentials only when both user name and password are set")
    s.choice("consistency_level", c + "consistency.level", k.CONSISTENCY_LEVELS)
    s.choice("load_balancing_policy", c + "load.balancing.policy", k.LOAD_BALANCING_POLICIES)
    s.put("max_in_flight", (c + "threadpool.size", "conductor.cassandra.max.in.flight"), _in_flight(r))
    s.integer("batch_size", c + "batch.size", default=100, minimum=1)
    # Rows of one partition go in one UNLOGGED batch, as the DataStax sink sends them: a request
    # per partition instead of one per row, on the replica that owns it.
    s.boolean("unlogged_batches", k.CONDUCTOR + "cassandra.unlogged.batches", default=True)
    ssl = r.boolean(c + "ssl.enabled", default=False)
    client_cert = r.boolean(c + "ssl.client.cert.auth", default=False)
    if not ssl and r.given(c + "ssl.client.cert.auth"):
        r.no_effect(c + "ssl.client.cert.auth", f"{c}ssl.enabled is false")
    tls = tls_settings(r, CASSANDRA_TLS, ssl, f"{c}ssl.enabled is false", client_cert=client_cert)
    has_client_cert = tls.certfile or tls.key_entry
    if ssl and client_cert and not has_client_cert and not any("key.store.path" in p for p in r.problems):
        r.problems.append(
            f"{c}ssl.client.cert.auth: true needs a client certificate ({c}ssl.certfile and {c}ssl.keyfile, "
            f"or {c}key.store.path)"
        )
    s.put("tls", (), tls)
    delete = s.boolean("delete_enabled", c + "delete.enabled", default=False)
    statement = r.string(c + "delete.statement")
    if delete and not statement:
        r.problems.append(f"{c}delete.statement: required when {c}delete.enabled is true, but missing")
    for key in (c + "delete.statement", c + "delete.struct_flds"):
        if not delete and r.given(key):
            r.no_effect(key, f"{c}delete.enabled is false")
    s.put("delete_statement", c + "delete.statement", statement if delete else None)
    s.put(
        "delete_key_fields", c + "delete.struct_flds", r.listing(c + "delete.struct_flds") if delete else ()
    )
    s.put("default_value", c + "default.value", r.choice(c + "default.value", k.DEFAULT_VALUES) or "UNSET")
    connect_ms = r.integer((c + "connect.timeout.ms", "connect.timeout.ms"), default=5000, minimum=1)
    read_ms = r.integer((c + "read.timeout.ms", "read.timeout.ms"), default=12000, minimum=1)
    s.put("connect_timeout_s", (c + "connect.timeout.ms", "connect.timeout.ms"), connect_ms / 1000)
    s.put("request_timeout_s", (c + "read.timeout.ms", "read.timeout.ms"), read_ms / 1000)
    return _settings(r, CassandraSettings, s)


def _in_flight(r: Reader) -> int:
    """Write concurrency: conductor.cassandra.max.in.flight, else Stream-Reactor's threadpool.size
    (0: 4 per CPU there; conductor's 128 requests in flight here), else 128."""
    ours = r.integer(k.CONDUCTOR + "cassandra.max.in.flight", minimum=1)
    theirs = r.integer(k.CASSANDRA + "threadpool.size", minimum=0)
    if ours is not None and theirs:
        r.problems.append(
            f"{k.CASSANDRA}threadpool.size and conductor.cassandra.max.in.flight both set the write "
            f"concurrency ({theirs} and {ours}); keep one"
        )
    return ours or theirs or 128


# -- errors and the worker -----------------------------------------------------------------------


def error_settings(r: Reader, prefix: str, topics: tuple[str, ...]) -> ErrorSettings:
    s = Section(r)
    if prefix:
        s.choice("policy", prefix + "error.policy", k.ERROR_POLICIES, default="THROW")
        s.integer("max_retries", prefix + "max.retries", default=20, minimum=-1)
        s.integer("retry_interval_ms", prefix + "retry.interval", default=60_000, minimum=0)
    tolerance = s.choice("tolerance", "errors.tolerance", k.TOLERANCES, default="none")
    s.boolean("log_enable", "errors.log.enable", default=False)
    s.boolean("log_include_messages", "errors.log.include.messages", default=False)
    s.put("dead_letter", "errors.deadletterqueue.topic.name", _dead_letter(r, tolerance, topics))
    return ErrorSettings(**s.kwargs())


def _dead_letter(r: Reader, tolerance: str, topics: tuple[str, ...]) -> DeadLetterSettings | None:
    name_key = "errors.deadletterqueue.topic.name"
    topic = r.string(name_key)
    factor = r.integer("errors.deadletterqueue.topic.replication.factor", default=3, minimum=-1)
    if factor == 0:
        r.problems.append(
            "errors.deadletterqueue.topic.replication.factor: expected -1 or an integer >= 1, got '0'"
        )
    headers = r.boolean("errors.deadletterqueue.context.headers.enable", default=False)
    dependent = (
        "errors.deadletterqueue.topic.replication.factor",
        "errors.deadletterqueue.context.headers.enable",
    )
    if not topic:
        for key in dependent:
            if r.given(key):
                r.no_effect(key, f"{name_key} is not set")
        return None
    if topic in topics:
        r.problems.append(f"{name_key}: {topic!r} is also in topics; failed records would loop")
    if tolerance == "none":
        for key in (name_key, *dependent):
            if r.given(key):
                r.no_effect(
                    key,
                    "errors.tolerance is none, so a record that cannot be decoded stops the task and none "
                    "is sent to the dead-letter topic (Kafka Connect would copy it there first, again at "
                    "every restart)",
                )
        return None
    return DeadLetterSettings(topic, factor, headers)


def worker_settings(r: Reader, elastic: ElasticsearchSettings | None) -> WorkerSettings:
    """The worker writes and commits every connect.elastic.batch.size records (one bulk, as in
    Stream-Reactor) for Elasticsearch, every CASSANDRA_WORKER_BATCH for Cassandra, unless
    conductor.batch.max.records says otherwise."""
    s = Section(r)
    w = k.CONDUCTOR
    default_batch = elastic.batch_size if elastic is not None else CASSANDRA_WORKER_BATCH
    s.integer("batch_max_records", w + "batch.max.records", default=default_batch, minimum=1)
    s.integer("batch_max_bytes", w + "batch.max.bytes", default=5_000_000, minimum=1)
    s.integer("linger_ms", w + "linger.ms", default=500, minimum=0)
    s.integer("rss_limit_mb", w + "worker.rss.limit.mb", default=1024, minimum=0)
    s.number("heartbeat_timeout_s", w + "worker.heartbeat.timeout.s", default=60.0, minimum=1.0)
    s.number("drain_timeout_s", w + "drain.timeout.s", default=30.0, minimum=0.0)
    initial = s.number("restart_backoff_initial_s", w + "restart.backoff.initial.s", default=1.0, minimum=0.0)
    most = s.number("restart_backoff_max_s", w + "restart.backoff.max.s", default=300.0, minimum=0.0)
    if most < initial:
        r.problems.append(
            f"{w}restart.backoff.max.s: must be >= {w}restart.backoff.initial.s ({most} < {initial})"
        )
    s.integer("restart_max", w + "restart.max", default=10, minimum=0)
    s.boolean("static_membership", w + "static.membership", default=True)
    s.boolean("progress", "connect.progress.enabled", default=True)
    return WorkerSettings(**s.kwargs())


def aggregate_settings(r: Reader) -> AggregateSettings:
    s = Section(r)
    w = k.CONDUCTOR
    sql = r.required(w + "aggregate.sql", why=" for the aggregator (connector.class=conductor.aggregate)")
    s.put("sql", w + "aggregate.sql", sql or "")
    s.integer("idle_close_ms", w + "aggregate.idle.close.ms", default=60_000, minimum=0)
    return AggregateSettings(**s.kwargs())


LISTENER = re.compile(r"(?i)(https?)://(\[[^\]]*\]|[^:/\s]*):(\d{1,5})/?")


def rest_settings(r: Reader) -> RestSettings:
    """Kafka Connect's `listeners` (one http or https listener here), the advertised host and
    port that make up each task's worker_id, and who may call it."""
    s = Section(r)
    text = r.string("listeners", default="http://127.0.0.1:8083") or ""
    listeners = [part.strip() for part in text.split(",") if part.strip()]
    match = LISTENER.fullmatch(listeners[0]) if len(listeners) == 1 else None
    host = "127.0.0.1"
    if match is None or int(match[3]) > 65535:
        r.problem("listeners", text, "one listener such as http://127.0.0.1:8083 (port 0: any free port)")
        s.put("port", "listeners", 8083)
    else:
        host = match[2].strip("[]") or "0.0.0.0"
        s.put("port", "listeners", int(match[3]))
    s.put("host", "listeners", host)
    https = match is not None and match[1].lower() == "https"
    _https_settings(r, s, https)
    _rest_auth(r, s)
    s.string("advertised_host", "rest.advertised.host.name")
    s.integer("advertised_port", "rest.advertised.port", minimum=1, maximum=65535)
    open_beyond = not is_loopback(host) and not (s.values.get("users") or s.values.get("token"))
    allowed = s.boolean("allow_unauthenticated", k.CONDUCTOR + "rest.allow.unauthenticated", default=False)
    if open_beyond and not allowed:
        r.problems.append(
            f"listeners: {text} answers beyond this host, and no one has to sign in: set "
            f"conductor.rest.users.file or conductor.rest.token, or conductor.rest.allow.unauthenticated=true "
            f"to serve it open"
        )
    return RestSettings(**s.kwargs())


def _https_settings(r: Reader, s: Section, https: bool) -> None:
    """listeners.https.ssl.*: the server's keystore, PEM (certificate chain and private key in
    one file), PKCS12 or JKS."""
    keys = [
        k.HTTPS + name for name in ("ssl.keystore.location", "ssl.keystore.type", "ssl.keystore.password")
    ]
    keys += [k.HTTPS + "ssl.key.password", k.HTTPS + "ssl.client.auth"]
    if not https:
        for key in keys:
            if r.given(key):
                r.no_effect(key, "the listener is http")
        return
    location = r.string(k.HTTPS + "ssl.keystore.location")
    if not location:
        r.problems.append(
            f"listeners: https needs {k.HTTPS}ssl.keystore.location (a PKCS12 or JKS keystore, or a PEM file "
            f"with the certificate chain and the private key)"
        )
        return
    s.put("certfile", k.HTTPS + "ssl.keystore.location", location)
    store = read_store(r, k.HTTPS + "ssl.keystore.location", k.HTTPS + "ssl.keystore.type")
    if store is None or store.kind == "PEM":
        s.secret("key_password", (k.HTTPS + "ssl.key.password", k.HTTPS + "ssl.keystore.password"))
    else:
        passwords = (
            k.HTTPS + "ssl.keystore.password",
            (k.HTTPS + "ssl.key.password", k.HTTPS + "ssl.keystore.password"),
        )
        s.put("key_entry", k.HTTPS + "ssl.keystore.location", key_entry(r, store, *passwords))
    client_auth = (r.string(k.HTTPS + "ssl.client.auth") or "none").lower()
    if client_auth != "none":
        r.problems.append(
            f"{k.HTTPS}ssl.client.auth={client_auth}: conductor does not ask clients for certificates; "
            f"use conductor.rest.users.file or conductor.rest.token"
        )


def _rest_auth(r: Reader, s: Section) -> None:
    """conductor.rest.users.file: Kafka Connect's PropertyFileLoginModule file (`user=password`
    per line); conductor.rest.token: a bearer token."""
    key = k.CONDUCTOR + "rest.users.file"
    path = r.string(key)
    if path:
        try:
            found, problems = parse_properties(Path(path).read_text(), path)
        except (OSError, ValueError) as error:  # ValueError: a path with a NUL in it
            r.problems.append(f"{key}: cannot read {path!r}: {getattr(error, 'strerror', None) or error}")
        else:
            r.problems.extend(f"{key}: {problem}" for problem in problems)
            if not found:
                r.problems.append(f"{key}: {path} names no user (one `user=password` per line)")
            s.put("users", key, MappingProxyType({user: Secret(word) for user, word in found.items()}))
    token = s.secret("token", k.CONDUCTOR + "rest.token")
    if token is not None and len(token.reveal()) < 16:
        r.problems.append(
            f"{k.CONDUCTOR}rest.token: at least 16 characters (a guessable token guards nothing)"
        )
    s.boolean("open_reads", k.CONDUCTOR + "rest.open.reads", default=False)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: reachable from this host only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
