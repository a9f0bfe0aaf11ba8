"""The aggregator on the real Kafka: every result checked against a truth computed here, read
with read_committed, and none emitted twice."""

from __future__ import annotations

import json
import os
import signal
import time

from kafka import KafkaConsumer
from support.aggregates import (
    MINUTE,
    Reading,
    by_window,
    close,
    config,
    internal_topics,
    read_results,
    readings,
    truth,
)
from support.pipeline import create_topic, produce, unique, wait_for

FAST = {"conductor__aggregate__idle__close__ms": 2000, "conductor__linger__ms": 100}


def test_tumbling_by_key_and_hopping_regrouped_two_statements_one_read(kafka, tmp_path, conductors):
    topic = create_topic(kafka, 6, "agg-in")
    by_sensor, by_home = unique("agg-sensor"), unique("agg-home")
    given = readings(6000, 6 * MINUTE)
    produce(kafka, topic, (r.as_record() for r in given))
    sql = (
        f"INSERT INTO {by_sensor} SELECT sensor_id, COUNT(*) AS n, SUM(raw) AS total, AVG(celsius) AS avg, "
        f"MIN(celsius) AS lo, MAX(celsius) AS hi, EARLIEST(celsius) AS first, LATEST(celsius) AS last "
        f"FROM {topic} KEYED BY sensor_id WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY sensor_id; "
        f"INSERT INTO {by_home} SELECT home_id, COUNT(*) AS n, AVG(celsius) AS avg FROM {topic} "
        f"WHERE celsius >= 20.5 AND NOT raw = 3 "
        f"WINDOW HOPPING (SIZE 2 MINUTES, ADVANCE BY 1 MINUTE, GRACE PERIOD 1 HOUR) GROUP BY home_id"
    )
    name = unique("agg")
    conductor = conductors(config(tmp_path, name, topic, sql, kafka, **FAST), workers=3)

    sensors = truth(given, lambda v: (v["sensor_id"],), MINUTE)
    got = by_window(read_results(kafka, by_sensor, len(sensors)), ("sensor_id",))
    assert set(got) == set(sensors)
    for window, members in sensors.items():
        celsius = [r.value["celsius"] for r in members]
        result = got[window]
        assert result["n"] == len(members)
        assert result["total"] == sum(r.value["raw"] for r in members)
        assert type(result["total"]) is int
        assert close(result["avg"], sum(celsius) / len(celsius))
        assert (result["lo"], result["hi"]) == (min(celsius), max(celsius))
        assert (result["first"], result["last"]) == (celsius[0], celsius[-1])
        assert result["window_end"] == result["window_start"] + MINUTE

    homes = truth(
        given,
        lambda v: (v["home_id"],),
        2 * MINUTE,
        MINUTE,
        where=lambda v: v["celsius"] >= 20.5 and v["raw"] != 3,
    )
    got = by_window(read_results(kafka, by_home, len(homes)), ("home_id",))
    assert set(got) == set(homes)
    for window, members in homes.items():
        assert got[window]["n"] == len(members)
        assert close(got[window]["avg"], sum(r.value["celsius"] for r in members) / len(members))
    # State in one compacted changelog per statement; the regrouping kept without a time limit
    # (records whose event times are days old must not go before they are read).
    internal = internal_topics(kafka, name)
    assert sorted(internal.values(), key=len) == [
        {"cleanup.policy": "compact"},
        {"cleanup.policy": "compact"},
        {"cleanup.policy": "delete", "retention.ms": "-1"},
    ]
    assert [t for t in internal if t.endswith("repartition")] == [
        f"connect-{name}-{topic}-by-home_id-repartition"
    ]
    assert all(state["open_windows"] == 0 for state in conductor.states())  # closed: dropped
    assert conductor.stop() == 0


