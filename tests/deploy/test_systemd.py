"""conductor under systemd: the sd_notify protocol the supervisor speaks (conductor/sdnotify.py),
heard on a real NOTIFY_SOCKET while `conductor start --workers 2` runs on the plain servers; the
journal's log format; and deploy/systemd/conductor@.service checked by systemd-analyze."""

from __future__ import annotations

import array
import io
import itertools
import logging
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.pipeline import (
    ROOT,
    committed_offsets,
    create_topic,
    es_count,
    produce,
    reading,
    unique,
    wait_for,
    write_config,
)

from conductor import exitcodes, sdnotify
from conductor.config.settings import WorkerSettings
from conductor.logs import JournalFormatter, syslog_priority, to_journal
from conductor.sidecar import STOP_GRACE_S
from conductor.supervisor import STOP_MARGIN_S

UNIT = ROOT / "deploy" / "systemd" / "conductor@.service"
SYSTEMD_ANALYZE = Path("/usr/bin/systemd-analyze")
RECORDS = 2000
STATUS = re.compile(
    r"(?P<running>\d+)/2 workers running(?P<others>(, \d+ \w+)*), (?P<written>[\d,]+) records written, "
    r"(no commit yet|last commit (?P<ago>\d+)s ago)"
)


# -- a NOTIFY_SOCKET, as systemd binds it --------------------------------------------------------


@dataclass
class Datagram:
    at: float  # monotonic, on arrival
    pid: int  # the sender, from the kernel (SCM_CREDENTIALS), as NotifyAccess=main checks it
    fields: dict[str, str]
    snapshot: dict = field(default_factory=dict)  # what the test saw when READY=1 arrived


class NotifySocket:
    """An AF_UNIX datagram socket that records every message with its sender's pid."""

    def __init__(self, address: str, on_ready=None) -> None:
        self.address = address  # as $NOTIFY_SOCKET spells it
        self.on_ready = on_ready
        self.received: list[Datagram] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(sdnotify.socket_address({"NOTIFY_SOCKET": address}))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.open = True
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        credentials = struct.calcsize("3i")
        while self.open:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(credentials))
            except TimeoutError:
                continue
            except OSError:
                return
            pid = -1
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = array.array("i", payload[:credentials])[0]
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            datagram = Datagram(time.monotonic(), pid, fields)
            if "READY" in fields and self.on_ready is not None:
                datagram.snapshot = self.on_ready()
            self.received.append(datagram)

    def with_field(self, name: str) -> list[Datagram]:
        return [datagram for datagram in self.received if name in datagram.fields]

    def close(self) -> None:
        self.open = False
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def notify_socket(monkeypatch) -> Iterator[Callable[..., NotifySocket]]:
    """`listen(on_ready)`: a NOTIFY_SOCKET in a short folder of /tmp (sun_path holds 108 bytes),
    exported for the conductors this test starts."""
    folder = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
    sockets: list[NotifySocket] = []

    def listen(on_ready=None) -> NotifySocket:
        listener = NotifySocket(os.path.join(folder, "notify"), on_ready)
        sockets.append(listener)
        monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
        return listener

    yield listen
    for listener in sockets:
        listener.close()
    shutil.rmtree(folder, ignore_errors=True)


# -- the protocol against a running conductor -----------------------------------------------------


