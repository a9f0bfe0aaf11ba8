"""The status page (/ui) in a real browser, against a real `conductor start` of an Elasticsearch
sink: its tasks and partitions, a killed worker, the restart, pause and resume buttons, a failed
task's trace, a phone-width screen, and a server that is gone.

CONDUCTOR_SCREENSHOT=1 writes docs/ui.png from the first test."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from support.browser import chrome, emulate
from support.pipeline import ROOT, Conductor, create_topic, produce, reading, unique, wait_for, write_config

pytestmark = pytest.mark.servers

TS = 1_767_000_000_000
PER_PARTITION = 25
WAIT_S = 30
SCREENSHOT = ROOT / "docs" / "ui.png"
LINGER_MS = 4000
STRICT_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "reading_id": {"type": "long"},
        "sensor_id": {"type": "keyword"},
        "celsius": {"type": "float"},
        "timestamp": {"type": "long"},
    },
}

# What the page shows, read from its DOM in one call (no stale elements between two reads).
# A field the page hides reads as null.
SNAPSHOT = """
const shown = (node, css) => {
  const found = node.querySelector(css);
  return found && !found.closest("[hidden]") ? found.textContent : null;
};
return {
  name: shown(document, "#name"), state: shown(document, "#state"),
  offline: shown(document, "#offline"), message: shown(document, "#message"),
  pause: !document.getElementById("pause").disabled, resume: !document.getElementById("resume").disabled,
  tasks: [...document.querySelectorAll(".task")].map((card) => ({
    id: Number(card.dataset.task), state: shown(card, ".state"), pid: Number(shown(card, "dd.pid")),
    restarts: shown(card, "dd.restarts"), last_exit: shown(card, "dd.last_exit"),
    written: shown(card, "dd.written"), trace: shown(card, ".trace"),
    partitions: [...card.querySelectorAll("tr.partition")].map((row) => ({
      topic: row.dataset.topic, partition: Number(row.dataset.partition),
      committed: shown(row, ".committed"), lag: shown(row, ".lag"),
    })),
  })),
};
"""


class Page:
    """The status page of one conductor, in the browser."""

    def __init__(self, driver, conductor: Conductor) -> None:
        self.driver = driver
        self.conductor = conductor

    def open(self) -> Page:
        self.driver.get(self.conductor.url() + "/ui")
        self.until(lambda page: page["tasks"], "the page to show the tasks")
        return self

    def snapshot(self) -> dict:
        return self.driver.execute_script(SNAPSHOT)

    def tasks(self) -> dict[int, dict]:
        return {task["id"]: task for task in self.snapshot()["tasks"]}

    def until(self, check, what: str, timeout: float = WAIT_S):
        """Wait until check(snapshot) is true; on a timeout, say what the page showed last."""
        last: list[dict] = []

        def probe(driver) -> object:
            last[:] = [self.snapshot()]
            return check(last[0])

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(probe)
        except TimeoutException:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; the page showed {last}\n"
                f"conductor's log:\n{self.conductor.output()}"
            ) from None

    def click(self, css: str) -> None:
        WebDriverWait(self.driver, WAIT_S).until(
            expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, css))
        ).click()


def all_running(page: dict, workers: int) -> bool:
    tasks = page["tasks"]
    return len(tasks) == workers and all(t["state"] == "RUNNING" and t["partitions"] for t in tasks)


def fits(driver, width: int, height: int) -> None:
    """At width x height, nothing makes the page scroll sideways and every button is on screen."""
    emulate(driver, width, height)
    try:
        scroll_width, inner_width, buttons_right = driver.execute_script(
            "const rights = [...document.querySelectorAll('button')].map((b) => b.getBoundingClientRect().right);"
            "return [document.documentElement.scrollWidth, window.innerWidth, Math.max(...rights)];"
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert inner_width == width
    assert scroll_width <= inner_width, f"the page is {scroll_width}px wide on a {inner_width}px screen"
    assert buttons_right <= inner_width, f"a button reaches {buttons_right}px on a {inner_width}px screen"


@pytest.fixture
def browser(tmp_path: Path):
    driver = chrome(tmp_path / "chromium-profile")
    yield driver
    driver.quit()


@pytest.fixture
def sink(kafka, elasticsearch, conductors, tmp_path, index, browser):
    """A started Elasticsearch sink, 2 workers on `partitions` partitions holding PER_PARTITION
    readings each, and its page open once every task runs."""

    def start(partitions: int = 4, **settings: object) -> tuple[Page, str]:
        topic = create_topic(kafka, partitions=partitions, prefix="page")
        for partition in range(partitions):
            readings = [(b"k%d" % n, reading(n, TS + n), TS + n) for n in range(PER_PARTITION)]
            produce(kafka, topic, readings, partition=partition)
        kcql = f"INSERT INTO {index} SELECT * FROM {topic}"
        config = write_config(
            tmp_path, unique("page"), topic, kcql, elasticsearch=elasticsearch, kafka=kafka, **settings
        )
        page = Page(browser, conductors(config, workers=2)).open()
        page.until(lambda shown: all_running(shown, 2), "both tasks RUNNING with their partitions")
        return page, topic

    return start


def test_the_page_shows_every_task_with_its_partitions_and_when_the_server_is_gone(sink, browser) -> None:
    page, topic = sink(partitions=4)
    everything = {(topic, p, str(PER_PARTITION), "0") for p in range(4)}
    shown = page.until(
        lambda shown: (
            {
                (p["topic"], p["partition"], p["committed"], p["lag"])
                for t in shown["tasks"]
                for p in t["partitions"]
            }
            == everything
            and shown
        ),
        "every partition with its committed offset and no lag",
    )
    assert shown["name"] == page.conductor.config.stem
    assert shown["state"] == "RUNNING"
    assert {task["pid"] for task in shown["tasks"]} == set(page.conductor.worker_pids())
    assert [len(task["partitions"]) for task in shown["tasks"]] == [2, 2]
    assert sum(int(task["written"]) for task in shown["tasks"]) == 4 * PER_PARTITION
    assert shown["offline"] is None

    if os.environ.get("CONDUCTOR_SCREENSHOT") == "1":
        emulate(browser, 1280, 900)
        SCREENSHOT.write_bytes(browser.get_screenshot_as_png())
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    fits(browser, 390, 844)

    assert page.conductor.stop() == 0
    offline = page.until(lambda shown: shown["offline"], "the page to say the server cannot be reached")
    assert "Cannot reach conductor" in offline


def test_a_killed_worker_shows_on_the_page_and_comes_back_with_a_new_pid(sink) -> None:
    page, _ = sink(partitions=2)
    before = page.tasks()
    victim = before[0]
    assert victim["pid"] in page.conductor.worker_pids()
    os.kill(victim["pid"], signal.SIGKILL)
    back = page.until(
        lambda shown: next(
            (
                task
                for task in shown["tasks"]
                if task["id"] == 0
                and task["pid"] not in (0, victim["pid"])
                and task["state"] == "RUNNING"
                and task["partitions"]
            ),
            None,
        ),
        "task 0 RUNNING again, with a new pid and its partitions",
    )
    assert back["restarts"] == "1"
    assert back["last_exit"] == "killed by SIGKILL"
    assert back["pid"] in page.conductor.worker_pids()
    assert page.tasks()[1]["pid"] == before[1]["pid"], "the other task runs on"


def test_the_restart_button_restarts_that_task(sink) -> None:
    page, _ = sink(partitions=2)
    before = page.tasks()
    page.click('.task[data-task="1"] button.restart-task')
    page.until(
        lambda shown: (
            next(t["pid"] for t in shown["tasks"] if t["id"] == 1) not in (0, before[1]["pid"])
            and all_running(shown, 2)
        ),
        "task 1 RUNNING with a new pid",
    )
    after = page.tasks()
    assert after[0]["pid"] == before[0]["pid"], "only the task asked for restarts"
    assert after[1]["restarts"] == "1"
    assert "Restart of task 1 requested" in page.snapshot()["message"]


def test_the_pause_and_resume_buttons_change_the_connector_state(sink) -> None:
    page, _ = sink(partitions=2)
    assert page.snapshot()["resume"] is False, "Resume is disabled while the connector runs"
    page.click("#pause")
    paused = page.until(
        lambda shown: (
            shown["state"] == "PAUSED" and all(t["state"] == "PAUSED" for t in shown["tasks"]) and shown
        ),
        "the connector and its tasks PAUSED",
    )
    assert (paused["pause"], paused["resume"]) == (False, True)
    page.click("#resume")
    page.until(
        lambda shown: shown["state"] == "RUNNING" and all_running(shown, 2) and not shown["resume"],
        "the connector and its tasks RUNNING again",
    )


def test_a_failed_task_shows_its_error_and_stack_trace(sink, kafka, elasticsearch, index, browser) -> None:
    """THROW and restart.max=0: the task that writes a record Elasticsearch refuses stays FAILED.
    Its worker leaves the group, so the other one takes the partition and reads the record too:
    the mapping is fixed meanwhile (the batch lingers LINGER_MS first), so that one writes it and
    runs on, and the supervisor (and its page) stay up."""
    client = Elasticsearch(elasticsearch)
    try:
        client.indices.create(index=index, mappings=STRICT_MAPPING)
        page, topic = sink(
            partitions=2,
            connect__elastic__error__policy="THROW",
            conductor__restart__max=0,
            conductor__linger__ms=LINGER_MS,
        )
        (owner,) = [
            t["id"] for t in page.snapshot()["tasks"] if any(p["partition"] == 0 for p in t["partitions"])
        ]
        bad = orjson.dumps({**orjson.loads(reading(0, TS)), "unmapped": "refused by the strict mapping"})
        produce(kafka, topic, [(b"bad", bad, TS)], partition=0)
        wait_for(
            lambda: any(state.get("state") == "failed" for state in page.conductor.states()),
            30,
            f"worker {owner} to fail",
            pause=0.05,
        )
        client.indices.put_mapping(index=index, properties={"unmapped": {"type": "keyword"}})
    finally:
        client.close()

    failed = page.until(
        lambda shown: next(
            (t for t in shown["tasks"] if t["id"] == owner and t["state"] == "FAILED" and t["last_exit"]),
            None,
        ),
        f"task {owner} FAILED, its worker gone",
    )
    assert "strict_dynamic_mapping_exception" in failed["trace"]
    assert "Traceback (most recent call last)" in failed["trace"]
    assert failed["last_exit"] == "exit code 4 (task failed)"
    assert failed["partitions"] == []
    survivor = page.until(
        lambda shown: next(
            (
                t
                for t in shown["tasks"]
                if t["id"] != owner
                and t["state"] == "RUNNING"
                and {(p["partition"], p["committed"]) for p in t["partitions"]}
                == {(0, str(PER_PARTITION + 1)), (1, str(PER_PARTITION))}
            ),
            None,
        ),
        "the other task RUNNING with both partitions, the refused record written once its field was mapped",
    )
    assert survivor["trace"] is None
    assert page.snapshot()["state"] == "RUNNING"

    trace = browser.find_element(By.CSS_SELECTOR, f'.task[data-task="{owner}"] .trace')
    assert trace.is_displayed()
    assert "strict_dynamic_mapping_exception" in trace.text
    style = browser.execute_script(
        "const s = getComputedStyle(arguments[0]); return [s.whiteSpace, s.overflowX, s.overflowY];", trace
    )
    assert style == ["pre", "auto", "auto"], "the trace keeps its lines and scrolls"
    fits(browser, 390, 844)
