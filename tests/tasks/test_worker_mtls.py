"""`conductor start --workers 2` reading from Kafka's mutual TLS listener (CONDUCTOR_SECURE=1
compose/local up: SSL with ssl.client.auth=required) and writing to the secure Elasticsearch.
The client certificate is in a keystore keytool made from compose's PEM files, PKCS12 in one run
and JKS in the other, the CA in a truststore of the other type, every store password from a
${file:...} reference, as Kafka Connect users write them. Every record is written and committed,
and no store or key password is found afterwards; a wrong keystore password stops the start at
once with its reason."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition
from support.pipeline import ROOT, Conductor, unique, wait_for
from support.secure import assert_no_secret_anywhere

from conductor import exitcodes

pytestmark = pytest.mark.servers

RECORDS = 300
PARTITIONS = 2


def mtls_kwargs(secure: dict[str, str]) -> dict[str, Any]:
    """kafka-python over the mutual TLS listener, with compose's client certificate (PEM)."""
    return {
        "bootstrap_servers": secure["CONDUCTOR_KAFKA_MTLS_BOOTSTRAP"],
        "security_protocol": "SSL",
        "ssl_cafile": secure["CONDUCTOR_CA_FILE"],
        "ssl_certfile": secure["CONDUCTOR_CLIENT_CERT_FILE"],
        "ssl_keyfile": secure["CONDUCTOR_CLIENT_KEY_FILE"],
    }


