"""What every transform shares: its settings reader, its error, and the record helpers.

A transform is a frozen dataclass with ``configure(settings, side)`` (a classmethod, run once at
start) and ``apply(record) -> Record | None``. Values are schemaless JSON (dicts); keys are bytes,
read as JSON when they parse and as text otherwise, as StringConverter would hand them over.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from conductor.errors import ConductorError
from conductor.records import Record

NAMED_GROUP = re.compile(r"\(\?<([A-Za-z][A-Za-z0-9]*)>")
INTEGER = re.compile(r"[+-]?\d+")


class TransformError(ConductorError):
    """A record a transform cannot handle (Kafka Connect's DataException)."""


class Settings:
    """One alias's keys (``transforms.<alias>.<name>``), read the way Kafka's ConfigDef reads
    them; problems are collected, each naming the full key."""

    def __init__(self, values: Mapping[str, str], prefix: str, problems: list[str]) -> None:
        self.values = values
        self.prefix = prefix
        self.problems = problems
        self.read: set[str] = {"type", "predicate", "negate"}

    def key(self, name: str) -> str:
        return self.prefix + name

    def problem(self, name: str, reason: str) -> None:
        self.problems.append(f"{self.key(name)}: {reason}")

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> Any:
        self.read.add(name)
        value = self.values.get(self.key(name))
        if value is None:
            if required:
                self.problem(name, "required, but missing")
            return default
        return value

    def listing(self, name: str, *, required: bool = False, non_empty: bool = False) -> list[str]:
        """Kafka's LIST: comma-separated, each item trimmed; an empty string is an empty list."""
        text = self.string(name, required=required)
        items = [item.strip() for item in (text or "").split(",")] if text and text.strip() else []
        if non_empty and text is not None and not items:
            self.problem(name, "expected a non-empty list")
        return items

    def boolean(self, name: str, default: bool) -> bool:
        text = self.string(name)
        if text is None:
            return default
        if text.strip().lower() not in ("true", "false"):
            self.problem(name, f"expected true or false, got {text!r}")
            return default
        return text.strip().lower() == "true"

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        text = self.string(name, default)
        by_folded = {option.casefold(): option for option in allowed}
        found = by_folded.get(text.strip().casefold())
        if found is None:
            self.problem(name, f"expected one of {', '.join(allowed)}, got {text!r}")
            return default
        return found

    def regex(self, name: str, *, required: bool = True) -> re.Pattern[str] | None:
        text = self.string(name, required=required)
        if text is None:
            return None
        try:
            return java_regex(text)
        except re.error as error:
            self.problem(name, f"Invalid regex: {error}")
            return None

    def unread(self) -> list[str]:
        return sorted(
            key
            for key in self.values
            if key.startswith(self.prefix) and key[len(self.prefix) :] not in self.read
        )


def java_regex(text: str) -> re.Pattern[str]:
    """A java.util.regex pattern in Python's syntax: only named groups are spelled differently."""
    return re.compile(NAMED_GROUP.sub(r"(?P<\1>", text))


def require_map(value: Any, purpose: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise TransformError(
            f"Only Map objects supported in absence of schema for [{purpose}], found: {java_type(value)}"
        )
    return value


def java_type(value: Any) -> str:
    """The Java class Kafka Connect's JsonConverter gives a JSON value, for error messages."""
    if value is None:
        return "null"
    return JAVA_TYPES.get(type(value), type(value).__name__)


JAVA_TYPES = {
    dict: "java.util.HashMap",
    list: "java.util.ArrayList",
    str: "java.lang.String",
    bool: "java.lang.Boolean",
    int: "java.lang.Long",
    float: "java.lang.Double",
    bytes: "[B",
}


def key_of(record: Record) -> Any:
    """The key as a transform sees it: JSON when it parses, else its text."""
    if record.key is None:
        return None
    parsed = record.key_object()
    return record.key_text() if parsed is None and record.key.strip() != b"null" else parsed


def encode(value: Any) -> bytes | None:
    """A key or header value back to bytes: text as UTF-8, anything else as JSON."""
    if value is None:
        return None
    if type(value) is str:
        return value.encode()
    if type(value) is bytes:
        return value
    return orjson.dumps(value)


def operating(record: Record, side: str) -> Any:
    return record.value if side == "value" else key_of(record)


def with_operating(record: Record, side: str, value: Any) -> Record:
    """The record with a new value (side "value") or key (side "key")."""
    if side == "value":
        return record.transformed(value=value)
    return with_key(record, value)


def with_key(record: Record, key: Any) -> Record:
    return record.transformed(key=encode(key), key_object=key)
