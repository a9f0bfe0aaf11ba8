"""One builder per settings section: Kafka, Elasticsearch, Cassandra and the worker."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import PurePath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from conductor.config import keys as k
from conductor.config.secrets import Secret, reveal
from conductor.config.settings import (
    CassandraSettings,
    ElasticSettings,
    KafkaSettings,
    WorkerSettings,
)
from conductor.config.values import Reader, Section

BARE_HOST = re.compile(r"(\[[^\]]+\]|[^:/\s\[\]]+)(?::(\d{1,5}))?")
JAAS_OPTION = re.compile(r'([\w.]+)\s*=\s*"((?:[^"\\]|\\.)*)"')
PEM_SUFFIXES = (".pem", ".crt", ".cer", ".key")
USERNAME_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def kafka_settings(r: Reader, group_id: str, environ: Mapping[str, str]) -> KafkaSettings:
    """Bare keys, overridden by consumer.X, overridden by consumer.override.X (as in Connect)."""
    s = Section(r)
    default_servers = environ.get("CONDUCTOR_KAFKA_BOOTSTRAP") or "localhost:9092"
    s("bootstrap_servers", r.string, _consumer("bootstrap.servers", bare=True), default_servers)
    protocol = s(
        "security_protocol",
        r.choice,
        _consumer("security.protocol", bare=True),
        k.SECURITY_PROTOCOLS,
        "PLAINTEXT",
    )
    sasl = protocol.startswith("SASL")
    mechanism = s(
        "sasl_mechanism",
        r.choice,
        _consumer("sasl.mechanism", bare=True),
        k.SASL_MECHANISMS,
        "GSSAPI" if sasl else None,
    )
    jaas_key, jaas = r.find(_consumer("sasl.jaas.config", bare=True))
    options = _jaas_options(reveal(jaas)) if jaas is not None else {}
    username, password = options.get("username"), options.get("password")
    if sasl and mechanism in USERNAME_MECHANISMS and (username is None or password is None):
        r.problems.append(
            f'{jaas_key}: sasl.mechanism {mechanism} needs username="..." password="..." in the JAAS config'
        )
    s.put("sasl_username", jaas_key, username)
    s.put("sasl_password", jaas_key, None if password is None else Secret(password))
    if jaas is not None:
        s.masked.add("sasl_username")  # it comes out of a secret value
    s("sasl_kerberos_service_name", r.string, _consumer("sasl.kerberos.service.name", bare=True))
    cafile = pem_file(
        r,
        _consumer("ssl.cafile"),
        _consumer("ssl.truststore.location"),
        _consumer("ssl.truststore.type"),
    )
    s.put("ssl_cafile", _consumer("ssl.truststore.location"), cafile)
    s("ssl_certfile", r.string, _consumer("ssl.certfile"))
    s("ssl_keyfile", r.string, _consumer("ssl.keyfile"))
    s("ssl_password", r.secret, _consumer("ssl.key.password"))
    s.put(
        "ssl_check_hostname",
        (),
        verify_hostname(r, _consumer("ssl.endpoint.identification.algorithm")),
    )
    s("auto_offset_reset", r.choice, _consumer("auto.offset.reset"), k.OFFSET_RESETS, "earliest")
    for name in ("max.poll.records", "fetch.max.bytes", "max.partition.fetch.bytes"):
        s(name.replace(".", "_"), r.integer, _consumer(name), None, 1)
    for name in ("session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms"):
        s(name.replace(".", "_"), r.integer, _consumer(name), None, 1)
    extra, extra_keys = _consumer_extra(r)
    s.put("extra", extra_keys, MappingProxyType(extra))
    return KafkaSettings(group_id=group_id, **s.kwargs())


def _consumer(name: str, bare: bool = False) -> tuple[str, ...]:
    return ("consumer.override." + name, "consumer." + name) + ((name,) if bare else ())


def _jaas_options(text: str) -> dict[str, str]:
    """``username="u" password="p"`` out of a login module line (PlainLoginModule, Scram...)."""
    return {m.group(1): re.sub(r"\\(.)", r"\1", m.group(2)) for m in JAAS_OPTION.finditer(text)}


def _consumer_extra(r: Reader) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Further consumer overrides as kafka-python kwargs; warns about those not used."""
    readers: dict[str, Callable[[str], Any]] = {
        "str": r.string,
        "int": lambda key: r.integer(key, None, 0),
        "bool": lambda key: r.boolean(key, None),
        "isolation": lambda key: r.choice(key, k.ISOLATION_LEVELS, None),
    }
    handled = set(k.CONSUMER_FIELDS + k.CONSUMER_SECURITY)
    extra: dict[str, Any] = {}
    used: list[str] = []
    for prefix in reversed(k.CONSUMER_PREFIXES):  # consumer.X first, so consumer.override.X wins
        for key in sorted(r.values):
            if not key.startswith(prefix) or (prefix == "consumer." and key.startswith("consumer.override.")):
                continue
            setting = key[len(prefix) :]
            if setting in handled:
                continue
            if setting in k.CONSUMER_PASSTHROUGH:
                kwarg, kind = k.CONSUMER_PASSTHROUGH[setting]
                value = readers[kind](key)
                if value is not None:
                    extra[kwarg] = value
                    used.append(key)
            elif setting in k.CONSUMER_MANAGED:
                r.warnings.append(f"{key} is ignored: conductor sets {setting} itself")
            else:
                r.warnings.append(f"{key} is not used by conductor's Kafka consumer and is ignored")
    return extra, tuple(used)


