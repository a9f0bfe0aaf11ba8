"""deploy/container: the image's entrypoint as PID 1, run for real without Docker.

`unshare --pid --fork --mount-proc` gives the Dockerfile's ENTRYPOINT and CMD a PID namespace of
their own, where conductor is PID 1 as in a container: with the Dockerfile's USER and ENV (its
folders mapped to this machine's), the root filesystem read-only and the state folder the one
writable mount, as `docker run --read-only -v state:/var/lib/conductor` runs it. The image itself
is built only where a Docker engine answers; compose/docker-compose.yml's demo services are
checked by their structure and by loading each one's config."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from support.pipeline import (
    committed_offsets,
    create_topic,
    end_offsets,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
    write_config,
)

from conductor import exitcodes
from conductor.config import load_config, parse_config
from conductor.envconfig import SOURCE, config_from_env

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"
COMPOSE = ROOT / "compose" / "docker-compose.yml"
IMAGE_VENV = "/opt/conductor"  # where the Dockerfile installs conductor; here: this virtualenv
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the Python image's PATH
ES_CLASS = "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector"
DEMO_SERVICES = ("aggregator", "es-aggregates", "cassandra-aggregates")
DRAIN_TIMEOUT_S = 20


# -- the Dockerfile ---------------------------------------------------------------------------


def final_stage() -> dict[str, str]:
    """The last stage's instructions (the last of each kind), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stage: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage = {"FROM": rest.strip()}
        elif word == "ENV":
            stage["ENV"] = f"{stage.get('ENV', '')} {rest}".strip()
        else:
            stage[word] = rest.strip()
    return stage


def image_environment(state: Path) -> dict[str, str]:
    """The Dockerfile's ENV as a container starts with it, its volume mapped to `state` and its
    virtualenv to this one."""
    stage = final_stage()
    volume = json.loads(stage["VOLUME"])[0]
    environment = {"PATH": BASE_PATH, "HOME": str(state)}
    for pair in shlex.split(stage["ENV"]):
        name, _, value = pair.partition("=")
        value = value.replace("$PATH", BASE_PATH).replace(IMAGE_VENV, sys.prefix)
        environment[name] = value.replace(volume, str(state))
    return environment


def test_the_image_runs_conductor_itself_as_pid_1_unprivileged_writing_only_its_volume() -> None:
    stage = final_stage()
    assert DOCKERFILE.read_text().count("\nFROM ") >= 2, "multi-stage: the wheel is built apart"
    assert json.loads(stage["ENTRYPOINT"]) == ["conductor"], "exec form: conductor is PID 1, no shell"
    assert json.loads(stage["CMD"]) == ["start"]
    uid, _, gid = stage["USER"].partition(":")
    assert int(uid) > 0 and int(gid) > 0, "numeric, so Kubernetes' runAsNonRoot can check it"
    environment = dict(pair.partition("=")[::2] for pair in shlex.split(stage["ENV"]))
    (volume,) = json.loads(stage["VOLUME"])
    assert environment["CONDUCTOR_STATE_DIR"] == environment["TMPDIR"] == stage["WORKDIR"] == volume
    assert environment["CONDUCTOR_CONFIG"].startswith("/etc/conductor/")
    assert stage["STOPSIGNAL"] == "SIGTERM"
    # The base image's Python is one pyproject.toml accepts.
    wanted = re.search(r'requires-python = ">=(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert wanted is not None
    python = re.search(r"ARG PYTHON_IMAGE=python:(\d+)\.(\d+)-slim", DOCKERFILE.read_text())
    assert python is not None
    assert tuple(map(int, python.groups())) >= tuple(map(int, wanted.groups()))


# -- the entrypoint as PID 1 of its own namespace ------------------------------------------------

needs_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "nsenter", "setpriv")),
    reason="unshare --pid and mount need root, and util-linux's unshare, nsenter and setpriv",
)
# PID 1 of the new namespace: the state folder its own mount, then / read-only, then the
# Dockerfile's USER, then the Dockerfile's ENTRYPOINT and CMD, each step an exec (PID 1 stays).
# The mounts are the namespace's own copies (unshare makes them private): this machine's stay rw.
CONTAINER = (
    'mount --bind "$CONDUCTOR_STATE_DIR" "$CONDUCTOR_STATE_DIR" && mount -o remount,bind,ro / '
    '&& cd "$CONDUCTOR_STATE_DIR" && exec setpriv --reuid="$1" --regid="$2" --clear-groups -- "${@:3}"'
)


