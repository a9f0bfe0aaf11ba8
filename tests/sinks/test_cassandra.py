"""The Cassandra sink against the real server. Each test module gets its own keyspace (dropped
at the end) and each test its own tables; faults are injected by wrapping the real session."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import probes  # compose/, put on sys.path by tests/conftest.py
import pytest
from cassandra import WriteTimeout, WriteType
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.protocol import InvalidRequest
from support.records import TS, record, route

from conductor.config import CassandraSettings, Credentials, Secret, parse_config
from conductor.errors import ConfigError, RecordError, RetriableRecordError, SinkUnavailable
from conductor.records import Record
from conductor.routes import Route
from sinks.cassandra import CassandraSink, build

HOME = uuid.UUID("7d444840-9dc0-11d1-b245-5ffdce74fad2")
READINGS = """(sensor_id text, ts timestamp, celsius double, humidity float, home uuid,
    tags set<text>, attrs map<text, int>, day date, reading_id bigint, ok boolean, price decimal,
    PRIMARY KEY ((sensor_id), ts))"""


def reading(n: int, **fields: Any) -> dict[str, Any]:
    return {"sensor_id": f"sensor-{n % 50}", "ts": TS + n, "celsius": 20.0 + n / 100, **fields}


@pytest.fixture(scope="module")
def cassandra(request: pytest.FixtureRequest) -> tuple[tuple[str, ...], int]:
    """Cassandra alone when it answers: the session fixture waits for all three servers."""
    launcher = Path(__file__).resolve().parents[2] / "compose" / "local"
    found = subprocess.run([sys.executable, str(launcher), "env", "--json"], capture_output=True, text=True)
    env = json.loads(found.stdout or "{}")
    hosts = tuple(env.get("CONDUCTOR_CASSANDRA_HOSTS", "127.0.0.1").split(","))
    port = int(env.get("CONDUCTOR_CASSANDRA_PORT", 9042))
    try:
        probes.cassandra_query(hosts[0], port)
    except probes.ProbeFailed:
        servers = request.getfixturevalue("servers")
        return servers.cassandra_hosts, servers.cassandra_port
    return hosts, port


@pytest.fixture(scope="module")
def session(cassandra: tuple[tuple[str, ...], int]) -> Iterator[Session]:
    hosts, port = cassandra
    cluster = Cluster(list(hosts), port=port, protocol_version=5)
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def keyspace(session: Session) -> Iterator[str]:
    name = f"conductor_test_{uuid.uuid4().hex[:12]}"
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    yield name
    session.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.fixture
def table(session: Session, keyspace: str) -> Callable[..., str]:
    """A new table (readings' columns unless given); returns its unqualified name."""

    def make(columns: str = READINGS) -> str:
        name = f"t_{uuid.uuid4().hex[:10]}"
        session.execute(f"CREATE TABLE {keyspace}.{name} {columns}")
        return name

    return make


@pytest.fixture
def make_sink(
    cassandra: tuple[tuple[str, ...], int], keyspace: str
) -> Iterator[Callable[..., CassandraSink]]:
    sinks: list[CassandraSink] = []
    hosts, port = cassandra

    def make(routes: list[Route], setup: bool = True, **settings: Any) -> CassandraSink:
        options = {"contact_points": hosts, "port": port, "keyspace": keyspace, **settings}
        sink = CassandraSink(CassandraSettings(**options), routes)
        sinks.append(sink)
        if setup:
            sink.setup()
        return sink

    yield make
    for sink in sinks:
        sink.close()


def rows(session: Session, keyspace: str, name: str) -> dict[tuple[str, datetime], Any]:
    found = session.execute(f"SELECT * FROM {keyspace}.{name}")
    return {(row.sensor_id, row.ts): row for row in found}


def count(session: Session, keyspace: str, name: str) -> int:
    return session.execute(f"SELECT COUNT(*) FROM {keyspace}.{name}", timeout=60).one()[0]


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


# -- writing ----------------------------------------------------------------------------


def test_ten_thousand_rows_all_written(session, keyspace, table, make_sink):
    name = table()
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r])
    batch = [(record(n, reading(n, reading_id=n)), r) for n in range(10_000)]
    assert sink.write(batch) == []
    assert count(session, keyspace, name) == 10_000
    assert sink.last_write.statements == 10_000


