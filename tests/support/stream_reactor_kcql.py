"""conductor's KCQL parse described in Stream-Reactor's terms, and Stream-Reactor's expectations
(tests/conductor/data/stream_reactor_kcql) normalised where the two spell one thing apart: the
translation tests/conductor/test_kcql_conformance.py compares through."""

from __future__ import annotations

from typing import Any

from conductor.kcql import Field, FieldPath, Statement

SR_TYPES = {"topic": "TOPIC", "partition": "PARTITION", "offset": "OFFSET", "timestamp": "TIMESTAMP"}


def legacy(statement: Statement, place: FieldPath) -> bool:
    """True where the text spells the place `_.key...` (Stream-Reactor keeps those apart)."""
    source = parse_source(statement)
    return source[place.start : place.start + 2] == "_."


def parse_source(statement: Statement) -> str:
    return statement.text.rjust(statement.start + len(statement.text))


def sr_field(name: str, parents: list[str], alias: str | None = None, kind: str = "VALUE") -> dict[str, Any]:
    """A field as the data files write it: alias, parents and type left out at their defaults."""
    described: dict[str, Any] = {"name": name}
    if alias is not None and alias != name:
        described["alias"] = alias
    if parents:
        described["parents"] = parents
    if kind != "VALUE":
        described["type"] = kind
    return described


def describe_field(
    statement: Statement, field: Field | FieldPath, for_list: str
) -> tuple[str, dict[str, Any]]:
    """(which of Stream-Reactor's lists, the field there) for one of conductor's fields.

    `for_list` is "fields" for the SELECT list (where `_key.x` and `_header.x` go to their own
    lists) and "plain" for PK and IGNORE (which keep the prefix as a parent).
    """
    alias = getattr(field, "alias", None)
    wildcard = getattr(field, "wildcard", False)
    path = list(field.path) + (["*"] if wildcard else [])
    if field.source == "now":
        return "fields", sr_field("now()", [], alias)
    if field.source in SR_TYPES:
        return "fields", sr_field(field.source, [], alias, SR_TYPES[field.source])
    if field.source == "value":
        if not path:
            return "fields", sr_field("_value", [], alias)
        return "fields", sr_field(path[-1], path[:-1], alias)
    if field.source == "key" and legacy(statement, field):
        return "fields", sr_field(path[-1], path[:-1], alias, "KEY")
    prefix = "_key" if field.source == "key" else "_header"
    if not path:
        return "key_fields" if for_list == "fields" else "fields", sr_field(prefix, [], alias)
    if for_list == "fields":
        return f"{field.source}_fields", sr_field(path[-1], path[:-1], alias)
    return "fields", sr_field(path[-1], [prefix, *path[:-1]], alias)


def sr_view(statement: Statement) -> dict[str, Any]:
    """conductor's parse in the data files' terms (README.md)."""
    lists: dict[str, list[dict[str, Any]]] = {"fields": [], "key_fields": [], "header_fields": []}
    for field in statement.fields:
        which, described = describe_field(statement, field, "fields")
        lists[which].append(described)
    target = statement.target
    return {
        "write_mode": statement.write_mode,
        "target_type": {"kind": target.kind, "path": list(target.path) or None},
        "source": statement.topic,
        **lists,
        "ignored": [strip(describe_field(statement, f, "plain")[1], "alias") for f in statement.ignored],
        "primary_keys": [
            strip(describe_field(statement, f, "plain")[1], "alias") for f in statement.primary_keys
        ],
        "autocreate": statement.autocreate,
        "batch_size": statement.batch_size,
        "ttl": statement.ttl,
        "doc_type": statement.doc_type,
        "index_suffix": statement.index_suffix,
        "pipeline": statement.pipeline,
        "properties": dict(statement.properties),
    }


def strip(described: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in described.items() if k not in keys}


# -- Stream-Reactor's expectations, normalised where the two spell the same thing apart ---------


def sr_target_type(target: str) -> dict[str, Any]:
    """TargetTypeParser: the part before the first '.' picks key, value or header; the rest is
    split at dots outside '...' (the connectors' QuotedPathSplitter)."""
    head, _, rest = target.partition(".")
    kind = {"_key": "key", "_value": "value", "_header": "header"}.get(head)
    if kind is None:
        return {"kind": "static", "path": quoted_split(target)}
    return {"kind": kind, "path": quoted_split(rest) if rest else None}


def quoted_split(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def normalise_field(described: dict[str, Any]) -> dict[str, Any]:
    """Stream-Reactor keeps `_value.` as a parent of a value field; conductor drops it."""
    parents = described.get("parents") or []
    if parents[:1] == ["_value"] and described.get("type", "VALUE") == "VALUE":
        described = strip(described, "parents")
        if parents[1:]:
            described["parents"] = parents[1:]
    return described


def expected_view(asserts: dict[str, Any]) -> dict[str, Any]:
    expected = {k: v for k, v in asserts.items() if k != "connector"}
    if "target" in expected:
        target = expected.pop("target")
        expected.setdefault("target_type", sr_target_type(target))
    given_type = expected.get("target_type")
    if given_type and isinstance(given_type["path"], str):
        path = given_type["path"]
        expected["target_type"] = {"kind": given_type["kind"], "path": quoted_split(path)}
    for key in ("fields", "key_fields", "header_fields", "ignored", "primary_keys"):
        if key in expected:
            expected[key] = [normalise_field(dict(f)) for f in expected[key]]
    if "properties" in expected:
        expected["properties"] = {str(k): str(v) for k, v in expected["properties"].items()}
    return expected