def test_out_of_order_within_grace_counts_late_beyond_it_goes_to_the_dead_letter_topic(
    kafka, tmp_path, conductors
):
    topic = create_topic(kafka, 1, "agg-late")
    out, dead = unique("agg-out"), unique("agg-dlq")

    def at(seconds: float, celsius: float) -> Reading:
        return Reading("s1", {"sensor_id": "s1", "celsius": celsius}, BASE_MS + int(seconds * 1000))

    sequence = [
        at(10, 1.0),
        at(70, 2.0),  # stream time 70 s: window [0, 60) closes at 60 + 30 = 90 s
        at(50, 4.0),  # out of order, within grace: counts in [0, 60)
        at(95, 8.0),  # stream time 95 s: [0, 60) is closed
        at(20, 16.0),  # late: beyond the grace of its only window
        at(65, 32.0),  # out of order but its window [60, 120) is open
    ]
    produce(kafka, topic, [r.as_record() for r in sequence] + [(b"s1", b"not json", BASE_MS)])
    sql = (
        f"INSERT INTO {out} SELECT sensor_id, COUNT(*) AS n, SUM(celsius) AS total FROM {topic} "
        f"KEYED BY sensor_id WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 30 SECONDS) GROUP BY sensor_id"
    )
    settings = {
        **FAST,
        "errors__tolerance": "all",
        "errors__deadletterqueue__topic__name": dead,
        "errors__deadletterqueue__topic__replication__factor": 1,
        "errors__deadletterqueue__context__headers__enable": "true",
    }
    conductor = conductors(config(tmp_path, unique("agg"), topic, sql, kafka, **settings), workers=1)
    got = by_window(read_results(kafka, out, 2), ("sensor_id",))
    assert {w[1] - BASE_MS: v["total"] for w, v in got.items()} == {0: 1.0 + 4.0, MINUTE: 2.0 + 8.0 + 32.0}
    assert {w[1] - BASE_MS: v["n"] for w, v in got.items()} == {0: 2, MINUTE: 3}

    dead_letters = read_all(kafka, dead, 2)
    assert [m.value for m in dead_letters] == [json.dumps(sequence[4].value).encode(), b"not json"]
    late = dict(dead_letters[0].headers)
    assert late["__conductor.aggregate.late"] == b"true"
    assert int(late["__connect.errors.offset"]) == 4
    wait_for(lambda: conductor.total("late") == 1, 10, "the late record in the worker's state")
    assert conductor.total("skipped") == 1
    assert "__conductor.aggregate.late" not in dict(dead_letters[1].headers)
    assert conductor.stop() == 0


BASE_MS = 1_767_225_600_000


def test_emit_changes_sends_an_update_per_record_and_the_last_is_the_total(kafka, tmp_path, conductors):
    topic = create_topic(kafka, 3, "agg-changes")
    out = unique("agg-out")
    given = readings(900, 3 * MINUTE, sensors=9)
    produce(kafka, topic, (r.as_record() for r in given))
    sql = (
        f"INSERT INTO {out} SELECT sensor_id, COUNT(*) AS n, MAX(celsius) AS hi FROM {topic} KEYED BY sensor_id "
        f"WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY sensor_id EMIT CHANGES"
    )
    conductor = conductors(config(tmp_path, unique("agg"), topic, sql, kafka, **FAST), workers=2)
    results = read_results(kafka, out, len(given))
    assert len(results) == len(given)
    last: dict[tuple, dict] = {}
    for _, value in results:
        window = (value["sensor_id"], value["window_start"])
        if window in last:  # each update of a window counts one more record
            assert value["n"] == last[window]["n"] + 1
        last[window] = value
    expected = truth(given, lambda v: (v["sensor_id"],), MINUTE)
    assert {w: v["n"] for w, v in last.items()} == {w: len(m) for w, m in expected.items()}
    assert {w: v["hi"] for w, v in last.items()} == {
        w: max(r.value["celsius"] for r in m) for w, m in expected.items()
    }
    assert conductor.stop() == 0


def test_kill_9_of_a_worker_and_a_second_conductor_joining_and_leaving(kafka, tmp_path, conductors):
    """Exactly once through crashes and rebalances: every (home, window) once, every count exact."""
    topic = create_topic(kafka, 6, "agg-crash")
    out = unique("agg-out")
    given = readings(120_000, 30 * MINUTE, sensors=300, homes=30)
    name = unique("agg")
    sql = (
        f"INSERT INTO {out} SELECT home_id, COUNT(*) AS n, SUM(raw) AS total, MAX(celsius) AS hi FROM {topic} "
        f"WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 1 HOUR) GROUP BY home_id"
    )
    path = config(tmp_path, name, topic, sql, kafka, conductor__batch__max__records=500, **FAST)
    first = conductors(path, workers=2, label="a")
    produce(kafka, topic, (r.as_record() for r in given[:60_000]))
    wait_for(lambda: first.total("read") > 20_000, 90, "the first conductor to be under way")
    victim = first.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    second = conductors(path, workers=2, label="b")
    produce(kafka, topic, (r.as_record() for r in given[60_000:]))
    wait_for(lambda: second.total("read") > 10_000, 90, "the second conductor to take partitions")
    assert second.stop() == 0
    expected = truth(given, lambda v: (v["home_id"],), MINUTE)
    got = by_window(read_results(kafka, out, len(expected), timeout=240), ("home_id",))
    assert set(got) == set(expected)
    for window, members in expected.items():
        assert (got[window]["n"], got[window]["total"]) == (
            len(members),
            sum(r.value["raw"] for r in members),
        )
        assert got[window]["hi"] == max(r.value["celsius"] for r in members)
    log = first.full_log()
    assert f"pid {victim} ended" in log
    assert "restored" in log
    assert first.stop() == 0


