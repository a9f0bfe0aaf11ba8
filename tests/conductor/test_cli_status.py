"""`conductor status`: a running Elasticsearch sink shown as tables, found by --url and by
--config (its state names the URL); --json; a clear line and exit 1 when nothing answers. Then
the tables themselves, from hand-made states: the aggregator's columns, errors and --trace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from support.pipeline import ROOT, create_topic, produce, reading, unique, wait_for, write_config

from conductor import exitcodes, statusview

pytestmark = pytest.mark.servers

TS = 1_767_000_000_000
RECORDS = 200


def conductor_status(*arguments: str, state_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    if state_dir is not None:
        env["CONDUCTOR_STATE_DIR"] = str(state_dir)
    return subprocess.run(
        [sys.executable, "-m", "conductor.cli", "status", *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=30,
    )


def settled(url: str, workers: int) -> dict | None:
    """The state once every task runs with its partitions and all the readings are written."""
    state = statusview.fetch(statusview.given(url), timeout_s=5)
    tasks = state["tasks"]
    done = (
        len(tasks) == workers
        and all(t["state"] == "RUNNING" and t["partitions"] for t in tasks)
        and sum(t.get("written") or 0 for t in tasks) == RECORDS
        and all(p["lag"] == 0 and p["committed"] is not None for t in tasks for p in t["partitions"])
    )
    return state if done else None


def row(output: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    rows = [line.split() for line in output.splitlines() if line.split()[:1] == [first]]
    assert rows, f"no row {first!r} in:\n{output}"
    return rows[0]


def test_status_shows_a_running_connector(kafka, elasticsearch, index, conductors, tmp_path):
    topic = create_topic(kafka, partitions=4)
    name = unique("status-es")
    kcql = f"INSERT INTO {index} SELECT * FROM {topic} PK sensor_id, reading_id"
    config = write_config(tmp_path, name, topic, kcql, elasticsearch, kafka)
    conductor = conductors(config, workers=2)
    url = conductor.url()
    produce(kafka, topic, [(f"s{n}".encode(), reading(n, TS + n), TS + n) for n in range(RECORDS)])
    state = wait_for(lambda: settled(url, 2), 60, "both tasks running, every reading written")

    by_url = conductor_status("--url", url)
    by_config = conductor_status("--config", str(config), state_dir=conductor.state_dir)
    for shown in (by_url, by_config):
        assert shown.returncode == 0, shown.stderr
        output = shown.stdout
        assert row(output, "NAME") == ["NAME", "KIND", "STATE", "TASKS", "UPTIME"]
        assert row(output, name)[:4] == [name, "elasticsearch", "RUNNING", "2/2"]
        headers = ["ID", "STATE", "PID", "UPTIME", "RESTARTS", "PARTITIONS", "LAG", "RATE", "WRITTEN"]
        assert row(output, "ID") == headers
        lines = output.splitlines()
        partitions_at = lines.index("PARTITIONS (topic-partition at committed offset, lag)")
        for task in state["tasks"]:
            cells = dict(zip(headers, row(output, str(task["id"])), strict=True))
            assert cells["STATE"] == "RUNNING" and cells["PID"] == str(task["pid"])
            assert cells["PARTITIONS"] == "2" and cells["LAG"] == "0" and cells["RESTARTS"] == "0"
            assert cells["UPTIME"][-1] in "smh"
            assert int(cells["WRITTEN"]) == task["written"]
            held = "; ".join(
                f"{topic}-{p['partition']} at {p['committed']}, lag 0"
                for p in sorted(task["partitions"], key=lambda p: p["partition"])
            )
            shown_partitions = [line for line in lines[partitions_at:] if line.startswith(f"{task['id']} ")]
            assert [line.split(maxsplit=1)[1] for line in shown_partitions] == [held], output
        assert "LAST ERRORS" not in output

    as_json = conductor_status("--url", url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    shown_state = orjson.loads(as_json.stdout)
    assert shown_state["name"] == name and shown_state["kind"] == "elasticsearch"
    assert [t["pid"] for t in shown_state["tasks"]] == [t["pid"] for t in state["tasks"]]

    nobody = conductor_status("--url", "http://127.0.0.1:1")
    assert nobody.returncode == exitcodes.FAILED == 1
    assert nobody.stdout == ""
    assert nobody.stderr.strip().splitlines() == [
        "conductor status: no conductor answers at http://127.0.0.1:1 (given with --url): Connection refused"
    ]


def test_status_by_config_says_where_it_looked(kafka, elasticsearch, tmp_path):
    """No conductor runs this config: the URL comes from its listeners, and the message says so."""
    name = unique("status-none")
    config = write_config(tmp_path, name, "t", "INSERT INTO i SELECT * FROM t", elasticsearch, kafka)
    state_dir = tmp_path / "state"
    any_port = conductor_status("--config", str(config), state_dir=state_dir)
    assert any_port.returncode == 1
    assert any_port.stderr.strip() == (
        f"conductor status: no conductor answers at http://127.0.0.1:0 (from the listeners in {config};"
        f" no running conductor's state in {state_dir / name}): port 0 means any free port, and no state"
        " names the one taken"
    )
    config.write_text(
        config.read_text().replace("listeners=http://127.0.0.1:0", "listeners=http://0.0.0.0:1")
        + "conductor.rest.allow.unauthenticated=true\n"
    )
    closed = conductor_status("--config", str(config), state_dir=state_dir)
    assert closed.returncode == 1
    assert closed.stderr.strip().startswith(
        f"conductor status: no conductor answers at http://127.0.0.1:1 (from the listeners in {config};"
    )
    assert closed.stderr.strip().endswith("Connection refused")
    neither = conductor_status()
    assert neither.returncode == 2 and "give either --config or --url" in neither.stderr


# -- the tables, from hand-made states -----------------------------------------------------------


def task(task_id: int, **shown: object) -> dict:
    return {
        "id": task_id,
        "state": "RUNNING",
        "pid": 100 + task_id,
        "uptime_s": 7265.0,
        "restarts": 0,
        "trace": None,
        "last_error": None,
        "partitions": [],
        "records_per_s": 0,
        "waiting_for": None,
        **shown,
    }


def test_an_aggregator_shows_results_errors_and_waits():
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: no such column: celsus'
    state = {
        "name": "averages",
        "kind": "aggregator",
        "state": "RUNNING",
        "target_state": "RUNNING",
        "started_at": time.time() - 300,
        "tasks": [
            task(
                0,
                results=12,
                records_per_s=1234.4,
                partitions=[
                    {"topic": "in", "partition": 0, "committed": 10, "lag": 2},
                    {"topic": "in", "partition": 1, "committed": None, "lag": None},
                ],
            ),
            task(
                1, state="FAILED", pid=None, uptime_s=None, restarts=3, trace=trace, last_error="boot failed"
            ),
            task(
                2,
                last_error="sensor-0001: mapping refused\nmore",
                uptime_s=4.2,
                records_per_s=2.5,
                waiting_for={"what": "Kafka", "since": time.time() - 65, "tries": 4, "reason": "no leader"},
            ),
        ],
    }
    output = statusview.render(state, width=200)
    lines = output.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "STATE", "TASKS", "UPTIME"]
    assert lines[1].split() == ["averages", "aggregator", "RUNNING", "2/3", "5m"]
    assert lines[3].split()[-1] == "RESULTS"
    assert lines[4].split() == ["0", "RUNNING", "100", "2h", "0", "2", "2", "1234", "12"]
    assert lines[5].split() == ["1", "FAILED", "-", "-", "3", "0", "0", "0", "-"]
    assert lines[6].split() == ["2", "RUNNING", "102", "4s", "0", "0", "0", "2.5", "-"]
    assert lines[7] == "task 2 waits for Kafka for 1m (4 tries): no leader"
    assert "0   in-0 at 10, lag 2; in-1 at ?, lag ?" in lines
    errors = lines[lines.index("LAST ERRORS (--trace shows the whole traces)") + 1 :]
    assert errors == ["1   ValueError: no such column: celsus", "2   sensor-0001: mapping refused"]

    traced = statusview.render(state, trace=True, width=200).splitlines()
    errors = traced[traced.index("LAST ERRORS") + 1 :]
    assert errors[:2] == ["1   Traceback (most recent call last):", '      File "x.py", line 1']
    assert errors[-2:] == ["2   sensor-0001: mapping refused", "    more"]


def test_partitions_wrap_between_entries():
    partitions = [{"topic": "readings", "partition": n, "committed": 1000 + n, "lag": 0} for n in range(12)]
    output = statusview.render(
        {"name": "n", "kind": "cassandra", "tasks": [task(0, partitions=partitions)]}, width=80
    )
    shown = output.splitlines()[
        output.splitlines().index("PARTITIONS (topic-partition at committed offset, lag)") + 1 :
    ]
    assert all(len(line) <= 80 for line in shown) and len(shown) > 1
    assert shown[0].startswith("0   readings-0 at 1000, lag 0; ") and shown[1].startswith("    readings-")
    assert " ".join(line.strip() for line in shown) == "0   " + "; ".join(
        f"readings-{n} at {1000 + n}, lag 0" for n in range(12)
    )


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.4, "0s"), (59.9, "59s"), (60, "1m"), (7199, "1h"), (3 * 86400, "3d")],
)
def test_durations(seconds, shown):
    assert statusview.duration(seconds) == shown


def test_the_task_that_runs_index_retention_says_what_it_did():
    last = {"at": "2026-11-30T06:00:00Z", "closed": ["r_2026-11-22"], "deleted": [], "left": 7, "failed": {}}
    state = {
        "name": "es",
        "kind": "elasticsearch sink",
        "state": "RUNNING",
        "tasks": [
            task(0, retention={"runs_here": True, "running": False, "last": last, "every_s": 3600.0}),
            task(1),
        ],
    }
    lines = statusview.render(state, width=200).splitlines()
    assert (
        "task 0 runs index retention every 3600s; last at 2026-11-30T06:00:00Z: closed 1, deleted 0, left 7"
        in lines
    )
    failed = {"at": "2026-11-30T07:00:00Z", "error": "listing r* was refused: HTTP 403"}
    state["tasks"][0]["retention"] = {"runs_here": True, "running": True, "last": failed, "every_s": 60.0}
    lines = statusview.render(state, width=200).splitlines()
    assert (
        "task 0 runs index retention every 60s; running now; last at 2026-11-30T07:00:00Z failed: "
        "listing r* was refused: HTTP 403"
    ) in lines