@pytest.mark.servers
def test_ready_after_both_workers_booted_then_status_watchdog_and_stopping(
    kafka, elasticsearch, conductors, index, tmp_path, notify_socket, monkeypatch
) -> None:
    topic = create_topic(kafka, partitions=2)
    produce(kafka, topic, [(f"k{n}".encode(), reading(n, 1_700_000_000_000), None) for n in range(RECORDS)])
    name = unique("systemd")
    config = write_config(
        tmp_path, name, topic, f"INSERT INTO {index} SELECT * FROM {topic}", elasticsearch, kafka
    )
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # a ping every second
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    started: list = []

    def at_ready() -> dict:
        """The supervisor writes its state and logs each boot before it sends READY=1."""
        conductor = started[0]
        return {"supervisor": conductor.supervisor_state(), "log": conductor.full_log()}

    listener = notify_socket(at_ready)
    conductor = conductors(config, workers=2)
    started.append(conductor)
    wait_for(lambda: es_count(elasticsearch, index) == RECORDS, 90, f"{RECORDS} documents")
    wait_for(
        lambda: sum(committed_offsets(kafka, f"connect-{name}").values()) == RECORDS,
        30,
        "every offset committed",
    )

    def updates() -> list[str]:
        return [d.fields["STATUS"] for d in listener.received if d.fields.keys() == {"STATUS"}]

    # Two updates after READY=1 (one every STATUS_INTERVAL_S), the last with every record written.
    wait_for(
        lambda: len(updates()) >= 3 and f"{RECORDS:,} records written, last commit" in updates()[-1],
        30,
        "STATUS= updates up to every record written",
    )
    stop_sent = time.monotonic()
    assert conductor.stop() == exitcodes.STOPPED, conductor.output()
    time.sleep(0.3)  # the last datagrams in flight

    received = listener.received
    supervisor = conductor.process.pid
    assert {d.pid for d in received} == {supervisor}, "only the supervisor speaks (NotifyAccess=main)"

    first = listener.with_field("STATUS")[0].fields
    assert first.keys() == {"STATUS"} and first["STATUS"].startswith("0/2 workers running, 2 starting"), first

    (ready,) = listener.with_field("READY")
    assert ready.fields["READY"] == "1"
    workers = ready.snapshot["supervisor"]["workers"]
    assert [w["state"] for w in workers] == ["running", "running"], workers
    assert len(re.findall(r"worker \d pid \d+ booted", ready.snapshot["log"])) == 2
    assert STATUS.match(ready.fields["STATUS"]).group("running") == "2", ready.fields

    (stopping,) = listener.with_field("STOPPING")
    assert stopping.fields["STOPPING"] == "1"
    assert ready.at < stop_sent <= stopping.at
    assert re.match(r"stopping: [12]/2 workers draining, ", stopping.fields["STATUS"]), stopping.fields

    running = [d for d in listener.with_field("STATUS") if ready.at <= d.at < stopping.at]
    lines = [STATUS.match(d.fields["STATUS"]) for d in running]
    assert all(lines), [d.fields for d in running]
    assert all(line.group("running") == "2" and not line.group("others") for line in lines)
    written = [int(line.group("written").replace(",", "")) for line in lines]
    assert written == sorted(written) and written[-1] == RECORDS, written
    assert int(lines[-1].group("ago")) < 30, lines[-1].group(0)
    plain = [d.at for d in running if d.fields.keys() == {"STATUS"}]
    assert all(b - a >= sdnotify.STATUS_INTERVAL_S - 0.5 for a, b in itertools.pairwise(plain)), plain

    pings = [d.at for d in listener.with_field("WATCHDOG")]
    assert all(d.fields == {"WATCHDOG": "1"} for d in listener.with_field("WATCHDOG"))
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    span = pings[-1] - pings[0]
    # Asked every 1 s (half WATCHDOG_USEC), sent from a loop that wakes at least every 0.5 s.
    assert span / 2 <= len(pings) - 1 <= span + 1, f"{len(pings)} pings in {span:.1f}s"
    assert 0.9 <= statistics.median(gaps) <= 1.6, gaps


@pytest.mark.servers
def test_a_worker_that_cannot_boot_never_sends_ready(
    kafka, elasticsearch, tmp_path, conductors, notify_socket, monkeypatch
) -> None:
    """TLS to Kafka's plain listener: kafka_check calls it a config error, each worker's boot
    fails, and the start ends with CONFIG_ERROR. The watchdog is not ours here: no ping."""
    config = write_config(
        tmp_path,
        unique("systemd-refused"),
        "never-read",
        "INSERT INTO never SELECT * FROM never-read",
        elasticsearch,
        kafka,
        security__protocol="SSL",
    )
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    listener = notify_socket()
    conductor = conductors(config, workers=2)
    assert conductor.wait(60) == exitcodes.CONFIG_ERROR, conductor.output()
    time.sleep(0.3)
    log = conductor.full_log()
    assert "security.protocol" in log and "could not boot" in log, log[-3000:]
    assert not listener.with_field("READY"), [d.fields for d in listener.received]
    assert not listener.with_field("WATCHDOG")
    (stopping,) = listener.with_field("STOPPING")
    assert stopping.fields["STATUS"].startswith("stopping on a config error"), stopping.fields
    assert {d.pid for d in listener.received} == {conductor.process.pid}


