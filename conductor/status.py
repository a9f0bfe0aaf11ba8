"""Atomic JSON state files: the supervisor's and each worker's. Each process writes its own;
the supervisor reads its workers' (which partitions they hold)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def state_dir_for(name: str) -> Path:
    """Where the state files of the connector `name` live: $CONDUCTOR_STATE_DIR/<name> or /tmp/conductor-<name>."""
    root = os.environ.get("CONDUCTOR_STATE_DIR")
    if root:
        return Path(root) / name
    return Path("/tmp") / f"conductor-{name}"


def write_state(path: Path | str, state: dict[str, Any]) -> None:
    """Write `state` as JSON so a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(state, indent=2, sort_keys=True, default=str).encode()
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def read_state(path: Path | str) -> dict[str, Any] | None:
    """The state in `path`, or None when there is no file or it does not hold a JSON object."""
    try:
        with open(path, "rb") as handle:
            state = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None