@dataclass
class Container:
    process: subprocess.Popen
    state: Path
    stdout: Path
    stderr: Path

    def pid1(self) -> int:
        """PID 1 of the namespace, as this machine numbers it: unshare's one child."""

        def child() -> int | None:
            children = psutil.Process(self.process.pid).children()
            return children[0].pid if children else None

        return wait_for(child, 10, "unshare's child", pause=0.05)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"PID 1 did not exit within {timeout}s; log:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL to PID 1, which ends its whole namespace, then to unshare (its parent-death
        signal would not reach PID 1: setpriv's change of user clears it)."""
        try:
            for child in psutil.Process(self.process.pid).children():
                child.kill()
        except psutil.NoSuchProcess:
            pass
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")[-6000:]

    def supervisor(self) -> dict:
        for path in self.state.glob("*/supervisor.json"):
            return json.loads(path.read_text())
        return {}

    def workers(self) -> list[dict]:
        found = []
        for path in self.state.glob("*/worker-*.json"):
            try:
                found.append(json.loads(path.read_text()))
            except ValueError:
                pass  # read as it was replaced
        return found


class Containers:
    """Starts the image's entrypoint as PID 1 of a new PID namespace; `folder` stands for what is
    mounted into the container (the image's user can read it)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="conductor-container-"))
        self.folder.chmod(0o755)
        self.started: list[Container] = []

    def start(self, environment: Mapping[str, str]) -> Container:
        stage = final_stage()
        uid, _, gid = stage["USER"].partition(":")
        state = self.folder / f"state-{len(self.started)}"
        state.mkdir()
        os.chown(state, int(uid), int(gid))
        stdout, stderr = state.with_suffix(".out"), state.with_suffix(".err")
        entrypoint = json.loads(stage["ENTRYPOINT"]) + json.loads(stage["CMD"])
        command = ["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", CONTAINER, "pid1"]
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [*command, uid, gid, *entrypoint],
                env={**image_environment(state), **environment},
                stdout=out,
                stderr=err,
            )
        self.started.append(Container(process, state, stdout, stderr))
        return self.started[-1]

    def close(self) -> None:
        for running in self.started:
            if running.process.poll() is None:
                running.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def containers() -> Iterator[Containers]:
    runtime = Containers()
    yield runtime
    runtime.close()


def in_namespace(pid1: int) -> dict[int, dict[str, str]]:
    """Every process of pid1's PID namespace: its status fields, read through this machine's /proc."""
    namespace = os.readlink(f"/proc/{pid1}/ns/pid")
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != namespace:
                continue
            lines = Path(f"/proc/{entry}/status").read_text().splitlines()
        except OSError:
            continue  # gone meanwhile
        found[int(entry)] = {name: value.strip() for name, _, value in (x.partition(":") for x in lines)}
    return found


def mount_options(pid1: int) -> dict[str, str]:
    """ro or rw, for the root and the state folder, as PID 1's mount namespace has them."""
    found = {}
    for line in Path(f"/proc/{pid1}/mountinfo").read_text().splitlines():
        fields = line.split()
        found[fields[4]] = fields[5].split(",")[0]
    return {path: option for path, option in found.items() if path == "/" or "/state-" in path}


def zombies(pid1: int) -> list[str]:
    return [
        f"{pid} {status['Name']}"
        for pid, status in in_namespace(pid1).items()
        if status["State"].startswith("Z")
    ]


def running_workers(container: Container, count: int) -> list[int]:
    def pids() -> list[int] | None:
        workers = container.supervisor().get("workers", [])
        up = [w["pid"] for w in workers if w.get("state") == "running"]
        return up if len(up) == count else None

    return wait_for(pids, 60, f"{count} running workers")


def group_members(kafka: str, group: str) -> tuple[str, list]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return described["group_state"], described["members"]


