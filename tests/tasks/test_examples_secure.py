"""The examples in examples/secure/ as they are (the same files, the same bytes), each run with
`conductor start --workers 2` on the secure servers: the test only gives them what they reference,
the variables `compose/local env` prints and the secrets/ folder of the directory conductor starts
in. Every reading is written to Elasticsearch and to Cassandra, and the aggregator's results over
SASL_SSL with transactions are exactly those computed here; no password shows anywhere after."""

from __future__ import annotations

import re
import time
from datetime import UTC
from pathlib import Path

import pytest
import requests
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from support.aggregates import MINUTE, Reading, by_window, close, readings, truth
from support.pipeline import ROOT, wait_for
from support.secure import (
    ConductorIn,
    assert_no_secret_anywhere,
    cassandra_session,
    committed,
    kafka_kwargs,
    read_committed,
)

from conductor.config.readers import read_properties
from conductor.config.secrets import REFERENCE

pytestmark = pytest.mark.servers

EXAMPLES = ROOT / "examples" / "secure"
# The names the examples use: the input, the aggregator's output, the stores, the connectors.
TOPIC = "secure.readings"
OUTPUT = "secure.readings.by_home"
INDEX = "secure_readings"
KEYSPACE = "secure_examples"
NAMES = {
    "es-sink.properties": "secure-readings-es",
    "cassandra-sink.properties": "secure-readings-cassandra",
    "aggregator.properties": "secure-readings-aggregator",
}
RECORDS = 400
WAIT_S = 60.0
# Keys whose values are secrets or differ from one machine (or one start) to the next.
REFERENCED = ("bootstrap.servers", "password", "username", "location", "path", "hosts", "points", "port")


def given() -> list[Reading]:
    """400 readings of 40 sensors in 8 homes over 4 minutes of event time, with an id and the
    event time in the value (as the examples' KCQL and SQL read them)."""
    return [
        Reading(r.key, {**r.value, "reading_id": n, "timestamp": r.timestamp}, r.timestamp)
        for n, r in enumerate(readings(RECORDS, 4 * MINUTE))
    ]


@pytest.mark.parametrize("example", sorted(NAMES))
def test_the_example_holds_no_secret_and_no_address_itself(example: str) -> None:
    values = read_properties(EXAMPLES / example)
    for key, value in values.items():
        if key.endswith(REFERENCED):
            assert REFERENCE.fullmatch(value.strip()), f"{example}: {key} is not a reference"
    jaas = values["sasl.jaas.config"]
    assert re.search(r'ScramLoginModule required\s+username="\$\{[^}]+\}" password="\$\{[^}]+\}";', jaas)


@pytest.fixture(scope="module")
def input_topic(secure: dict[str, str]) -> list[Reading]:
    """The examples' names are fixed, so an earlier run's topics go first: the input (made again
    with this run's readings), the aggregator's output and internal topics (their stream time
    would make these readings late). Kafka drops a deleted topic's committed offsets."""
    admin = KafkaAdminClient(**kafka_kwargs(secure))
    try:
        groups = [f"connect-{name}" for name in NAMES.values()]

        def members() -> list[str]:
            return [g for g, d in admin.describe_groups(groups).items() if d["members"]]

        wait_for(lambda: not members(), WAIT_S, "an earlier run's conductors to leave their groups")
        internal = f"connect-{NAMES['aggregator.properties']}-"
        doomed = [t for t in admin.list_topics() if t in (TOPIC, OUTPUT) or t.startswith(internal)]
        if doomed:
            admin.delete_topics(doomed)
            wait_for(lambda: not set(doomed) & set(admin.list_topics()), WAIT_S, f"{doomed} deleted")
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
                break
            except TopicAlreadyExistsError:  # still being deleted
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        admin.close()
    records = given()
    producer = KafkaProducer(**kafka_kwargs(secure), acks="all", linger_ms=20)
    for key, value, timestamp in (r.as_record() for r in records):
        producer.send(TOPIC, key=key, value=value, timestamp_ms=timestamp)
    producer.flush()
    producer.close()
    return records


