"""compose/local's failures name the step, the port or coordinates, and what to do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


def _get(url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def test_one_opensearch_at_a_time_whatever_the_version_and_down_stops_the_one_that_runs(
    tmp_path: Path,
) -> None:
    """OpenSearch 2.19.6 (Java 17) runs from run/opensearch-2; `up` of 3.6.0 on the same ports
    refuses and names it; `status` and `env` show 2.19.6 although 3.6.0 is configured; `down`
    stops it; then 3.6.0 (Java 21+) starts from its own folder. The same code serves
    Elasticsearch 8 and 9 (run/elasticsearch and run/elasticsearch-9)."""
    import json

    ports = {
        "CONDUCTOR_OPENSEARCH_PORT": str(_free_port()),
        "CONDUCTOR_OPENSEARCH_TRANSPORT_PORT": str(_free_port()),
    }
    url = f"http://127.0.0.1:{ports['CONDUCTOR_OPENSEARCH_PORT']}"
    old = {**ports, "CONDUCTOR_OPENSEARCH_VERSION": "2.19.6"}
    new = {**ports, "CONDUCTOR_OPENSEARCH_VERSION": "3.6.0"}
    try:
        started = run_launcher(tmp_path, "up", "opensearch", **old)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "opensearch ready: OpenSearch 2.19.6, cluster conductor" in started.stdout
        assert "Java 17." in started.stdout and str(tmp_path / "run" / "opensearch-2") in started.stdout
        root = _get(f"{url}/")
        assert root["version"]["distribution"] == "opensearch" and root["version"]["number"] == "2.19.6"
        assert _get(f"{url}/_cluster/health")["status"] in ("green", "yellow")

        refused = run_launcher(tmp_path, "up", "opensearch", **new)
        assert refused.returncode == 1
        assert (
            "start opensearch 3.6.0: another version runs on its ports: opensearch 2.19.6" in refused.stderr
        )
        assert "`compose/local down opensearch` stops it" in refused.stderr
        assert _get(f"{url}/")["version"]["number"] == "2.19.6"  # left running

        status = run_launcher(tmp_path, "status", "opensearch", **new)
        assert "opensearch      2.19.6" in status.stdout and "(configured: 3.6.0)" in status.stdout
        env = json.loads(run_launcher(tmp_path, "env", "--json", **new).stdout)
        assert env["CONDUCTOR_OPENSEARCH_URL"] == url and env["CONDUCTOR_OPENSEARCH_VERSION"] == "2.19.6"

        stopped = run_launcher(tmp_path, "down", "opensearch", **new)
        assert "stopping opensearch 2.19.6" in stopped.stdout

        started = run_launcher(tmp_path, "up", "opensearch", **new)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "opensearch ready: OpenSearch 3.6.0, cluster conductor" in started.stdout
        assert str(tmp_path / "run" / "opensearch-3") in started.stdout
        assert _get(f"{url}/")["version"]["number"] == "3.6.0"
    finally:
        run_launcher(tmp_path, "down", "opensearch", **new)
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "run")], capture_output=True, text=True)
    assert leftover.stdout == "", "processes of the test's run folder still run after down"


def test_a_run_folder_is_ours_only_up_to_its_end(tmp_path: Path) -> None:
    """run/elasticsearch (8) must not take the processes of run/elasticsearch-9 for its own."""
    import importlib.util
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("compose_local_paths", str(LAUNCHER))
    spec = importlib.util.spec_from_loader("compose_local_paths", loader)
    local = importlib.util.module_from_spec(spec)
    sys.modules["compose_local_paths"] = local
    loader.exec_module(local)
    nine = tmp_path / "run" / "elasticsearch-9"
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", f"-Epath.data={nine}/data", str(nine)]
    )
    try:
        deadline = time.monotonic() + 10
        while str(nine) not in local._cmdline(sleeper.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the child has exec'd
        paths = lambda home: local.Paths(install=tmp_path, home=home)
        assert local._is_ours(sleeper.pid, paths(nine))
        assert not local._is_ours(sleeper.pid, paths(tmp_path / "run" / "elasticsearch"))
        assert local._processes_of(paths(tmp_path / "run" / "elasticsearch")) == []
    finally:
        sleeper.kill()
        sleeper.wait()