def test_a_config_that_does_not_load_sends_nothing(tmp_path, notify_socket) -> None:
    config = tmp_path / "broken.properties"
    config.write_text("name=broken\nconnector.class=no.such.Connector\ntopics=t\n")
    listener = notify_socket()
    started = subprocess.run(
        [sys.executable, "-m", "conductor.cli", "start", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CONDUCTOR_STATE_DIR": str(tmp_path / "state")},
        timeout=60,
    )
    assert started.returncode == exitcodes.CONFIG_ERROR, started.stderr
    time.sleep(0.2)
    assert listener.received == []


# -- conductor/sdnotify.py -------------------------------------------------------------------------


def test_the_socket_address() -> None:
    assert sdnotify.socket_address({}) is None
    assert sdnotify.socket_address({"NOTIFY_SOCKET": ""}) is None
    assert sdnotify.socket_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert sdnotify.socket_address({"NOTIFY_SOCKET": "@abstract/name"}) == "\0abstract/name"
    assert sdnotify.socket_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_a_message_is_one_line_per_field() -> None:
    assert sdnotify.message("READY=1", "STATUS=2/2 workers running") == b"READY=1\nSTATUS=2/2 workers running"
    assert sdnotify.message("STATUS=one\ntwo\r\nthree") == b"STATUS=one two three"


def receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_notify_over_an_abstract_socket() -> None:
    name = f"conductor-test-{uuid.uuid4().hex}"
    with receiver("\0" + name) as sock:
        address = sdnotify.socket_address({"NOTIFY_SOCKET": "@" + name})
        assert sdnotify.notify(address, "READY=1", "STATUS=up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_notify_over_a_path_socket(tmp_path) -> None:
    folder = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
    try:
        path = os.path.join(folder, "notify")
        with receiver(path) as sock:
            assert sdnotify.notify(path, "STOPPING=1")
            assert sock.recv(4096) == b"STOPPING=1"
        assert not sdnotify.notify(path, "STOPPING=1"), "no one listens any more: False, no exception"
    finally:
        shutil.rmtree(folder)


def test_nothing_is_sent_without_notify_socket() -> None:
    assert not sdnotify.notify(None, "READY=1")
    notifier = sdnotify.Notifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_s is None


def test_the_watchdog_interval() -> None:
    ours = str(os.getpid())
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ours}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=7) == 15.0
    for invalid in ({}, {"WATCHDOG_USEC": ""}, {"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "soon"}):
        assert sdnotify.watchdog_interval(invalid) is None, invalid


def test_the_notifier_pings_when_due_and_says_ready_and_stopping_once() -> None:
    name = f"conductor-test-{uuid.uuid4().hex}"
    with receiver("\0" + name) as sock:
        notifier = sdnotify.Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog_s == 2.0
        for now in (100.0, 100.5, 101.9, 102.0, 103.0, 104.1):
            notifier.watchdog(now)
        notifier.ready("2/2 workers running")
        assert notifier.ready_sent and not notifier.status_due(time.monotonic())
        notifier.stopping("stopping")
        sock.settimeout(0.5)
        got = []
        try:
            while True:
                got.append(sock.recv(4096))
        except TimeoutError:
            pass
    assert got == [
        b"WATCHDOG=1",  # 100.0
        b"WATCHDOG=1",  # 102.0
        b"WATCHDOG=1",  # 104.1
        b"READY=1\nSTATUS=2/2 workers running",
        b"STOPPING=1\nSTATUS=stopping",
    ]
    assert notifier.stopping_sent


# -- the journal's log lines (conductor/logs.py) ---------------------------------------------------


def test_journal_lines_carry_their_priority_and_no_time() -> None:
    formatter = JournalFormatter()
    record = logging.LogRecord(
        "conductor.supervisor", logging.WARNING, __file__, 1, "worker %s died", (1,), None
    )
    assert formatter.format(record) == f"<4>WARNING [{os.getpid()}] conductor.supervisor: worker 1 died"
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "conductor.worker", logging.ERROR, __file__, 1, "crashed", (), sys.exc_info()
        )
    lines = formatter.format(failed).splitlines()
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines), lines
    assert lines[-1] == "<3>ValueError: boom"
    levels = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL, 25)
    assert [syslog_priority(level) for level in levels] == [7, 6, 4, 3, 2, 6]


