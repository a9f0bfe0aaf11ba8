"""Confluent's wire format: a zero byte, the schema's id in 4 bytes (big-endian), then the body.

The schema behind an id is asked of the registry once; the reader compiled from it is kept for
the life of the worker, so records whose schemas are known go on being read while the registry
is down. A record naming an id the registry does not have, or bytes that are not the format, is
that record's error (through the policy); a registry that cannot answer is waited for
(RegistryUnavailable, raised to the task).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from conductor.errors import RecordError
from conductor.registry import RegisteredSchema, SchemaRegistry, UnknownSchema

Body = Callable[[bytes], Any]  # the body after the 5-byte prefix -> the value


class RegisteredFormat:
    """One side (key or value) of a connector's records, in one registry format. Subclasses
    name their registry `schema_type` and compile a schema into a reader of bodies."""

    schema_type = ""  # AVRO, PROTOBUF or JSON, as the registry names it
    converter = ""  # the Kafka Connect class, for messages

    def __init__(self, registry: SchemaRegistry, side: str, options: Mapping[str, Any]) -> None:
        self.registry = registry
        self.side = side
        self.options = options
        self._readers: dict[int, Body] = {}

    def __call__(self, data: bytes) -> Any:
        if len(data) < 5 or data[0] != 0:
            raise RecordError(
                f"{self.side}: Unknown magic byte! {self.converter} reads Confluent's wire format "
                f"(a zero byte and a 4-byte schema id), but this {self.side} starts with {data[:5]!r}"
            )
        schema_id = int.from_bytes(data[1:5], "big")
        read = self._readers.get(schema_id)
        if read is None:
            read = self._reader(schema_id)
        try:
            return read(data[5:])
        except RecordError:
            raise
        except Exception as error:
            raise RecordError(
                f"{self.side} is not {self.schema_type.lower()} of schema id {schema_id}: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _reader(self, schema_id: int) -> Body:
        """The compiled reader of an id; an unknown id or a schema that cannot be read is kept as
        a reader that refuses, so the registry is asked once per id."""
        try:
            schema = self.registry.schema(schema_id)
            if schema.schema_type != self.schema_type:
                raise RecordError(
                    f"{self.side}: schema id {schema_id} is a {schema.schema_type} schema, but "
                    f"{self.side}.converter is {self.converter}"
                )
            read = self.compile(schema)
        except UnknownSchema as error:
            read = _refusing(RecordError(f"{self.side}: {error}"))
        except RecordError as error:
            read = _refusing(error)
        self._readers[schema_id] = read
        return read

    def compile(self, schema: RegisteredSchema) -> Body:
        raise NotImplementedError

    def referenced(self, schema: RegisteredSchema) -> dict[str, RegisteredSchema]:
        """The schemas `schema` references, by the name it imports them with, theirs included
        (depth first, so a schema comes after what it references)."""
        found: dict[str, RegisteredSchema] = {}

        def walk(current: RegisteredSchema) -> None:
            for reference in current.references:
                name = reference.get("name")
                if name in found:
                    continue
                target = self.registry.version(reference.get("subject"), reference.get("version"))
                walk(target)
                found[name] = target

        walk(schema)
        return found


def _refusing(error: RecordError) -> Body:
    def refuse(body: bytes) -> Any:
        raise error

    return refuse