def test_unlogged_batches_group_by_partition(session, keyspace, table, make_sink):
    name = table()
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r], unlogged_batches=True, batch_size=30)
    batch = [(record(n, reading(n)), r) for n in range(3000)]
    batch[7] = (record(7, reading(7, celsius="hot")), r)
    failures = sink.write(batch)
    assert [f.record.offset for f in failures] == [7]
    assert count(session, keyspace, name) == 2999
    # 50 partitions of 60 rows, in batches of at most 30
    assert sink.last_write.requests == 100


def test_batches_are_the_default_and_keep_each_rows_timestamp_and_ttl(session, keyspace, table, make_sink):
    """Grouped by partition as the DataStax sink groups them; each row keeps its own USING
    TIMESTAMP (the record's) and the route's TTL inside the batch."""
    name = table()
    r = route(f"INSERT INTO {name} SELECT * FROM readings TTL=3600")
    sink = make_sink([r])
    assert sink.settings.unlogged_batches
    batch = [(record(n, reading(n), timestamp=TS + n), r) for n in range(200)]
    assert sink.write(batch) == []
    assert (sink.last_write.statements, sink.last_write.requests) == (200, 50)  # 50 sensors
    found = session.execute(f"SELECT ts, WRITETIME(celsius), TTL(celsius) FROM {keyspace}.{name}")
    writetimes = {int(row.ts.replace(tzinfo=UTC).timestamp() * 1000) - TS: row[1] for row in found}
    assert writetimes == {n: (TS + n) * 1000 + n for n in range(200)}
    ttl = session.execute(f"SELECT TTL(celsius) FROM {keyspace}.{name} LIMIT 1").one()[0]
    assert 3500 < ttl <= 3600


def test_a_delete_and_an_insert_of_one_key_in_one_batch_keep_record_order(
    session, keyspace, table, make_sink
):
    """Decided: the record order is kept by each statement's write timestamp (Kafka timestamp in
    us + offset % 1000), not by the order statements reach Cassandra, which batching changes.
    Within one millisecond the later offset is the later write, so insert-then-delete leaves no
    row and delete-then-insert leaves the row (a tie, which tombstones would win, needs two
    records of one key 1000 offsets apart in the same millisecond)."""
    name = table("(sensor_id text PRIMARY KEY, celsius double)")
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r], delete_enabled=True, delete_statement=f"DELETE FROM {name} WHERE sensor_id = ?")
    batch = [
        (record(1, {"sensor_id": "gone", "celsius": 1.0}), r),
        (record(2, None, key=b"gone"), r),  # inserted, then deleted
        (record(3, None, key=b"back"), r),
        (record(4, {"sensor_id": "back", "celsius": 2.0}), r),  # deleted, then inserted
        *[(record(10 + n, {"sensor_id": "gone", "celsius": 0.5}, timestamp=TS - 1), r) for n in range(3)],
    ]
    assert sink.write(batch) == []
    assert sink.last_write.requests < sink.last_write.statements  # some statements went in batches
    remaining = {row.sensor_id: row.celsius for row in session.execute(f"SELECT * FROM {keyspace}.{name}")}
    assert remaining == {"back": 2.0}  # the older inserts of "gone" (earlier timestamp) stay deleted


def test_a_batch_cassandra_refuses_is_written_row_by_row(session, keyspace, table, make_sink):
    """One statement Cassandra refuses (a clustering key over 64 KiB) spoils its whole batch:
    the batch's other rows are written one by one and only that record fails."""
    name = table("(sensor_id text, tag text, celsius double, PRIMARY KEY ((sensor_id), tag))")
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r])
    batch = [(record(n, {"sensor_id": "s", "tag": f"t{n}", "celsius": float(n)}), r) for n in range(10)]
    batch[4] = (record(4, {"sensor_id": "s", "tag": "x" * 70_000, "celsius": 4.0}), r)
    failures = sink.write(batch)
    assert [(f.record.offset, type(f.error)) for f in failures] == [(4, RecordError)]
    assert "Cassandra refused the write" in failures[0].error.reason
    assert count(session, keyspace, name) == 9
    assert sink.last_write.requests == 1 + 10  # the batch, then each of its statements alone