def elastic_env(name: str, topic: str, index: str, elasticsearch: str, kafka: str) -> dict[str, str]:
    host, port = elasticsearch.removeprefix("http://").split(":")
    return {
        "CONDUCTOR_CONFIG": "env:",
        "CONNECTOR_NAME": name,
        "CONNECTOR_CONNECTOR_CLASS": ES_CLASS,
        "CONNECTOR_TOPICS": topic,
        "CONNECTOR_CONNECT_ELASTIC_HOSTS": host,
        "CONNECTOR_CONNECT_ELASTIC_PORT": port,
        "CONNECTOR_CONNECT_ELASTIC_KCQL": f"INSERT INTO {index} SELECT * FROM {topic} PK reading_id",
        "CONNECT_BOOTSTRAP_SERVERS": kafka,
        "CONNECT_LISTENERS": "http://127.0.0.1:0",
    }


def held_batch_env(linger_ms: int) -> dict[str, str]:
    """Workers that hold what they read for `linger_ms`: no record count or size ends a batch first."""
    return {
        "CONNECTOR_CONDUCTOR_BATCH_MAX_RECORDS": "100000",
        "CONNECTOR_CONDUCTOR_LINGER_MS": str(linger_ms),
        "CONNECTOR_CONDUCTOR_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
        "CONNECTOR_CONDUCTOR_WORKER_HEARTBEAT_TIMEOUT_S": "60",
    }


def assigned(container: Container, partitions: int) -> bool:
    held = [p for w in container.workers() if w.get("state") == "running" for p in w.get("partitions", [])]
    return len(held) == partitions


@needs_namespaces
def test_sigterm_to_pid_1_drains_commits_leaves_the_group_and_exits_0(
    kafka, elasticsearch, index, containers
) -> None:
    total = 2_000
    topic = create_topic(kafka, partitions=3)
    name = unique("container-drain")
    environment = elastic_env(name, topic, index, elasticsearch, kafka)
    # The readings arrive once the workers hold the partitions, and wait in one batch for the linger:
    # 15 s, less than the drain timeout, as a stop does not cut a linger short today (a worker polls
    # Kafka for the rest of it, tasks/sink.py) and a longer one would outlast the drain.
    running = containers.start({**environment, **held_batch_env(15_000), "CONDUCTOR_WORKERS": "2"})
    pid1 = running.pid1()
    wait_for(lambda: assigned(running, 3), 60, "the 3 partitions held by running workers")
    assert in_namespace(pid1)[pid1]["NSpid"].split()[-1] == "1"
    *_, program, command, _ = Path(f"/proc/{pid1}/cmdline").read_text().split("\0")
    assert (Path(program).name, command) == ("conductor", "start"), "the entrypoint itself is PID 1"
    assert mount_options(pid1) == {"/": "ro", str(running.state): "rw"}
    now = int(time.time() * 1000)
    produce(kafka, topic, ((str(n).encode(), reading(n, now), now) for n in range(total)))
    time.sleep(3)  # read within a poll or two, then held
    assert es_count(elasticsearch, index) == 0, "nothing written before the stop"

    os.kill(pid1, signal.SIGTERM)  # from outside its namespace, as `docker stop` sends it
    stopped_at = time.monotonic()
    assert running.wait(DRAIN_TIMEOUT_S + 10) == exitcodes.STOPPED, running.log()
    assert time.monotonic() - stopped_at <= DRAIN_TIMEOUT_S, running.log()
    assert group_members(kafka, f"connect-{name}") == ("Empty", [])

    assert es_count(elasticsearch, index) == total
    assert committed_offsets(kafka, f"connect-{name}") == end_offsets(kafka, topic)
    assert sum(end_offsets(kafka, topic).values()) == total
    assert sum(w.get("written", 0) for w in running.workers()) == total
    assert running.supervisor()["exit_code"] == exitcodes.STOPPED
    log = running.log()
    assert "got SIGTERM" in log
    assert "did not stop within" not in log and "Traceback" not in log


