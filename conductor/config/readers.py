"""Config files to a flat ``{key: value}`` of strings: .properties, .json, .yaml/.yml.

``.properties`` follows java.util.Properties.load.  JSON and YAML take Kafka Connect's REST
shape ``{"name": ..., "config": {...}}`` or a flat object; numbers and booleans become
strings as written, nested objects are joined with dots, lists of scalars with commas, and
nulls are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from conductor.errors import ConfigError

FORMATS = {".properties": "properties", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
REST_KEYS = frozenset({"name", "config", "tasks", "type"})
WHITESPACE = " \t\f"
ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
NATURAL_LINE = re.compile(r"\r\n|\r|\n")


def read_raw(path: str | Path) -> dict[str, str]:
    """The file's settings as a flat dict; ConfigError if it cannot be read or parsed."""
    return read_file(path)[0]


def read_file(path: str | Path) -> tuple[dict[str, str], list[str]]:
    """The file's settings and the warnings met while reading it (duplicate keys)."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(FORMATS)
        raise ConfigError(
            [f"unknown config file extension {path.suffix!r} (expected one of {known})"], str(path)
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"config file {path} not found"], str(path)) from None
    except OSError as err:
        raise ConfigError([f"config file {path} cannot be read: {err.strerror}"], str(path)) from None
    if kind == "properties":
        return parse_properties(decode(data), str(path))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError([f"not UTF-8 at byte {err.start}"], str(path)) from None
    document = parse_json(text, str(path)) if kind == "json" else parse_yaml(text, str(path))
    return flatten_document(document, str(path)), []


def read_properties(path: Path) -> dict[str, str]:
    """A .properties file as a dict (FileConfigProvider's reader)."""
    return parse_properties(decode(path.read_bytes()), str(path))[0]


def decode(data: bytes) -> str:
    """UTF-8 (as Java 9+ resource bundles), falling back to ISO-8859-1 (as Properties.load)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# -- .properties -------------------------------------------------------------------------


def parse_properties(text: str, source: str = "config") -> tuple[dict[str, str], list[str]]:
    """Parse java.util.Properties text; values are not stripped here (the loader strips)."""
    natural = NATURAL_LINE.split(text)
    entries: dict[str, str] = {}
    seen_at: dict[str, int] = {}
    warnings: list[str] = []
    problems: list[str] = []
    index = 0
    while index < len(natural):
        number = index + 1
        line = natural[index].lstrip(WHITESPACE)
        index += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and index < len(natural):
            line = line[:-1] + natural[index].lstrip(WHITESPACE)
            index += 1
        if _continues(line):
            line = line[:-1]  # a backslash at the end of the file continues into nothing
        try:
            key, value = _split(line)
        except ValueError as err:
            problems.append(f"line {number}: {err}")
            continue
        if key in seen_at:
            warnings.append(f"duplicate key {key!r} at lines {seen_at[key]} and {number}; the last one wins")
        seen_at[key] = number
        entries[key] = value
    if problems:
        raise ConfigError(problems, source)
    return entries, warnings


def _continues(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _split(line: str) -> tuple[str, str]:
    """Key and value of one logical line, as java.util.Properties.load splits them."""
    limit = len(line)
    key_end, value_start, has_separator, escaped = 0, limit, False, False
    while key_end < limit:
        char = line[key_end]
        if char in "=:" and not escaped:
            value_start, has_separator = key_end + 1, True
            break
        if char in WHITESPACE and not escaped:
            value_start = key_end + 1
            break
        escaped = char == "\\" and not escaped
        key_end += 1
    while value_start < limit:
        char = line[value_start]
        if char not in WHITESPACE:
            if has_separator or char not in "=:":
                break
            has_separator = True
        value_start += 1
    return _unescape(line[:key_end]), _unescape(line[value_start:])


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char != "\\" or index == len(text):
            out.append(char if char != "\\" else "")
            continue
        char = text[index]
        index += 1
        if char == "u":
            digits = text[index : index + 4]
            if len(digits) < 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("malformed \\uxxxx escape")
            out.append(chr(int(digits, 16)))
            index += 4
        else:
            out.append(ESCAPES.get(char, char))
    return "".join(out)


# -- JSON and YAML -----------------------------------------------------------------------


TOO_DEEP = "settings nested too deeply (a connector config is one or two levels of objects)"


def parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, parse_int=str, parse_float=str, parse_constant=str)
    except json.JSONDecodeError as err:
        raise ConfigError(
            [f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"], source
        ) from None
    except RecursionError:
        raise ConfigError([f"invalid JSON: {TOO_DEEP}"], source) from None


class _StringLoader(yaml.SafeLoader):
    """SafeLoader that keeps numbers, booleans and dates as the text written (010 stays 010)."""


for _tag in ("int", "float", "bool", "timestamp"):
    _StringLoader.add_constructor(
        f"tag:yaml.org,2002:{_tag}", lambda loader, node: loader.construct_scalar(node)
    )


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StringLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"invalid YAML{where}: {err.problem or err.context}"], source) from None
    except yaml.YAMLError as err:
        raise ConfigError([f"invalid YAML: {err}"], source) from None
    except RecursionError:
        raise ConfigError([f"invalid YAML: {TOO_DEEP}"], source) from None


def flatten_document(document: Any, source: str) -> dict[str, str]:
    """REST shape or flat object -> flat dict; one ConfigError listing every bad entry."""
    if not isinstance(document, Mapping):
        found = "an empty file" if document is None else type(document).__name__
        raise ConfigError([f"expected an object of settings, found {found}"], source)
    problems: list[str] = []
    if isinstance(document.get("config"), Mapping) and set(map(str, document)) <= REST_KEYS:
        flat = _flatten(document["config"], "", problems)
        name = document.get("name")
        if isinstance(name, (str, int, float, bool)):
            name = scalar(name)
            if flat.get("name", name).strip() != name.strip():
                problems.append(f"name: {name!r} outside 'config' differs from {flat['name']!r} inside it")
            flat.setdefault("name", name)
    else:
        flat = _flatten(document, "", problems)
    if problems:
        raise ConfigError(problems, source)
    return flat


MAX_DEPTH = 32  # objects inside objects; a real config has two or three


def _flatten(mapping: Mapping[Any, Any], prefix: str, problems: list[str], depth: int = 1) -> dict[str, str]:
    flat: dict[str, str] = {}
    for raw_key, value in mapping.items():
        key = prefix + str(raw_key).strip()
        if isinstance(value, Mapping):
            if depth >= MAX_DEPTH:
                problems.append(f"{key}: {TOO_DEEP}")
                continue
            flat.update(_flatten(value, key + ".", problems, depth + 1))
        elif isinstance(value, (list, tuple)):
            if all(isinstance(item, (str, int, float, bool)) for item in value):
                flat[key] = ",".join(scalar(item) for item in value)
            else:
                problems.append(f"{key}: a list may hold only strings and numbers")
        elif value is not None:
            flat[key] = scalar(value)
    return flat


def scalar(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