def elastic_settings(r: Reader) -> ElasticSettings:
    s = Section(r)
    es = k.ES
    protocol = s("protocol", r.choice, es + "protocol", k.PROTOCOLS, "http")
    port = s("port", r.integer, es + "port", 9200, 1, 65535)
    s.put(
        "hosts",
        es + "hosts",
        host_urls(r, r.string(es + "hosts", "localhost") or "", protocol, port),
    )
    s("username", r.string, es + "use.http.username")
    s("password", r.secret, es + "use.http.password")
    s("batch_size", r.integer, es + "batch.size", 4000, 1)
    s("write_timeout_ms", r.integer, es + "write.timeout", 300_000, 1)
    s("pk_separator", r.string, es + "pk.separator", "-")
    s("index_prefix", r.string, (es + "tableprefix", es + "prefix"))
    s("cluster_name", r.string, es + "cluster.name")
    s.put(
        "ssl_cafile",
        "ssl.truststore.location",
        pem_file(r, "ssl.cafile", "ssl.truststore.location", "ssl.truststore.type"),
    )
    s.put(
        "ssl_certfile",
        "ssl.keystore.location",
        pem_file(
            r,
            "ssl.certfile",
            "ssl.keystore.location",
            "ssl.keystore.type",
            "ssl.certfile and ssl.keyfile",
        ),
    )
    s("ssl_keyfile", r.string, "ssl.keyfile")
    s("ssl_key_password", r.secret, "ssl.key.password")
    s.put("ssl_verify_hostname", (), verify_hostname(r, ("ssl.endpoint.identification.algorithm",)))
    s("ssl_truststore_location", r.string, "ssl.truststore.location")
    s("ssl_truststore_password", r.secret, "ssl.truststore.password")
    s("ssl_keystore_location", r.string, "ssl.keystore.location")
    s("ssl_keystore_password", r.secret, "ssl.keystore.password")
    return ElasticSettings(**s.kwargs())


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