def test_two_statements_on_one_topic_write_both_tables(session, keyspace, table, make_sink):
    first, second = table(), table("(sensor_id text PRIMARY KEY, celsius double)")
    routes = [
        route(f"INSERT INTO {first} SELECT * FROM readings"),
        route(f"INSERT INTO {keyspace}.{second} SELECT sensor_id, celsius FROM readings"),
    ]
    sink = make_sink(routes)
    batch = [(record(n, reading(n)), r) for n in range(200) for r in routes]
    assert sink.write(batch) == []
    assert count(session, keyspace, first) == 200
    assert count(session, keyspace, second) == 50  # sensor-0 .. sensor-49, last write wins
    latest = session.execute(f"SELECT celsius FROM {keyspace}.{second} WHERE sensor_id = 'sensor-7'")
    assert latest.one().celsius == 20.0 + 157 / 100  # the highest offset of sensor-7


def test_type_conversions(session, keyspace, table, make_sink):
    name = table()
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r])
    full = {
        "sensor_id": "a",
        "ts": "2025-12-29T12:00:00.250Z",
        "celsius": 21,
        "humidity": "0.5",
        "home": str(HOME),
        "tags": ["x", "y", "x"],
        "attrs": {"floor": 2, "room": "7"},
        "day": "2026-11-24",
        "reading_id": 12.0,
        "ok": "TRUE",
        "price": 19.99,
    }
    batch = [
        (record(1, full), r),
        (
            record(
                2,
                {
                    "sensor_id": "b",
                    "ts": TS,
                    "day": TS,
                    "reading_id": "42",
                    "ok": False,
                    "price": "1.000000000000000000001",
                    "celsius": "-3.5",
                },
            ),
            r,
        ),
        (record(3, {"sensor_id": "c", "ts": "2025-12-29T13:00:00+01:00", "unknown": 1}), r),
        (record(4, {"sensor_id": 5, "ts": "2025-12-29 12:00:00"}), r),
    ]
    assert sink.write(batch) == []
    found = rows(session, keyspace, name)
    a = found[("a", datetime(2025, 12, 29, 12, 0, 0, 250_000))]
    assert (a.celsius, a.humidity, a.home, a.tags, a.attrs) == (
        21.0,
        0.5,
        HOME,
        {"x", "y"},
        {"floor": 2, "room": 7},
    )
    assert (a.day.date(), a.reading_id, a.ok, a.price) == (date(2026, 11, 24), 12, True, Decimal("19.99"))
    b = found[("b", at(TS))]
    assert (b.day.date(), b.reading_id, b.ok, b.price, b.celsius) == (
        date(2025, 12, 29),
        42,
        False,
        Decimal("1.000000000000000000001"),
        -3.5,
    )
    assert b.home is None and b.tags is None
    assert ("c", at(TS)) in found  # 13:00+01:00 is 12:00 UTC
    assert ("5", at(TS)) in found  # a number in a text column: its JSON spelling


def test_more_types_round_trip(session, keyspace, table, make_sink):
    session.execute(f"CREATE TYPE IF NOT EXISTS {keyspace}.place (street text, number int)")
    name = table(
        "(id timeuuid PRIMARY KEY, at time, ip inet, data blob, small tinyint, big varint, "
        "code ascii, pair tuple<int, text>, spot frozen<place>, embedding vector<float, 3>, "
        "history frozen<list<date>>, by_day map<date, double>)"
    )
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r])
    when = uuid.uuid1()
    value = {
        "id": str(when),
        "at": "12:30:15.5",
        "ip": "::1",
        "data": "aGVsbG8=",
        "small": -128,
        "big": "123456789012345678901234567890",
        "code": "ok",
        "pair": [1, "one"],
        "spot": {"Street": "Main", "number": "7", "extra": True},
        "embedding": [0.5, 1, "2"],
        "history": ["2026-01-01", 0],
        "by_day": {"2026-01-02": 1},
    }
    assert sink.write([(record(1, value), r)]) == []
    row = session.execute(f"SELECT * FROM {keyspace}.{name}").one()
    assert (row.id, str(row.at), row.ip, row.data, row.small, row.big, row.code) == (
        when,
        "12:30:15.500000000",
        "::1",
        b"hello",
        -128,
        123456789012345678901234567890,
        "ok",
    )
    assert (tuple(row.pair), (row.spot.street, row.spot.number), row.embedding) == (
        (1, "one"),
        ("Main", 7),
        [0.5, 1.0, 2.0],
    )
    assert [d.date() for d in row.history] == [date(2026, 1, 1), date(1970, 1, 1)]
    assert {d.date(): v for d, v in row.by_day.items()} == {date(2026, 1, 2): 1.0}
    random_id = str(uuid.uuid4())
    failures = sink.write(
        [
            (record(2, {"id": random_id}), r),
            (record(3, {"id": str(when), "small": 300}), r),
            (record(4, {"id": str(when), "code": "é"}), r),
            (record(5, {"id": str(when), "embedding": [1, 2]}), r),
        ]
    )
    assert [f.error.reason.split(": ", 1)[1] for f in failures] == [
        f"cannot convert '{random_id}' (not a version 1 (time) UUID)",
        "cannot convert 300 (out of range -128..127)",
        "cannot convert 'é' (not ASCII)",
        "cannot convert [1, 2] (2 elements, not 3)",
    ]
    assert [f.error.reason.split(":")[0] for f in failures] == [
        "column id (timeuuid)",
        "column small (tinyint)",
        "column code (ascii)",
        "column embedding (vector<float, 3>)",
    ]