def test_the_journal_is_recognised_by_its_device_and_inode(tmp_path, monkeypatch) -> None:
    with open(tmp_path / "stream", "w") as stream:
        status = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        assert to_journal(stream)
        with open(tmp_path / "other", "w") as other:
            assert not to_journal(other), "stderr redirected away from the journal"
        assert not to_journal(io.StringIO())
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not to_journal(stream)


def test_conductor_logs_for_the_journal_when_stderr_is_it(tmp_path) -> None:
    """configure() as `conductor` calls it, stderr a file that $JOURNAL_STREAM names."""
    with open(tmp_path / "journal", "w+") as journal:
        status = os.fstat(journal.fileno())
        code = """
import logging, sys
from conductor.logs import configure
configure("INFO")
logging.getLogger("conductor.supervisor").warning("worker %s died", 1)
"""
        env = {**os.environ, "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        subprocess.run(
            [sys.executable, "-c", code], stderr=journal, env=env, cwd=ROOT, check=True, timeout=60
        )
        journal.seek(0)
        assert re.fullmatch(r"<4>WARNING \[\d+\] conductor\.supervisor: worker 1 died\n", journal.read())


# -- deploy/systemd/conductor@.service -------------------------------------------------------------


def analyze(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    if not SYSTEMD_ANALYZE.exists():
        pytest.fail(
            f"{SYSTEMD_ANALYZE} is missing: Debian's `apt-get install -y systemd` brings it", pytrace=False
        )
    return subprocess.run(
        [str(SYSTEMD_ANALYZE), *arguments], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@pytest.fixture
def instance(tmp_path) -> Path:
    """conductor@example.service from the template, unchanged, with a drop-in that points
    ExecStart= at this venv's conductor (verify checks that the program exists)."""
    shutil.copy(UNIT, tmp_path / UNIT.name)
    (tmp_path / "conductor@example.service.d").mkdir()
    (tmp_path / "conductor@example.service.d" / "exec.conf").write_text(
        "[Service]\nExecStart=\n"
        f"ExecStart={Path(sys.executable).parent / 'conductor'} start --config /etc/conductor/%i.properties\n"
    )
    return tmp_path / "conductor@example.service"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_analyze_verify_finds_nothing_to_say(instance: Path) -> None:
    verified = analyze("verify", instance.name, cwd=instance.parent)
    said = verified.stdout + verified.stderr
    assert verified.returncode == 0 and said == "", said  # an unknown key or bad value only warns


def test_the_unit_keeps_to_conductors_protocol() -> None:
    settings = unit_settings()
    (start,) = settings["ExecStart"]
    assert start == "/opt/conductor/bin/conductor start --config /etc/conductor/%i.properties"
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert settings["RestartPreventExitStatus"] == [str(exitcodes.CONFIG_ERROR)]
    assert settings["KillMode"] == ["mixed"], "SIGTERM to the supervisor, which drains the workers"
    (stop,) = settings["TimeoutStopSec"]
    drain = WorkerSettings.__dataclass_fields__["drain_timeout_s"].default
    assert int(stop.removesuffix("s")) > drain + STOP_MARGIN_S + STOP_GRACE_S
    assert settings["Environment"] == ["CONDUCTOR_STATE_DIR=%S/conductor/%i"]
    assert settings["StateDirectory"] == ["conductor/%i"]
    assert "ExecReload" not in settings, "the supervisor has no reload (no SIGHUP handler)"


def test_systemd_analyze_security_rates_the_sandbox_ok(instance: Path) -> None:
    rated = analyze("security", "--offline=yes", instance.name, cwd=instance.parent)
    said = rated.stdout + rated.stderr
    score = re.search(r"Overall exposure level for conductor@example\.service: (\d+\.\d+) (\w+)", said)
    assert score, said
    assert float(score.group(1)) <= 1.5, said  # 1.2 with systemd 252
