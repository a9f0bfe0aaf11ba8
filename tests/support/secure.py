"""What the tests on the secure servers share (CONDUCTOR_SECURE=1 compose/local up; the `secure`
fixture gives what `compose/local env` prints): Kafka clients over SASL_SSL, Cassandra over TLS
with its user, a `conductor start` in a folder of its own, and the search for every password in
what conductor leaves behind."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from support.pipeline import ROOT, Conductor, wait_for


def kafka_kwargs(secure: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python's keywords for the secure listener: SASL_SSL, SCRAM-SHA-512, the CA."""
    return {
        "bootstrap_servers": secure["CONDUCTOR_KAFKA_BOOTSTRAP"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": secure["CONDUCTOR_KAFKA_USERNAME"],
        "sasl_plain_password": secure["CONDUCTOR_KAFKA_PASSWORD"],
        "ssl_cafile": secure["CONDUCTOR_CA_FILE"],
    }


def committed(secure: Mapping[str, str], group: str, topic: str) -> int:
    """The group's committed offsets on every partition of `topic`, summed."""
    consumer = KafkaConsumer(**kafka_kwargs(secure), group_id=group, enable_auto_commit=False)
    try:
        partitions = wait_for(lambda: consumer.partitions_for_topic(topic), 30, f"metadata of {topic}")
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions)
    finally:
        consumer.close()


def read_committed(secure: Mapping[str, str], topic: str, expected: int, timeout: float = 60) -> list:
    """Every record of `topic` as (key, value) JSON, read_committed, once `expected` have come and
    3 seconds more (so that a duplicate would be seen)."""
    consumer = KafkaConsumer(
        topic,
        **kafka_kwargs(secure),
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    found: list = []
    deadline, settled_at = time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                found += [(json.loads(m.key), json.loads(m.value)) for m in messages]
            if len(found) >= expected:
                settled_at = settled_at or time.monotonic()
                if time.monotonic() - settled_at >= 3.0:
                    break
    finally:
        consumer.close()
    return found


@contextmanager
def cassandra_session(secure: Mapping[str, str]) -> Iterator[Any]:
    """A session as the secure Cassandra's user, over TLS."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    cluster = Cluster(
        secure["CONDUCTOR_CASSANDRA_HOSTS"].split(","),
        port=int(secure["CONDUCTOR_CASSANDRA_PORT"]),
        auth_provider=PlainTextAuthProvider(
            secure["CONDUCTOR_CASSANDRA_USERNAME"], secure["CONDUCTOR_CASSANDRA_PASSWORD"]
        ),
        ssl_context=ssl.create_default_context(cafile=secure["CONDUCTOR_CA_FILE"]),
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


@dataclass
class ConductorIn(Conductor):
    """`conductor start` run in `cwd` with `environment` added to the test's: for a config whose
    references name environment variables and files relative to where conductor starts."""

    cwd: Path = ROOT
    environment: Mapping[str, str] = field(default_factory=dict)

    def start(self) -> ConductorIn:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.environment, "CONDUCTOR_STATE_DIR": str(self.state_dir)}
        command = [sys.executable, "-m", "conductor.cli", "start", "--workers", str(self.workers)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
            )
        return self


def assert_no_secret_anywhere(secure: Mapping[str, str], conductor: Conductor, name: str) -> None:
    """No password of the secure servers in the log, the state files, /conductor/state, the
    connector's /config and /status, or /metrics."""
    secrets = [secure[key] for key in secure if key.endswith("_PASSWORD")]
    url = conductor.url()
    seen = {
        "log": conductor.full_log(),
        "state": requests.get(f"{url}/conductor/state", timeout=10).text,
        "config": requests.get(f"{url}/connectors/{name}/config", timeout=10).text,
        "status": requests.get(f"{url}/connectors/{name}/status", timeout=10).text,
        "metrics": requests.get(f"{url}/metrics", timeout=10).text,
    }
    for path in conductor.state_dir.rglob("*"):
        if path.is_file():
            seen[str(path)] = path.read_bytes().decode(errors="replace")
    for where, text in seen.items():
        for secret in secrets:
            assert secret not in text, f"a password is in {where}"
