"""KCQL's syntax tree: frozen dataclasses.

Every node keeps where it starts (``start`` offset in the whole text, 1-based ``line`` and
``column``).  Positions are keyword-only and left out of equality, so a test or a caller can
compare a parsed node with one built by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Source = Literal["value", "key", "header", "topic", "partition", "offset", "timestamp", "now"]
TargetKind = Literal["static", "key", "value", "header"]
WriteMode = Literal["INSERT", "UPSERT"]

PREFIXES: Mapping[str, Source] = MappingProxyType({"_key": "key", "_value": "value", "_header": "header"})
PREFIX_OF: Mapping[str, str] = MappingProxyType({v: k for k, v in PREFIXES.items()})
# The record's own coordinates, spelled `_.topic` etc. (Stream-Reactor's Field.from).
METADATA: tuple[Source, ...] = ("topic", "partition", "offset", "timestamp")


def position(default: int = 0) -> Any:
    return field(default=default, compare=False, kw_only=True)


def spell(source: str, path: tuple[str, ...], explicit: bool) -> str:
    """The path as KCQL spells it: ``a.b``, ``_key.x``, ``_header.h``, ``_.topic`` (``_value.``
    if explicit); a part that is not a plain name is back-quoted: ``_header.`a.b```."""
    if source in METADATA:
        return f"_.{source}"
    if source == "now":
        return "now()"
    quoted = [part if PLAIN_NAME.fullmatch(part) else f"`{part}`" for part in path]
    parts = ([PREFIX_OF[source]] if explicit or source != "value" else []) + quoted
    return ".".join(parts)


PLAIN_NAME = re.compile(r"[\w@/:+{}-]+")


@dataclass(frozen=True)
class FieldPath:
    """A place in a record: the value (default), the key or a header, and a path into it.

    ``_key`` alone is ``FieldPath("key", ())``, the whole key, and ``_value`` alone the whole
    value.  For a header, ``path[0]`` is the header's name and the rest a path into its JSON.
    ``_.topic``, ``_.partition``, ``_.offset`` and ``_.timestamp`` are the record's own
    coordinates: that source, with no path.  ``now()`` (source "now") is Cassandra's function,
    evaluated by the server when the row is written.
    """

    source: Source
    path: tuple[str, ...]
    start: int = position()
    line: int = position()
    column: int = position()

    @property
    def dotted(self) -> str:
        return spell(self.source, self.path, explicit=False)


@dataclass(frozen=True)
class Field(FieldPath):
    """One item of the SELECT list.

    ``*`` is ``Field("value", (), wildcard=True)``; ``a.b.*`` is
    ``Field("value", ("a", "b"), wildcard=True)``, every field of the struct ``a.b``.
    A wildcard never has an alias.
    """

    wildcard: bool = False
    alias: str | None = None

    @property
    def name(self) -> str | None:
        """The output name: the alias, else the last path segment (``_key`` for the whole key,
        ``topic`` for ``_.topic``); None for a wildcard, whose fields keep their own names."""
        if self.alias is not None:
            return self.alias
        if self.wildcard:
            return None
        if self.path:
            return self.path[-1]
        if self.source == "now":
            return "now()"
        return self.source if self.source in METADATA else PREFIX_OF[self.source]


@dataclass(frozen=True)
class Target:
    """Where records go: a static index/table name, or a field of the key, value or header
    (``_key.region``) whose content names the index per record; ``_key`` or ``_value`` alone
    (an empty path) is the whole key or value.

    A static name keeps its dot-separated parts in ``path`` (``ks.table`` -> ``("ks", "table")``).
    """

    kind: TargetKind
    path: tuple[str, ...]
    start: int = position()
    line: int = position()
    column: int = position()

    @property
    def is_dynamic(self) -> bool:
        return self.kind != "static"

    @property
    def name(self) -> str:
        """``ks.table`` for a static target, ``_key.region`` for a dynamic one."""
        if self.kind == "static":
            return ".".join(self.path)
        return spell(self.kind, self.path, explicit=True)


def empty_properties() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Statement:
    """One ``INSERT|UPSERT INTO target SELECT fields FROM topic [clauses]`` statement.

    ``fields`` is never empty: ``SELECT *`` gives one wildcard field (see ``selects_all``).
    Clauses that were not given keep their defaults (empty, False or None).  ``text`` is the
    statement's own source text, without the ``;``.
    """

    write_mode: WriteMode
    target: Target
    topic: str
    fields: tuple[Field, ...]
    ignored: tuple[FieldPath, ...] = ()
    primary_keys: tuple[FieldPath, ...] = ()
    autocreate: bool = False
    doc_type: str | None = None
    index_suffix: str | None = None
    pipeline: str | None = None
    ttl: int | None = None
    batch_size: int | None = None
    properties: Mapping[str, str] = field(default_factory=empty_properties, hash=False)
    text: str = field(default="", compare=False, kw_only=True)
    start: int = position()
    line: int = position()
    column: int = position()

    @property
    def selects_all(self) -> bool:
        """True if the SELECT list includes ``*`` (every field of the value)."""
        return any(f.wildcard and f.source == "value" and not f.path for f in self.fields)
