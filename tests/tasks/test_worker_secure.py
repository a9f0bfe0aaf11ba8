"""`conductor start` on the servers with security on (CONDUCTOR_SECURE=1 compose/local up): Kafka
over SASL_SSL with SCRAM, Elasticsearch over https with a user, Cassandra with a password over
TLS; every secret read from a ${file:...} reference, and none of them found afterwards in the
log, the state files, the REST API or the metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import requests
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from support.pipeline import unique, wait_for
from support.secure import assert_no_secret_anywhere, cassandra_session, committed, kafka_kwargs

pytestmark = pytest.mark.servers

RECORDS = 500


def topic_with_readings(secure: dict[str, str], bad: int = 0) -> str:
    """RECORDS readings, then `bad` ones whose celsius is not a number."""
    topic = unique("secure-readings")
    admin = KafkaAdminClient(**kafka_kwargs(secure))
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(**kafka_kwargs(secure), acks="all")
    for n in range(RECORDS):
        value = {
            "reading_id": n,
            "sensor_id": f"sensor-{n % 20:02d}",
            "celsius": 20.5,
            "timestamp": 1_767_000_000_000,
        }
        producer.send(topic, key=b"sensor-%d" % (n % 20), value=orjson.dumps(value))
    for n in range(bad):
        value = {"reading_id": RECORDS + n, "sensor_id": "sensor-bad", "celsius": "hot", "timestamp": 0}
        producer.send(topic, key=b"sensor-bad", value=orjson.dumps(value))
    producer.flush()
    producer.close()
    return topic


def documents(secure: dict[str, str], index: str) -> int:
    """The index's document count over https, after a refresh (0 before it exists)."""
    base, ca = secure["CONDUCTOR_ELASTICSEARCH_URL"], secure["CONDUCTOR_CA_FILE"]
    auth = (secure["CONDUCTOR_ELASTICSEARCH_USERNAME"], secure["CONDUCTOR_ELASTICSEARCH_PASSWORD"])
    requests.post(f"{base}/{index}/_refresh", auth=auth, verify=ca, timeout=10)
    answer = requests.get(f"{base}/{index}/_count", auth=auth, verify=ca, timeout=10)
    return answer.json().get("count", 0) if answer.ok else 0


def connector_config(
    tmp_path: Path, secure: dict[str, str], name: str, topic: str, store: dict[str, str]
) -> Path:
    """The Kafka side as Kafka Connect users write it, the passwords from a secrets file."""
    secrets = tmp_path / "secrets.properties"
    secrets.write_text(
        "".join(
            f"{key}={secure[f'CONDUCTOR_{key.upper()}_PASSWORD']}\n"
            for key in ("kafka", "elasticsearch", "cassandra")
        )
    )
    lines = {
        "name": name,
        "tasks.max": "2",
        "topics": topic,
        "bootstrap.servers": secure["CONDUCTOR_KAFKA_BOOTSTRAP"],
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{secure["CONDUCTOR_KAFKA_USERNAME"]}" password="${{file:{secrets}:kafka}}";',
        "conductor.linger.ms": "200",
        "listeners": "http://127.0.0.1:0",
        **{key: value.replace("SECRETS", str(secrets)) for key, value in store.items()},
    }
    path = tmp_path / f"{name}.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    return path


def test_the_elasticsearch_sink_over_sasl_ssl_and_https(secure, tmp_path: Path, conductors) -> None:
    topic = topic_with_readings(secure)
    name = unique("secure-es")
    host, port = secure["CONDUCTOR_ELASTICSEARCH_URL"].removeprefix("https://").split(":")
    config = connector_config(
        tmp_path,
        secure,
        name,
        topic,
        {
            "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
            "connect.elastic.protocol": "https",
            "connect.elastic.hosts": host,
            "connect.elastic.port": port,
            "connect.elastic.use.http.username": secure["CONDUCTOR_ELASTICSEARCH_USERNAME"],
            "connect.elastic.use.http.password": "${file:SECRETS:elasticsearch}",
            # One truststore, given once, serves Kafka and Elasticsearch (the bare ssl.* keys).
            "ssl.truststore.location": secure["CONDUCTOR_CA_FILE"],
            "ssl.truststore.type": "PEM",
            "connect.elastic.kcql": f"INSERT INTO {name} SELECT * FROM {topic} PK reading_id",
        },
    )
    conductor = conductors(config, workers=2)
    wait_for(lambda: documents(secure, name) == RECORDS, 90, f"{RECORDS} documents over https")
    wait_for(
        lambda: committed(secure, f"connect-{name}", topic) == RECORDS, 30, "offsets committed over SASL_SSL"
    )
    assert_no_secret_anywhere(secure, conductor, name)
    assert conductor.stop() == 0


