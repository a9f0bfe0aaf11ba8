"""The supervisor with real processes: each test runs Supervisor.run() in a `python -c` child.

The workers below are tiny worker_main functions; they append JSON lines to an events file so
the test sees every start, boot and stop, across processes and respawns.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conductor import exitcodes
from conductor.errors import ConfigError
from conductor.status import read_state, state_dir_for, write_state
from conductor.supervisor import Supervisor, SupervisorSettings, describe_exit
from conductor.workercontrol import WorkerControl

ROOT = Path(__file__).resolve().parents[2]
RUNNER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("supervisor_test_workers", sys.argv[1])
module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.exit(module.run_supervisor(json.loads(sys.argv[2])))
"""
FAST = {
    "restart_backoff_initial_s": 0.1,
    "restart_backoff_max_s": 1.0,
    "heartbeat_timeout_s": 2.0,
    "drain_timeout_s": 2.0,
}


# -- the workers (they run in the grandchildren) -------------------------------------------------


def _event(control: WorkerControl, event: str, **fields: object) -> None:
    line = json.dumps(
        {"event": event, "worker_id": control.worker_id, "pid": os.getpid(), "at": time.time(), **fields}
    )
    with open(os.environ["TEST_EVENTS"], "a") as events:
        events.write(line + "\n")


def _first_run(control: WorkerControl, what: str) -> bool:
    """True only for the first worker of this slot to ask: later respawns behave."""
    marker = Path(os.environ["TEST_EVENTS"]).with_name(f"{what}-{control.worker_id}")
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def _serve(control: WorkerControl) -> int:
    while not control.stop_requested:
        control.heartbeat()
        time.sleep(0.02)
    _event(control, "stop")
    return exitcodes.OK


def steady(worker_id: int, control: WorkerControl) -> int:
    _event(control, "start")
    control.notify_booted()
    _event(control, "booted")
    control.record_state(partitions=[worker_id])
    return _serve(control)


def deaf(worker_id: int, control: WorkerControl) -> int:
    _event(control, "start")
    control.notify_booted()
    _event(control, "booted")
    while True:
        control.heartbeat()
        time.sleep(0.02)


def boot_error(worker_id: int, control: WorkerControl) -> int:
    """Worker 0 cannot boot; the others are still setting up (beating, not booted) and honour stop."""
    _event(control, "start")
    if worker_id == 0:
        time.sleep(0.2)
        return exitcodes.BOOT_ERROR
    return _serve(control)


def boot_error_later(worker_id: int, control: WorkerControl) -> int:
    """Worker 1's first run fails to boot after worker 0 has booted: restart, not a group stop."""
    _event(control, "start")
    if worker_id == 1 and _first_run(control, "boot"):
        time.sleep(0.5)
        return exitcodes.BOOT_ERROR
    control.notify_booted()
    _event(control, "booted")
    return _serve(control)


def task_fails(worker_id: int, control: WorkerControl) -> int:
    _event(control, "start")
    control.notify_booted()
    if worker_id == 0:
        control.record_state(last_error="THROW: mapping conflict")
        return exitcodes.TASK_FAILED
    return _serve(control)


def crashes(worker_id: int, control: WorkerControl) -> int:
    _event(control, "start")
    control.notify_booted()
    if _first_run(control, "crash"):
        raise RuntimeError("boom in worker_main")
    _event(control, "booted")
    return _serve(control)


def hangs(worker_id: int, control: WorkerControl) -> int:
    """Worker 0's first run stops beating and ignores SIGABRT, so only SIGKILL ends it."""
    _event(control, "start")
    control.notify_booted()
    _event(control, "booted")
    if worker_id == 0 and _first_run(control, "hang"):
        signal.signal(signal.SIGABRT, signal.SIG_IGN)
        time.sleep(3600)
    return _serve(control)