@pytest.fixture
def start_example(secure: dict[str, str], tmp_path: Path):
    """Run an example in tmp_path, with the secrets/ folder its references read there: what a
    Kubernetes Secret mounted as a volume gives, one file per key, and a properties file."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "kafka-password").write_text(secure["CONDUCTOR_KAFKA_PASSWORD"])
    (secrets / "conductor.properties").write_text(
        f"kafka.password={secure['CONDUCTOR_KAFKA_PASSWORD']}\n"
        f"cassandra.password={secure['CONDUCTOR_CASSANDRA_PASSWORD']}\n"
    )
    started: list[ConductorIn] = []

    def start(example: str) -> ConductorIn:
        conductor = ConductorIn(
            EXAMPLES / example, tmp_path / "state", workers=2, cwd=tmp_path, environment=secure
        )
        started.append(conductor.start())
        return conductor

    yield start
    for conductor in started:
        if conductor.process is not None and conductor.process.poll() is None:
            conductor.stop(timeout=30)


def wait_on(conductor: ConductorIn, predicate, what: str) -> None:
    """wait_for, with the end of conductor's log when it times out."""
    try:
        wait_for(predicate, WAIT_S, what)
    except AssertionError as error:
        raise AssertionError(f"{error}; conductor's log ends with:\n{conductor.output()}") from None


def finish(secure: dict[str, str], conductor: ConductorIn, example: str) -> None:
    """Offsets committed to the end of the input, no password anywhere, a clean stop with a clean log."""
    name = NAMES[example]
    wait_on(conductor, lambda: committed(secure, f"connect-{name}", TOPIC) == RECORDS, "offsets committed")
    assert_no_secret_anywhere(secure, conductor, name)
    assert conductor.stop() == 0
    # Every key of the example is read (none "has no effect here"), and nothing went wrong.
    log = conductor.full_log()
    assert not [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line], log
    assert "has no effect" not in log, log


def test_the_elasticsearch_sink_example(secure, input_topic, start_example) -> None:
    base, ca = secure["CONDUCTOR_ELASTICSEARCH_URL"], secure["CONDUCTOR_CA_FILE"]
    auth = (secure["CONDUCTOR_ELASTICSEARCH_USERNAME"], secure["CONDUCTOR_ELASTICSEARCH_PASSWORD"])
    deleted = requests.delete(f"{base}/{INDEX}", auth=auth, verify=ca, timeout=30)
    assert deleted.status_code in (200, 404), deleted.text
    conductor = start_example("es-sink.properties")

    def count() -> int:
        requests.post(f"{base}/{INDEX}/_refresh", auth=auth, verify=ca, timeout=10)
        answer = requests.get(f"{base}/{INDEX}/_count", auth=auth, verify=ca, timeout=10)
        return answer.json().get("count", 0) if answer.ok else 0

    wait_on(conductor, lambda: count() == RECORDS, f"{RECORDS} documents over https")
    document = requests.get(f"{base}/{INDEX}/_doc/123", auth=auth, verify=ca, timeout=10).json()
    assert document["_source"] == input_topic[123].value
    finish(secure, conductor, "es-sink.properties")
    assert count() == RECORDS


def test_the_cassandra_sink_example(secure, input_topic, start_example) -> None:
    with cassandra_session(secure) as session:
        session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=60)
        for statement in (EXAMPLES / "cassandra-schema.cql").read_text().split(";"):
            lines = [line for line in statement.splitlines() if not line.startswith("--")]
            if "".join(lines).strip():
                session.execute("\n".join(lines), timeout=60)
        conductor = start_example("cassandra-sink.properties")
        rows = lambda: session.execute(f"SELECT COUNT(*) FROM {KEYSPACE}.readings").one()[0]
        wait_on(conductor, lambda: rows() == RECORDS, f"{RECORDS} rows over TLS")
        row = session.execute(f"SELECT * FROM {KEYSPACE}.readings WHERE reading_id = 123").one()
        want = input_topic[123].value
        fields = ("sensor_id", "home_id", "celsius")
        assert tuple(getattr(row, f) for f in fields) == tuple(want[f] for f in fields)
        assert int(row.ts.replace(tzinfo=UTC).timestamp() * 1000) == want["timestamp"]  # read as naive UTC
        finish(secure, conductor, "cassandra-sink.properties")
        assert rows() == RECORDS


def test_the_aggregator_example_exactly_once_over_sasl_ssl(secure, input_topic, start_example) -> None:
    conductor = start_example("aggregator.properties")
    homes = truth(input_topic, lambda v: (v["home_id"],), MINUTE)
    results = read_committed(secure, OUTPUT, len(homes))
    assert len(results) >= len(homes), f"{len(results)} of {len(homes)} results; log:\n{conductor.output()}"
    got = by_window(results, ("home_id",))
    assert set(got) == set(homes)
    for window, members in homes.items():
        celsius = [r.value["celsius"] for r in members]
        result = got[window]
        assert result["readings"] == len(members)
        assert close(result["avg_celsius"], sum(celsius) / len(celsius))
        assert (result["min_celsius"], result["max_celsius"]) == (min(celsius), max(celsius))
        assert result["window_end"] == result["window_start"] + MINUTE
    finish(secure, conductor, "aggregator.properties")
    assert sum(state.get("commits", 0) for state in conductor.states()) > 0
