"""Trust and key stores in JKS and PKCS12 (conductor/config/keystores.py), made by the JDK's
keytool and by `cryptography`: each reads to the certificates and key of the PEM files they
were made from, each bad store stops the config at load with its reason and its key, and no
damaged JKS store ends in anything but that reason."""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.certs import make_certificates

from conductor.config import parse_config
from conductor.config.keystores import (
    PrivateKeyEntry,
    StoreError,
    load_key_entry,
    read_keystore,
    read_truststore,
    store_type,
)
from conductor.config.security import TlsSettings
from conductor.errors import ConfigError

STORE_PASSWORD = "store-pass-1"
KEY_PASSWORD = "key-pass-22"  # the JKS keystore's key has a password of its own
INTEGRITY_FAILED = "wrong keystore password, or the file was changed (its integrity check failed)"
KAFKA_SSL = {
    "name": "es-sink",
    "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
    "topics": "readings",
    "connect.elastic.kcql": "INSERT INTO readings SELECT * FROM readings",
    "security.protocol": "SSL",
}


@dataclass(frozen=True)
class Stores:
    folder: Path
    ca: x509.Certificate
    cert: x509.Certificate
    key_pem: Path  # the client's key, encrypted with `key_password`
    key_password: str

    def path(self, name: str) -> Path:
        return self.folder / name

    def data(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def private_numbers(self) -> object:
        key = serialization.load_pem_private_key(self.key_pem.read_bytes(), self.key_password.encode())
        return key.private_numbers()  # type: ignore[union-attr]


def keytool(*arguments: str) -> None:
    done = subprocess.run(["keytool", "-noprompt", *arguments], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    """PEM files, a PKCS12 keystore made from them by cryptography, and keytool's stores: the
    CA in a JKS and a PKCS12 truststore, the key entry in JKS (with its own key password) and
    in PKCS12, and a JKS keystore with two keys of its own making."""
    if shutil.which("keytool") is None:
        pytest.skip("keytool (a JDK) is not on PATH")
    folder = tmp_path_factory.mktemp("stores")
    certs = make_certificates(folder)
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(certs.cert.read_bytes())
    key = serialization.load_pem_private_key(certs.key.read_bytes(), certs.password.encode())
    encryption = serialization.BestAvailableEncryption(STORE_PASSWORD.encode())
    (folder / "client.p12").write_bytes(
        pkcs12.serialize_key_and_certificates(b"client", key, cert, [ca], encryption)  # type: ignore[arg-type]
    )
    store = ("-storepass", STORE_PASSWORD)
    for kind, name in (("JKS", "trust.jks"), ("PKCS12", "trust.p12")):
        keytool("-importcert", "-alias", "ca", "-file", str(certs.ca), "-keystore", str(folder / name), "-storetype", kind, *store)  # fmt: skip
    source = (
        "-srckeystore",
        str(folder / "client.p12"),
        "-srcstoretype",
        "PKCS12",
        "-srcstorepass",
        STORE_PASSWORD,
    )
    keytool("-importkeystore", *source, "-destkeystore", str(folder / "client.jks"), "-deststoretype", "JKS", "-deststorepass", STORE_PASSWORD, "-destkeypass", KEY_PASSWORD)  # fmt: skip
    keytool("-importkeystore", *source, "-destkeystore", str(folder / "client-keytool.p12"), "-deststoretype", "PKCS12", "-deststorepass", STORE_PASSWORD)  # fmt: skip
    for alias, algorithm in (("rsa", "RSA"), ("ec", "EC")):
        keytool("-genkeypair", "-alias", alias, "-keyalg", algorithm, "-dname", f"CN={alias}", "-keystore", str(folder / "two-keys.jks"), "-storetype", "JKS", *store, "-keypass", STORE_PASSWORD)  # fmt: skip
    return Stores(folder, ca, cert, certs.key, certs.password)


def certificates(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def entry_of(stores: Stores, name: str, key_password: str | None = None) -> PrivateKeyEntry:
    data = stores.data(name)
    return read_keystore(data, store_type(data, None), STORE_PASSWORD, key_password)


# -- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["trust.jks", "trust.p12"])
def test_a_truststore_reads_to_the_ca(stores: Stores, name: str) -> None:
    data = stores.data(name)
    assert certificates(read_truststore(data, store_type(data, None), STORE_PASSWORD)) == [stores.ca]


def test_a_jks_truststore_reads_without_its_password_unchecked_as_in_java(stores: Stores) -> None:
    data = bytearray(stores.data("trust.jks"))
    data[-1] ^= 0xFF  # its integrity digest no longer matches
    assert certificates(read_truststore(bytes(data), "JKS", None)) == [stores.ca]
    with pytest.raises(StoreError, match="integrity check failed"):
        read_truststore(bytes(data), "JKS", STORE_PASSWORD)


@pytest.mark.parametrize(
    ("name", "key_password"),
    [("client.jks", KEY_PASSWORD), ("client.p12", None), ("client-keytool.p12", None)],
)
def test_a_keystore_reads_to_the_certificate_chain_and_key_of_the_pem_files(
    stores: Stores, name: str, key_password: str | None
) -> None:
    entry = entry_of(stores, name, key_password)
    assert entry.alias == "client"
    assert certificates(entry.chain) == [stores.cert, stores.ca]
    key = serialization.load_pem_private_key(entry.key.reveal().encode(), None)
    assert key.private_numbers() == stores.private_numbers()  # type: ignore[union-attr]
    assert "PRIVATE KEY" not in repr(entry) and "BEGIN" not in repr(entry)


def test_a_keystore_is_also_a_truststore_of_its_certificates(stores: Stores) -> None:
    """Java trusts the first certificate of each key entry of a JKS truststore."""
    assert certificates(read_truststore(stores.data("client.jks"), "JKS", STORE_PASSWORD)) == [stores.cert]


def test_jks_and_pkcs12_stores_give_a_mutual_tls_handshake(stores: Stores) -> None:
    """A server that asks for a client certificate signed by the CA takes the one of the JKS
    keystore, over the CA of the PKCS12 truststore."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(stores.path("ca.pem")))
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_cert_chain(stores.path("cert.pem"), stores.key_pem, password=stores.key_password)
    cadata = read_truststore(stores.data("trust.p12"), "PKCS12", STORE_PASSWORD)
    tls = TlsSettings(True, cadata=cadata, key_entry=entry_of(stores, "client.jks", KEY_PASSWORD))
    client = tls.context()
    assert client is not None
    seen: list[object] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            connection, _ = listener.accept()
            with server.wrap_socket(connection, server_side=True) as wrapped:
                seen.append(wrapped.getpeercert())
                wrapped.sendall(b"ok")

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(listener.getsockname()) as raw,
            client.wrap_socket(raw, server_hostname="localhost") as wrapped,
        ):
            assert wrapped.recv(2) == b"ok"
        thread.join(10)
    assert seen and dict(x[0] for x in seen[0]["subject"]) == {"commonName": "localhost"}  # type: ignore[index]


def test_load_key_entry_leaves_no_file_behind(stores: Stores, tmp_path: Path, monkeypatch) -> None:
    """Without memfd (not Linux), the PEM goes through a 0600 file in a private folder, removed
    at once."""
    monkeypatch.delattr("os.memfd_create", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    load_key_entry(ssl.create_default_context(), entry_of(stores, "client.p12"))
    assert list(tmp_path.iterdir()) == []


# -- what is wrong, said ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "password", "key_password", "reason", "about"),
    [
        ("client.jks", "wrong-password", KEY_PASSWORD, INTEGRITY_FAILED, "store"),
        ("client.jks", STORE_PASSWORD, None, "wrong key password: it does not open the private key", "key"),
        ("client.jks", STORE_PASSWORD, "wrong-password", "wrong key password: it does not open the private key", "key"),
        ("client.jks", None, None, "a password is needed to open its private key", "store"),
        ("client.p12", "wrong-password", None, "wrong password, or not a PKCS12 file", "store"),
        ("trust.jks", STORE_PASSWORD, None, "no private key in it (only trusted certificates: a truststore?)", None),
        ("trust.p12", STORE_PASSWORD, None, "no private key in it (only certificates: a truststore?)", None),
        ("two-keys.jks", STORE_PASSWORD, None, "2 private keys (ec, rsa); keep the one to present in it", None),
    ],
    ids=["jks-store-password", "jks-key-password-not-set", "jks-key-password", "jks-no-password",
         "pkcs12-password", "jks-truststore", "pkcs12-truststore", "two-keys"],
)  # fmt: skip
def test_a_keystore_that_cannot_be_used_says_why(
    stores: Stores, name: str, password: str | None, key_password: str | None, reason: str, about: str | None
) -> None:
    data = stores.data(name)
    with pytest.raises(StoreError) as refused:
        read_keystore(data, store_type(data, None), password, key_password)
    assert (refused.value.reason, refused.value.about) == (reason, about)


def test_a_damaged_jks_store_says_where(stores: Stores) -> None:
    data = stores.data("trust.jks")
    with pytest.raises(StoreError, match=r"^damaged: it ends at byte 100, inside an entry$"):
        read_truststore(data[:100], "JKS", None)
    with pytest.raises(StoreError, match=r"^damaged: 3 bytes after its integrity digest$"):
        read_truststore(data + b"abc", "JKS", None)
    with pytest.raises(StoreError, match=r"^damaged: JKS version 7, not 1 or 2$"):
        read_truststore(data[:4] + b"\0\0\0\x07" + data[8:], "JKS", None)


@pytest.mark.parametrize(
    ("data", "declared", "reason", "about"),
    [
        (b"\xfe\xed\xfe\xed\0\0\0\x02", "PEM", "a JKS store, not PEM text", "type"),
        (b"0\x82\x05\x00", "PEM", "binary (PKCS12 or DER), not PEM text", "type"),
        (b"-----BEGIN CERTIFICATE-----\n", "JKS", "PEM text, not a JKS store", "type"),
        (b"-----BEGIN CERTIFICATE-----\n", "PKCS12", "PEM text, not a PKCS12 store", "type"),
        (b"\xce\xce\xce\xce\0\0\0\x02", None, "a JCEKS keystore, which conductor does not read: convert it with "
         "`keytool -importkeystore -deststoretype PKCS12`", None),
        (b"hello", None, "not a JKS, PKCS12 or PEM store", None),
        (b"", "JKS", "not a JKS, PKCS12 or PEM store", None),
    ],
)  # fmt: skip
def test_a_type_that_does_not_match_the_content_is_refused(
    data: bytes, declared: str | None, reason: str, about: str | None
) -> None:
    with pytest.raises(StoreError) as refused:
        store_type(data, declared)
    assert (refused.value.reason, refused.value.about) == (reason, about)


def test_jks_and_pkcs12_stand_for_each_other_as_in_java(stores: Stores) -> None:
    """Kafka's default type is JKS, and Java reads a PKCS12 file as JKS (keystore.type.compat)."""
    assert store_type(stores.data("client.p12"), "JKS") == "PKCS12"
    assert store_type(stores.data("client.jks"), "PKCS12") == "JKS"


# -- at config load ---------------------------------------------------------------------------


def problems(raw: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse_config({**KAFKA_SSL, **raw}, environ={})
    return refused.value.problems


def test_kafka_reads_jks_and_pkcs12_stores_at_load_and_builds_its_context(
    stores: Stores, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.properties"
    secrets.write_text(f"store={STORE_PASSWORD}\nkey={KEY_PASSWORD}\n")
    raw = {
        "consumer.override.ssl.truststore.location": str(stores.path("trust.p12")),
        "consumer.override.ssl.truststore.type": "PKCS12",
        "consumer.override.ssl.truststore.password": f"${{file:{secrets}:store}}",
        "consumer.override.ssl.keystore.location": str(stores.path("client.jks")),
        "consumer.override.ssl.keystore.type": "JKS",
        "consumer.override.ssl.keystore.password": f"${{file:{secrets}:store}}",
        "consumer.override.ssl.key.password": f"${{file:{secrets}:key}}",
    }
    config = parse_config({**KAFKA_SSL, **raw}, environ={})
    tls = config.kafka.security.tls
    assert tls.key_entry is not None and certificates(tls.cadata or "") == [stores.ca]
    assert config.notices == ()
    for shown in (repr(config), str(config)):
        assert STORE_PASSWORD not in shown and KEY_PASSWORD not in shown and "PRIVATE KEY" not in shown
    assert isinstance(config.kafka.connection_kwargs()["ssl_context"], ssl.SSLContext)


def test_a_store_that_cannot_be_used_stops_the_config_naming_its_keys(stores: Stores) -> None:
    jks, p12 = str(stores.path("client.jks")), str(stores.path("client.p12"))
    keystore = {"consumer.ssl.keystore.location": jks, "consumer.ssl.key.password": KEY_PASSWORD}
    assert problems({**keystore, "consumer.ssl.keystore.password": "wrong"}) == [
        f"consumer.ssl.keystore.location: {jks}: {INTEGRITY_FAILED} (consumer.ssl.keystore.password)"
    ]
    assert problems(
        {"consumer.ssl.keystore.location": jks, "consumer.ssl.keystore.password": STORE_PASSWORD}
    ) == [
        f"consumer.ssl.keystore.location: {jks}: wrong key password: it does not open the private key "
        f"(consumer.ssl.keystore.password, tried as the key password: the key's own goes in consumer.ssl.key.password)"
    ]
    assert problems({"consumer.ssl.keystore.location": p12}) == [
        f"consumer.ssl.keystore.location: {p12}: wrong password, or not a PKCS12 file "
        f"(consumer.ssl.keystore.password is not set)"
    ]
    assert problems({"consumer.ssl.keystore.location": jks, "consumer.ssl.keystore.type": "PEM"}) == [
        f"consumer.ssl.keystore.location: {jks}: a JKS store, not PEM text (consumer.ssl.keystore.type)"
    ]
    assert problems({"consumer.ssl.truststore.location": "/nonexistent/ca.jks"}) == [
        "consumer.ssl.truststore.location: cannot read /nonexistent/ca.jks: No such file or directory"
    ]
    assert problems(
        {"consumer.ssl.truststore.location": jks, "consumer.ssl.truststore.password": "wrong"}
    ) == [f"consumer.ssl.truststore.location: {jks}: {INTEGRITY_FAILED} (consumer.ssl.truststore.password)"]


def test_the_elasticsearch_and_cassandra_keys_read_stores_too(stores: Stores) -> None:
    https = {"connect.elastic.protocol": "https", "security.protocol": "PLAINTEXT"}
    elastic = parse_config(
        {
            **KAFKA_SSL,
            **https,
            "ssl.truststore.location": str(stores.path("trust.jks")),
            "ssl.truststore.password": STORE_PASSWORD,
            "ssl.keystore.location": str(stores.path("client-keytool.p12")),
            "ssl.keystore.password": STORE_PASSWORD,
        },
        environ={},
    ).elastic
    assert elastic is not None and elastic.tls.key_entry is not None
    assert certificates(elastic.tls.cadata or "") == [stores.ca]
    cassandra = parse_config(
        {
            "name": "cassandra-sink",
            "connector.class": "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
            "topics": "readings",
            "connect.cassandra.key.space": "iot",
            "connect.cassandra.kcql": "INSERT INTO readings SELECT * FROM readings",
            "connect.cassandra.ssl.enabled": "true",
            "connect.cassandra.ssl.client.cert.auth": "true",
            "connect.cassandra.trust.store.path": str(stores.path("trust.p12")),
            "connect.cassandra.trust.store.password": STORE_PASSWORD,
            "connect.cassandra.key.store.path": str(stores.path("client.p12")),
            "connect.cassandra.key.store.password": STORE_PASSWORD,
        },
        environ={},
    ).cassandra
    assert cassandra is not None and cassandra.tls.key_entry is not None and cassandra.tls.cadata


def test_a_truststore_password_beside_a_pem_truststore_has_no_effect(stores: Stores) -> None:
    config = parse_config(
        {
            **KAFKA_SSL,
            "consumer.ssl.truststore.location": str(stores.path("ca.pem")),
            "consumer.ssl.truststore.password": "pw",
        },
        environ={},
    )
    assert config.notices == (
        "consumer.ssl.truststore.password has no effect here: a PEM truststore has no password",
    )


def test_the_rest_listener_takes_a_pkcs12_keystore(stores: Stores) -> None:
    from conductor.api import tls_context

    https = {
        "listeners": "https://127.0.0.1:0",
        "listeners.https.ssl.keystore.location": str(stores.path("client.p12")),
        "listeners.https.ssl.keystore.type": "PKCS12",
        "listeners.https.ssl.keystore.password": STORE_PASSWORD,
    }
    rest = parse_config({**KAFKA_SSL, "security.protocol": "PLAINTEXT", **https}, environ={}).rest
    assert rest.scheme == "https" and isinstance(tls_context(rest), ssl.SSLContext)
    assert STORE_PASSWORD not in repr(rest)


# -- damaged stores, at random ------------------------------------------------------------------


def _reseal(data: bytes, password: str) -> bytes:
    """The store with its integrity digest made anew, so that the reader goes past that check."""
    body = data[:-20]
    return body + hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
    reseal=st.booleans(),
)
def test_a_damaged_jks_store_is_a_store_error_never_another(
    stores: Stores, edits: list[tuple[int, int]], cut: int | None, reseal: bool
) -> None:
    for name in ("client.jks", "trust.jks"):
        data = bytearray(stores.data(name))
        for at, value in edits:
            data[at % len(data)] = value
        damaged = bytes(data[: cut % (len(data) + 1)] if cut is not None else data)
        if reseal and len(damaged) > 20:
            damaged = _reseal(damaged, STORE_PASSWORD)
        for read in (
            lambda: read_truststore(damaged, "JKS", None),
            lambda: read_truststore(damaged, "JKS", STORE_PASSWORD),
            lambda: read_keystore(damaged, "JKS", STORE_PASSWORD, KEY_PASSWORD),
        ):
            try:
                read()
            except StoreError as error:
                assert error.reason
