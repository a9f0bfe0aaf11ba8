"""`CONDUCTOR_SECURE=1 compose/local up` starts servers that refuse a client without the
credentials or without the CA, and let one with both in: tested on servers of their own (a run
folder under tmp, free ports), started once for this module and stopped at its end."""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers

LAUNCHER = Path(__file__).resolve().parents[2] / "compose" / "local"
SERVERS = ("kafka", "elasticsearch", "cassandra")
ENV_NAMES = [
    "CONDUCTOR_CA_FILE",
    "CONDUCTOR_KAFKA_BOOTSTRAP",
    "CONDUCTOR_KAFKA_SECURITY_PROTOCOL",
    "CONDUCTOR_KAFKA_SASL_MECHANISM",
    "CONDUCTOR_KAFKA_USERNAME",
    "CONDUCTOR_KAFKA_PASSWORD",
    "CONDUCTOR_KAFKA_MTLS_BOOTSTRAP",
    "CONDUCTOR_CLIENT_CERT_FILE",
    "CONDUCTOR_CLIENT_KEY_FILE",
    "CONDUCTOR_ELASTICSEARCH_URL",
    "CONDUCTOR_ELASTICSEARCH_USERNAME",
    "CONDUCTOR_ELASTICSEARCH_PASSWORD",
    "CONDUCTOR_CASSANDRA_HOSTS",
    "CONDUCTOR_CASSANDRA_PORT",
    "CONDUCTOR_CASSANDRA_USERNAME",
    "CONDUCTOR_CASSANDRA_PASSWORD",
]


# Never the default ports of compose/local's servers, plain or secure (10000 above): they may start
# meanwhile.
_PLAIN_PORTS = {19092, 19093, 19094, 19200, 19300, 19042, 17000, 17199, 18081, 19201, 19301}
_chosen: set[int] = _PLAIN_PORTS | {port + 10000 for port in _PLAIN_PORTS}


def _free_port() -> int:
    """A free port below Linux's ephemeral range (32768 up): a port the kernel hands out for
    outgoing connections may be taken by a client (a benchmark's, another test's) between this
    choice and the server's start, which then fails. Never the same port twice in a session."""
    while True:
        port = random.randrange(20000, 32000)
        if port in _chosen:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _chosen.add(port)
        return port


class Launcher:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.environment = {
            **os.environ,
            "CONDUCTOR_SECURE": "1",
            "CONDUCTOR_RUN_DIR": str(run_dir),
            **{
                variable: str(_free_port())
                for variable in (
                    "CONDUCTOR_KAFKA_PORT",
                    "CONDUCTOR_KAFKA_CONTROLLER_PORT",
                    "CONDUCTOR_KAFKA_MTLS_PORT",
                    "CONDUCTOR_ELASTICSEARCH_PORT",
                    "CONDUCTOR_ELASTICSEARCH_TRANSPORT_PORT",
                    "CONDUCTOR_CASSANDRA_PORT",
                    "CONDUCTOR_CASSANDRA_STORAGE_PORT",
                    "CONDUCTOR_CASSANDRA_JMX_PORT",
                )
            },
        }

    def __call__(self, *arguments: str, secure: bool = True) -> subprocess.CompletedProcess:
        environment = dict(self.environment)
        if not secure:
            environment.pop("CONDUCTOR_SECURE")
        return subprocess.run(
            [sys.executable, str(LAUNCHER), *arguments],
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
        )


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory):
    launch = Launcher(tmp_path_factory.mktemp("secure") / "run")
    try:
        started = launch("up", *SERVERS)
        assert started.returncode == 0, started.stdout + started.stderr
        yield launch
    finally:
        # `CONDUCTOR_SECURE=1 down` stops the secure servers (a plain `down` only the plain ones).
        launch("down")
    leftover = subprocess.run(["pgrep", "-f", str(launch.run_dir)], capture_output=True, text=True)
    assert leftover.stdout == "", "processes of the secure run folder still run after down"


@pytest.fixture(scope="module")
def env(launcher: Launcher) -> dict[str, str]:
    return json.loads(launcher("env", "--json").stdout)