@pytest.mark.parametrize(
    "column, value, expected",
    [
        ("celsius", "hot", "column celsius (double): cannot convert 'hot' (not a number)"),
        ("reading_id", 1.5, "column reading_id (bigint): cannot convert 1.5 (has a fraction)"),
        ("reading_id", True, "column reading_id (bigint): cannot convert True"),
        ("home", "not-a-uuid", "column home (uuid): cannot convert 'not-a-uuid' (not a UUID)"),
        (
            "tags",
            ["ok", 1.5, {"x": 1}],
            "column tags (set<text>): cannot convert ['ok', 1.5, {'x': 1}] (element {'x': 1})",
        ),
        (
            "attrs",
            {"a": "many"},
            "column attrs (map<text, int>): cannot convert {'a': 'many'} (element 'many': not a number)",
        ),
        ("ts", "yesterday", "column ts (timestamp): cannot convert 'yesterday' (not ISO-8601)"),
        ("ok", "yes", "column ok (boolean): cannot convert 'yes'"),
        ("price", "x" * 80, f"column price (decimal): cannot convert '{'x' * 46}... (not a number)"),
    ],
)
def test_a_value_that_does_not_fit_fails_exactly_that_record(
    session, keyspace, table, make_sink, column, value, expected
):
    name = table()
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r])
    batch = [(record(n, reading(n)), r) for n in range(10)]
    batch[4] = (record(4, reading(4, **{column: value})), r)
    failures = sink.write(batch)
    assert [(f.record.offset, f.route, f.error.reason) for f in failures] == [(4, r, expected)]
    assert not failures[0].retriable
    assert count(session, keyspace, name) == 9


def test_missing_primary_key_field_fails_that_record(session, keyspace, table, make_sink):
    name = table()
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r])
    failures = sink.write(
        [
            (record(1, {"ts": TS, "celsius": 1.0}), r),
            (record(2, {"sensor_id": "s", "ts": None}), r),
            (record(3, reading(3)), r),
        ]
    )
    assert [(f.record.offset, f.error.reason) for f in failures] == [
        (1, f"missing primary key column sensor_id (table {keyspace}.{name})"),
        (2, f"missing primary key column ts (table {keyspace}.{name})"),
    ]
    assert count(session, keyspace, name) == 1


def test_projection_aliases_and_column_case(session, keyspace, table, make_sink):
    name = table('(sensorid text, "Reading" int, celsius double, PRIMARY KEY (sensorid))')
    r = route(f"INSERT INTO {name} SELECT sensorId, Reading, temp AS celsius FROM readings")
    sink = make_sink([r])
    assert sink.write([(record(1, {"sensorId": "s1", "Reading": 3, "temp": 1.5, "x": 0}), r)]) == []
    row = session.execute(f"SELECT * FROM {keyspace}.{name}").one()
    assert (row.sensorid, row.Reading, row.celsius) == ("s1", 3, 1.5)


