"""`conductor status`: where a running conductor answers, its /conductor/state, and that state
as tables for a terminal (the connector, its tasks, their partitions and last errors)."""

from __future__ import annotations

import base64
import shutil
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from conductor.errors import ConductorError

STATE_PATH = "/conductor/state"
GAP = "   "  # between table columns, as kubectl spaces them


@dataclass(frozen=True)
class Target:
    url: str
    found: str  # how the URL was found, for the message when nothing answers there
    authorization: str | None = field(default=None, repr=False)  # the Authorization header to send
    cafile: str | None = None  # trusted for an https URL, beside the system's CAs

    def using(self, token: str | None, cafile: str | None) -> Target:
        """With a bearer token and a CA file given on the command line (they win)."""
        authorization = f"Bearer {token}" if token else self.authorization
        return replace(self, authorization=authorization, cafile=cafile or self.cafile)


class Unreachable(ConductorError):
    """No conductor's state could be read at `target`; `reason` says what happened instead."""

    def __init__(self, target: Target, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"no conductor answers at {target.url} ({target.found}): {reason}")


def locate(config_path: str) -> Target:
    """The URL of the conductor running `config_path`: the one its supervisor's state names
    while it runs, else the config's `listeners`. Raises ConfigError, or Unreachable when the
    listeners ask for any free port and no state names the port taken."""
    from conductor.api import state_url
    from conductor.config import load_config
    from conductor.status import state_dir_for

    config = load_config(config_path)
    rest = config.rest
    authorization = None
    if rest.token is not None:
        authorization = f"Bearer {rest.token.reveal()}"
    elif rest.users:
        user, password = next(iter(rest.users.items()))
        authorization = "Basic " + base64.b64encode(f"{user}:{password.reveal()}".encode()).decode()
    state_dir = state_dir_for(config.name)
    url = state_url(state_dir)
    if url:
        return Target(url, f"from the running conductor's state in {state_dir}", authorization)
    found = f"from the listeners in {config.source}; no running conductor's state in {state_dir}"
    target = Target(listener_url(rest.host, rest.port, rest.scheme), found, authorization)
    if config.rest.port == 0:
        raise Unreachable(target, "port 0 means any free port, and no state names the one taken")
    return target


def listener_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL to ask for a listener: a wildcard host is asked on the loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def given(url: str) -> Target:
    return Target(url if "://" in url else f"http://{url}", "given with --url")


