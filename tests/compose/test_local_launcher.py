"""compose/local's failures name the step, the port or coordinates, and what to do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parents[2] / "compose" / "local"


def run_launcher(tmp_path: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONDUCTOR_RUN_DIR": str(tmp_path / "run"), **environment}
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *arguments], capture_output=True, text=True, env=env, timeout=300
    )


def test_a_taken_port_is_named_with_the_variable_that_moves_it(tmp_path: Path, servers) -> None:
    # `servers` makes sure the Kafka jars are in the cache, so this reaches the port check.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_launcher(tmp_path, "up", "kafka", CONDUCTOR_KAFKA_PORT=str(port))
    assert result.returncode == 1
    assert f"start kafka: port {port} (port) on 127.0.0.1 is taken by another process" in result.stderr
    assert "CONDUCTOR_KAFKA_PORT" in result.stderr


def test_missing_maven_is_reported_before_anything_is_fetched(tmp_path: Path) -> None:
    java_only = tmp_path / "bin"
    java_only.mkdir()
    result = run_launcher(
        tmp_path, "fetch", "kafka", PATH=str(java_only), CONDUCTOR_CACHE=str(tmp_path / "empty-cache")
    )
    assert result.returncode == 1
    assert "fetch: `mvn` is not on PATH" in result.stderr


def test_a_missing_artifact_names_its_coordinates_and_the_log(tmp_path: Path) -> None:
    result = run_launcher(
        tmp_path, "fetch", "kafka", CONDUCTOR_KAFKA_VERSION="0.0.404", CONDUCTOR_CACHE=str(tmp_path / "cache")
    )
    assert result.returncode == 1
    assert (
        "fetch kafka: artifact not found on Maven Central for org.apache.kafka:kafka_2.13:jar:0.0.404"
        in result.stderr
    )
    assert str(tmp_path / "run" / "fetch-kafka.log") in result.stderr


def test_an_unknown_server_lists_the_known_ones(tmp_path: Path) -> None:
    result = run_launcher(tmp_path, "up", "zookeeper")
    assert result.returncode == 1
    assert "unknown server zookeeper; known: kafka, elasticsearch, cassandra" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_fresh_kafka_is_ready_only_once_it_can_coordinate_a_consumer_group(tmp_path: Path, servers) -> None:
    """On a fresh machine the first `make demo` failed: `up` said Kafka was ready, but the broker
    had no __consumer_offsets yet and describe_groups raised CoordinatorNotAvailableError. A
    broker of its own (fresh run folder, other ports) must answer group calls at the first try."""
    from kafka.admin import KafkaAdminClient

    ports = {"CONDUCTOR_KAFKA_PORT": str(_free_port()), "CONDUCTOR_KAFKA_CONTROLLER_PORT": str(_free_port())}
    try:
        result = run_launcher(tmp_path, "up", "kafka", **ports)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "group coordinator at 127.0.0.1" in result.stdout
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{ports['CONDUCTOR_KAFKA_PORT']}")
        try:
            groups = admin.describe_groups(["connect-fresh-machine"])  # no retry: it must answer now
        finally:
            admin.close()
        assert groups["connect-fresh-machine"]["members"] == []
    finally:
        run_launcher(tmp_path, "down", "kafka", **ports)


def test_a_kraft_cluster_id_never_starts_with_a_dash(monkeypatch) -> None:
    """A fresh CI run failed to format Kafka's storage: the random id began with '-', which the
    storage tool read as an option. Drawn with the first uuid4 bytes that give such an id."""
    import uuid

    import servers  # compose/, put on sys.path by tests/conftest.py

    dash = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))  # base64url of 0xF8... starts with '-'
    draws = iter([dash, uuid.UUID(int=7)])
    monkeypatch.setattr(servers.uuid, "uuid4", lambda: next(draws))
    cluster_id = servers._cluster_id()
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
