"""A wrong password, an untrusted certificate, a name the certificate does not hold, and a missing
file: each stops `conductor start` at boot with its reason (exit 2, no respawn loop), and
`conductor validate` says the same before anything runs. Against the secure servers
(CONDUCTOR_SECURE=1 compose/local up); the wrong passwords are secrets too, and are searched for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pipeline import unique

pytestmark = pytest.mark.servers

WRONG = "Wr0ng-" + "x" * 10  # a password no server has, searched for afterwards


def config_lines(tmp_path: Path, secure: dict[str, str], **changes: str | None) -> Path:
    """An Elasticsearch sink over the secure servers, every secret from a file; `changes` set or
    (with None) drop keys."""
    secrets = tmp_path / "secrets.properties"
    secrets.write_text(
        f"kafka={secure['CONDUCTOR_KAFKA_PASSWORD']}\n"
        f"elasticsearch={secure['CONDUCTOR_ELASTICSEARCH_PASSWORD']}\n"
        f"cassandra={secure['CONDUCTOR_CASSANDRA_PASSWORD']}\n"
        f"wrong={WRONG}\n"
    )
    host, port = secure["CONDUCTOR_ELASTICSEARCH_URL"].removeprefix("https://").split(":")
    name = unique("refused")
    lines: dict[str, str | None] = {
        "name": name,
        "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
        "topics": "refusals",
        "bootstrap.servers": secure["CONDUCTOR_KAFKA_BOOTSTRAP"],
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{secure["CONDUCTOR_KAFKA_USERNAME"]}" password="${{file:{secrets}:kafka}}";',
        "consumer.ssl.truststore.location": secure["CONDUCTOR_CA_FILE"],
        "ssl.truststore.location": secure["CONDUCTOR_CA_FILE"],
        "connect.elastic.protocol": "https",
        "connect.elastic.hosts": host,
        "connect.elastic.port": port,
        "connect.elastic.use.http.username": secure["CONDUCTOR_ELASTICSEARCH_USERNAME"],
        "connect.elastic.use.http.password": f"${{file:{secrets}:elasticsearch}}",
        "connect.elastic.kcql": f"INSERT INTO {name} SELECT * FROM refusals",
        "listeners": "http://127.0.0.1:0",
    }
    if changes.pop("store", None) == "cassandra":
        for key in [key for key in lines if "elastic" in key or key.startswith("ssl.")]:
            del lines[key]
        lines.update(
            {
                "connector.class": "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
                "connect.cassandra.contact.points": secure["CONDUCTOR_CASSANDRA_HOSTS"],
                "connect.cassandra.port": secure["CONDUCTOR_CASSANDRA_PORT"],
                "connect.cassandra.key.space": "refusals",
                "connect.cassandra.username": secure["CONDUCTOR_CASSANDRA_USERNAME"],
                "connect.cassandra.password": f"${{file:{secrets}:cassandra}}",
                "connect.cassandra.ssl.enabled": "true",
                "connect.cassandra.trust.store.path": secure["CONDUCTOR_CA_FILE"],
                "connect.cassandra.kcql": "INSERT INTO readings SELECT * FROM refusals",
            }
        )
    lines.update(
        {key: value.replace("SECRETS", str(secrets)) if value else value for key, value in changes.items()}
    )
    path = tmp_path / f"{name}.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items() if value is not None))
    return path


@pytest.fixture
def relay(secure: dict[str, str]) -> Iterator[str]:
    """127.0.0.2:<port> carried to the secure Kafka: the same server certificate, reached by an
    address it does not name."""
    target = secure["CONDUCTOR_KAFKA_BOOTSTRAP"].split(":")
    listener = socket.create_server(("127.0.0.2", 0))
    stop = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            server = socket.create_connection((target[0], int(target[1])))
            threading.Thread(target=pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=pipe, args=(server, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.2:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()


def jaas(secure: dict[str, str], password_key: str = "wrong", user: str | None = None) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user or secure["CONDUCTOR_KAFKA_USERNAME"]}" password="${{file:SECRETS:{password_key}}}";'
    )


def run(state: Path, *arguments: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "conductor.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CONDUCTOR_STATE_DIR": str(state)},
    )


CASES = {
    "kafka-password": (
        lambda secure, relay: {"sasl.jaas.config": jaas(secure)},
        ("Kafka at 127.0.0.1:29092 refused user 'conductor' (SCRAM-SHA-512)", "sasl.jaas.config"),
    ),
    "kafka-user": (
        lambda secure, relay: {"sasl.jaas.config": jaas(secure, "kafka", user="nobody")},
        ("refused user 'nobody' (SCRAM-SHA-512)", "invalid credentials"),
    ),
    "kafka-mechanism": (
        lambda secure, relay: {"sasl.mechanism": "SCRAM-SHA-256"},
        ("does not offer sasl.mechanism SCRAM-SHA-256 (it offers: SCRAM-SHA-512, PLAIN)",),
    ),
    "kafka-untrusted": (
        # Kafka's own truststore (the system's CAs) over the bare key, which trusts the servers' CA
        lambda secure, relay: {"consumer.ssl.truststore.location": "/etc/ssl/certs/ca-certificates.crt"},
        ("the server's certificate is not trusted", "consumer.ssl.truststore.location"),
    ),
    "kafka-hostname": (
        lambda secure, relay: {"bootstrap.servers": relay},
        ("the server's certificate does not name '127.0.0.2'", "ssl.endpoint.identification.algorithm"),
    ),
    "kafka-protocol": (
        lambda secure, relay: {"security.protocol": "SSL", "sasl.mechanism": None, "sasl.jaas.config": None},
        ("closed the connection without an answer to SSL", "security.protocol"),
    ),
    "kafka-truststore-missing": (
        lambda secure, relay: {"consumer.ssl.truststore.location": "/nonexistent/ca.pem"},
        ("/nonexistent/ca.pem",),
    ),
    "elasticsearch-password": (
        lambda secure, relay: {"connect.elastic.use.http.password": "${file:SECRETS:wrong}"},
        ("connect.elastic.use.http.username", "401"),
    ),
    "elasticsearch-untrusted": (
        lambda secure, relay: {"ssl.truststore.location": None},
        ("certificate", "ssl.truststore.location"),
    ),
    "cassandra-password": (
        lambda secure, relay: {"store": "cassandra", "connect.cassandra.password": "${file:SECRETS:wrong}"},
        ("refused user 'conductor'", "Provided username conductor and/or password are incorrect"),
    ),
    "cassandra-no-user": (
        lambda secure, relay: {
            "store": "cassandra",
            "connect.cassandra.username": None,
            "connect.cassandra.password": None,
        },
        ("asks for a user", "connect.cassandra.username"),
    ),
    "cassandra-untrusted": (
        lambda secure, relay: {"store": "cassandra", "connect.cassandra.trust.store.path": None},
        ("the server's certificate is not trusted", "connect.cassandra.trust.store.path"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refusal_stops_the_start_with_its_reason(secure, relay, tmp_path: Path, case: str) -> None:
    changes, reasons = CASES[case]
    config = config_lines(tmp_path, secure, **changes(secure, relay))
    state = tmp_path / "state"
    started = run(state, "start", "--config", config, "--workers", "2")
    said = started.stdout + started.stderr
    assert started.returncode == 2, said
    for reason in reasons:
        assert reason in said, f"{reason!r} not in:\n{said}"
    assert said.count("could not start") <= 2, "a worker was started again after a refusal"
    validated = run(state, "validate", "--config", config)
    assert validated.returncode == 1, validated.stdout + validated.stderr
    for reason in reasons:
        assert reason in validated.stderr, f"validate: {reason!r} not in:\n{validated.stderr}"
    files = [path.read_text(errors="replace") for path in state.rglob("*") if path.is_file()]
    for text in [said, validated.stdout, validated.stderr, *files]:
        for password in [WRONG] + [secure[key] for key in secure if key.endswith("_PASSWORD")]:
            assert password not in text
