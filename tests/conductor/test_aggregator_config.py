"""The aggregator's config: the same in every format, and what `conductor validate` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conductor import exitcodes
from conductor.cli import main
from conductor.config import load_config
from conductor.connector import AggregatorConnector, build_connector

SQL = (
    "INSERT INTO temperatures.aggregated SELECT home_id, COUNT(*) AS readings, AVG(celsius) AS avg_celsius "
    "FROM temperatures WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 30 SECONDS) GROUP BY home_id EMIT FINAL"
)
SETTINGS = {
    "name": "temperatures-agg",
    "connector.class": "conductor.aggregate",
    "tasks.max": "3",
    "topics": "temperatures",
    "bootstrap.servers": "localhost:9092",
    "conductor.aggregate.sql": SQL,
    "conductor.aggregate.idle.close.ms": "5000",
}
FORMATS = {
    "agg.properties": "\n".join(f"{k}={v}" for k, v in SETTINGS.items()),
    "agg.json": json.dumps({"name": "temperatures-agg", "config": SETTINGS}),
    "agg.yaml": "\n".join(f"{k}: {json.dumps(v)}" for k, v in SETTINGS.items()),
}


@pytest.mark.parametrize("filename", sorted(FORMATS))
def test_the_aggregator_config_reads_the_same_in_every_format(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_text(FORMATS[filename])
    config = load_config(path, environ={})
    assert (config.sink, config.group_id, config.tasks_max) == ("aggregate", "connect-temperatures-agg", 3)
    assert config.aggregate is not None
    assert (config.aggregate.sql, config.aggregate.idle_close_ms) == (SQL, 5000)
    connector = build_connector(config)
    assert isinstance(connector, AggregatorConnector)
    assert [s.output_topic for s in connector.statements] == ["temperatures.aggregated"]
    assert (config.notices, config.warnings) == ((), ())


def validate(tmp_path: Path, **changes: str) -> tuple[int, str]:
    path = tmp_path / "agg.properties"
    path.write_text("\n".join(f"{k}={v}" for k, v in {**SETTINGS, **changes}.items()))
    result = CliRunner().invoke(main, ["validate", "--config", str(path)])
    return result.exit_code, result.output


def test_validate_prints_the_plan(tmp_path: Path) -> None:
    code, output = validate(tmp_path)
    assert code == 0, output
    assert output.splitlines()[:6] == [
        "connector temperatures-agg: aggregator, consumer group connect-temperatures-agg, 3 worker(s) by default",
        "  topics: temperatures",
        "  statement 1: temperatures (regrouped through "
        "connect-temperatures-agg-temperatures-by-home_id-repartition) -> temperatures.aggregated; "
        "state in connect-temperatures-agg-temperatures.aggregated-"
        + output.split("temperatures.aggregated-")[1].split("-changelog")[0]
        + "-changelog",
        "    window: tumbling 60000 ms, grace 30000 ms; group by home_id; emit final",
        "    results: home_id, readings, avg_celsius, window_start, window_end",
        "  idle close: 5000 ms",
    ]


def test_validate_prints_every_error_with_its_place(tmp_path: Path) -> None:
    bad = (
        SQL.replace("30 SECONDS", "30 SECONDZ")
        + "; INSERT INTO x SELECT home_id FROM temperatures "
        + ("WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY home_id")
    )
    code, output = validate(tmp_path, **{"conductor.aggregate.sql": bad})
    assert code == exitcodes.INVALID
    lines = output.splitlines()
    assert lines[1].startswith(
        "  - SQL: Expected a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS), found 'SECONDZ' at line 1, column "
    )
    assert lines[3].strip() == "^"
    assert "SELECT has no aggregate" in output
    assert lines[0].endswith("2 problem(s)")


def test_the_aggregator_needs_its_sql(tmp_path: Path) -> None:
    settings = dict(SETTINGS)
    del settings["conductor.aggregate.sql"]
    path = tmp_path / "agg.properties"
    path.write_text("\n".join(f"{k}={v}" for k, v in settings.items()))
    result = CliRunner().invoke(main, ["validate", "--config", str(path)])
    assert result.exit_code == exitcodes.INVALID
    assert "conductor.aggregate.sql: required" in result.output


def test_validate_says_which_servers_it_could_not_ask(tmp_path: Path) -> None:
    """A Kafka that does not answer is not a problem of the config: validate says so and passes
    (a refusal is one: tests/tasks/test_secure_refusals.py)."""
    code, output = validate(tmp_path)
    assert code == 0, output
    (line,) = [line for line in output.splitlines() if line.startswith("  server: ")]
    assert line.startswith("  server: Kafka does not answer (localhost:9092: ")
    assert line.endswith("): not checked; the start waits for it")