def cassandra_settings(r: Reader) -> CassandraSettings:
    s = Section(r)
    c = k.CASSANDRA
    s("contact_points", r.listing, c + "contact.points", "localhost")
    s("port", r.integer, c + "port", 9042, 1, 65535)
    s("keyspace", r.required, c + "key.space", " for the cassandra sink")
    s("username", r.string, c + "username")
    s("password", r.secret, c + "password")
    s("consistency_level", r.choice, c + "consistency.level", k.CONSISTENCY_LEVELS, None)
    s(
        "load_balancing_policy",
        r.choice,
        c + "load.balancing.policy",
        k.LOAD_BALANCING_POLICIES,
        None,
    )
    s("batch_size", r.integer, c + "batch.size", 100, 1)
    s("max_in_flight", r.integer, "conductor.cassandra.max.in.flight", 128, 1)
    s("unlogged_batches", r.boolean, "conductor.cassandra.unlogged.batches", False)
    ssl = s("ssl_enabled", r.boolean, c + "ssl.enabled", False)
    client_auth = s("ssl_client_cert_auth", r.boolean, c + "ssl.client.cert.auth", False)
    if ssl:
        s.put(
            "ssl_cafile",
            c + "trust.store.path",
            pem_file(r, c + "ssl.cafile", c + "trust.store.path", c + "trust.store.type"),
        )
    else:
        s("ssl_cafile", r.string, c + "ssl.cafile")
    if ssl and client_auth:
        s.put(
            "ssl_certfile",
            c + "key.store.path",
            pem_file(
                r,
                c + "ssl.certfile",
                c + "key.store.path",
                c + "key.store.type",
                f"{c}ssl.certfile and {c}ssl.keyfile",
            ),
        )
    else:
        s("ssl_certfile", r.string, c + "ssl.certfile")
    s("ssl_keyfile", r.string, c + "ssl.keyfile")
    s("trust_store_path", r.string, c + "trust.store.path")
    s("trust_store_password", r.secret, c + "trust.store.password")
    s("key_store_path", r.string, c + "key.store.path")
    s("key_store_password", r.secret, c + "key.store.password")
    delete = s("delete_enabled", r.boolean, c + "delete.enabled", False)
    statement = s("delete_statement", r.string, c + "delete.statement")
    if delete and not statement:
        r.problems.append(f"{c}delete.statement: required when {c}delete.enabled is true, but missing")
    s("delete_struct_fields", r.listing, c + "delete.struct_flds")
    s("default_value", r.choice, c + "default.value", k.DEFAULT_VALUES, None)
    s("connect_timeout_ms", r.integer, (c + "connect.timeout.ms", "connect.timeout.ms"), 5000, 1)
    s("read_timeout_ms", r.integer, (c + "read.timeout.ms", "read.timeout.ms"), 12000, 1)
    return CassandraSettings(**s.kwargs())


def worker_settings(r: Reader) -> WorkerSettings:
    s = Section(r)
    w = "conductor."
    s("batch_max_records", r.integer, w + "batch.max.records", None, 1)
    s("batch_max_bytes", r.integer, w + "batch.max.bytes", 5_000_000, 1)
    s("linger_ms", r.integer, w + "linger.ms", 500, 0)
    s("rss_limit_mb", r.integer, w + "worker.rss.limit.mb", 1024, 0)
    s("heartbeat_timeout_s", r.number, w + "worker.heartbeat.timeout.s", 60.0, 1.0)
    s("drain_timeout_s", r.number, w + "drain.timeout.s", 30.0, 0.0)
    initial = s("restart_backoff_initial_s", r.number, w + "restart.backoff.initial.s", 1.0, 0.0)
    most = s("restart_backoff_max_s", r.number, w + "restart.backoff.max.s", 300.0, 0.0)
    if most < initial:
        r.problems.append(
            f"{w}restart.backoff.max.s: must be >= {w}restart.backoff.initial.s ({most} < {initial})"
        )
    s("restart_max", r.integer, w + "restart.max", 10, 0)
    s("index_suffix_clock", r.choice, w + "index.suffix.clock", k.INDEX_SUFFIX_CLOCKS, "record")
    s("status_port", r.integer, w + "status.port", 0, 0, 65535)
    s("static_membership", r.boolean, w + "static.membership", True)
    return WorkerSettings(**s.kwargs())


def pem_file(
    r: Reader,
    pem_key: str | tuple[str, ...],
    store_key: str | tuple[str, ...],
    type_key: str | tuple[str, ...],
    wanted: str = "",
) -> str | None:
    """The PEM path: ``pem_key`` if set, else a store location that is PEM; a Java keystore
    without a PEM alternative is a problem (Python's ssl cannot read JKS or PKCS12)."""
    pem = r.string(pem_key)
    if pem:
        return pem
    found_key, store = r.find(store_key)
    if store is None:
        return None
    location = reveal(store)
    store_type = (r.string(type_key) or "").upper()
    if store_type == "PEM" or (not store_type and PurePath(location).suffix.lower() in PEM_SUFFIXES):
        return location
    named = pem_key if isinstance(pem_key, str) else pem_key[0]
    r.problems.append(
        f"{found_key}: {location} is a Java keystore, which Python cannot read; "
        f"provide {wanted or named} as PEM"
    )
    return None


def verify_hostname(r: Reader, keys: tuple[str, ...]) -> bool:
    """Kafka's ssl.endpoint.identification.algorithm: 'https' (default) checks, '' does not."""
    for key in keys:
        if key in r.values:
            return reveal(r.values[key]).strip().lower() == "https"
    return True
