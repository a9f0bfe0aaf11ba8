"""Converters: the bytes of a record's key or value to what routing and the sinks read.

`readers(config)` gives the value's and the key's reader, or None for the plain path (a JSON
value, a key as text), which records.decode keeps free of any per-record cost. The Schema
Registry formats share one registry client per URL, and so its cache of schemas.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from conductor.config import ConnectorConfig
from conductor.config.settings import ConverterSettings
from conductor.registry import SchemaRegistry

Reader = Callable[[bytes], Any]


def readers(config: ConnectorConfig, exact: bool = True) -> tuple[Reader | None, Reader | None]:
    """The value's reader and the key's, each None for plain JSON (or a text key). Not `exact`:
    decimals come as floats, as plain JSON numbers do (the aggregator's arithmetic and the JSON
    it writes take no decimal.Decimal)."""
    registries: dict[str, SchemaRegistry] = {}
    found = (
        reader(config.value_converter, "value", registries),
        reader(config.key_converter, "key", registries),
    )
    if exact:
        return found
    return tuple(None if read is None else _inexact(read) for read in found)  # type: ignore[return-value]


def _inexact(read: Reader) -> Reader:
    return lambda data: _floats(read(data))


def _floats(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        for name, item in value.items():
            if type(item) in (dict, list, Decimal):
                value[name] = _floats(item)
        return value
    if kind is list:
        return [_floats(item) for item in value]
    return float(value) if kind is Decimal else value


def reader(settings: ConverterSettings, side: str, registries: dict[str, SchemaRegistry]) -> Reader | None:
    if settings.format == "json":
        return None
    if settings.format == "connect-json":
        from conductor.formats.connectjson import read_envelope

        return lambda data: read_envelope(data, side)
    url = settings.registry_url or ""
    registry = registries.get(url)
    if registry is None:
        registry = registries[url] = SchemaRegistry(url, settings.registry_user_info)
    if settings.format == "avro":
        from conductor.formats.avro import AvroFormat

        return AvroFormat(registry, side, settings.options)
    if settings.format == "protobuf":
        from conductor.formats.protobuf import ProtobufFormat

        return ProtobufFormat(registry, side, settings.options)
    if settings.format == "json-schema":
        from conductor.formats.jsonschema import JsonSchemaFormat

        return JsonSchemaFormat(registry, side, settings.options)
    raise ValueError(f"unknown format {settings.format!r}")
