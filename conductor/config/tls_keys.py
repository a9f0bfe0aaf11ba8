"""The TLS keys, which all three servers read the same way: where each one's keys are in a config
(each store spells them its own way), and the TlsSettings built from them. Trust and key stores
in JKS or PKCS12 are read here, at load, so a bad one stops the config naming its key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath

from conductor.config import keys as k
from conductor.config import keystores
from conductor.config.keystores import PrivateKeyEntry, StoreError
from conductor.config.secrets import Secret, reveal
from conductor.config.security import TlsSettings
from conductor.config.values import Keys, Reader

PEM_SUFFIXES = (".pem", ".crt", ".cer", ".key")


@dataclass(frozen=True)
class TlsKeys:
    """Where one server's TLS settings are in a config (each store spells them its own way)."""

    cafile: Keys
    certfile: Keys
    keyfile: Keys
    key_password: Keys
    truststore: Keys
    truststore_type: Keys
    truststore_password: Keys
    keystore: Keys
    keystore_type: Keys
    keystore_password: Keys
    hostname: Keys | None  # Kafka's ssl.endpoint.identification.algorithm: "https" checks

    def all(self) -> tuple[str, ...]:
        named = (self.cafile, self.certfile, self.keyfile, self.key_password, self.truststore)
        named += (self.truststore_type, self.truststore_password, self.keystore, self.keystore_type)
        named += (self.keystore_password, self.hostname or ())
        return tuple(dict.fromkeys(key for keys in named for key in _names(keys)))


def _names(keys: Keys) -> tuple[str, ...]:
    return (keys,) if isinstance(keys, str) else keys