def test_ttl_rows_expire(session, keyspace, table, make_sink):
    name = table()
    r = route(f"INSERT INTO {name} SELECT * FROM readings TTL=2")
    sink = make_sink([r])
    assert sink.write([(record(n, reading(n)), r) for n in range(5)]) == []
    ttl = session.execute(f"SELECT TTL(celsius) FROM {keyspace}.{name} LIMIT 1").one()[0]
    assert ttl is not None and 0 < ttl <= 2
    time.sleep(3)
    assert count(session, keyspace, name) == 0


def test_an_older_record_does_not_overwrite_a_newer_one(session, keyspace, table, make_sink):
    name = table("(sensor_id text PRIMARY KEY, celsius double)")
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r])
    assert sink.write([(record(10, {"sensor_id": "s", "celsius": 2.0}, timestamp=TS + 1000), r)]) == []
    assert sink.write([(record(5, {"sensor_id": "s", "celsius": 1.0}, timestamp=TS), r)]) == []
    row = session.execute(f"SELECT celsius, WRITETIME(celsius) FROM {keyspace}.{name}").one()
    assert tuple(row) == (2.0, (TS + 1000) * 1000 + 10)
    # same millisecond: the later offset wins, whatever the values
    same = [
        (record(20, {"sensor_id": "s", "celsius": 9.0}, timestamp=TS + 2000), r),
        (record(21, {"sensor_id": "s", "celsius": 3.0}, timestamp=TS + 2000), r),
    ]
    assert sink.write(same) == []
    assert session.execute(f"SELECT celsius FROM {keyspace}.{name}").one().celsius == 3.0


def test_tombstones_delete_when_enabled(session, keyspace, table, make_sink):
    name = table("(sensor_id text, site int, celsius double, PRIMARY KEY ((sensor_id, site)))")
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink(
        [r],
        delete_enabled=True,
        delete_statement=f"DELETE FROM {name} WHERE sensor_id = ? AND site = ?",
        delete_key_fields=("id.sensor", "site"),
    )
    values = [{"sensor_id": f"s{n}", "site": n, "celsius": 1.0} for n in range(3)]
    assert sink.write([(record(n, v), r) for n, v in enumerate(values)]) == []
    key = orjson.dumps({"id": {"sensor": "s1"}, "site": "1"})
    failures = sink.write([(record(10, None, key=key), r), (record(11, None, key=b'{"site": 2}'), r)])
    assert [(f.record.offset, f.error.reason) for f in failures] == [
        (11, "tombstone: key field id.sensor for sensor_id of the delete statement is missing")
    ]
    remaining = {row.sensor_id for row in session.execute(f"SELECT * FROM {keyspace}.{name}")}
    assert remaining == {"s0", "s2"}
    # a tombstone older than the row it names does not delete it
    assert (
        sink.write(
            [(record(1, None, key=orjson.dumps({"id": {"sensor": "s2"}, "site": 2}), timestamp=TS - 1000), r)]
        )
        == []
    )
    assert count(session, keyspace, name) == 2


def test_tombstone_with_the_whole_key_and_when_disabled(session, keyspace, table, make_sink):
    name = table("(sensor_id text PRIMARY KEY, celsius double)")
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    deleting = make_sink(
        [r], delete_enabled=True, delete_statement=f"DELETE FROM {keyspace}.{name} WHERE sensor_id = ?"
    )
    keeping = make_sink([r])
    assert keeping.write([(record(n, {"sensor_id": f"s{n}", "celsius": 1.0}), r) for n in range(2)]) == []
    assert keeping.write([(record(5, None, key=b"s0"), r)]) == []
    assert keeping.last_write.skipped == 1 and count(session, keyspace, name) == 2
    assert deleting.write([(record(5, None, key=b"s0"), r)]) == []
    assert count(session, keyspace, name) == 1


@pytest.mark.parametrize("default, expected", [("UNSET", 1.0), ("NULL", None)])
def test_default_value_for_missing_columns(session, keyspace, table, make_sink, default, expected):
    name = table("(sensor_id text PRIMARY KEY, celsius double, humidity float)")
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r], default_value=default)
    assert sink.write([(record(1, {"sensor_id": "s", "celsius": 1.0, "humidity": 0.5}), r)]) == []
    assert sink.write([(record(2, {"sensor_id": "s", "humidity": 0.25}), r)]) == []
    row = session.execute(f"SELECT * FROM {keyspace}.{name}").one()
    assert (row.celsius, row.humidity) == (expected, 0.25)


