"""Confluent's JsonSchemaConverter: JSON bodies read into what Kafka Connect's JsonSchemaData
makes of them, spelled as every format is (conductor/formats/spelling.py).

- integer is int64 and number float64, unless "connect.type" says int8/16/32/64 or float32/64;
- string is a string; with connect.type bytes, base64 text (checked);
- object is a struct: its properties (in connect.index order when every one has one); a property
  absent from the payload is null (or its default); keys the schema does not name are dropped, as
  a Connect Struct has no place for them. With connect.type map, a map of its
  additionalProperties; an array of {key, value} objects with connect.type map is a map too
  (keys that are not text as [[key, value], ...], as connectjson.py writes them);
- array is a list; enum and const a string; allOf the merge of its parts' properties;
- oneOf/anyOf of null and one other schema (or "type": [X, "null"]) is X, optional; any other is
  Connect's io.confluent.connect.json.OneOf struct: one field io.confluent.connect.json.OneOf.field.<i>
  per branch, only the matched one set. The match is JsonSchemaData's: the first branch whose
  JSON type fits, or for an object the object branch naming most of its keys;
- the title names Connect's logical types: Timestamp (integer epoch ms), Date (integer days -> an
  ISO date), Time (integer ms -> a time of day), Decimal (a number, read exactly, or base64 of the
  unscaled integer with the connect.parameters scale). ISO text, as json.write.dates.iso8601
  writes the first three, is read too.

Where JsonSchemaData reads a value of another JSON type as 0, false or null, conductor refuses the
record, naming the field's path. An object schema without properties passes the object as it is,
where Connect would make an empty struct and the sink write {}.

A schema id is compiled once into a tree of Nodes: per record, the JSON parse, a type check per
field, and a call only where a value needs converting. Only a schema with a Decimal has its JSON
parsed with exact decimals (json, slower than orjson), so numbers it leaves untyped come as
decimal.Decimal too. With json.fail.invalid.schema, jsonschema validates each value first.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

import orjson
from jsonschema.exceptions import best_match
from jsonschema.validators import Draft7Validator, validator_for
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from conductor.errors import RecordError
from conductor.formats.jsonvalues import (
    BOOLEAN,
    BYTES,
    INTEGERS,
    NOTHING,
    NULL,
    NUMBERS,
    PASS,
    STRING,
    Fix,
    Misfit,
    Node,
    date_of,
    decimal_of,
    entries,
    floating,
    integer,
    mismatch,
    read_null,
    read_one,
    time_of,
    timestamp,
)
from conductor.formats.registered import Body, RegisteredFormat
from conductor.registry import RegisteredSchema

LOGICAL = "org.apache.kafka.connect.data."
ONE_OF = "io.confluent.connect.json.OneOf"


class JsonSchemaFormat(RegisteredFormat):
    schema_type = "JSON"
    converter = "io.confluent.connect.json.JsonSchemaConverter"

    def compile(self, schema: RegisteredSchema) -> Body:
        where = f"{self.side}: schema id {schema.id}"
        try:
            root = orjson.loads(schema.text)
        except orjson.JSONDecodeError as error:
            raise RecordError(f"{where} is not JSON: {error}") from None
        root_id = root.get("$id") if isinstance(root, dict) else None
        root_id = root_id if isinstance(root_id, str) else ""
        resources = [(root_id, _resource(root))]
        for name, referenced in self.referenced(schema).items():
            try:
                resource = _resource(orjson.loads(referenced.text))
            except orjson.JSONDecodeError as error:
                raise RecordError(f"{where}: its reference {name!r} is not JSON: {error}") from None
            # Confluent registers a reference under its name, resolved against the root's $id.
            uris = {name, urljoin(root_id, name), resource.id() or name}
            resources += [(uri, resource) for uri in uris]
        registry: Registry = Registry().with_resources(resources)
        compiler = Compiler(where)
        node = compiler.of(root, registry.resolver(base_uri=root_id))
        validate = None
        if self.options.get("json.fail.invalid.schema"):
            validate = _validation(root, registry, self.side, schema.id)
        return _reader(node, compiler.exact, validate, self.side)


def _reader(root: Node, exact: bool, validate: Fix | None, side: str) -> Body:
    def read(body: bytes) -> Any:
        if exact:  # a Decimal's digits: floats parsed as decimal.Decimal (orjson gives floats)
            if validate is not None:
                validate(orjson.loads(body))
            value = json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
        else:
            value = orjson.loads(body)
            if validate is not None:
                validate(value)
        try:
            return read_one(root, value)
        except Misfit as misfit:
            raise RecordError(f"{side}{''.join(reversed(misfit.path))}: {misfit.reason}") from None

    return read


def _validation(root: Any, registry: Registry, side: str, schema_id: int) -> Fix:
    validator = validator_for(root, default=Draft7Validator)(root, registry=registry)

    def validate(value: Any) -> None:
        error = best_match(validator.iter_errors(value))
        if error is not None:
            path = "".join(f"[{p}]" if type(p) is int else f".{p}" for p in error.absolute_path)
            raise RecordError(
                f"{side}{path}: fails the {error.validator!r} rule of JSON Schema id {schema_id}: "
                f"{error.message:.200}"
            )

    return validate


class Compiler:
    """Walks one schema (its $refs resolved through `referencing`) into Nodes."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.exact = False  # a Decimal is in the schema: JSON numbers are parsed exactly
        self.refs: dict[int, Node] = {}  # by the referenced schema: compiled once, recursion too

    def error(self, problem: str) -> RecordError:
        return RecordError(f"{self.where}: {problem}")

    def of(self, schema: Any, resolver: Any) -> Node:
        if schema is True or schema == {}:
            return PASS
        if schema is False:
            return NOTHING
        if not isinstance(schema, dict):
            raise self.error(f"{schema!r:.60} is not a schema conductor reads")
        if isinstance(schema.get("$id"), str):
            resolver = resolver.in_subresource(_resource(schema))
        if "$ref" in schema:
            return self.ref(schema["$ref"], resolver)
        kind = schema.get("type")
        if isinstance(kind, list):
            node = self.union([{**schema, "type": one} for one in kind], resolver)
        elif ("oneOf" in schema or "anyOf" in schema) and not schema.get("properties"):
            node = self.union(schema.get("oneOf") or schema.get("anyOf"), resolver)
        elif "allOf" in schema:
            node = self.all_of(schema, resolver)
        else:
            node = self.typed(schema, kind, resolver)
        return node if "default" not in schema else replace(node, default=schema["default"])

    def lookup(self, ref: Any, resolver: Any) -> Any:
        try:
            return resolver.lookup(ref)
        except (Unresolvable, TypeError) as error:
            raise self.error(
                f"$ref {ref!r} cannot be resolved ({error}); is it in the schema's references?"
            ) from None

    def ref(self, ref: Any, resolver: Any) -> Node:
        resolved = self.lookup(ref, resolver)
        node = self.refs.get(id(resolved.contents))
        if node is None:  # a placeholder while it compiles, so a schema can refer to itself
            node = self.refs[id(resolved.contents)] = Node("a recursive schema", lambda v: node.read(v))
            built = self.of(resolved.contents, resolved.resolver)
            for slot in Node.__slots__:
                setattr(node, slot, getattr(built, slot))
        return node

    def resolved(self, schema: Any, resolver: Any) -> tuple[Any, Any]:
        for _ in range(100):
            if not (isinstance(schema, dict) and "$ref" in schema):
                return schema, resolver
            found = self.lookup(schema["$ref"], resolver)
            schema, resolver = found.contents, found.resolver
        raise self.error("a $ref that leads back to itself")

    def typed(self, schema: dict, kind: Any, resolver: Any) -> Node:
        title, connect = schema.get("title"), schema.get("connect.type")
        if isinstance(title, str) and title.startswith(LOGICAL):
            logical = self.logical(title.removeprefix(LOGICAL), schema)
            if logical is not None:
                return logical
        if kind in ("integer", "number"):
            return self.number(connect or ("int64" if kind == "integer" else "float64"))
        if kind == "string":
            return BYTES if connect == "bytes" else STRING
        if kind == "boolean":
            return BOOLEAN
        if kind == "null":
            return NULL
        if kind == "array" or (kind is None and "items" in schema):
            return self.array(schema, connect, resolver)
        if kind == "object" or (kind is None and "properties" in schema):
            if connect == "map":
                return self.map(schema.get("additionalProperties", True), resolver)
            properties = schema.get("properties") or {}
            if not isinstance(properties, dict):
                raise self.error(f"properties {properties!r:.60} is not an object")
            return self.struct([(n, s, resolver) for n, s in properties.items()]) if properties else PASS
        if kind is None and ("enum" in schema or "const" in schema):
            return self.enum(schema["enum"] if "enum" in schema else [schema["const"]])
        if kind is None:
            return PASS
        raise self.error(f"type {kind!r:.60} is not a JSON Schema type")

    def logical(self, name: str, schema: dict) -> Node | None:
        if name == "Timestamp":
            return Node(
                "a Timestamp (integer epoch milliseconds)", timestamp, frozenset({int}), frozenset({int})
            )
        if name == "Date":
            return Node("a Date (integer days since 1970-01-01)", date_of, accepts=frozenset({int}))
        if name == "Time":
            return Node("a Time (integer milliseconds of the day)", time_of, accepts=frozenset({int}))
        if name != "Decimal":
            return None
        try:
            scale = int((schema.get("connect.parameters") or {}).get("scale", 0))
        except (TypeError, ValueError, AttributeError):
            raise self.error("a Decimal's connect.parameters scale is not an integer") from None
        self.exact = True
        return Node(
            "a Decimal (a number, or base64 bytes)", decimal_of(scale), frozenset({Decimal}), NUMBERS | {str}
        )

    def number(self, connect: Any) -> Node:
        if connect in INTEGERS:
            kept = frozenset({int}) if connect == "int64" else frozenset()  # int64: no range check
            return Node(f"integer ({connect})", integer(connect), kept, frozenset({int}))
        if connect in ("float32", "float64"):
            return Node(f"number ({connect})", floating(f"number ({connect})"), frozenset({float}), NUMBERS)
        if connect == "bytes":
            return BYTES
        raise self.error(f"connect.type {connect!r:.60} is not a Connect number type")

    def array(self, schema: dict, connect: Any, resolver: Any) -> Node:
        items = schema.get("items", True)
        if isinstance(items, list):  # tuple validation: Connect has no type for it
            items = True
        if connect == "map":
            entry, entry_resolver = self.resolved(items, resolver)
            properties = entry.get("properties") if isinstance(entry, dict) else None
            if isinstance(properties, dict):
                key = self.of(properties.get("key", True), entry_resolver)
                value = self.of(properties.get("value", True), entry_resolver)
                return Node(
                    "an array of {key, value} (a map)", entries(key, value), accepts=frozenset({list})
                )
        item = self.of(items, resolver)

        def read(value: Any) -> Any:
            if type(value) is not list:
                raise mismatch("an array", value)
            kept = item.kept
            for element in value:
                if type(element) not in kept:
                    break
            else:
                return value
            converted = []
            try:
                for element in value:
                    converted.append(read_one(item, element))
            except Misfit as misfit:
                misfit.path.append(f"[{len(converted)}]")
                raise
            return converted

        return Node("an array", read, accepts=frozenset({list}))

    def map(self, values_schema: Any, resolver: Any) -> Node:
        values = self.of(values_schema, resolver)

        def read(value: Any) -> Any:
            if type(value) is not dict:
                raise mismatch("an object (a map)", value)
            converted = {}
            key = ""
            try:
                for key, item in value.items():
                    converted[key] = read_one(values, item)
            except Misfit as misfit:
                misfit.path.append(f".{key}")
                raise
            return converted

        return Node("an object (a map)", read, accepts=frozenset({dict}))

    def struct(self, properties: list[tuple[str, Any, Any]]) -> Node:
        indexes = [s.get("connect.index") if isinstance(s, dict) else None for _, s, _ in properties]
        if all(type(index) is int for index in indexes):
            properties = [p for _, p in sorted(zip(indexes, properties, strict=True), key=lambda x: x[0])]
        fields = [(name, self.of(schema, resolver)) for name, schema, resolver in properties]

        def read(value: Any) -> Any:
            if type(value) is not dict:
                raise mismatch("an object (a struct)", value)
            struct = {}
            name = ""
            try:
                for name, node in fields:
                    item = value.get(name)
                    if item is None:
                        struct[name] = read_null(node, name in value)
                    elif type(item) in node.kept:
                        struct[name] = item
                    else:
                        struct[name] = node.read(item)
            except Misfit as misfit:
                misfit.path.append(f".{name}")
                raise
            return struct

        return Node(
            "an object (a struct)", read, accepts=frozenset({dict}), names=frozenset(n for n, _ in fields)
        )

    def union(self, branches: Any, resolver: Any) -> Node:
        if not isinstance(branches, list) or not branches:
            raise self.error("oneOf/anyOf is not a list of schemas")
        nodes = [self.of(branch, resolver) for branch in branches]
        if len(nodes) == 2 and any(node.kind == "null" for node in nodes):
            (other,) = [node for node in nodes if node.kind != "null"] or [NULL]
            return replace(other, nullable=True)
        names = [f"{ONE_OF}.field.{index}" for index in range(len(nodes))]
        candidates = [(name, node) for name, node in zip(names, nodes, strict=True) if node.kind != "null"]

        def read(value: Any) -> Any:
            chosen, most = None, -1
            for name, node in candidates:
                if node.names is not None:
                    if type(value) is dict:
                        named = sum(key in node.names for key in value)
                        if named > most:
                            chosen, most = (name, node), named
                elif type(value) in node.accepts:
                    chosen = name, node
                    break
            if chosen is None:
                raise mismatch(f"one of {len(nodes)} schemas (oneOf)", value)
            struct = dict.fromkeys(names)
            try:
                struct[chosen[0]] = read_one(chosen[1], value)
            except Misfit as misfit:
                misfit.path.append(f".{chosen[0]}")
                raise
            return struct

        accepts = frozenset().union(*(node.accepts for _, node in candidates))
        nullable = len(candidates) < len(nodes)
        return Node(f"one of {len(nodes)} schemas (oneOf)", read, accepts=accepts, nullable=nullable)

    def all_of(self, schema: dict, resolver: Any) -> Node:
        """As JsonSchemaData: the properties of every part, merged, else the first part that is
        a oneOf/anyOf, else the first with a type (the others only constrain it)."""
        if not isinstance(schema["allOf"], list):
            raise self.error("allOf is not a list of schemas")
        own = ({k: v for k, v in schema.items() if k != "allOf"}, resolver)
        parts = [own, *(self.resolved(part, resolver) for part in schema["allOf"])]
        parts = [(part, where) for part, where in parts if isinstance(part, dict)]
        merged: dict[str, tuple[str, Any, Any]] = {}
        for part, where in parts:
            for name, subschema in (part.get("properties") or {}).items():
                merged[name] = (name, subschema, where)
        if merged:
            return self.struct(list(merged.values()))
        for keys in (("oneOf", "anyOf", "allOf"), ("type", "enum", "const", "items")):
            for part, where in [*parts[1:], own]:
                if any(key in part for key in keys):
                    return self.of(part, where)
        return PASS

    def enum(self, values: Any) -> Node:
        if not isinstance(values, list):
            raise self.error("enum is not a list")
        listed = [value for value in values if type(value) is not str]

        def read(value: Any) -> Any:
            if value in listed:  # Connect makes an enum a string; any other listed value is kept
                return value
            raise mismatch("an enum (a string)", value)

        return Node("an enum (a string)", read, frozenset({str}), frozenset({str}), nullable=None in values)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _resource(contents: Any) -> Resource:
    return Resource.from_contents(contents, default_specification=DRAFT7)
