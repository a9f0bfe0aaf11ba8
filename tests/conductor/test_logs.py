"""`--log-format json`: one JSON object per log line (time, level, logger, pid, message, and the
exception when there is one), the library noise still filtered; text stays the default."""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from support.pipeline import ROOT

from conductor.logs import JsonFormatter, LibraryNoise

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING \[\d+\] conductor\.config: .*")


@pytest.fixture
def json_lines():
    """A logger writing JSON lines into a string, with the noise filter at INFO; `read()` parses them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(LibraryNoise(logging.INFO))
    loggers = [logging.getLogger(name) for name in ("conductor.test", "kafka.net.selector")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False

    def read() -> list[dict]:
        text = stream.getvalue()
        assert text.endswith("\n")
        return [orjson.loads(line) for line in text.splitlines()]

    yield read
    for logger in loggers:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_each_record_is_one_json_object_with_its_fields(json_lines):
    before = time.time()
    log = logging.getLogger("conductor.test")
    log.info("worker %d: %d records written", 2, 500)
    log.warning("two\nlines")
    (info, warning) = json_lines()
    assert info == {
        "time": info["time"],
        "level": "INFO",
        "logger": "conductor.test",
        "pid": os.getpid(),
        "message": "worker 2: 500 records written",
    }
    assert TIME.fullmatch(info["time"])
    at = datetime.strptime(info["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert before - 0.002 <= at <= time.time()
    assert warning["level"] == "WARNING" and warning["message"] == "two\nlines"


def test_the_exception_and_non_ascii_text(json_lines):
    log = logging.getLogger("conductor.test")
    try:
        {}["température"]
    except KeyError:
        log.exception("capteur %s: 21,5 °C — refusé ✗", "Zürich-3")
    log.info("bytes decoded with surrogateescape: %s", b"\xff".decode(errors="surrogateescape"))
    (failed, odd) = json_lines()
    assert failed["level"] == "ERROR"
    assert failed["message"] == "capteur Zürich-3: 21,5 °C — refusé ✗"
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert failed["exception"].endswith("KeyError: 'température'")
    assert odd["message"] == "bytes decoded with surrogateescape: ?"


def test_library_noise_is_still_filtered(json_lines):
    logging.getLogger("kafka.net.selector").warning("It is blocking the event loop: 0.2 s")
    logging.getLogger("kafka.net.selector").warning("something else")
    (shown,) = json_lines()
    assert shown["logger"] == "kafka.net.selector" and shown["message"] == "something else"


# -- the command line ----------------------------------------------------------------------------


def start_on_a_busy_port(tmp_path: Path, *options: str, env: dict[str, str] | None = None):
    """`conductor start` with a config that has an unknown key (a warning, logged) and listeners
    on a port in use: it logs the warning, then stops before it needs any server."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = tmp_path / "logs.properties"
        config.write_text(
            "name=logs\n"
            "connector.class=io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector\n"
            "topics=t\n"
            "connect.elastic.hosts=127.0.0.1\n"
            "connect.elastic.kcql=INSERT INTO i SELECT * FROM t\n"
            "bootstrap.servers=127.0.0.1:1\n"
            "no.such.key=é\n"
            f"listeners=http://127.0.0.1:{busy.getsockname()[1]}\n"
        )
        return subprocess.run(
            [sys.executable, "-m", "conductor.cli", *options, "start", "--config", str(config)],
            capture_output=True,
            text=True,
            env={**os.environ, "CONDUCTOR_STATE_DIR": str(tmp_path), **(env or {})},
            cwd=ROOT,
            timeout=30,
        )


@pytest.mark.parametrize(
    ("options", "env"),
    [(("--log-format", "json"), None), ((), {"CONDUCTOR_LOG_FORMAT": "json"})],
    ids=["option", "env"],
)
def test_the_command_logs_json_lines(tmp_path, options, env):
    done = start_on_a_busy_port(tmp_path, *options, env=env)
    assert done.returncode == 2, done.stderr
    logged = [line for line in done.stderr.splitlines() if line.startswith("{")]
    (warning,) = [orjson.loads(line) for line in logged]
    assert warning["level"] == "WARNING" and warning["logger"] == "conductor.config"
    assert warning["message"].endswith("unknown key 'no.such.key'")
    assert warning["pid"] > 0 and TIME.fullmatch(warning["time"])
    assert "already in use" in done.stderr  # the command's own message stays plain text


def test_text_stays_the_default(tmp_path):
    done = start_on_a_busy_port(tmp_path)
    assert done.returncode == 2, done.stderr
    assert TEXT_LINE.fullmatch(done.stderr.splitlines()[0]), done.stderr


def test_configure_writes_json_lines_to_stderr():
    script = (
        "import logging\n"
        "from conductor.logs import configure\n"
        "configure('info', 'json')\n"
        "logging.getLogger('kafka.cluster').warning('Metadata refresh: failed Cancelled')\n"
        "logging.getLogger('kafka.cluster').info('chatter')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('conductor.worker').exception('worker %d: stopped', 1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert done.returncode == 0 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    record = orjson.loads(line)
    assert record["logger"] == "conductor.worker" and record["message"] == "worker 1: stopped"
    assert record["level"] == "ERROR" and "ZeroDivisionError: division by zero" in record["exception"]


def test_an_unknown_format_is_refused():
    done = subprocess.run(
        [sys.executable, "-m", "conductor.cli", "--log-format", "xml", "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 2 and "'xml' is not one of 'text', 'json'" in done.stderr