# -- retries, against the real server with faults injected --------------------------------


class FaultySession:
    """The real session, except that the first `fail` executions end with `errors(n)`."""

    def __init__(self, real: Session, error: Callable[[int], BaseException | None]) -> None:
        self.real = real
        self.error = error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def execute_async(self, statement: Any, **kwargs: Any) -> Any:
        self.calls += 1
        error = self.error(self.calls)
        if error is None:
            return self.real.execute_async(statement, **kwargs)
        return Failed(error)


class Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def add_callbacks(
        self, callback: Any, errback: Any, callback_args: Any = (), errback_args: Any = ()
    ) -> None:
        errback(self.error, *errback_args)


def write_timeout() -> WriteTimeout:
    return WriteTimeout(
        "Operation timed out",
        consistency=1,
        required_responses=1,
        received_responses=0,
        write_type=WriteType.SIMPLE,
    )


@pytest.mark.parametrize(
    ("unlogged_batches", "timed_out"),
    [(True, 32), (False, 33)],  # 50 batches of a sensor's 2 rows, 16 time out; or 100 rows, 33 do
)
def test_timeouts_come_back_retriable_and_write_on_the_next_try(
    session, keyspace, table, make_sink, unlogged_batches, timed_out
):
    """One attempt per write(): the worker writes the timed-out records again (tasks/sink.py);
    a batch that timed out comes back whole."""
    name = table()
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = make_sink([r], unlogged_batches=unlogged_batches)
    sink.session = FaultySession(sink.session, lambda n: write_timeout() if n % 3 == 0 else None)
    batch = [(record(n, reading(n)), r) for n in range(100)]
    failures = sink.write(batch)
    assert len(failures) == timed_out and all(isinstance(f.error, RetriableRecordError) for f in failures)
    assert "WriteTimeout" in failures[0].error.reason
    assert count(session, keyspace, name) == 100 - timed_out
    sink.session = sink.session.real
    assert sink.write([(f.record, f.route) for f in failures]) == []
    assert count(session, keyspace, name) == 100


def test_a_write_takes_one_attempt_however_many_time_out(table, make_sink):
    r = route(f"INSERT INTO {table()} SELECT * FROM readings")
    sink = make_sink([r])
    sink.session = FaultySession(sink.session, lambda n: write_timeout() if n == 1 else None)
    started = time.monotonic()
    failures = sink.write([(record(n, reading(n)), r) for n in range(2)])
    assert time.monotonic() - started < 2
    assert [f.record.offset for f in failures] == [0]
    assert isinstance(failures[0].error, RetriableRecordError)
    assert sink.last_write.requests == 2


def test_refused_statements_are_record_errors(table, make_sink):
    r = route(f"INSERT INTO {table()} SELECT * FROM readings")
    sink = make_sink([r])
    sink.session = FaultySession(sink.session, lambda n: InvalidRequest("no such thing") if n == 2 else None)
    failures = sink.write([(record(n, reading(n)), r) for n in range(3)])
    assert [(f.record.offset, type(f.error)) for f in failures] == [(1, RecordError)]
    assert "InvalidRequest" in failures[0].error.reason


def test_no_host_for_every_statement_raises_sink_unavailable(table, make_sink):
    r = route(f"INSERT INTO {table()} SELECT * FROM readings")
    sink = make_sink([r])
    unreachable = NoHostAvailable(
        "Unable to complete the operation against any hosts",
        {"127.0.0.1:19042": ConnectionRefusedError("refused")},
    )
    sink.session = FaultySession(sink.session, lambda n: unreachable)
    with pytest.raises(SinkUnavailable, match=r"cannot take writes: 127\.0\.0\.1:19042: refused"):
        sink.write([(record(n, reading(n)), r) for n in range(5)])


# -- setup, routes and schema ------------------------------------------------------------


