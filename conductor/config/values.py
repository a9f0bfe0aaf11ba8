"""Typed reads of a resolved flat config, collecting every problem instead of stopping."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from conductor.config.secrets import Secret, reveal, shown

INTEGER = re.compile(r"[+-]?\d+")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

Keys = str | tuple[str, ...]


class Reader:
    """Reads typed values from the resolved config; records problems and the defaults used.

    A key given as the empty string counts as not given.  ``keys`` may be a tuple of
    alternatives: the first one set wins (``consumer.override.x``, ``consumer.x``, ``x``).
    """

    def __init__(
        self,
        values: Mapping[str, str | Secret],
        referenced: frozenset[str] = frozenset(),
        unresolved: frozenset[str] = frozenset(),
    ) -> None:
        self.values = values
        self.referenced = referenced
        self.unresolved = unresolved
        self.problems: list[str] = []
        self.notices: list[str] = []  # keys given that have no effect, and why
        self.warnings: list[str] = []  # what looks like a mistake
        self.defaults: dict[str, str] = {}
        self.used: set[str] = set()  # keys a section read, of those more than one may read
        self.unused_by: dict[str, list[str]] = {}  # such keys a section did not read, and why

    def find(self, keys: Keys) -> tuple[str, str | Secret | None]:
        """The first alternative that is set, and its value; else (the last one, None).

        Alternatives go from the most specific to the plain key, which names a missing
        setting (in messages and ``defaults``).  An unresolved key counts as not set.
        """
        alternatives = (keys,) if isinstance(keys, str) else keys
        for key in alternatives:
            value = self.values.get(key)
            if key not in self.unresolved and value is not None and reveal(value) != "":
                return key, value
        return alternatives[-1], None

    def problem(self, key: str, value: str | Secret, expected: str) -> None:
        self.problems.append(f"{key}: expected {expected}, got {shown(value)}")

    def given(self, key: str) -> bool:
        return self.find(key)[1] is not None

    def no_effect(self, key: str, reason: str) -> None:
        self.notices.append(f"{key} has no effect here: {reason}")

    def unused(self, key: str, reason: str) -> None:
        """A key another section may read (the bare ssl.* keys serve Kafka and Elasticsearch):
        it has no effect only if none does (`settle`)."""
        self.unused_by.setdefault(key, []).append(reason)

    def use(self, keys: Iterable[str]) -> None:
        self.used.update(key for key in keys if self.given(key))

    def settle(self) -> None:
        for key, reasons in self.unused_by.items():
            if key not in self.used:
                self.no_effect(key, ", and ".join(dict.fromkeys(reasons)))
        self.unused_by.clear()

    def default(self, key: str, value: Any) -> Any:
        if value is not None:
            self.defaults[key] = _text(value)
        return value

    def string(self, keys: Keys, *, default: str | None = None) -> str | None:
        key, value = self.find(keys)
        return self.default(key, default) if value is None else reveal(value)

    def secret(self, keys: Keys) -> Secret | None:
        _, value = self.find(keys)
        if value is None:
            return None
        return value if isinstance(value, Secret) else Secret(value)

    def required(self, keys: Keys, *, why: str = "") -> str:
        key, value = self.find(keys)
        if value is None:
            if key not in self.unresolved:
                self.problems.append(f"{key}: required{why}, but missing")
            return ""
        return reveal(value)

    def integer(
        self,
        keys: Keys,
        *,
        default: int | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> Any:
        key, value = self.find(keys)
        if value is None:
            return self.default(key, default)
        text = reveal(value)
        number = int(text) if INTEGER.fullmatch(text) else None
        if (
            number is None
            or (minimum is not None and number < minimum)
            or (maximum is not None and number > maximum)
        ):
            self.problem(key, value, _range("an integer", minimum, maximum))
            return default
        return number

    def number(self, keys: Keys, *, default: float, minimum: float | None = None) -> float:
        key, value = self.find(keys)
        if value is None:
            return self.default(key, default)
        text = reveal(value)
        number = float(text) if NUMBER.fullmatch(text) else None
        if number is None or (minimum is not None and number < minimum):
            self.problem(key, value, _range("a number", minimum, None))
            return default
        return number

    def boolean(self, keys: Keys, *, default: bool | None = None) -> Any:
        key, value = self.find(keys)
        if value is None:
            return self.default(key, default)
        text = reveal(value).lower()
        if text not in ("true", "false"):
            self.problem(key, value, "true or false")
            return default
        return text == "true"

    def choice(self, keys: Keys, allowed: Iterable[str], *, default: str | None = None) -> Any:
        """One of ``allowed``, matched without regard to case, returned as spelled in it."""
        key, value = self.find(keys)
        if value is None:
            return self.default(key, default)
        by_folded = {option.casefold(): option for option in allowed}
        found = by_folded.get(reveal(value).casefold())
        if found is None:
            self.problem(key, value, "one of " + ", ".join(by_folded.values()))
            return default
        return found

    def listing(self, keys: Keys, *, default: str | None = None) -> tuple[str, ...]:
        """A comma-separated list, each item stripped, empty items dropped."""
        text = self.string(keys, default=default) or ""
        return tuple(item.strip() for item in text.split(",") if item.strip())


class Section:
    """Collects one settings dataclass's keywords from a Reader, noting the fields whose value
    came from a ${...} reference (shown masked). Each read names the field, then the key:
    ``section.integer("port", "connect.elastic.port", default=9200, minimum=1)``."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.values: dict[str, Any] = {}
        self.masked: set[str] = set()

    def put(self, name: str, keys: Keys, value: Any) -> Any:
        """Set a field to a value worked out from ``keys``."""
        alternatives = (keys,) if isinstance(keys, str) else keys
        if any(key in self.reader.referenced for key in alternatives):
            self.masked.add(name)
        self.values[name] = value
        return value

    def string(self, name: str, keys: Keys, **options: Any) -> Any:
        return self.put(name, keys, self.reader.string(keys, **options))

    def secret(self, name: str, keys: Keys) -> Any:
        return self.put(name, keys, self.reader.secret(keys))

    def required(self, name: str, keys: Keys, **options: Any) -> Any:
        return self.put(name, keys, self.reader.required(keys, **options))

    def integer(self, name: str, keys: Keys, **options: Any) -> Any:
        return self.put(name, keys, self.reader.integer(keys, **options))

    def number(self, name: str, keys: Keys, **options: Any) -> Any:
        return self.put(name, keys, self.reader.number(keys, **options))

    def boolean(self, name: str, keys: Keys, **options: Any) -> Any:
        return self.put(name, keys, self.reader.boolean(keys, **options))

    def choice(self, name: str, keys: Keys, allowed: Iterable[str], **options: Any) -> Any:
        return self.put(name, keys, self.reader.choice(keys, allowed, **options))

    def listing(self, name: str, keys: Keys, **options: Any) -> Any:
        return self.put(name, keys, self.reader.listing(keys, **options))

    def kwargs(self) -> dict[str, Any]:
        return {**self.values, "masked": frozenset(self.masked)}


def _range(what: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{what} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{what} >= {minimum}"
    return what


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