def test_env_names_what_a_client_needs_and_the_secrets_file_is_private(launcher: Launcher, env) -> None:
    assert list(env) == ENV_NAMES
    assert env["CONDUCTOR_ELASTICSEARCH_URL"].startswith("https://127.0.0.1:")
    assert env["CONDUCTOR_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["CONDUCTOR_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert Path(env["CONDUCTOR_CA_FILE"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    secrets_file = launcher.run_dir / "secure" / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    for private in (
        "secure/ca.key",
        "secure/client.key",  # the client certificate's, for Kafka's mutual TLS listener
        "secure/client.pem",
        "kafka-secure/server.properties",  # the JAAS line and the keystore password
        "kafka-secure/tls/server.p12",
        "cassandra-secure/cassandra.yaml",
        "elasticsearch-secure/config/secure-certs/server.key",
    ):
        assert stat.S_IMODE((launcher.run_dir / private).stat().st_mode) == 0o600, private
    assert len(env["CONDUCTOR_ELASTICSEARCH_PASSWORD"]) == 32
    shell = launcher("env").stdout
    assert f"export CONDUCTOR_ELASTICSEARCH_PASSWORD={env['CONDUCTOR_ELASTICSEARCH_PASSWORD']}\n" in shell


def test_status_probes_the_secure_server_with_its_user(launcher: Launcher) -> None:
    status = launcher("status", *SERVERS)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "elasticsearch-secure; Elasticsearch" in status.stdout


def test_a_plain_server_on_the_same_ports_is_refused_and_names_the_secure_one(launcher: Launcher) -> None:
    refused = launcher("up", "elasticsearch", secure=False)
    assert refused.returncode == 1
    assert "a secure one runs on its ports: elasticsearch" in refused.stderr


# -- Elasticsearch ---------------------------------------------------------------------------------


def _elasticsearch(env, **options):
    from elasticsearch import Elasticsearch

    return Elasticsearch(env["CONDUCTOR_ELASTICSEARCH_URL"], request_timeout=10, **options)


def test_elasticsearch_lets_in_the_user_over_tls(env) -> None:
    user = (env["CONDUCTOR_ELASTICSEARCH_USERNAME"], env["CONDUCTOR_ELASTICSEARCH_PASSWORD"])
    client = _elasticsearch(env, basic_auth=user, ca_certs=env["CONDUCTOR_CA_FILE"])
    try:
        assert client.security.authenticate()["username"] == user[0]
        client.index(index="secure-test", id="1", document={"n": 1}, refresh=True)
        assert client.get(index="secure-test", id="1")["_source"] == {"n": 1}
    finally:
        client.close()


def test_elasticsearch_lets_in_an_api_key(env) -> None:
    """API keys live in the .security index, which the integ-test-zip can make only with the analysis
    plugin that compose/secure.py compiles in (compose/elasticsearch/security-analysis)."""
    user = (env["CONDUCTOR_ELASTICSEARCH_USERNAME"], env["CONDUCTOR_ELASTICSEARCH_PASSWORD"])
    client = _elasticsearch(env, basic_auth=user, ca_certs=env["CONDUCTOR_CA_FILE"])
    try:
        key = client.security.create_api_key(name="conductor-test", expiration="1h")
    finally:
        client.close()
    with_key = _elasticsearch(env, api_key=key["encoded"], ca_certs=env["CONDUCTOR_CA_FILE"])
    try:
        assert with_key.security.authenticate()["api_key"]["name"] == "conductor-test"
        with_key.index(index="secure-api-key", id="1", document={"by": "api key"}, refresh=True)
    finally:
        with_key.close()
    from elasticsearch import AuthenticationException

    wrong = _elasticsearch(env, api_key=(key["id"], "wrong"), ca_certs=env["CONDUCTOR_CA_FILE"])
    try:
        with pytest.raises(AuthenticationException):
            wrong.cluster.health()
    finally:
        wrong.close()


@pytest.mark.parametrize(
    "credentials",
    [{}, {"basic_auth": ("conductor", "wrong")}, {"basic_auth": ("elastic", "changeme")}],
    ids=["none", "wrong-password", "elastic-default"],
)
def test_elasticsearch_refuses_a_client_without_the_credentials(env, credentials) -> None:
    from elasticsearch import AuthenticationException

    client = _elasticsearch(env, ca_certs=env["CONDUCTOR_CA_FILE"], **credentials)
    try:
        with pytest.raises(AuthenticationException):
            client.cluster.health()
    finally:
        client.close()


def test_elasticsearch_is_not_trusted_without_the_ca_nor_reached_over_http(env) -> None:
    from elasticsearch import ConnectionError as TransportConnectionError
    from elasticsearch import SSLError

    user = (env["CONDUCTOR_ELASTICSEARCH_USERNAME"], env["CONDUCTOR_ELASTICSEARCH_PASSWORD"])
    client = _elasticsearch(env, basic_auth=user, max_retries=0)  # the system's CAs only
    try:
        with pytest.raises(SSLError) as refused:
            client.cluster.health()
        assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value)
    finally:
        client.close()
    plain_url = env["CONDUCTOR_ELASTICSEARCH_URL"].replace("https://", "http://")
    plain = _elasticsearch({"CONDUCTOR_ELASTICSEARCH_URL": plain_url}, basic_auth=user, max_retries=0)
    try:
        with pytest.raises(TransportConnectionError):
            plain.cluster.health()
    finally:
        plain.close()
    assert ssl.create_default_context(cafile=env["CONDUCTOR_CA_FILE"])  # the CA file loads


# -- Kafka -------------------------------------------------------------------------------------------


def _kafka_options(env, **changes) -> dict:
    options = {
        "bootstrap_servers": env["CONDUCTOR_KAFKA_BOOTSTRAP"],
        "security_protocol": env["CONDUCTOR_KAFKA_SECURITY_PROTOCOL"],
        "sasl_mechanism": env["CONDUCTOR_KAFKA_SASL_MECHANISM"],
        "sasl_plain_username": env["CONDUCTOR_KAFKA_USERNAME"],
        "sasl_plain_password": env["CONDUCTOR_KAFKA_PASSWORD"],
        "ssl_cafile": env["CONDUCTOR_CA_FILE"],
        "request_timeout_ms": 10000,
    }
    options.update(changes)
    return {key: value for key, value in options.items() if value is not None}


def test_kafka_moves_a_record_over_sasl_ssl_with_scram(env) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(**_kafka_options(env))
    try:
        producer.send("secure-round-trip", b"over SASL_SSL").get(timeout=20)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        "secure-round-trip",
        group_id="secure-test",
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
        **_kafka_options(env),
    )
    try:
        assert [record.value for record in consumer][:1] == [b"over SASL_SSL"]
    finally:
        consumer.close()


def test_kafka_takes_the_same_user_with_plain(env) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**_kafka_options(env, sasl_mechanism="PLAIN"))
    try:
        assert admin.describe_cluster()["brokers"]
    finally:
        admin.close()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sasl_plain_password": "wrong"}, "invalid credentials with SASL mechanism SCRAM-SHA-512"),
        ({"sasl_mechanism": "PLAIN", "sasl_plain_password": "wrong"}, "Invalid username or password"),
        ({"ssl_cafile": None}, "CERTIFICATE_VERIFY_FAILED"),
        ({"security_protocol": "SSL", "sasl_mechanism": None}, "Connection lost"),
        ({"security_protocol": "PLAINTEXT", "sasl_mechanism": None, "ssl_cafile": None}, "Connection lost"),
    ],
    ids=["scram-wrong-password", "plain-wrong-password", "without-the-ca", "tls-without-sasl", "plaintext"],
)
def test_kafka_refuses_a_client_without_the_credentials_or_the_ca(
    launcher: Launcher, env, caplog, changes, reason
) -> None:
    """The reason is in what the client logs, or, for a wrong password, in the broker's log (the
    broker closes the connection after its answer, and kafka-python does not always read it)."""
    import logging

    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    broker_log = launcher.run_dir / "kafka-secure" / "logs" / "server.log"
    seen = broker_log.stat().st_size
    caplog.set_level(logging.WARNING, logger="kafka")
    with pytest.raises(KafkaError):
        KafkaAdminClient(**_kafka_options(env, bootstrap_timeout_ms=2500, **changes)).close()
    with broker_log.open(errors="replace") as log:
        log.seek(seen)
        broker_says = log.read()
    assert reason in caplog.text + broker_says