def hog(worker_id: int, control: WorkerControl) -> int:
    _event(control, "start")
    control.notify_booted()
    _event(control, "booted")
    ballast = b"x" * (300 * 1024 * 1024) if _first_run(control, "hog") else b""
    code = _serve(control)
    del ballast
    return code


def idle(worker_id: int, control: WorkerControl) -> int:
    """Worker 0's first run holds no partition while worker 1 holds three; its successor holds one."""
    _event(control, "start")
    control.notify_booted()
    _event(control, "booted")
    if worker_id == 0:
        control.record_state(partitions=[] if _first_run(control, "idle") else [{"partition": 3}])
    else:
        control.record_state(partitions=[{"partition": p} for p in range(3)])
    return _serve(control)


def fair(worker_id: int, control: WorkerControl) -> int:
    """More workers than partitions: one holds none, the others one each. Nobody is replaced."""
    _event(control, "start")
    control.notify_booted()
    _event(control, "booted")
    control.record_state(partitions=[{"partition": worker_id}] if worker_id else [])
    return _serve(control)


WORKERS: dict[str, Callable[[int, WorkerControl], int]] = {
    "idle": idle,
    "fair": fair,
    "steady": steady,
    "deaf": deaf,
    "boot_error": boot_error,
    "boot_error_later": boot_error_later,
    "task_fails": task_fails,
    "crashes": crashes,
    "hangs": hangs,
    "hog": hog,
}


def run_supervisor(params: dict) -> int:
    """The body of the `python -c` child."""
    import logging

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    os.environ["TEST_EVENTS"] = params["events"]
    settings = SupervisorSettings(state_dir=Path(params["state_dir"]), **params["settings"])
    return Supervisor(settings, WORKERS[params["worker"]]).run()


# -- the harness ---------------------------------------------------------------------------------


@dataclass
class Group:
    process: subprocess.Popen
    events_path: Path
    log_path: Path
    state_dir: Path

    def events(self, event: str | None = None, worker_id: int | None = None) -> list[dict]:
        if not self.events_path.exists():
            return []
        found = [json.loads(line) for line in self.events_path.read_text().splitlines() if line]
        return [
            e
            for e in found
            if (event is None or e["event"] == event) and (worker_id is None or e["worker_id"] == worker_id)
        ]

    def log(self) -> str:
        return self.log_path.read_text()

    def state(self) -> dict:
        return read_state(self.state_dir / "supervisor.json") or {}

    def worker(self, worker_id: int) -> dict:
        workers = self.state().get("workers") or []
        return workers[worker_id] if worker_id < len(workers) else {}

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the supervisor did not exit within {timeout}s; its log:\n{self.log()}")


