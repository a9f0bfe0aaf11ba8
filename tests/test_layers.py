"""The layers flow one way: basics -> sinks -> policies -> tasks -> wiring (cli, connector).

Read from the code's own imports (ast), so a new import that runs against the layers fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"conductor": 0, "sinks": 1, "policies": 2, "tasks": 3}
WIRING = {ROOT / "conductor" / "cli.py", ROOT / "conductor" / "connector.py"}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


@pytest.mark.parametrize(
    "path",
    sorted(p for package in LAYERS for p in (ROOT / package).rglob("*.py") if p not in WIRING),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    own = LAYERS[path.relative_to(ROOT).parts[0]]
    above = sorted(package for package in imported_packages(path) if LAYERS[package] > own)
    assert above == [], f"{path.relative_to(ROOT)} imports {above}"