def test_check_routes_reports_what_the_sink_cannot_honour(make_sink):
    kcql = [
        "INSERT INTO t SELECT * FROM a WITHINDEXSUFFIX=_{YYYY}",
        "INSERT INTO t SELECT * FROM a WITHPIPELINE=p",
        "INSERT INTO t SELECT * FROM a WITHDOCTYPE=d",
        "INSERT INTO t SELECT * FROM a AUTOCREATE",
        "INSERT INTO _key.table SELECT * FROM a",
        "INSERT INTO t SELECT * FROM a PROPERTIES('behavior.on.null.values'='DELETE')",
        "INSERT INTO t SELECT * FROM a TTL=5",
    ]
    routes = [route(text) for text in kcql]
    sink = make_sink(routes, setup=False)
    assert sink.check_routes(routes) == [
        "KCQL line 1 (t <- a): WITHINDEXSUFFIX is not supported by the Cassandra sink",
        "KCQL line 1 (t <- a): WITHPIPELINE is not supported by the Cassandra sink",
        "KCQL line 1 (t <- a): WITHDOCTYPE is not supported by the Cassandra sink",
        "KCQL line 1 (t <- a): AUTOCREATE is not supported by the Cassandra sink (it does not "
        "create tables: create the table with CQL)",
        "KCQL line 1 (_key.table <- a): a dynamic target is not supported by the Cassandra sink",
        "KCQL line 1 (t <- a): PROPERTIES key 'behavior.on.null.values' is not supported by "
        "the Cassandra sink",
    ]


def test_setup_against_an_unused_port_fails_fast(cassandra, keyspace):
    sink = CassandraSink(
        CassandraSettings(
            contact_points=("127.0.0.1",),
            port=1,
            keyspace=keyspace,
            credentials=Credentials("u", Secret("s3cret-pw")),
            connect_timeout_s=2,
        ),
        [],
    )
    started = time.monotonic()
    with pytest.raises(SinkUnavailable) as raised:
        sink.setup()
    assert time.monotonic() - started < 5
    assert raised.value.reason.startswith("Cassandra at 127.0.0.1:1 does not answer: ")
    assert "s3cret-pw" not in raised.value.reason and "s3cret-pw" not in repr(sink.settings)


def test_setup_with_missing_tables_raises_config_error(keyspace, table, make_sink):
    name = table()
    routes = [
        route("INSERT INTO nowhere SELECT * FROM readings"),
        route("INSERT INTO no_such_ks.t SELECT * FROM readings"),
        route(f"INSERT INTO {name} SELECT * FROM readings"),
    ]
    with pytest.raises(ConfigError) as raised:
        make_sink(routes)
    assert raised.value.problems == [
        f"KCQL line 1 (nowhere <- readings): table {keyspace}.nowhere does not exist (the sink "
        f"does not create tables: create it with CQL)",
        "KCQL line 1 (no_such_ks.t <- readings): keyspace 'no_such_ks' does not exist",
    ]


def test_check_schema_reports_every_problem(keyspace, table, make_sink):
    name = table()
    routes = [
        route(f"INSERT INTO {name} SELECT sensor_id, celsius, wind, gust AS rain FROM readings"),
        route(f"INSERT INTO {name} SELECT *, x AS y FROM readings"),
    ]
    sink = make_sink(routes, setup=False)
    columns = "sensor_id, ts, attrs, celsius, day, home, humidity, ok, price, reading_id, tags"
    assert sink.check_schema() == [
        f"KCQL line 1 ({name} <- readings): field 'wind' matches no column of {keyspace}.{name} "
        f"(columns: {columns})",
        f"KCQL line 1 ({name} <- readings): field 'rain' matches no column of {keyspace}.{name} "
        f"(columns: {columns})",
        f"KCQL line 1 ({name} <- readings): primary key column(s) ts of {keyspace}.{name} are "
        f"never written: no selected field has that name",
        f"KCQL line 1 ({name} <- readings): field 'y' matches no column of {keyspace}.{name} "
        f"(columns: {columns})",
    ]
    two_markers = make_sink(
        [routes[1]],
        setup=False,
        delete_enabled=True,
        delete_statement=f"DELETE FROM {name} WHERE sensor_id = ? AND ts = ?",
    )
    assert two_markers.check_schema()[-1] == (
        "connect.cassandra.delete.statement has 2 key marker(s) but connect.cassandra.delete."
        "struct_flds names 0 field(s) (none: one marker for the whole key)"
    )
    bad = make_sink([], setup=False, keyspace="no_such_keyspace")
    assert bad.check_schema() == ["keyspace 'no_such_keyspace' (connect.cassandra.key.space) does not exist"]