def prefixed(prefixes: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(prefix + name for prefix in prefixes)


def kafka_tls_keys(prefixes: tuple[str, ...]) -> TlsKeys:
    def key(name: str) -> tuple[str, ...]:
        return prefixed(prefixes, name)

    return TlsKeys(
        cafile=key("ssl.cafile"),
        certfile=key("ssl.certfile"),
        keyfile=key("ssl.keyfile"),
        key_password=key("ssl.key.password") + key("ssl.keystore.password"),
        truststore=key("ssl.truststore.location"),
        truststore_type=key("ssl.truststore.type"),
        truststore_password=key("ssl.truststore.password"),
        keystore=key("ssl.keystore.location"),
        keystore_type=key("ssl.keystore.type"),
        keystore_password=key("ssl.keystore.password"),
        hostname=key("ssl.endpoint.identification.algorithm"),
    )


# One file holds what Kafka Connect splits between the worker and the connector: the bare ssl.*
# keys serve Kafka (kafka_security) and Stream-Reactor's Elasticsearch sink alike, and the
# consumer./producer. (Kafka) and Stream-Reactor's own keys set them apart.
ELASTIC_TLS = kafka_tls_keys(("",))
CASSANDRA_TLS = TlsKeys(
    cafile=k.CASSANDRA + "ssl.cafile",
    certfile=k.CASSANDRA + "ssl.certfile",
    keyfile=k.CASSANDRA + "ssl.keyfile",
    key_password=k.CASSANDRA + "key.store.password",
    truststore=k.CASSANDRA + "trust.store.path",
    truststore_type=k.CASSANDRA + "trust.store.type",
    truststore_password=k.CASSANDRA + "trust.store.password",
    keystore=k.CASSANDRA + "key.store.path",
    keystore_type=k.CASSANDRA + "key.store.type",
    keystore_password=k.CASSANDRA + "key.store.password",
    hostname=None,
)


def tls_settings(
    r: Reader, keys: TlsKeys, enabled: bool, why_off: str, client_cert: bool = True
) -> TlsSettings:
    """TLS from PEM files, or from trust and key stores (JKS, PKCS12 or PEM). JKS and PKCS12
    stores are read now, so that a wrong password or a damaged store stops the config at load.
    With TLS off (or no client certificate wanted), the keys given are reported as having no
    effect."""
    if not enabled:
        for key in keys.all():
            if r.given(key) and key not in k.NO_EFFECT:
                r.unused(key, why_off)
        return TlsSettings()
    r.use(keys.all())
    cafile, cadata = _truststore(r, keys)
    certfile = keyfile = password = key_entry = None
    if client_cert:
        certfile, key_entry = _keystore(r, keys)
        keyfile = r.string(keys.keyfile)
        password = r.secret(keys.key_password) if key_entry is None else None
    else:
        unused = (keys.certfile, keys.keyfile, keys.keystore, keys.keystore_type, keys.key_password)
        unused += (keys.keystore_password,)
        for name in dict.fromkeys(name for group in unused for name in _names(group)):
            if r.given(name):
                r.no_effect(name, "no client certificate is presented (ssl.client.cert.auth is false)")
    check = verify_hostname(r, keys.hostname) if keys.hostname else True
    return TlsSettings(True, cafile, certfile, keyfile, password, check, cadata=cadata, key_entry=key_entry)


@dataclass(frozen=True)
class Store:
    """A trust or key store that was given: a PEM one is a path for the ssl module, a JKS or
    PKCS12 one is read."""

    key: str  # the location key given
    location: str
    kind: str  # JKS, PKCS12 or PEM
    data: bytes = b""


def read_store(r: Reader, location_keys: Keys, type_keys: Keys) -> Store | None:
    """The store at the location given, of the type given, else of the type its content shows
    (Kafka's default type, JKS, reads PKCS12 too, as Java does). A PEM store, by its type or a
    *.pem, *.crt, *.cer or *.key name, is left to the ssl module."""
    key, value = r.find(location_keys)
    if value is None:
        return None
    location = reveal(value)
    type_key = r.find(type_keys)[0]
    declared = r.choice(type_keys, keystores.STORE_TYPES)
    pem_named = declared is None and PurePath(location).suffix.lower() in PEM_SUFFIXES
    try:
        if declared == "PEM" or pem_named:
            head = _head(location)
            if head is not None:
                keystores.store_type(head, "PEM")
            return Store(key, location, "PEM")
        try:
            data = Path(location).read_bytes()
        except (OSError, ValueError) as error:  # ValueError: a path with a NUL in it
            r.problems.append(f"{key}: cannot read {location}: {getattr(error, 'strerror', None) or error}")
            return None
        kind = keystores.store_type(data, declared)
    except StoreError as error:
        blame = type_key if declared else f"{type_key} is not set"
        r.problems.append(_store_problem(key, location, error, {"type": blame}))
        return None
    return Store(key, location, kind, b"" if kind == "PEM" else data)


def _head(location: str) -> bytes | None:
    """The start of a file, to tell PEM from a binary store; None when it cannot be read (the
    ssl module says why, in the worker)."""
    try:
        with open(location, "rb") as file:
            return file.read(65536)
    except (OSError, ValueError):
        return None


def _truststore(r: Reader, keys: TlsKeys) -> tuple[str | None, str | None]:
    """(cafile, cadata): a PEM file of the CAs to trust, or the certificates of a JKS or PKCS12
    truststore as PEM text (its password checks its integrity; without one, it is not checked)."""
    password_key, password = r.find(keys.truststore_password)
    pem = r.string(keys.cafile)
    store = None if pem else read_store(r, keys.truststore, keys.truststore_type)
    if store is not None and store.kind != "PEM":
        try:
            return None, keystores.read_truststore(store.data, store.kind, _revealed(password))
        except StoreError as error:
            blame = {"store": _named(password_key, password, keys.truststore_password, store.key)}
            r.problems.append(_store_problem(store.key, store.location, error, blame))
            return None, None
    if password is not None and (pem or store or r.find(keys.truststore)[1] is None):
        r.no_effect(
            password_key, "a PEM truststore has no password" if pem or store else "no truststore is given"
        )
    return pem or (store.location if store else None), None


def _keystore(r: Reader, keys: TlsKeys) -> tuple[str | None, PrivateKeyEntry | None]:
    """(certfile, key entry): a PEM certificate (its key in it or in the keyfile), or the one
    private key entry of a JKS or PKCS12 keystore, opened with the key password (Kafka's
    ssl.key.password, else the keystore's)."""
    pem = r.string(keys.certfile)
    store = None if pem else read_store(r, keys.keystore, keys.keystore_type)
    if store is None or store.kind == "PEM":
        return pem or (store.location if store else None), None
    return None, key_entry(r, store, keys.keystore_password, keys.key_password)


def key_entry(
    r: Reader, store: Store, password_keys: Keys, key_password_keys: Keys
) -> PrivateKeyEntry | None:
    """The key entry of a JKS or PKCS12 keystore; the key password keys name the key's own
    password first, then the keystore's (tried for the key when the key's own is not given)."""
    password_key, password = r.find(password_keys)
    key_password_key, key_password = r.find(key_password_keys)
    try:
        return keystores.read_keystore(store.data, store.kind, _revealed(password), _revealed(key_password))
    except StoreError as error:
        own = [name for name in _names(key_password_keys) if name not in _names(password_keys)]
        own.sort(key=lambda name: name.rpartition("ssl.")[0] != store.key.rpartition("ssl.")[0])  # as spelled
        key_blame = _named(key_password_key, key_password, key_password_keys, store.key)
        if own and key_password is not None and key_password_key not in own:
            key_blame += f", tried as the key password: the key's own goes in {own[0]}"
        elif own and key_password is None:
            key_blame = f"{own[0]} is not set"
        blame = {"store": _named(password_key, password, password_keys, store.key), "key": key_blame}
        r.problems.append(_store_problem(store.key, store.location, error, blame))
        return None


def _revealed(value: str | Secret | None) -> str | None:
    return None if value is None else reveal(value)


def _named(key: str, value: str | Secret | None, keys: Keys = (), like: str = "") -> str:
    """The key given, or the one missing, spelled as `like` is (consumer.ssl.*, or ssl.*)."""
    if value is not None:
        return key
    same = [name for name in _names(keys) if name.rpartition("ssl.")[0] == like.rpartition("ssl.")[0]]
    return f"{same[0] if same else key} is not set"


def _store_problem(key: str, location: str, error: StoreError, blame: Mapping[str, str]) -> str:
    """``location.key: /path: what is wrong (the other key to look at)``."""
    named = blame.get(error.about or "")
    return f"{key}: {location}: {error.reason}" + (f" ({named})" if named else "")


def verify_hostname(r: Reader, keys: Keys) -> bool:
    """Kafka's ssl.endpoint.identification.algorithm: 'https' (the default) checks, '' does not."""
    for key in (keys,) if isinstance(keys, str) else keys:
        if key in r.values:
            return reveal(r.values[key]).strip().lower() == "https"
    return True