@needs_namespaces
def test_pid_1_reaps_orphans_reparented_to_it(kafka, elasticsearch, index, containers) -> None:
    topic = create_topic(kafka, partitions=2)
    name = unique("container-reap")
    kcql = f"INSERT INTO {index} SELECT * FROM {topic}"
    config = write_config(containers.folder, name, topic, kcql, elasticsearch, kafka)
    running = containers.start({"CONDUCTOR_CONFIG": str(config), "CONDUCTOR_WORKERS": "2"})
    pid1 = running.pid1()
    workers = running_workers(running, 2)

    # Three processes whose parent exits inside the namespace: the kernel hands them to PID 1.
    subprocess.run(
        ["nsenter", "--target", str(pid1), "--pid", "--", "sh", "-c", "for i in 1 2 3; do sleep 1.5 & done"],
        check=True,
        timeout=10,
    )

    def adopted() -> list[int] | None:
        """PID 1's children that are not conductor's own (its workers and REST server)."""
        found = [
            pid
            for pid, status in in_namespace(pid1).items()
            if int(status["PPid"]) == pid1 and status["Name"] != "conductor"
        ]
        return found if len(found) == 3 else None

    orphans = wait_for(adopted, 5, "the 3 orphans reparented to PID 1", pause=0.05)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in orphans), 10, "the orphans reaped")
    assert zombies(pid1) == []
    assert running.process.poll() is None, running.log()
    assert running_workers(running, 2) == workers, "an unknown child's exit is not a worker's"

    os.kill(pid1, signal.SIGTERM)
    assert running.wait(40) == exitcodes.STOPPED, running.log()


@needs_namespaces
@pytest.mark.parametrize("given", ["mounted file", "environment"])
def test_a_config_error_ends_pid_1_at_once_with_exit_2_and_the_reason(containers, given: str) -> None:
    if given == "mounted file":
        config = containers.folder / "connector.properties"
        config.write_text(
            f"name=broken\nconnector.class={ES_CLASS}\ntopics=readings\nconnect.elastic.hosts=127.0.0.1\n"
            "connect.elastic.kcql=INSERT INTO x SELEC * FROM readings\n"
        )
        environment = {"CONDUCTOR_CONFIG": str(config)}
        reason = (
            f"{config}: 1 problem(s)\n  - KCQL: Expected 'SELECT', found 'SELEC' at line 1, column 15\n"
            "INSERT INTO x SELEC * FROM readings\n              ^\n"
        )
    else:
        environment = {
            **elastic_env("broken", "readings", "x", "http://127.0.0.1:19200", "127.0.0.1:19092"),
            "CONNECT_ELASTIC_BATCH_SIZE": "500",
        }
        reason = (
            f"{SOURCE}: 1 problem(s)\n  - CONNECT_ELASTIC_BATCH_SIZE sets 'elastic.batch.size'; "
            "for 'connect.elastic.batch.size' write CONNECTOR_CONNECT_ELASTIC_BATCH_SIZE\n"
        )
    started = time.monotonic()
    running = containers.start(environment)
    assert running.wait(15) == exitcodes.CONFIG_ERROR, running.log()
    assert time.monotonic() - started < 10
    assert running.stderr.read_text() == reason
    assert list(running.state.iterdir()) == [], "nothing written"


@needs_namespaces
def test_a_worker_that_cannot_boot_ends_pid_1_with_exit_2(kafka, elasticsearch, index, containers) -> None:
    name = unique("container-boot")
    environment = elastic_env(name, "readings", index, elasticsearch, kafka)
    # The server answering is Elasticsearch: a worker's boot fails, and no worker has booted before.
    running = containers.start({**environment, "CONNECTOR_CONDUCTOR_ELASTIC_DISTRIBUTION": "opensearch"})
    started = time.monotonic()
    assert running.wait(30) == exitcodes.CONFIG_ERROR, running.log()
    assert time.monotonic() - started < 20
    log = running.log()
    assert "could not boot" in log and "opensearch" in log.lower(), log
    assert running.supervisor()["exit_code"] == exitcodes.CONFIG_ERROR


# -- Docker, where an engine answers ---------------------------------------------------------------