def test_build_from_a_connector_config(cassandra, keyspace, table):
    hosts, port = cassandra
    name = table()
    config = parse_config(
        {
            "name": "cassandra-sink",
            "connector.class": "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
            "topics": "readings",
            "connect.cassandra.contact.points": ",".join(hosts),
            "connect.cassandra.port": str(port),
            "connect.cassandra.key.space": keyspace,
            "connect.cassandra.kcql": f"INSERT INTO {name} SELECT * FROM readings",
            "connect.cassandra.consistency.level": "ONE",
            "connect.cassandra.default.value": "NULL",
            "connect.cassandra.delete.enabled": "true",
            "connect.cassandra.delete.statement": f"DELETE FROM {name} WHERE sensor_id = ?",
            "read.timeout.ms": "20000",
            "conductor.cassandra.max.in.flight": "64",
            "conductor.cassandra.unlogged.batches": "true",
        },
        environ={},
    )
    r = route(f"INSERT INTO {name} SELECT * FROM readings")
    sink = build(config, [r])
    settings = sink.settings
    assert (settings.contact_points, settings.port, settings.keyspace) == (hosts, port, keyspace)
    assert (settings.consistency_level, settings.default_value, settings.request_timeout_s) == (
        "ONE",
        "NULL",
        20.0,
    )
    assert (settings.max_in_flight, settings.unlogged_batches, settings.batch_size) == (64, True, 100)
    sink.setup()
    try:
        assert sink.write([(record(1, reading(1)), r)]) == []
    finally:
        sink.close()


def test_stream_reactor_kcql_forms_write_their_columns(session, keyspace, table, make_sink):
    """The forms of Stream-Reactor's Cassandra tests (NowTests, StructTests, HeadersTest): now()
    written by the server, quoted key and value paths into case-sensitive columns, headers (one
    read as JSON), the whole value into a UDT, and the record's coordinates."""
    session.execute(f"CREATE TYPE IF NOT EXISTS {keyspace}.reading (celsius double, room text)")
    name = table(
        '(id bigint PRIMARY KEY, "bigint col" bigint, "INT COL" int, loaded_at timeuuid, '
        "trace text, nested text, whole frozen<reading>, src text, off bigint, part int)"
    )
    r = route(
        f"INSERT INTO {keyspace}.{name} SELECT _key.id AS id, `_key.'bigint field'` AS 'bigint col', "
        "`_value.'INT FIELD'` AS 'INT COL', `now()` AS loaded_at, _header.trace AS trace, "
        "_header.p.c AS nested, _value AS whole, _.topic AS src, _.offset AS off, _.partition AS part "
        "FROM readings"
    )
    sink = make_sink([r])
    value = {"INT FIELD": 5, "celsius": 21.5, "room": "kitchen"}
    headers = [("trace", b"t-1"), ("p", b'{"c": "deep"}')]
    rec = Record("readings", 4, 17, TS, b'{"id": 9, "bigint field": 1234567}', value, headers)
    before = time.time()
    assert sink.write([(rec, r)]) == []
    row = session.execute(f"SELECT * FROM {keyspace}.{name} WHERE id = 9").one()
    quoted = session.execute(f'SELECT "bigint col", "INT COL" FROM {keyspace}.{name} WHERE id = 9').one()
    assert (quoted[0], quoted[1]) == (1234567, 5)
    assert (row.trace, row.nested, row.src, row.off, row.part) == ("t-1", "deep", "readings", 17, 4)
    assert (row.whole.celsius, row.whole.room) == (21.5, "kitchen")
    loaded_at = (row.loaded_at.time - 0x01B21DD213814000) / 1e7  # a version-1 UUID's clock, in seconds
    assert before - 1 <= loaded_at <= time.time() + 1


def test_now_is_refused_where_no_column_takes_it(session, keyspace, table, make_sink):
    name = table("(id bigint PRIMARY KEY, v text)")
    sink = make_sink([route(f"INSERT INTO {name} SELECT id, now() AS loaded FROM readings")], setup=False)
    with pytest.raises(ConfigError, match=r"now\(\) AS 'loaded' matches no column of"):
        sink.setup()