def fetch(target: Target, timeout_s: float) -> dict[str, Any]:
    """GET {url}/conductor/state, parsed."""
    url = target.url.rstrip("/") + STATE_PATH
    request = urllib.request.Request(url)
    if target.authorization:
        request.add_header("Authorization", target.authorization)
    context = ssl.create_default_context(cafile=target.cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise Unreachable(target, f"GET {STATE_PATH} answered {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise Unreachable(target, _reason(error.reason, timeout_s)) from None
    except (OSError, ValueError) as error:  # a timeout while reading; a URL urllib cannot use
        raise Unreachable(target, _reason(error, timeout_s)) from None
    try:
        state = orjson.loads(body)
    except orjson.JSONDecodeError:
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("tasks"), list):
        raise Unreachable(target, f"GET {STATE_PATH} did not answer a conductor's state")
    return state


def _reason(error: object, timeout_s: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout_s:g}s"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


# -- rendering ----------------------------------------------------------------------------------


def render(state: dict[str, Any], trace: bool = False, width: int | None = None) -> str:
    """The connector, its tasks, their partitions, then each task's last error (its first line
    unless `trace`)."""
    tasks = state.get("tasks") or []
    running = sum(1 for task in tasks if task.get("state") == "RUNNING")
    started = state.get("started_at")
    uptime = max(0.0, time.time() - started) if isinstance(started, int | float) else None
    shown = str(state.get("state") or "-")
    target = state.get("target_state")
    if target and target != shown:
        shown += f" (target {target})"
    lines = _table(
        ("NAME", "KIND", "STATE", "TASKS", "UPTIME"),
        [(state.get("name"), state.get("kind"), shown, f"{running}/{len(tasks)}", duration(uptime))],
    )
    if not tasks:
        return "\n".join([*lines, "", "no tasks yet"])
    id_width = max(len(str(task.get("id"))) for task in tasks)
    lines += _task_lines(tasks, state.get("kind") == "aggregator")
    lines += _partition_lines(tasks, id_width, width or shutil.get_terminal_size((120, 24)).columns)
    lines += _error_lines(tasks, id_width, trace)
    return "\n".join(lines)


def _task_lines(tasks: list[dict[str, Any]], aggregator: bool) -> list[str]:
    counted = "RESULTS" if aggregator else "WRITTEN"
    headers = ("ID", "STATE", "PID", "UPTIME", "RESTARTS", "PARTITIONS", "LAG", "RATE", counted)
    rows = [
        (
            task.get("id"),
            task.get("state"),
            task.get("pid"),
            duration(task.get("uptime_s")),
            task.get("restarts"),
            len(task.get("partitions") or ()),
            _lag(task.get("partitions") or ()),
            rate(task.get("records_per_s")),
            task.get(counted.lower()),
        )
        for task in tasks
    ]
    waits = [
        f"task {task.get('id')} {_waiting(task['waiting_for'])}" for task in tasks if task.get("waiting_for")
    ]
    return [
        "",
        *_table(headers, rows),
        *waits,
        *(_retention(task) for task in tasks if task.get("retention")),
    ]


def _retention(task: dict[str, Any]) -> str:
    """`task 0 runs index retention every 3600s; last at ...: closed 2, deleted 1`."""
    retention = task["retention"]
    line = f"task {task.get('id')} runs index retention every {retention.get('every_s', 0):.0f}s"
    last = retention.get("last")
    if retention.get("running"):
        line += "; running now"
    if last and last.get("error"):
        return f"{line}; last at {last.get('at')} failed: {last['error']}"
    if last:
        line += f"; last at {last.get('at')}: closed {len(last.get('closed') or ())}, "
        line += f"deleted {len(last.get('deleted') or ())}, left {last.get('left', 0)}"
        if last.get("failed"):
            line += f", failed {len(last['failed'])}: " + "; ".join(
                f"{k}: {v}" for k, v in last["failed"].items()
            )
    return line


def _partition_lines(tasks: list[dict[str, Any]], id_width: int, width: int) -> list[str]:
    lines = []
    for task in tasks:
        if task.get("partitions"):
            prefix = f"{task.get('id')!s:<{id_width}}{GAP}"
            lines += _wrapped(prefix, [_partition(p) for p in task["partitions"]], width)
    return ["", "PARTITIONS (topic-partition at committed offset, lag)", *lines] if lines else []


def _error_lines(tasks: list[dict[str, Any]], id_width: int, trace: bool) -> list[str]:
    errors = [(task.get("id"), _error(task)) for task in tasks]
    errors = [(task_id, error) for task_id, error in errors if error]
    if not errors:
        return []
    cut = not trace and any("\n" in error for _, error in errors)
    lines = ["", "LAST ERRORS" + (" (--trace shows the whole traces)" if cut else "")]
    for task_id, error in errors:
        prefix = f"{task_id!s:<{id_width}}{GAP}"
        shown = error if trace else _summary(error)
        lines.append(prefix + shown.replace("\n", "\n" + " " * len(prefix)))
    return lines


def duration(seconds: float | None) -> str:
    """5s, 3m, 2h, 4d: the largest whole unit, as kubectl shows an age."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def rate(per_s: float | None) -> str:
    if not per_s:
        return "0"
    return f"{per_s:.1f}" if per_s < 10 else f"{per_s:.0f}"


def _lag(partitions: list[dict[str, Any]]) -> int | str:
    known = [p["lag"] for p in partitions if p.get("lag") is not None]
    return sum(known) if known or not partitions else "?"


def _partition(p: dict[str, Any]) -> str:
    committed = "?" if p.get("committed") is None else p["committed"]
    lag = "?" if p.get("lag") is None else p["lag"]
    return f"{p.get('topic')}-{p.get('partition')} at {committed}, lag {lag}"


def _waiting(waiting: Any) -> str:
    if not isinstance(waiting, dict):
        return f"waits: {waiting}"
    since = waiting.get("since")
    lasted = f" for {duration(max(0.0, time.time() - since))}" if isinstance(since, int | float) else ""
    return f"waits for {waiting.get('what')}{lasted} ({waiting.get('tries')} tries): {waiting.get('reason')}"


def _error(task: dict[str, Any]) -> str:
    """The trace of a failed task, else the last error the task kept."""
    return str(task.get("trace") or task.get("last_error") or "").strip()


def _summary(error: str) -> str:
    """One line of an error: its first, or a Python traceback's last (the exception itself)."""
    lines = error.splitlines()
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    cells = [headers, *(tuple("-" if value is None else str(value) for value in row) for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return [GAP.join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def _wrapped(prefix: str, items: list[str], width: int) -> list[str]:
    """`items` joined by "; " after `prefix`, wrapped between items to stay under `width`."""
    indent = " " * len(prefix)
    lines, line = [], prefix
    for n, item in enumerate(items):
        piece = item if n == len(items) - 1 else item + ";"
        start = line in (prefix, indent)
        if not start and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line, start = indent, True
        line += piece if start else " " + piece
    lines.append(line)
    return lines