def _mtls_options(env, **changes) -> dict:
    options = {
        "bootstrap_servers": env["CONDUCTOR_KAFKA_MTLS_BOOTSTRAP"],
        "security_protocol": "SSL",
        "ssl_cafile": env["CONDUCTOR_CA_FILE"],
        "ssl_certfile": env["CONDUCTOR_CLIENT_CERT_FILE"],
        "ssl_keyfile": env["CONDUCTOR_CLIENT_KEY_FILE"],
        "request_timeout_ms": 10000,
    }
    options.update(changes)
    return {key: value for key, value in options.items() if value is not None}


def test_kafka_moves_a_record_over_mutual_tls_with_the_client_certificate(env) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    assert env["CONDUCTOR_KAFKA_MTLS_BOOTSTRAP"] != env["CONDUCTOR_KAFKA_BOOTSTRAP"]
    producer = KafkaProducer(**_mtls_options(env))
    try:
        producer.send("secure-mtls-round-trip", b"over mutual TLS").get(timeout=20)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        "secure-mtls-round-trip",
        group_id="secure-mtls-test",
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
        **_mtls_options(env),
    )
    try:
        assert [record.value for record in consumer][:1] == [b"over mutual TLS"]
    finally:
        consumer.close()


@pytest.mark.parametrize("certificate", ["none", "another-ca"])
def test_kafka_mutual_tls_refuses_a_client_without_a_certificate_of_the_ca(
    launcher: Launcher, env, tmp_path: Path, certificate: str
) -> None:
    """The broker ends the handshake: no certificate, or one signed by another CA."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError
    from support.certs import make_certificates

    changes: dict = {"ssl_certfile": None, "ssl_keyfile": None}
    if certificate == "another-ca":
        other = make_certificates(tmp_path)
        changes = {
            "ssl_certfile": str(other.cert),
            "ssl_keyfile": str(other.key),
            "ssl_password": other.password,
        }
    broker_log = launcher.run_dir / "kafka-secure" / "logs" / "server.log"
    seen = broker_log.stat().st_size
    with pytest.raises(KafkaError):
        KafkaAdminClient(**_mtls_options(env, bootstrap_timeout_ms=2500, **changes)).close()
    with broker_log.open(errors="replace") as log:
        log.seek(seen)
        assert "(SSL handshake failed)" in log.read()


# -- Cassandra ---------------------------------------------------------------------------------------


def _cassandra(env, username: str | None, password: str | None, cafile: str | None = "ca"):
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    options: dict = {
        "port": int(env["CONDUCTOR_CASSANDRA_PORT"]),
        "protocol_version": 5,
        "connect_timeout": 5,
        "control_connection_timeout": 5,
        "execution_profiles": {
            EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=RoundRobinPolicy())
        },
    }
    if cafile is not None:
        options["ssl_context"] = ssl.create_default_context(
            cafile=env["CONDUCTOR_CA_FILE"] if cafile == "ca" else None
        )
    if username is not None:
        options["auth_provider"] = PlainTextAuthProvider(username, password)
    return Cluster(env["CONDUCTOR_CASSANDRA_HOSTS"].split(","), **options)


def test_cassandra_lets_in_the_user_over_tls_and_only_that_user_is_left(env) -> None:
    cluster = _cassandra(env, env["CONDUCTOR_CASSANDRA_USERNAME"], env["CONDUCTOR_CASSANDRA_PASSWORD"])
    try:
        session = cluster.connect()
        roles = [row.role for row in session.execute("SELECT role FROM system_auth.roles")]
        assert roles == [env["CONDUCTOR_CASSANDRA_USERNAME"]]  # cassandra/cassandra is gone
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS secure_test "
            "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute("CREATE TABLE IF NOT EXISTS secure_test.t (k int PRIMARY KEY, v text)")
        session.execute("INSERT INTO secure_test.t (k, v) VALUES (1, 'over TLS')")
        assert session.execute("SELECT v FROM secure_test.t WHERE k = 1").one().v == "over TLS"
    finally:
        cluster.shutdown()


@pytest.mark.parametrize(
    ("credentials", "cafile", "reason"),
    [
        ((None, None), "ca", "requires authentication"),
        (("conductor", "wrong"), "ca", "Bad credentials"),
        (("cassandra", "cassandra"), "ca", "Bad credentials"),
        (("conductor", "<password>"), "system", "CERTIFICATE_VERIFY_FAILED"),
        (("conductor", "<password>"), None, "Connection reset"),
    ],
    ids=["none", "wrong-password", "default-superuser", "without-the-ca", "without-tls"],
)
def test_cassandra_refuses_a_client_without_the_credentials_or_the_ca(
    env, credentials, cafile, reason
) -> None:
    from cassandra.cluster import NoHostAvailable

    username, password = credentials
    if password == "<password>":
        password = env["CONDUCTOR_CASSANDRA_PASSWORD"]
    cluster = _cassandra(env, username, password, cafile)
    try:
        with pytest.raises(NoHostAvailable) as refused:
            cluster.connect()
    finally:
        cluster.shutdown()
    assert reason in str(refused.value)


# -- last -----------------------------------------------------------------------------------------


def test_the_passwords_never_reach_the_logs(launcher: Launcher, env) -> None:
    """Last in the module: after the refused clients too."""
    passwords = [env[name] for name in ENV_NAMES if name.endswith("_PASSWORD") and env[name]]
    # Every file of the logs folders (Elasticsearch writes JSON logs too) and the fetch logs.
    logs = [path for path in launcher.run_dir.rglob("*") if path.is_file() and "logs" in path.parts]
    logs += list(launcher.run_dir.glob("*.log"))
    assert any(log.name == "init.log" for log in logs)  # Kafka's storage format, given the SCRAM user
    for log in logs:
        text = log.read_text(errors="replace")
        assert not [password for password in passwords if password in text], f"a password in {log}"


def test_no_password_on_a_command_line_of_the_servers(launcher: Launcher, env) -> None:
    passwords = [env[name] for name in ENV_NAMES if name.endswith("_PASSWORD") and env[name]]
    command_lines = []
    for entry in Path("/proc").iterdir():
        try:
            command_line = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and str(launcher.run_dir) in command_line:
            command_lines.append(command_line)
    assert len(command_lines) >= 3
    assert not [line for line in command_lines if any(password in line for password in passwords)]


def test_secure_servers_listen_10000_above_the_plain_ones_unless_a_port_is_set(tmp_path: Path) -> None:
    """So that the plain servers of `make test` and the secure ones can run at once."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not (key.startswith("CONDUCTOR_") and key.endswith("PORT"))
    }
    environment.update(CONDUCTOR_RUN_DIR=str(tmp_path / "run"), CONDUCTOR_SECURE="1")

    def settings(**ports: str) -> dict[str, str]:
        answer = subprocess.run(
            [sys.executable, str(LAUNCHER), "env", "--json"],
            capture_output=True,
            text=True,
            env={**environment, **ports},
            timeout=60,
        )
        return json.loads(answer.stdout)

    default = settings()
    assert default["CONDUCTOR_KAFKA_BOOTSTRAP"] == "127.0.0.1:29092"
    assert default["CONDUCTOR_KAFKA_MTLS_BOOTSTRAP"] == "127.0.0.1:29094"  # 29093: the controller's
    assert default["CONDUCTOR_ELASTICSEARCH_URL"] == "https://127.0.0.1:29200"
    assert default["CONDUCTOR_CASSANDRA_PORT"] == "29042"
    assert settings(CONDUCTOR_KAFKA_PORT="39092")["CONDUCTOR_KAFKA_BOOTSTRAP"] == "127.0.0.1:39092"