def docker_missing(*command: str) -> str | None:
    """Why `docker <command>` cannot run here, or None."""
    if os.environ.get("CONDUCTOR_NO_DOCKER"):
        return "CONDUCTOR_NO_DOCKER is set"
    if not shutil.which("docker"):
        return "no docker command"
    try:
        done = subprocess.run(["docker", *command], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker {' '.join(command)}: {error}"
    said = (done.stderr or done.stdout).strip().splitlines()
    return (
        f"docker {' '.join(command)} failed: {said[0] if said else done.returncode}"
        if done.returncode
        else None
    )


def test_the_image_builds_and_runs_read_only_as_its_user() -> None:
    missing = docker_missing("info")
    if missing:
        pytest.skip(f"no Docker engine answers ({missing}): the image is not built here")
    tag = "conductor:test-container"
    subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)], check=True, timeout=1800)
    run = ["docker", "run", "--rm", "--read-only"]
    user = subprocess.run([*run, "--entrypoint", "id", tag, "-u"], capture_output=True, text=True, timeout=60)
    assert user.stdout.strip() == final_stage()["USER"].partition(":")[0]
    version = subprocess.run([*run, tag, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "conductor" in version.stdout
    refused = subprocess.run(
        [*run, "-e", "CONDUCTOR_CONFIG=env:", tag], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == exitcodes.CONFIG_ERROR
    assert "no CONNECTOR_* variable is set" in refused.stderr


# -- compose/docker-compose.yml's demo pipeline ------------------------------------------------------


def compose_services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def internal_kafka(services: Mapping[str, dict]) -> str:
    """The address Kafka advertises to the containers beside it."""
    listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    return next(listener.split("//")[1] for listener in listeners if listener.startswith("INTERNAL://"))


def test_compose_builds_the_demo_services_from_the_image_read_only_with_their_files_present() -> None:
    services = compose_services()
    for server in ("kafka", "elasticsearch", "cassandra"):
        assert "profiles" not in services[server], (
            "`up` without a profile starts the servers alone (the test fixtures)"
        )
    stage = final_stage()
    (volume,) = json.loads(stage["VOLUME"])
    for name in (*DEMO_SERVICES, "readings"):
        service = services[name]
        assert service["profiles"] == ["demo"], name
        context = (COMPOSE.parent / service["build"]["context"]).resolve()
        assert context == ROOT and (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE
        assert service["read_only"] is True and volume in service["tmpfs"], name
        assert int(service["stop_grace_period"].removesuffix("s")) >= 30 + 2, "the default drain and margin"
    assert internal_kafka(services) in services["readings"]["command"]
    for name, service in services.items():
        for depended in service.get("depends_on", {}):
            assert depended in services, f"{name} depends on {depended}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert (COMPOSE.parent / source).is_file(), f"{name} mounts {source}, which is not there"


@pytest.mark.parametrize("name", DEMO_SERVICES)
def test_each_demo_service_config_loads_as_its_container_would_read_it(name: str) -> None:
    services = compose_services()
    service = services[name]
    image = dict(pair.partition("=")[::2] for pair in shlex.split(final_stage()["ENV"]))
    environ = {**image, **{key: str(value) for key, value in service["environment"].items()}}
    if environ["CONDUCTOR_CONFIG"] == "env:":
        config = parse_config(config_from_env(environ), source=SOURCE, environ=environ)
    else:
        mounts = {mount.split(":")[1]: mount.split(":")[0] for mount in service["volumes"]}
        config = load_config(COMPOSE.parent / mounts[environ["CONDUCTOR_CONFIG"]], environ=environ)
    assert config.warnings == ()
    assert config.kafka.bootstrap_servers == (internal_kafka(services),)
    if config.elastic is not None:
        assert config.elastic.hosts == ("http://elasticsearch:9200",)
    if config.cassandra is not None:
        assert config.cassandra.contact_points == ("cassandra",)
        assert config.cassandra.port == 9042
    health = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{config.rest.port}/health" in health
    for published in service.get("ports", []):
        assert published.rsplit(":", 1)[1] == str(config.rest.port) and config.rest.host == "0.0.0.0"


def test_docker_compose_accepts_the_file() -> None:
    missing = docker_missing("compose", "version")
    if missing:
        pytest.skip(f"docker compose cannot run here ({missing}); the file is checked by structure above")
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "demo", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
