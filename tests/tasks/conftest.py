"""Fixtures for tests that run `conductor start`; helpers live in tests/support/pipeline.py."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from support.pipeline import Conductor


@pytest.fixture
def conductors(tmp_path: Path):
    """Start conductor processes; any still running at the end is killed (its group too)."""
    started: list[Conductor] = []

    def start(config: Path, workers: int = 3, label: str = "a") -> Conductor:
        conductor = Conductor(config, tmp_path / f"state-{label}", workers).start()
        started.append(conductor)
        return conductor

    yield start
    for conductor in started:
        if conductor.process and conductor.process.poll() is None:
            conductor.process.send_signal(signal.SIGINT)
            conductor.process.send_signal(signal.SIGINT)
            try:
                conductor.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                conductor.process.kill()
