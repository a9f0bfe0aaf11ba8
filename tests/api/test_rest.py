"""Kafka Connect's REST API on a real `conductor start`, driven by a real Kafka Connect client
(kafka-connect-py) where it has the call, and by plain HTTP for the rest: states through a
kill -9, pause and resume (nothing written or committed while paused), stop and the offsets,
restart, a task failed under THROW with its trace, validate, and a port already in use.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pytest
import requests
from elasticsearch import Elasticsearch
from kafka_connect import KafkaConnect
from support.pipeline import (
    ROOT,
    Conductor,
    committed_offsets,
    create_topic,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
    write_config,
)

from conductor import exitcodes

pytestmark = pytest.mark.servers

TS = 1_767_000_000_000
KCQL = "INSERT INTO {index} SELECT * FROM {topic} PK sensor_id, reading_id"
SECRET = "hunter2-not-to-be-shown"


def readings(start: int, count: int) -> list[tuple[bytes, bytes, int]]:
    return [
        (f"sensor-{n % 50:04d}".encode(), reading(n, TS + n), TS + n) for n in range(start, start + count)
    ]


def status(url: str, name: str) -> dict:
    return requests.get(f"{url}/connectors/{name}/status", timeout=10).json()


def task_states(url: str, name: str) -> list[str]:
    return [task["state"] for task in status(url, name)["tasks"]]


def all_running_with_partitions(url: str, name: str, workers: int) -> bool:
    state = requests.get(f"{url}/conductor/state", timeout=10).json()
    tasks = state["tasks"]
    return len(tasks) == workers and all(t["state"] == "RUNNING" and t["partitions"] for t in tasks)


@dataclass
class Sink:
    """A running Elasticsearch sink of two workers on a fresh two-partition topic."""

    conductor: Conductor
    name: str
    topic: str
    url: str


@pytest.fixture
def sink(kafka, elasticsearch, index, conductors, tmp_path) -> Callable[..., Sink]:
    def start(label: str, **settings: object) -> Sink:
        topic = create_topic(kafka, partitions=2)
        name = unique(label)
        kcql = KCQL.format(index=index, topic=topic)
        conductor = conductors(
            write_config(tmp_path, name, topic, kcql, elasticsearch, kafka, **settings), workers=2
        )
        url = conductor.url()
        wait_for(lambda: all_running_with_partitions(url, name, 2), 60, "both tasks running")
        return Sink(conductor, name, topic, url)

    return start


def test_the_rest_api_answers_a_kafka_connect_client(kafka, elasticsearch, index, sink):
    # ssl.truststore.password has no effect for Elasticsearch over http; masked all the same.
    started = sink("rest-es", ssl__truststore__password=SECRET)
    name, topic, url = started.name, started.topic, started.url
    client = KafkaConnect(url)

    info = client.get_cluster_info()
    assert set(info) == {"version", "commit", "kafka_cluster_id"} and info["kafka_cluster_id"]
    assert client.list_connectors() == [name]
    expanded = requests.get(f"{url}/connectors?expand=status&expand=info", timeout=10).json()
    assert set(expanded) == {name} and set(expanded[name]) == {"status", "info"}
    assert set(client.list_connectors(expand="status")[name]) == {"status"}

    connector = client.get_connector(name)
    assert connector["name"] == name and connector["type"] == "sink"
    assert connector["tasks"] == [{"connector": name, "task": 0}, {"connector": name, "task": 1}]
    shown = client.get_connector_config(name)
    assert shown["topics"] == topic and shown["ssl.truststore.password"] == "[hidden]"

    body = client.get_connector_status(name)
    host_port = body["connector"]["worker_id"]
    assert host_port == url.removeprefix("http://")
    assert body == {
        "name": name,
        "connector": {"state": "RUNNING", "worker_id": host_port},
        "tasks": [{"id": i, "state": "RUNNING", "worker_id": host_port} for i in range(2)],
        "type": "sink",
    }
    assert client.get_connector_task_status(name, 1) == {"id": 1, "state": "RUNNING", "worker_id": host_port}
    tasks = client.list_connector_tasks(name)
    assert [t["id"] for t in tasks] == [{"connector": name, "task": 0}, {"connector": name, "task": 1}]
    assert tasks[0]["config"]["task.class"] and tasks[0]["config"]["ssl.truststore.password"] == "[hidden]"
    assert client.list_connector_topics(name) == {name: {"topics": [topic]}}
    plugins = client.list_connector_plugins()
    assert {"class", "type", "version"} <= set(plugins[0])
    assert "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector" in {p["class"] for p in plugins}

    produced = produce(kafka, topic, readings(0, 500))
    wait_for(lambda: es_count(elasticsearch, index, settle_s=0) == produced, 60, "the readings written")
    offsets = wait_for(
        lambda: (
            (found := requests.get(f"{url}/connectors/{name}/offsets", timeout=10).json()["offsets"])
            and sum(o["offset"]["kafka_offset"] for o in found) == produced
            and found
        ),
        30,
        "the offsets committed",
    )
    assert {o["partition"]["kafka_partition"] for o in offsets} == {0, 1}
    assert all(o["partition"]["kafka_topic"] == topic for o in offsets)

    # Kafka Connect's error bodies and texts.
    missing = requests.get(f"{url}/connectors/nope/status", timeout=10)
    assert missing.status_code == 404
    assert missing.json() == {"error_code": 404, "message": "No status found for connector nope"}
    no_task = requests.get(f"{url}/connectors/{name}/tasks/7/status", timeout=10)
    assert no_task.json() == {"error_code": 404, "message": f"No status found for task {name}-7"}
    assert requests.delete(f"{url}/connectors/{name}/status", timeout=10).status_code == 405
    assert requests.get(f"{url}/health", timeout=10).json() == {
        "status": "healthy",
        "message": "Worker has completed startup and is ready to handle requests.",
    }
    # No answer anywhere holds the secret.
    for path in ("/connectors?expand=info", f"/connectors/{name}", f"/connectors/{name}/tasks"):
        assert SECRET not in requests.get(url + path, timeout=10).text


def test_pause_writes_and_commits_nothing_until_resumed(kafka, elasticsearch, index, sink):
    started = sink("rest-pause")
    conductor, name, topic, url = started.conductor, started.name, started.topic, started.url
    client = KafkaConnect(url)
    first = produce(kafka, topic, readings(0, 300))
    wait_for(lambda: es_count(elasticsearch, index, settle_s=0) == first, 60, "the first readings")

    client.pause_connector(name)
    wait_for(lambda: task_states(url, name) == ["PAUSED", "PAUSED"], 30, "both tasks paused")
    assert status(url, name)["connector"]["state"] == "PAUSED"
    committed = committed_offsets(kafka, f"connect-{name}")
    second = produce(kafka, topic, readings(first, 400))
    time.sleep(6)  # three state reports and many poll loops: what a paused worker would have written by now
    assert es_count(elasticsearch, index, settle_s=0) == first
    assert committed_offsets(kafka, f"connect-{name}") == committed
    assert task_states(url, name) == ["PAUSED", "PAUSED"]
    held = requests.get(f"{url}/conductor/state", timeout=10).json()["tasks"]
    assert sorted(p["partition"] for t in held for p in t["partitions"]) == [0, 1], "a paused task holds on"

    client.resume_connector(name)
    wait_for(
        lambda: es_count(elasticsearch, index, settle_s=0) == first + second, 60, "the rest after resume"
    )
    wait_for(lambda: task_states(url, name) == ["RUNNING", "RUNNING"], 30, "both tasks running again")
    assert "worker 0 paused" in conductor.full_log() and "worker 0 resumed" in conductor.full_log()


def test_states_through_kill_restart_stop_and_offsets(kafka, elasticsearch, index, sink):
    started = sink("rest-states", conductor__restart__backoff__initial__s=3)  # long enough to see RESTARTING
    conductor, name, topic, url = started.conductor, started.name, started.topic, started.url
    client = KafkaConnect(url)
    produced = produce(kafka, topic, readings(0, 200))
    wait_for(lambda: es_count(elasticsearch, index, settle_s=0) == produced, 60, "the readings written")

    # kill -9: RESTARTING while the slot waits out its backoff, then RUNNING with a new pid.
    pids = {t["id"]: t["pid"] for t in requests.get(f"{url}/conductor/state", timeout=10).json()["tasks"]}
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: task_states(url, name)[0] == "RESTARTING", 10, "task 0 RESTARTING after kill -9")
    assert status(url, name)["connector"]["state"] == "RUNNING"
    wait_for(lambda: all_running_with_partitions(url, name, 2), 60, "task 0 back")
    again = {t["id"]: t["pid"] for t in requests.get(f"{url}/conductor/state", timeout=10).json()["tasks"]}
    assert again[0] != pids[0] and again[1] == pids[1]

    # The REST server itself killed: the supervisor starts it again on the same socket.
    rest_pid = conductor.supervisor_state()["rest_pid"]
    os.kill(rest_pid, signal.SIGKILL)
    wait_for(
        lambda: conductor.supervisor_state().get("rest_pid") not in (None, rest_pid), 30, "a new REST server"
    )
    assert status(url, name)["connector"]["state"] == "RUNNING"
    assert "the REST server pid" in conductor.full_log() and "starting it again" in conductor.full_log()

    # One task restarted by request: 204, a new pid, the other untouched.
    client.restart_connector_task(name, 1)
    wait_for(
        lambda: (
            requests.get(f"{url}/conductor/state", timeout=10).json()["tasks"][1]["pid"]
            not in (None, again[1])
        ),
        30,
        "task 1 restarted",
    )
    # Both flags false restarts the Connector object only: nothing of conductor's (204).
    plain = requests.post(f"{url}/connectors/{name}/restart", timeout=10)
    assert plain.status_code == 204 and plain.content == b""
    everything = requests.post(f"{url}/connectors/{name}/restart?includeTasks=true", timeout=10)
    assert everything.status_code == 202
    assert [t["state"] for t in everything.json()["tasks"]] == ["RESTARTING", "RESTARTING"]
    wait_for(lambda: all_running_with_partitions(url, name, 2), 60, "both back after the restart")

    # Offsets change only while stopped, as in Kafka Connect.
    body = {
        "offsets": [
            {"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 3}}
        ]
    }
    refused = requests.patch(f"{url}/connectors/{name}/offsets", json=body, timeout=10)
    assert refused.status_code == 400 and "must be in the STOPPED state" in refused.json()["message"]
    client.stop_connector(name)
    wait_for(lambda: status(url, name) == {**status(url, name), "tasks": []}, 30, "no tasks while stopped")
    assert status(url, name)["connector"]["state"] == "STOPPED"
    wait_for(
        lambda: requests.patch(f"{url}/connectors/{name}/offsets", json=body, timeout=30).status_code == 200,
        30,
        "the offsets altered once the workers are gone",
    )
    assert committed_offsets(kafka, f"connect-{name}")[0] == 3
    bad = requests.patch(
        f"{url}/connectors/{name}/offsets", json={"offsets": [{"partition": {}}]}, timeout=10
    )
    assert bad.status_code == 400 and "'kafka_topic' and 'kafka_partition'" in bad.json()["message"]
    reset = requests.delete(f"{url}/connectors/{name}/offsets", timeout=30)
    assert reset.status_code == 200 and "have been reset successfully" in reset.json()["message"]
    assert requests.get(f"{url}/connectors/{name}/offsets", timeout=30).json() == {"offsets": []}

    client.resume_connector(name)
    wait_for(lambda: all_running_with_partitions(url, name, 2), 60, "running after resume from STOPPED")
    # From no commit the workers read from the start again: every offset is committed anew.
    wait_for(lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == produced, 60, "re-read")
    assert es_count(elasticsearch, index, settle_s=0) == produced  # the same documents, written again


STRICT = {
    "dynamic": "strict",
    "properties": {
        "reading_id": {"type": "long"},
        "sensor_id": {"type": "keyword"},
        "celsius": {"type": "float"},
        "timestamp": {"type": "long"},
    },
}
LINGER_MS = 4000


def test_a_task_failed_under_throw_shows_its_trace(kafka, elasticsearch, index, sink):
    """Partition 0 gets a record a strict mapping refuses; the worker holding it fails under THROW
    and stays FAILED (restart.max=0). Its partitions go to the other worker, which would fail on
    the same record: the mapping is mended while that one's batch lingers, so it runs on (and so
    does the supervisor, which stops once every worker has failed)."""
    client = Elasticsearch(elasticsearch)
    client.indices.create(index=index, mappings=STRICT)
    started = sink(
        "rest-throw",
        connect__elastic__error__policy="THROW",
        conductor__restart__max=0,
        conductor__linger__ms=LINGER_MS,
    )
    conductor, name, topic, url = started.conductor, started.name, started.topic, started.url
    bad = orjson.dumps({**orjson.loads(reading(1, TS)), "unmapped": "refused by the strict mapping"})
    produce(kafka, topic, [(b"bad", bad, TS)], partition=0)
    try:
        wait_for(
            lambda: any(s.get("state") == "failed" for s in conductor.states()), 30, "a failure", pause=0.05
        )
        client.indices.put_mapping(index=index, properties={"unmapped": {"type": "keyword"}})
    finally:
        client.close()

    def failed() -> dict | None:
        return next((t for t in status(url, name)["tasks"] if t["state"] == "FAILED"), None)

    task = wait_for(failed, 30, "a FAILED task")
    assert "strict_dynamic_mapping_exception" in task["trace"] and "Traceback" in task["trace"], task["trace"]
    assert "Caused by: conductor.errors.RecordError" in task["trace"]
    single = requests.get(f"{url}/connectors/{name}/tasks/{task['id']}/status", timeout=10).json()
    assert single["trace"] == task["trace"]
    # The other task wrote the record once the mapping took it, and runs on; so does the connector.
    wait_for(lambda: committed_offsets(kafka, f"connect-{name}").get(0) == 1, 60, "partition 0 committed")
    assert status(url, name)["connector"]["state"] == "RUNNING"
    assert {t["state"] for t in status(url, name)["tasks"]} == {"FAILED", "RUNNING"}

    restarted = requests.post(
        f"{url}/connectors/{name}/restart?includeTasks=true&onlyFailed=true", timeout=10
    )
    assert restarted.status_code == 202
    states = {t["id"]: t["state"] for t in restarted.json()["tasks"]}
    assert states == {task["id"]: "RESTARTING", 1 - task["id"]: "RUNNING"}
    wait_for(lambda: all_running_with_partitions(url, name, 2), 60, "the failed task running again")
    assert "trace" not in status(url, name)["tasks"][task["id"]]


def test_validate_answers_in_kafka_connects_shape(kafka, elasticsearch, index, conductors, tmp_path):
    topic = create_topic(kafka, partitions=1)
    name = unique("rest-validate")
    conductor = conductors(
        write_config(tmp_path, name, topic, KCQL.format(index=index, topic=topic), elasticsearch, kafka),
        workers=1,
    )
    client = KafkaConnect(conductor.url())
    plugin = "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector"
    good = {
        "name": "v",
        "connector.class": plugin,
        "topics": "t",
        "connect.elastic.kcql": "INSERT INTO i SELECT * FROM t",
        "connect.elastic.use.http.password": "s3cret",
    }
    answer = client.validate_connector_config("ElasticSinkConnector", good)
    assert answer["name"] == "ElasticSinkConnector" and answer["error_count"] == 0
    values = {c["value"]["name"]: c["value"] for c in answer["configs"]}
    assert values["connect.elastic.use.http.password"]["value"] == "[hidden]"
    assert set(answer["configs"][0]) == {"definition", "value"}

    def errors(config: dict) -> dict[str, list[str]]:
        answer = client.validate_connector_config("ElasticSinkConnector", config)
        found = {c["value"]["name"]: c["value"]["errors"] for c in answer["configs"] if c["value"]["errors"]}
        assert answer["error_count"] == sum(len(e) for e in found.values())
        return found

    kcql = errors({**good, "connect.elastic.kcql": "INSERT INTO i SELEC * FROM t"})
    assert list(kcql) == ["connect.elastic.kcql"] and "SELECT" in kcql["connect.elastic.kcql"][0]
    keys = errors({**good, "tasks.max": "many", "errors.tolerance": "some"})
    assert set(keys) == {"tasks.max", "errors.tolerance"}

    mismatch = requests.put(
        f"{conductor.url()}/connector-plugins/CassandraSinkConnector/config/validate", json=good, timeout=10
    )
    assert mismatch.status_code == 400 and "does not match request type" in mismatch.json()["message"]


def test_a_port_in_use_fails_the_start_naming_it(kafka, elasticsearch, tmp_path):
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        config = write_config(
            tmp_path,
            unique("rest-port"),
            "t",
            "INSERT INTO i SELECT * FROM t",
            elasticsearch,
            kafka,
            listeners=f"http://127.0.0.1:{port}",
        )
        env = {**os.environ, "CONDUCTOR_STATE_DIR": str(tmp_path / "state")}
        done = subprocess.run(
            [sys.executable, "-m", "conductor.cli", "start", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=ROOT,
        )
    finally:
        holder.close()
    assert done.returncode == exitcodes.CONFIG_ERROR, done.stderr
    assert f"port {port} is already in use on 127.0.0.1" in done.stderr and "listeners" in done.stderr
    assert not list((tmp_path / "state").glob("*/worker-*.json")), "no worker was started"
