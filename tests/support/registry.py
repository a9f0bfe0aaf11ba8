"""Schemas registered with the real registry's own API, and records framed in Confluent's wire
format as its serializers frame them (a zero byte, the 4-byte id, the body)."""

from __future__ import annotations

import io
import os
import struct
from typing import Any

import orjson
import requests

PORT = os.environ.get("CONDUCTOR_SCHEMA_REGISTRY_PORT", "18081")
URL = os.environ.get("CONDUCTOR_SCHEMA_REGISTRY_URL") or f"http://127.0.0.1:{PORT}/apis/ccompat/v7"


def answers(url: str = URL) -> bool:
    try:
        requests.get(f"{url}/subjects", timeout=2).raise_for_status()
        return True
    except requests.RequestException:
        return False


def register(
    url: str, subject: str, schema: Any, schema_type: str | None = None, references: list | None = None
) -> int:
    """The id the registry gives `schema` (a dict, or the text of a .proto) under `subject`."""
    body: dict[str, Any] = {"schema": schema if isinstance(schema, str) else orjson.dumps(schema).decode()}
    if schema_type:
        body["schemaType"] = schema_type
    if references:
        body["references"] = references
    answer = requests.post(f"{url}/subjects/{subject}/versions", json=body, timeout=10)
    if answer.status_code >= 400:
        raise AssertionError(f"the registry refused {subject}: {answer.status_code} {answer.text}")
    return answer.json()["id"]


def framed(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


def avro(schema_id: int, schema: dict, value: Any) -> bytes:
    """`value` written with fastavro, as Confluent's KafkaAvroSerializer frames it."""
    import fastavro

    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return framed(schema_id, out.getvalue())
