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


def protobuf(
    schema_id: int,
    proto: str,
    message: str,
    values: dict[str, Any] | None = None,
    indexes: tuple[int, ...] = (0,),
    imports: dict[str, str] | None = None,
) -> bytes:
    """The message `message` (its full name in `proto`, the text of a .proto) made of `values`,
    as Confluent's KafkaProtobufSerializer frames it: the prefix, the message indexes (zig-zag
    varints, the count then the path; [0] as a single 0 byte), the body. `imports` gives the
    text of the files `proto` imports that grpcio-tools does not ship (google/type/...)."""
    from google.protobuf import message_factory

    pool = _protobuf_pool(proto, tuple(sorted((imports or {}).items())))
    body = message_factory.GetMessageClass(pool.FindMessageTypeByName(message))(**(values or {}))

    def zigzag(number: int) -> bytes:
        number = (number << 1) ^ (number >> 31)
        out = bytearray()
        while number > 0x7F:
            out.append(number & 0x7F | 0x80)
            number >>= 7
        return bytes(out + bytes([number]))

    prefix = b"\x00" if indexes == (0,) else zigzag(len(indexes)) + b"".join(map(zigzag, indexes))
    return framed(schema_id, prefix + body.SerializeToString())


_PROTOBUF_POOLS: dict[tuple, Any] = {}


def _protobuf_pool(proto: str, imports: tuple[tuple[str, str], ...]) -> Any:
    """A descriptor pool of `proto`, compiled here with grpcio-tools' protoc (in a temp dir)."""
    import tempfile
    from importlib import resources
    from pathlib import Path

    from google.protobuf import descriptor_pb2, descriptor_pool
    from grpc_tools import protoc

    pool = _PROTOBUF_POOLS.get((proto, imports))
    if pool is None:
        with tempfile.TemporaryDirectory() as folder:
            for name, text in (("message.proto", proto), *imports):
                (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(folder) / name).write_text(text)
            out = Path(folder) / "set.bin"
            well_known = resources.files("grpc_tools") / "_proto"
            arguments = ["protoc", f"-I{folder}", f"-I{well_known}", "--include_imports"]
            if protoc.main([*arguments, f"--descriptor_set_out={out}", "message.proto"]) != 0:
                raise AssertionError(f"protoc refused the test's .proto:\n{proto}")
            pool = descriptor_pool.DescriptorPool()
            for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
                pool.Add(file)
        _PROTOBUF_POOLS[(proto, imports)] = pool
    return pool