def keytool(*arguments: str) -> None:
    done = subprocess.run(["keytool", "-noprompt", *arguments], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def make_stores(tmp_path: Path, secure: dict[str, str], keystore_type: str) -> dict[str, str]:
    """The client's keystore of `keystore_type` and a truststore of the other type, made by
    keytool from the PEM files; their passwords, random, in a secrets file. For JKS the key has
    a password of its own (Kafka's ssl.key.password)."""
    if shutil.which("keytool") is None:
        pytest.skip("keytool (a JDK) is not on PATH")
    passwords = {name: secrets.token_urlsafe(18) for name in ("store", "key", "trust")}
    if keystore_type == "PKCS12":
        passwords["key"] = passwords["store"]  # keytool keeps one password in a PKCS12 keystore
    key = serialization.load_pem_private_key(Path(secure["CONDUCTOR_CLIENT_KEY_FILE"]).read_bytes(), None)
    cert = x509.load_pem_x509_certificate(Path(secure["CONDUCTOR_CLIENT_CERT_FILE"]).read_bytes())
    source = tmp_path / "from-pem.p12"
    encryption = serialization.BestAvailableEncryption(passwords["store"].encode())
    source.write_bytes(pkcs12.serialize_key_and_certificates(b"client", key, cert, None, encryption))  # type: ignore[arg-type]
    suffix = {"PKCS12": "p12", "JKS": "jks"}
    truststore_type = "JKS" if keystore_type == "PKCS12" else "PKCS12"
    keystore = tmp_path / f"client.{suffix[keystore_type]}"
    truststore = tmp_path / f"truststore.{suffix[truststore_type]}"
    keytool(
        "-importkeystore", "-srckeystore", str(source), "-srcstoretype", "PKCS12",
        "-srcstorepass", passwords["store"], "-destkeystore", str(keystore), "-deststoretype", keystore_type,
        "-deststorepass", passwords["store"], "-destkeypass", passwords["key"],
    )  # fmt: skip
    source.unlink()
    keytool(
        "-importcert", "-alias", "compose-ca", "-file", secure["CONDUCTOR_CA_FILE"], "-keystore", str(truststore),
        "-storetype", truststore_type, "-storepass", passwords["trust"],
    )  # fmt: skip
    secrets_file = tmp_path / "secrets.properties"
    lines = [f"{name}={value}\n" for name, value in passwords.items()]
    secrets_file.write_text("".join(lines) + f"elasticsearch={secure['CONDUCTOR_ELASTICSEARCH_PASSWORD']}\n")
    return {
        "keystore": str(keystore),
        "truststore": str(truststore),
        "truststore_type": truststore_type,
        "secrets": str(secrets_file),
        **{f"{name}_password": value for name, value in passwords.items()},
    }


def connector_config(
    tmp_path: Path, secure: dict[str, str], name: str, topic: str, keystore_type: str, stores: dict[str, str]
) -> Path:
    """Kafka over SSL with a client certificate, as a Kafka Connect sink's config overrides its
    consumer; Elasticsearch over https with a user (the bare ssl.* keys are Stream-Reactor's)."""
    host, port = secure["CONDUCTOR_ELASTICSEARCH_URL"].removeprefix("https://").split(":")
    from_file = lambda key: f"${{file:{stores['secrets']}:{key}}}"
    lines = {
        "name": name,
        "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
        "tasks.max": "2",
        "topics": topic,
        "bootstrap.servers": secure["CONDUCTOR_KAFKA_MTLS_BOOTSTRAP"],
        "security.protocol": "SSL",
        "consumer.override.ssl.keystore.location": stores["keystore"],
        "consumer.override.ssl.keystore.type": keystore_type,
        "consumer.override.ssl.keystore.password": from_file("store"),
        "consumer.override.ssl.key.password": from_file("key"),
        "consumer.override.ssl.truststore.location": stores["truststore"],
        "consumer.override.ssl.truststore.type": stores["truststore_type"],
        "consumer.override.ssl.truststore.password": from_file("trust"),
        "connect.elastic.protocol": "https",
        "connect.elastic.hosts": host,
        "connect.elastic.port": port,
        "connect.elastic.use.http.username": secure["CONDUCTOR_ELASTICSEARCH_USERNAME"],
        "connect.elastic.use.http.password": from_file("elasticsearch"),
        "ssl.truststore.location": secure["CONDUCTOR_CA_FILE"],
        "ssl.truststore.type": "PEM",
        "connect.elastic.kcql": f"INSERT INTO {name} SELECT * FROM {topic} PK reading_id",
        "conductor.linger.ms": "200",
        "listeners": "http://127.0.0.1:0",
    }
    path = tmp_path / f"{name}.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    return path


def topic_with_readings(secure: dict[str, str]) -> str:
    topic = unique("mtls-readings")
    admin = KafkaAdminClient(**mtls_kwargs(secure))
    try:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(**mtls_kwargs(secure), acks="all")
    for n in range(RECORDS):
        value = {"reading_id": n, "sensor_id": f"sensor-{n % 20:02d}", "celsius": 20.5}
        producer.send(topic, key=b"sensor-%d" % (n % 20), value=orjson.dumps(value))
    producer.flush()
    producer.close()
    return topic


def committed_and_end(secure: dict[str, str], group: str, topic: str) -> tuple[int, int]:
    """(the group's committed offsets, the topic's end offsets), summed over its partitions."""
    consumer = KafkaConsumer(**mtls_kwargs(secure), group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = sum(consumer.committed(tp) or 0 for tp in partitions)
        return committed, sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


@pytest.mark.parametrize("keystore_type", ["PKCS12", "JKS"])
def test_the_elasticsearch_sink_reads_over_mutual_tls_with_a_java_keystore(
    secure, tmp_path: Path, conductors, keystore_type: str
) -> None:
    stores = make_stores(tmp_path, secure, keystore_type)
    topic = topic_with_readings(secure)
    name = unique(f"mtls-{keystore_type.lower()}")
    conductor = conductors(connector_config(tmp_path, secure, name, topic, keystore_type, stores), workers=2)
    auth = (secure["CONDUCTOR_ELASTICSEARCH_USERNAME"], secure["CONDUCTOR_ELASTICSEARCH_PASSWORD"])
    base, ca = secure["CONDUCTOR_ELASTICSEARCH_URL"], secure["CONDUCTOR_CA_FILE"]

    def count() -> int:
        requests.post(f"{base}/{name}/_refresh", auth=auth, verify=ca, timeout=10)
        answer = requests.get(f"{base}/{name}/_count", auth=auth, verify=ca, timeout=10)
        return answer.json().get("count", 0) if answer.ok else 0

    wait_for(lambda: count() == RECORDS, 90, f"{RECORDS} documents, read over mutual TLS")
    wait_for(
        lambda: committed_and_end(secure, f"connect-{name}", topic) == (RECORDS, RECORDS),
        30,
        "offsets committed to the end over mutual TLS",
    )
    passwords = {f"STORE_{key.upper()}": value for key, value in stores.items() if key.endswith("_password")}
    assert_no_secret_anywhere({**secure, **passwords}, conductor, name)
    for state in conductor.state_dir.rglob("*"):
        assert not state.is_file() or b"PRIVATE KEY" not in state.read_bytes(), state
    assert "PRIVATE KEY" not in conductor.full_log()
    assert conductor.stop() == 0
    assert count() == RECORDS


def test_a_wrong_keystore_password_stops_the_start_at_once(secure, tmp_path: Path) -> None:
    """A config problem, before any worker: `conductor start` exits 2 naming the keystore and its
    password key, without the password; `conductor validate` says the same."""
    stores = make_stores(tmp_path, secure, "JKS")
    wrong = "Wr0ng-" + secrets.token_urlsafe(12)
    secrets_file = Path(stores["secrets"])
    secrets_file.write_text(
        secrets_file.read_text().replace(f"store={stores['store_password']}", f"store={wrong}")
    )
    name = unique("mtls-wrong")
    config = connector_config(tmp_path, secure, name, "mtls-never-read", "JKS", stores)
    reason = (
        f"consumer.override.ssl.keystore.location: {stores['keystore']}: wrong keystore password, or the file "
        f"was changed (its integrity check failed) (consumer.override.ssl.keystore.password)"
    )
    conductor = Conductor(config, tmp_path / "state", workers=2).start()
    assert conductor.wait(30) == exitcodes.CONFIG_ERROR
    log = conductor.full_log()
    assert reason in log, log[-3000:]
    assert "worker" not in log.lower(), "no worker was started"
    validate = subprocess.run(
        [sys.executable, "-m", "conductor.cli", "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert validate.returncode == exitcodes.INVALID and reason in validate.stdout + validate.stderr
    for text in (log, validate.stdout + validate.stderr):
        assert wrong not in text and stores["store_password"] not in text