def read_all(kafka: str, topic: str, count: int, timeout: float = 60) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    found: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                found += messages
    finally:
        consumer.close()
    return found


def test_idle_close_waits_while_any_partition_of_the_group_is_behind(kafka, tmp_path, conductors):
    """One worker's partition is idle, with windows open, while the other's is far behind; more
    old readings then come to the idle one. Had it closed its windows, they would be late."""
    topic = create_topic(kafka, 2, "agg-idle")
    out = unique("agg-out")
    busy = readings(30_000, 30 * MINUTE, sensors=20)
    quiet = [Reading("q", {**r.value, "sensor_id": "q"}, r.timestamp) for r in readings(300, 30 * MINUTE)]
    sql = (
        f"INSERT INTO {out} SELECT sensor_id, COUNT(*) AS n FROM {topic} KEYED BY sensor_id "
        f"WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY sensor_id"
    )
    settings = {"conductor__aggregate__idle__close__ms": 300, "conductor__batch__max__records": 50}
    conductor = conductors(config(tmp_path, unique("agg"), topic, sql, kafka, **settings), workers=2)
    wait_for(lambda: len(conductor.partitions()) == 2, 60, "both partitions assigned")
    produce(kafka, topic, (r.as_record() for r in busy), partition=0)
    produce(kafka, topic, (r.as_record() for r in quiet[:100]), partition=1)  # windows open there
    wait_for(lambda: conductor.total("idle_close_deferred") > 0, 30, "the idle worker to defer its close")
    produce(kafka, topic, (r.as_record() for r in quiet[100:]), partition=1)
    expected = truth(busy + quiet, lambda v: (v["sensor_id"],), MINUTE)
    got = by_window(read_results(kafka, out, len(expected), timeout=180), ("sensor_id",))
    assert {w: v["n"] for w, v in got.items()} == {w: len(m) for w, m in expected.items()}
    assert conductor.total("late") == 0
    assert conductor.stop() == 0


def test_a_worker_without_windows_does_not_hold_back_the_others_idle_close(kafka, tmp_path, conductors):
    """Partition 1 holds only readings the WHERE filters out, written in a Kafka transaction
    (so its last offset is a commit marker), and its worker opens no window. The group only
    looks caught up once that worker commits past the marker, idle as it is."""
    from kafka import KafkaProducer

    topic = create_topic(kafka, 2, "agg-marker")
    out = unique("agg-out")
    kept = readings(200, 2 * MINUTE, sensors=4)
    produce(kafka, topic, (r.as_record() for r in kept), partition=0)
    producer = KafkaProducer(bootstrap_servers=kafka, transactional_id=unique("agg-marker-tx"))
    producer.init_transactions()
    producer.begin_transaction()
    for reading in readings(50, MINUTE, sensors=4):
        key, _, timestamp = reading.as_record()
        value = json.dumps({**reading.value, "celsius": -99.0}).encode()
        producer.send(topic, key=key, value=value, timestamp_ms=timestamp, partition=1)
    producer.commit_transaction()
    producer.close()
    sql = (
        f"INSERT INTO {out} SELECT sensor_id, COUNT(*) AS n FROM {topic} KEYED BY sensor_id "
        f"WHERE celsius > -50 WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 1 HOUR) GROUP BY sensor_id"
    )
    settings = {"conductor__aggregate__idle__close__ms": 500}
    conductor = conductors(config(tmp_path, unique("agg"), topic, sql, kafka, **settings), workers=2)
    expected = truth(kept, lambda v: (v["sensor_id"],), MINUTE)
    got = by_window(read_results(kafka, out, len(expected), timeout=60), ("sensor_id",))
    assert {w: v["n"] for w, v in got.items()} == {w: len(m) for w, m in expected.items()}
    assert conductor.stop() == 0