def test_the_cassandra_sink_over_sasl_ssl_and_tls(secure, tmp_path: Path, conductors) -> None:
    with cassandra_session(secure) as session:
        keyspace = unique("secure_ks").replace("-", "_")
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(
            f"CREATE TABLE {keyspace}.readings (reading_id int PRIMARY KEY, sensor_id text, celsius double)"
        )
        try:
            topic = topic_with_readings(secure)
            name = unique("secure-cassandra")
            config = connector_config(
                tmp_path,
                secure,
                name,
                topic,
                {
                    "connector.class": "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
                    "connect.cassandra.contact.points": secure["CONDUCTOR_CASSANDRA_HOSTS"],
                    "connect.cassandra.port": secure["CONDUCTOR_CASSANDRA_PORT"],
                    "connect.cassandra.key.space": keyspace,
                    "connect.cassandra.username": secure["CONDUCTOR_CASSANDRA_USERNAME"],
                    "connect.cassandra.password": "${file:SECRETS:cassandra}",
                    # Kafka's truststore by the consumer's key; Cassandra's by its own.
                    "consumer.ssl.truststore.location": secure["CONDUCTOR_CA_FILE"],
                    "consumer.ssl.truststore.type": "PEM",
                    "connect.cassandra.ssl.enabled": "true",
                    "connect.cassandra.trust.store.path": secure["CONDUCTOR_CA_FILE"],
                    "connect.cassandra.trust.store.type": "PEM",
                    "connect.cassandra.kcql": f"INSERT INTO readings SELECT reading_id, sensor_id, celsius FROM {topic}",
                },
            )
            conductor = conductors(config, workers=2)
            rows = lambda: session.execute(f"SELECT COUNT(*) FROM {keyspace}.readings").one()[0]
            wait_for(lambda: rows() == RECORDS, 90, f"{RECORDS} rows over TLS")
            wait_for(lambda: committed(secure, f"connect-{name}", topic) == RECORDS, 30, "offsets committed")
            assert_no_secret_anywhere(secure, conductor, name)
            assert conductor.stop() == 0
        finally:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


def test_dead_letters_through_a_producer_of_their_own_with_no_secret_in_their_headers(
    secure, tmp_path: Path, conductors
) -> None:
    """The failure path: records Elasticsearch refuses go to the dead-letter topic through a
    producer that signs in its own way (producer.sasl.*: PLAIN, where the consumer uses SCRAM),
    the Elasticsearch password rides in the host URL, and no password is in the dead letters'
    headers, the log, the state or the REST API."""
    bad = 3
    topic = topic_with_readings(secure, bad=bad)
    name, dlq = unique("secure-dlq"), unique("secure-dead-letters")
    base, ca = secure["CONDUCTOR_ELASTICSEARCH_URL"], secure["CONDUCTOR_CA_FILE"]
    auth = (secure["CONDUCTOR_ELASTICSEARCH_USERNAME"], secure["CONDUCTOR_ELASTICSEARCH_PASSWORD"])
    mapping = {"mappings": {"properties": {"celsius": {"type": "float"}}}}
    requests.put(f"{base}/{name}", json=mapping, auth=auth, verify=ca, timeout=30).raise_for_status()
    user = secure["CONDUCTOR_ELASTICSEARCH_USERNAME"]
    config = connector_config(
        tmp_path,
        secure,
        name,
        topic,
        {
            "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
            "connect.elastic.hosts": base.replace(
                "https://", f"https://{user}:${{file:SECRETS:elasticsearch}}@"
            ),
            "ssl.truststore.location": ca,
            "connect.elastic.kcql": f"INSERT INTO {name} SELECT * FROM {topic} PK reading_id",
            "connect.elastic.error.policy": "NOOP",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.topic.replication.factor": "1",
            "errors.deadletterqueue.context.headers.enable": "true",
            "producer.sasl.mechanism": "PLAIN",
            "producer.sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{secure["CONDUCTOR_KAFKA_USERNAME"]}" password="${{file:SECRETS:kafka}}";',
        },
    )
    # The producer's own password is checked before anything runs, and named as the producer's.
    wrong = config.with_name("wrong-producer.properties")
    wrong.write_text(
        "".join(
            line.replace(":kafka}", ":elasticsearch}")
            if line.startswith("producer.sasl.jaas.config")
            else line
            for line in config.read_text().splitlines(keepends=True)
        )
    )
    validated = subprocess.run(
        [sys.executable, "-m", "conductor.cli", "validate", "--config", str(wrong)],
        capture_output=True,
        text=True,
    )
    assert validated.returncode == 1
    assert "refused user" in validated.stderr and "(PLAIN)" in validated.stderr, validated.stderr
    assert "(the producer's settings)" in validated.stderr, validated.stderr
    conductor = conductors(config, workers=2)

    wait_for(
        lambda: committed(secure, f"connect-{name}", topic) == RECORDS + bad, 90, "every offset committed"
    )
    assert documents(secure, name) == RECORDS
    consumer = KafkaConsumer(
        dlq, **kafka_kwargs(secure), auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    dead = list(consumer)
    consumer.close()
    assert sorted(orjson.loads(record.value)["reading_id"] for record in dead) == list(
        range(RECORDS, RECORDS + bad)
    )
    secrets = [secure[key] for key in secure if key.endswith("_PASSWORD")]
    for record in dead:
        headers = {key: value.decode(errors="replace") for key, value in record.headers}
        assert "failed to parse field [celsius]" in headers["__connect.errors.exception.message"]
        for secret in secrets:
            assert all(secret not in value for value in headers.values()), (
                "a password in a dead letter's headers"
            )
    assert_no_secret_anywhere(secure, conductor, name)
    assert conductor.stop() == 0
