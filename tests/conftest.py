"""Session fixtures for the real servers: Kafka, Elasticsearch and Cassandra.

With a Docker engine that answers, pytest-docker runs compose/docker-compose.yml; otherwise
compose/local fetches and starts the servers on 127.0.0.1. Either way they start once per test
session. Servers that were already up (as .ci/run and `make up` leave them) are reused and left
running; the servers this session started are stopped at its end unless CONDUCTOR_KEEP_SERVERS=1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose"
LAUNCHER = COMPOSE / "local"

sys.path.insert(0, str(COMPOSE))
import probes  # noqa: E402
from support.pipeline import Conductor  # noqa: E402
from support.scripted_es import scripted  # noqa: E402, F401 - a fixture, for the tests that need a 429


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    elasticsearch_url: str
    cassandra_hosts: tuple[str, ...]
    cassandra_port: int


def _docker_engine_answers() -> bool:
    if os.environ.get("CONDUCTOR_NO_DOCKER") or not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _launcher(*arguments: str, secure: bool = False) -> subprocess.CompletedProcess:
    """compose/local; the plain servers unless `secure` (CONDUCTOR_SECURE=1), whatever the shell says."""
    environment = {key: value for key, value in os.environ.items() if key != "CONDUCTOR_SECURE"}
    if secure:
        environment["CONDUCTOR_SECURE"] = "1"
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *arguments], capture_output=True, text=True, env=environment
    )


def _settings() -> Servers:
    env = json.loads(_launcher("env", "--json").stdout)
    return Servers(
        kafka_bootstrap=env["CONDUCTOR_KAFKA_BOOTSTRAP"],
        elasticsearch_url=env["CONDUCTOR_ELASTICSEARCH_URL"],
        cassandra_hosts=tuple(env["CONDUCTOR_CASSANDRA_HOSTS"].split(",")),
        cassandra_port=int(env["CONDUCTOR_CASSANDRA_PORT"]),
    )


def _not_answering(servers: Servers) -> list[str]:
    host, port = servers.kafka_bootstrap.rsplit(":", 1)
    checks = {
        "kafka": lambda: probes.kafka_ready(host, int(port)),
        "elasticsearch": lambda: probes.elasticsearch_health(servers.elasticsearch_url),
        "cassandra": lambda: probes.cassandra_query(servers.cassandra_hosts[0], servers.cassandra_port),
    }
    silent = []
    for name, check in checks.items():
        try:
            check()
        except probes.ProbeFailed:
            silent.append(name)
    return silent


def _all_answer(servers: Servers) -> bool:
    return not _not_answering(servers)


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return "conductor-tests"


def _check_elasticsearch_version() -> None:
    """CONDUCTOR_ELASTICSEARCH_VERSION names the version these tests are for (.ci/run runs the
    Elasticsearch tests again on 9): another version answering on the port must not pass for it."""
    wanted = os.environ.get("CONDUCTOR_ELASTICSEARCH_VERSION")
    running = json.loads(_launcher("env", "--json").stdout).get("CONDUCTOR_ELASTICSEARCH_VERSION")
    if wanted and running and running != wanted:
        pytest.fail(
            f"CONDUCTOR_ELASTICSEARCH_VERSION={wanted}, but Elasticsearch {running} answers: "
            f"`compose/local down elasticsearch` first",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> Servers:
    settings = _settings()
    missing = _not_answering(settings)
    if not missing:
        _check_elasticsearch_version()
        yield settings
        return
    if _docker_engine_answers():
        docker_services = request.getfixturevalue("docker_services")
        docker_services.wait_until_responsive(check=lambda: _all_answer(settings), timeout=300.0, pause=2.0)
        yield settings
        return
    started = _launcher("up", *missing)
    if started.returncode != 0:
        pytest.fail(f"compose/local up failed:\n{started.stdout}\n{started.stderr}", pytrace=False)
    _check_elasticsearch_version()
    try:
        yield settings
    finally:
        if not os.environ.get("CONDUCTOR_KEEP_SERVERS"):
            _launcher("down", *missing)  # only what this session started


@pytest.fixture(scope="session")
def kafka(servers: Servers) -> str:
    """Kafka's bootstrap servers, host:port."""
    return servers.kafka_bootstrap


@pytest.fixture(scope="session")
def elasticsearch(servers: Servers) -> str:
    """Elasticsearch's base URL."""
    return servers.elasticsearch_url


@pytest.fixture(scope="session")
def cassandra(servers: Servers) -> tuple[tuple[str, ...], int]:
    """Cassandra's contact points and native port."""
    return servers.cassandra_hosts, servers.cassandra_port


@pytest.fixture(scope="session")
def schema_registry() -> str:
    """The Schema Registry's URL (compose/local up schema-registry): started for this session if
    it does not answer, and stopped after it."""
    from support import registry

    started = not registry.answers()
    if started:
        _launcher("up", "schema-registry").check_returncode()
    yield registry.URL
    if started:
        _launcher("down", "schema-registry")


@pytest.fixture(scope="session")
def secure() -> dict[str, str]:
    """The servers with security on (CONDUCTOR_SECURE=1 compose/local up: TLS with their own CA,
    users with random passwords), as `compose/local env` names them: started for this session
    if they do not answer, and stopped after it. Read after the start: each start makes new
    passwords."""
    started = _launcher("status", secure=True).returncode != 0
    if started:
        up = _launcher("up", secure=True)
        if up.returncode != 0:
            pytest.fail(
                f"CONDUCTOR_SECURE=1 compose/local up failed:\n{up.stdout}\n{up.stderr}", pytrace=False
            )
    yield json.loads(_launcher("env", "--json", secure=True).stdout)
    if started and not os.environ.get("CONDUCTOR_KEEP_SERVERS"):
        _launcher("down", secure=True)


@pytest.fixture(scope="session")
def opensearch() -> str:
    """OpenSearch's URL (compose/local up opensearch): started for this session if it does not
    answer, and stopped after it."""
    url = json.loads(_launcher("env", "--json").stdout)["CONDUCTOR_OPENSEARCH_URL"]
    try:
        probes.search_server(url, "opensearch")
        started = False
    except probes.ProbeFailed:
        up = _launcher("up", "opensearch")
        if up.returncode != 0:
            pytest.fail(f"compose/local up opensearch failed:\n{up.stdout}\n{up.stderr}", pytrace=False)
        started = True
    yield url
    if started and not os.environ.get("CONDUCTOR_KEEP_SERVERS"):
        _launcher("down", "opensearch")


@pytest.fixture
def conductors(tmp_path: Path):
    """Start conductor processes; any still running at the end is killed (its group too)."""
    started: list[Conductor] = []

    def start(config: Path, workers: int = 3, label: str = "a") -> Conductor:
        conductor = Conductor(config, tmp_path / f"state-{label}", workers).start()
        started.append(conductor)
        return conductor

    yield start
    for conductor in started:
        if conductor.process and conductor.process.poll() is None:
            conductor.process.send_signal(signal.SIGINT)
            conductor.process.send_signal(signal.SIGINT)
            try:
                conductor.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                conductor.process.kill()


@pytest.fixture
def index(elasticsearch: str):
    """A fresh Elasticsearch index name, deleted after the test."""
    from elasticsearch import Elasticsearch
    from support.pipeline import unique

    name = unique("index").replace("-", "_")
    yield name
    client = Elasticsearch(elasticsearch, request_timeout=10)
    try:
        client.indices.delete(index=name, ignore_unavailable=True, allow_no_indices=True)
    finally:
        client.close()