def wait_for(predicate: Callable[[], object], timeout: float, group: Group, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if group.process.poll() is not None:
            pytest.fail(
                f"the supervisor exited ({group.process.returncode}) while waiting for {what}; its log:\n"
                f"{group.log()}"
            )
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; supervisor log:\n{group.log()}")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Group]]:
    groups: list[Group] = []

    def start(worker: str, workers: int = 1, **settings: object) -> Group:
        settings = {**FAST, **settings, "workers": workers}
        params = {
            "worker": worker,
            "events": str(tmp_path / "events.jsonl"),
            "state_dir": str(tmp_path / "state"),
            "settings": settings,
        }
        log_path = tmp_path / "supervisor.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", RUNNER, __file__, json.dumps(params)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stderr=log,
                stdout=log,
                start_new_session=True,
            )
        group = Group(process, tmp_path / "events.jsonl", log_path, tmp_path / "state")
        groups.append(group)
        return group

    yield start
    for group in groups:  # the supervisor leads its own session: end it and any worker left behind
        try:
            os.killpg(group.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        group.process.wait()


def running_pids(group: Group, count: int) -> dict[int, int]:
    def all_running() -> dict[int, int] | None:
        workers = group.state().get("workers", [])
        running = {w["worker_id"]: w["pid"] for w in workers if w["state"] == "running"}
        return running if len(running) == count else None

    return wait_for(all_running, 10, group, f"{count} running worker(s)")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the tests -----------------------------------------------------------------------------------


def test_spawns_n_workers_with_distinct_ids_and_stops_them_on_sigterm(start):
    group = start("steady", workers=3)
    pids = running_pids(group, 3)
    assert sorted(pids) == [0, 1, 2]
    assert len(set(pids.values())) == 3
    for worker_id, pid in pids.items():
        worker_state = wait_for(
            lambda: read_state(group.state_dir / f"worker-{worker_id}.json"),
            5,
            group,
            "the worker's state file",
        )
        assert worker_state["pid"] == pid and worker_state["worker_id"] == worker_id
    assert wait_for(
        lambda: read_state(group.state_dir / "worker-2.json").get("partitions"),
        5,
        group,
        "recorded partitions",
    ) == [2]

    started = time.monotonic()
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0
    assert time.monotonic() - started < FAST["drain_timeout_s"]
    assert sorted(e["worker_id"] for e in group.events("stop")) == [0, 1, 2]
    state = group.state()
    assert state["stopping"] is True and state["exit_code"] == 0
    assert [w["state"] for w in state["workers"]] == ["stopped"] * 3
    assert read_state(group.state_dir / "worker-0.json")["state"] == "exited"
    assert not any(pid_alive(pid) for pid in pids.values())


def test_a_killed_worker_is_respawned_into_its_slot(start):
    group = start("steady", workers=2)
    pids = running_pids(group, 2)
    os.kill(pids[1], signal.SIGKILL)
    wait_for(lambda: len(group.events("booted", worker_id=1)) == 2, 10, group, "worker 1 to boot again")
    assert len(group.events("start", worker_id=0)) == 1
    respawned = running_pids(group, 2)
    assert respawned[0] == pids[0] and respawned[1] != pids[1]
    slot = group.worker(1)
    assert slot["last_exit"] == "killed by SIGKILL" and slot["restarts"] == 1
    assert f"worker 1 pid {pids[1]} ended: killed by SIGKILL; restarting in 0.1s (restart 1)" in group.log()
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0


def test_backoff_starts_over_once_a_worker_ran_healthy(start):
    group = start("steady", workers=1, healthy_after_s=2.0)

    def kill_and_wait_for_boot(run: int) -> None:
        os.kill(group.events("booted")[-1]["pid"], signal.SIGKILL)
        wait_for(lambda: len(group.events("booted")) == run, 10, group, f"boot number {run}")

    running_pids(group, 1)
    kill_and_wait_for_boot(2)
    kill_and_wait_for_boot(3)  # at once: the count goes on
    time.sleep(2.2)
    kill_and_wait_for_boot(4)  # after a healthy run: the count starts over
    restarts = [line.rsplit("(restart ", 1)[1] for line in group.log().splitlines() if "(restart " in line]
    assert restarts == ["1)", "2)", "1)"]
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0


def test_sigquit_kills_at_once(start):
    group = start("deaf", workers=2, drain_timeout_s=30)
    pids = running_pids(group, 2)
    group.signal(signal.SIGQUIT)
    assert group.wait(5) == 1
    assert "got SIGQUIT: killing 2 worker(s) now" in group.log()
    assert not any(pid_alive(pid) for pid in pids.values())


def test_a_worker_that_ignores_stop_is_killed_after_the_drain_timeout(start):
    group = start("deaf", workers=1, drain_timeout_s=0.5)
    pid = running_pids(group, 1)[0]
    started = time.monotonic()
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0
    assert 0.5 < time.monotonic() - started < 6
    assert f"worker 0 pid {pid} did not stop within" in group.log()
    assert group.worker(0)["last_exit"] == "killed by SIGKILL"
    assert not pid_alive(pid)


def test_a_second_sigint_kills_at_once(start):
    group = start("deaf", workers=2, drain_timeout_s=30)
    pids = running_pids(group, 2)
    group.signal(signal.SIGINT)
    wait_for(lambda: "got SIGINT: stopping 2 worker(s)" in group.log(), 5, group, "the graceful stop")
    started = time.monotonic()
    group.signal(signal.SIGINT)
    assert group.wait(5) == 1
    assert time.monotonic() - started < 3
    assert "got SIGINT again: killing 2 worker(s) now" in group.log()
    assert not any(pid_alive(pid) for pid in pids.values())


def test_boot_error_before_any_worker_booted_stops_the_group_with_exit_2(start):
    group = start("boot_error", workers=3)
    assert group.wait(15) == 2
    starts = group.events("start")
    assert sorted(e["worker_id"] for e in starts) == [0, 1, 2]  # nobody respawned
    assert sorted(e["worker_id"] for e in group.events("stop")) == [1, 2]  # the others drained
    log = group.log()
    assert "could not boot (exit code 3 (boot error)) and no worker has booted yet" in log
    assert "read worker 0's error above" in log
    assert group.worker(0)["state"] == "failed"


def test_boot_error_after_the_group_booted_is_restarted(start):
    group = start("boot_error_later", workers=2)
    wait_for(
        lambda: len(group.events("booted", worker_id=1)) == 1, 10, group, "worker 1 to boot on its 2nd run"
    )
    assert len(group.events("start", worker_id=1)) == 2
    assert "exit code 3 (boot error); restarting in 0.1s (restart 1 of 10)" in group.log()
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0


def test_task_failed_restarts_with_growing_backoff_then_the_slot_fails(start):
    group = start(
        "task_fails", workers=1, restart_max=3, restart_backoff_initial_s=0.1, restart_backoff_max_s=0.3
    )
    assert group.wait(15) == 1
    starts = [e["at"] for e in group.events("start")]
    assert len(starts) == 4  # the first run and restart_max restarts
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.3
    log = group.log()
    for delay, restart in (("0.1", 1), ("0.2", 2), ("0.3", 3)):
        assert f"exit code 4 (task failed); restarting in {delay}s (restart {restart} of 3)" in log
    assert "failed 4 time(s) in a row, the limit (restart_max 3): not restarting it" in log
    assert "every worker has failed" in log
    slot = group.worker(0)
    assert slot["state"] == "failed" and slot["last_exit"] == "exit code 4 (task failed)"
    assert read_state(group.state_dir / "worker-0.json")["last_error"] == "THROW: mapping conflict"


def test_a_failed_slot_leaves_the_other_workers_running(start):
    group = start("task_fails", workers=2, restart_max=1)
    wait_for(lambda: group.worker(0).get("state") == "failed", 10, group, "slot 0 to fail")
    assert len(group.events("start", worker_id=0)) == 2
    assert group.worker(1)["state"] == "running"
    assert group.process.poll() is None
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0
    assert [w["state"] for w in group.state()["workers"]] == ["failed", "stopped"]


def test_an_exception_in_worker_main_is_logged_and_the_worker_respawned(start):
    group = start("crashes", workers=1)
    wait_for(lambda: group.events("booted"), 10, group, "the respawned worker")
    log = group.log()
    assert "worker 0 crashed" in log and "RuntimeError: boom in worker_main" in log
    assert "ended: exit code 1; restarting in 0.1s (restart 1)" in log
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0


def test_a_hung_worker_is_aborted_then_killed_and_respawned(start):
    group = start("hangs", workers=2, heartbeat_timeout_s=1.0)
    wait_for(lambda: len(group.events("start", worker_id=0)) == 2, 15, group, "worker 0 to be respawned")
    first = group.events("start", worker_id=0)[0]["pid"]
    log = group.log()
    assert f"worker 0 pid {first} sent no heartbeat for" in log and "aborting it with SIGABRT" in log
    assert f"worker 0 pid {first} is still alive; killing it" in log
    assert f"worker 0 pid {first} ended: killed by SIGKILL" in log
    assert len(group.events("start", worker_id=1)) == 1  # the healthy worker was left alone
    running_pids(group, 2)
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0


def test_a_worker_above_the_rss_limit_is_replaced(start):
    group = start("hog", workers=1, rss_limit_mb=200)
    wait_for(lambda: len(group.events("booted")) == 2, 15, group, "the replacement worker")
    first = group.events("start")[0]["pid"]
    assert group.events("stop")[0]["pid"] == first  # it drained on SIGTERM
    log = group.log()
    assert f"worker 0 pid {first} uses" in log and "above the limit of 200 MB" in log
    assert f"worker 0 pid {first} stopped for its memory: exit code 0 (ok); respawning it" in log
    assert group.worker(0)["restarts"] == 0
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0


# -- the small parts -----------------------------------------------------------------------------


def test_backoff_grows_and_is_capped():
    settings = SupervisorSettings(workers=1, restart_backoff_initial_s=1, restart_backoff_max_s=300)
    assert [settings.backoff(n) for n in (1, 2, 3, 4, 9, 10, 5000)] == [1, 2, 4, 8, 256, 300, 300]


def test_settings_are_validated():
    with pytest.raises(ConfigError) as error:
        SupervisorSettings(workers=0, drain_timeout_s=-1)
    assert error.value.problems == [
        "workers must be above 0, not 0",
        "drain_timeout_s must be above 0, not -1",
    ]


def test_describe_exit():
    assert describe_exit(0) == "exit code 0 (ok)"
    assert describe_exit(4) == "exit code 4 (task failed)"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"


def test_state_files_are_replaced_whole(tmp_path):
    path = tmp_path / "deep" / "supervisor.json"
    assert read_state(path) is None
    write_state(path, {"pid": 1, "workers": []})
    write_state(path, {"pid": 2})
    assert read_state(path) == {"pid": 2}
    assert [p.name for p in path.parent.iterdir()] == ["supervisor.json"]
    path.write_text("{not json")
    assert read_state(path) is None


def test_state_dir_for(monkeypatch, tmp_path):
    monkeypatch.delenv("CONDUCTOR_STATE_DIR", raising=False)
    assert state_dir_for("orders") == Path("/tmp/conductor-orders")
    monkeypatch.setenv("CONDUCTOR_STATE_DIR", str(tmp_path))
    assert state_dir_for("orders") == tmp_path / "orders"


def test_a_worker_without_partitions_while_another_holds_several_is_replaced(start):
    group = start("idle", workers=2, idle_limit_s=1)
    first = running_pids(group, 2)[0]
    wait_for(lambda: len(group.events("start", worker_id=0)) == 2, 20, group, "worker 0 replaced")
    log = group.log()
    assert f"worker 0 pid {first} has held no partition for" in log
    assert "while another worker holds 3; replacing it so that it joins the group afresh" in log
    assert f"worker 0 pid {first} stopped to join its group afresh: exit code 0 (ok); respawning it" in log
    assert [e["pid"] for e in group.events("stop", worker_id=0)] == [first], (
        "it drained (SIGTERM), not killed"
    )
    time.sleep(3)
    assert len(group.events("start", worker_id=0)) == 2, "its successor holds a partition: it stays"
    assert len(group.events("start", worker_id=1)) == 1
    assert group.worker(0)["restarts"] == 0, "a replacement is not a failure"
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0


def test_a_worker_without_partitions_is_left_alone_when_nobody_holds_several(start):
    group = start("fair", workers=3, idle_limit_s=1)
    running_pids(group, 3)
    time.sleep(4)
    assert len(group.events("start")) == 3
    assert "replacing it" not in group.log()
    group.signal(signal.SIGTERM)
    assert group.wait(10) == 0
