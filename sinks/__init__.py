"""sinks: one module per store, named in a registry (after celery's backends).

Each entry is "module:build", where `build(config, routes) -> Sink` makes the sink from a
connector config; the module, and its store's driver, is imported only when chosen. Other
packages may add sinks through the "conductor.sinks" entry point group.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from conductor.errors import ConfigError

if TYPE_CHECKING:
    from conductor.config import ConnectorConfig
    from conductor.routes import Route
    from sinks.base import Sink

    Build = Callable[[ConnectorConfig, Sequence[Route]], Sink]

SINKS = {
    "elasticsearch": "sinks.elasticsearch:build",
    "cassandra": "sinks.cassandra:build",
}


def known() -> dict[str, str]:
    """The registry, with the sinks other packages declare."""
    found = dict(SINKS)
    for entry in entry_points(group="conductor.sinks"):
        found.setdefault(entry.name, entry.value)
    return found


def load(name: str) -> Build:
    """The `build` function of the sink called `name`; ConfigError names the known ones."""
    registry = known()
    try:
        target = registry[name]
    except KeyError:
        raise ConfigError([f"no sink named {name!r}; known: {', '.join(registry)}"]) from None
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)
