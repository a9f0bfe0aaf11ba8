"""KCQL statements compiled, once at start, into routes: what each record becomes and where.

A route answers three questions about a record, each with functions built ahead of time so
the per-record path is a few dict look-ups: the target name (static, or read from the key,
value or a header), the projected fields (SELECT, aliases, IGNORE), and the primary key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from conductor.errors import RecordError
from conductor.kcql import FieldPath, Statement
from conductor.records import Record

MISSING: Any = object()
Getter = Callable[[Record], Any]


def dig(container: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` inside nested dicts, or MISSING."""
    for part in path:
        if type(container) is not dict:
            return MISSING
        container = container.get(part, MISSING)
        if container is MISSING:
            return MISSING
    return container


def compile_getter(field_path: FieldPath) -> Getter:
    """A function reading the place `field_path` names from a record, MISSING if absent."""
    path, source = field_path.path, field_path.source
    if source == "value":
        if not path:
            return lambda record: MISSING if record.value is None else record.value
        if len(path) == 1:
            (name,) = path
            return lambda record: MISSING if record.value is None else record.value.get(name, MISSING)
        return lambda record: dig(record.value, path)
    if source == "key":
        if not path:
            return lambda record: MISSING if record.key is None else record.key_text()
        return lambda record: dig(record.key_object(), path)
    if source == "header":
        return _header_getter(path)
    return METADATA_GETTERS[source]


METADATA_GETTERS: dict[str, Getter] = {
    "topic": lambda record: record.topic,
    "partition": lambda record: record.partition,
    "offset": lambda record: record.offset,
    "timestamp": lambda record: record.timestamp,
    "now": lambda record: MISSING,  # Cassandra's now(), computed by the server (sinks/cassandra_plan.py)
}


def _header_getter(path: tuple[str, ...]) -> Getter:
    """A header's text; with a longer path, a field of the header read as JSON."""
    header_name, *rest = path
    inner = tuple(rest)

    def header_value(record: Record) -> Any:
        raw = record.header(header_name)
        if raw is None:
            return MISSING
        if not inner:
            return raw.decode("utf-8", errors="replace")
        try:
            return dig(orjson.loads(raw), inner)
        except orjson.JSONDecodeError:
            return MISSING

    return header_value


def _compile_struct_getter(field: FieldPath) -> Getter:
    """For `a.b.*` and `_key.*`: the struct whose fields are all selected (the key as JSON)."""
    if field.source == "key":
        return lambda record: dig(record.key_object(), field.path)
    return lambda record: dig(record.value, field.path)


def _compile_projection(statement: Statement) -> Callable[[Record], dict[str, Any] | None]:
    """The SELECT list as one function. `SELECT *` with nothing else returns the value itself
    (no copy): sinks only read it."""
    wildcard_all = statement.selects_all
    extra = [f for f in statement.fields if not (f.wildcard and f.source == "value" and not f.path)]
    ignored = [i.path for i in statement.ignored if i.source == "value"]
    if wildcard_all and not extra and not ignored:
        return lambda record: record.value

    plain = [(f.name, compile_getter(f)) for f in extra if not f.wildcard]
    nested_all = [_compile_struct_getter(f) for f in extra if f.wildcard]

    def project(record: Record) -> dict[str, Any] | None:
        if record.value is None:
            return None
        document: dict[str, Any] = dict(record.value) if wildcard_all else {}
        for getter in nested_all:
            struct = getter(record)
            if type(struct) is dict:
                document.update(struct)
        for name, getter in plain:
            value = getter(record)
            if value is not MISSING:
                document[name] = value
        for path in ignored:
            _remove(document, path)
        return document

    return project


def _remove(document: dict[str, Any], path: tuple[str, ...]) -> None:
    """Drop a (possibly nested) field, copying the dicts on the way so the record is untouched."""
    head, *rest = path
    if not rest:
        document.pop(head, None)
        return
    child = document.get(head)
    if type(child) is dict:
        child = dict(child)
        document[head] = child
        _remove(child, tuple(rest))


def _scalar_text(value: Any) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Route:
    """One compiled KCQL statement."""

    statement: Statement
    project: Callable[[Record], dict[str, Any] | None]
    _target: Callable[[Record], str]
    _key_getters: tuple[tuple[str, Getter], ...]

    @property
    def topic(self) -> str:
        return self.statement.topic

    @property
    def has_primary_key(self) -> bool:
        return bool(self._key_getters)

    def target(self, record: Record) -> str:
        return self._target(record)

    def primary_key(self, record: Record) -> tuple[Any, ...]:
        """The PK values in PK order; a missing or non-scalar one is a RecordError."""
        values = []
        for dotted, getter in self._key_getters:
            value = getter(record)
            if value is MISSING or value is None:
                raise RecordError(f"PK field '{dotted}' is missing from record {record.where}")
            if type(value) in (dict, list):
                raise RecordError(
                    f"PK field '{dotted}' of record {record.where} is a {type(value).__name__}, not a scalar"
                )
            values.append(value)
        return tuple(values)

    def primary_key_text(self, record: Record, separator: str) -> str:
        """The PK values joined: the document id. Strings and numbers (the usual keys) take
        the short way; anything else goes through primary_key's checks and messages."""
        parts = []
        for _, getter in self._key_getters:
            value = getter(record)
            kind = type(value)
            if kind is str:
                parts.append(value)
            elif kind is int or kind is float:
                parts.append(str(value))
            else:
                return separator.join(map(_scalar_text, self.primary_key(record)))
        return separator.join(parts)


def compile_route(statement: Statement) -> Route:
    target = statement.target
    if target.is_dynamic:
        getter = compile_getter(FieldPath(target.kind, target.path))
        spelled = target.name

        def dynamic_target(record: Record) -> str:
            value = getter(record)
            if value is MISSING or value is None or value == "":
                raise RecordError(f"target field '{spelled}' is missing from record {record.where}")
            if type(value) in (dict, list):
                raise RecordError(
                    f"target field '{spelled}' of record {record.where} is a {type(value).__name__}, "
                    f"not a name"
                )
            return _scalar_text(value)

        target_of = dynamic_target
    else:
        name = target.name
        target_of = lambda record: name
    key_getters = tuple((pk.dotted, compile_getter(pk)) for pk in statement.primary_keys)
    return Route(statement, _compile_projection(statement), target_of, key_getters)


def by_topic(routes: Sequence[Route]) -> dict[str, tuple[Route, ...]]:
    """Routes by topic, in statement order: a record is read once and written to every route
    of its topic."""
    grouped: dict[str, list[Route]] = {}
    for route in routes:
        grouped.setdefault(route.topic, []).append(route)
    return {topic: tuple(routes) for topic, routes in grouped.items()}
