"""Index retention on the real server: 40 days of daily indexes and their look-alikes; exactly
which are closed, deleted and left, by `conductor retention`, dry run first."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from support.pipeline import unique

pytestmark = pytest.mark.servers

DAYS = 40


def day(days_ago: int, spelled: str = "%Y-%m-%d") -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime(spelled)


def states(client: Elasticsearch, prefix: str) -> dict[str, str]:
    """Every concrete index whose name starts with `prefix`: open or close."""
    rows = client.cat.indices(index=f"{prefix}*", h="index,status", format="json", expand_wildcards="all")
    return {row["index"]: row["status"] for row in rows}


def retention(config: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "conductor.cli", "retention", "--config", str(config), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def forty_days(elasticsearch: str, tmp_path: Path):
    """A route's 40 daily indexes (two of them closed by hand), and look-alikes beside them."""
    client = Elasticsearch(elasticsearch, request_timeout=30)
    prefix = unique("ret").replace("-", "_")
    target = f"{prefix}_r"
    ours = {k: f"{target}_{day(k)}" for k in range(DAYS)}
    lookalikes = {
        f"{target}x_{day(12)}": "another prefix that starts the same",
        f"{target}_{day(12, '%Y.%m.%d')}": "the same prefix, another suffix format",
        f"{target}_{day(12, '%Y-%m-%d')}-copy": "a dated name with more after it",
        f"{target}_{day(33, '%Y-%m-%d')}_old": "a dated name with more after it",
        f"{target}_2026-02-30": "a date that does not exist",
        f"{target}": "the target without a suffix",
    }
    kept_behind_alias = f"keep_{prefix}"
    alias = f"{target}_{day(50)}"  # named as the route would name day 50, but an alias
    data_stream = f"{target}_{day(45)}"  # named as the route would name day 45, but a data stream
    settings = {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
    for name in [*ours.values(), *lookalikes, kept_behind_alias]:
        client.indices.create(index=name, **settings)
    client.indices.put_alias(index=kept_behind_alias, name=alias)
    client.indices.put_index_template(
        name=f"{prefix}-ds", index_patterns=[data_stream], data_stream={}, priority=900
    )
    client.index(index=data_stream, document={"@timestamp": "2026-01-01T00:00:00Z"}, refresh=True)
    for k in (10, 35):
        client.indices.close(index=ours[k])
    config = tmp_path / "retention.properties"
    host, port = elasticsearch.removeprefix("http://").split(":")
    config.write_text(
        "name=retention-test\n"
        "connector.class=io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector\n"
        "topics=readings\n"
        f"connect.elastic.hosts={host}\nconnect.elastic.port={port}\n"
        f"connect.elastic.kcql=INSERT INTO {target} SELECT * FROM readings WITHINDEXSUFFIX=_{{yyyy-MM-dd}}\n"
        "conductor.index.close.after.days=7\n"
        "conductor.index.delete.after.days=30\n"
    )
    yield config, ours, lookalikes, kept_behind_alias, alias, data_stream, prefix
    # The integ-test zip has no data stream API to delete one; its template stays with it.
    client.indices.delete(index=f"{prefix}*,keep_{prefix}", ignore_unavailable=True, expand_wildcards="all")
    client.close()


def test_retention_closes_and_deletes_exactly_the_routes_old_days(elasticsearch: str, forty_days) -> None:
    config, ours, lookalikes, kept_behind_alias, alias, data_stream, prefix = forty_days
    client = Elasticsearch(elasticsearch, request_timeout=30)
    before = states(client, prefix)

    dry = retention(config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert states(client, prefix) == before, "a dry run changed nothing"

    def verdict(name: str) -> str:
        (line,) = [line for line in lines if f" {name} " in line]
        return line.strip()

    # A day's age counts from its end: the index of 8 days ago ended 7 days ago.
    for k in range(8, 31):
        expected = "left" if k == 10 else "would close"
        assert verdict(ours[k]).startswith(expected), verdict(ours[k])
    for k in range(31, DAYS):
        assert verdict(ours[k]).startswith("would delete"), verdict(ours[k])
        assert "conductor.index.delete.after.days=30" in verdict(ours[k])
    assert verdict(ours[0]).endswith("written now")
    for k in range(1, 8):
        assert verdict(ours[k]).startswith("left")
        ended = {1: "ended today", 2: "ended 1 day ago"}.get(k, f"ended {k - 1} days ago")
        assert verdict(ours[k]).endswith(ended)
    assert verdict(ours[10]).endswith("ended 9 days ago, closed already")
    for name in lookalikes:
        assert verdict(name).startswith("left"), verdict(name)
        if name != f"{prefix}_r":
            assert "not a name KCQL line 1 writes" in verdict(name), verdict(name)
    assert verdict(alias).endswith("an alias, not an index")
    assert verdict(data_stream).endswith("a data stream, not an index")
    # left: days 0-7, day 10 (closed already), 6 look-alike indexes, the alias, the data stream
    assert lines[-1] == "22 to close, 9 to delete, 17 left (dry run: nothing changed)"

    done = retention(config)
    assert done.returncode == 0, done.stderr
    after = states(client, prefix)
    closed = {ours[k] for k in range(8, 31)}
    deleted = {ours[k] for k in range(31, DAYS)}
    assert {name for name, status in after.items() if status == "close"} == closed
    assert deleted.isdisjoint(after)
    for k in range(8):
        assert after[ours[k]] == "open"
    for name in lookalikes:
        assert after[name] == "open", name
    assert client.indices.get(index=kept_behind_alias)[kept_behind_alias]["aliases"] == {alias: {}}
    (stream,) = client.indices.resolve_index(name=data_stream)["data_streams"]
    assert states(client, stream["backing_indices"][0]) == {stream["backing_indices"][0]: "open"}
    assert done.stdout.splitlines()[-1] == "22 closed, 9 deleted, 17 left"

    again = retention(config)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "0 closed, 0 deleted, 39 left"
    assert states(client, prefix) == after
    client.close()


def cli(tmp_path: Path, command: str, kcql: str, **settings: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from conductor.cli import main

    lines = {
        "name": "retention-config",
        "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
        "topics": "readings",
        "connect.elastic.hosts": "127.0.0.1",
        "connect.elastic.kcql": kcql,
        **settings,
    }
    path = tmp_path / "c.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    result = CliRunner().invoke(main, [command, "--config", str(path)])
    return result.exit_code, result.output


def test_validate_says_what_retention_applies_to(tmp_path: Path) -> None:
    kcql = (
        "INSERT INTO readings SELECT * FROM readings WITHINDEXSUFFIX=_{yyyy-MM-dd}; "
        "INSERT INTO _value.region SELECT * FROM readings WITHINDEXSUFFIX=_{yyyy}; "
        "INSERT INTO plain SELECT * FROM readings"
    )
    code, output = cli(tmp_path, "validate", kcql, **{"conductor.index.close.after.days": "7"})
    assert code == 0, output
    assert (
        "retention: close after 7 days, counted from the end of the period in the name (readings_{yyyy-MM-dd}); "
        "KCQL line 1 (_value.region): left alone: its index name comes from the record"
    ) in output


def test_retention_keys_without_a_dated_route_are_a_config_problem(tmp_path: Path) -> None:
    code, output = cli(
        tmp_path,
        "validate",
        "INSERT INTO plain SELECT * FROM readings",
        **{"conductor.index.close.after.days": "7", "conductor.index.delete.after.days": "30"},
    )
    assert code == 1, output
    assert (
        "conductor.index.close.after.days and conductor.index.delete.after.days: no KCQL route has a "
        "WITHINDEXSUFFIX with a date, so there are no dated indexes to retire"
    ) in output
    code, output = cli(
        tmp_path,
        "validate",
        "INSERT INTO x SELECT * FROM readings",
        **{"conductor.index.close.after.days": "0"},
    )
    assert code == 1 and "conductor.index.close.after.days" in output, output


def test_retention_without_its_keys_says_how_to_turn_it_on(tmp_path: Path) -> None:
    code, output = cli(
        tmp_path, "retention", "INSERT INTO r SELECT * FROM readings WITHINDEXSUFFIX=_{yyyy-MM-dd}"
    )
    assert code == 2
    assert "once conductor.index.close.after.days or conductor.index.delete.after.days is set" in output
