"""Confluent's ProtobufConverter: Protobuf bodies read into what Kafka Connect's ProtobufData makes
of them, spelled as every format is (conductor/formats/spelling.py).

The registry's .proto text (with the schemas it references) is compiled by the protoc that
grpcio-tools bundles, into a fresh descriptor pool per schema id; the message indexes after the
5-byte prefix pick the message. Then, as ProtobufData's toConnectData:
- int32/sint32/sfixed32, uint32/fixed32 and the 64-bit ints are ints (uint64 and fixed64 as
  Connect's int64 holds them: two's complement, so 2^64-1 is -1), float and double floats;
- bytes are base64 text; an enum its symbol (UNKNOWN_ENUM_VALUE_<Enum>_<n> for a number the
  schema does not name, as protobuf-java names it), or its number with int.for.enums;
- google.protobuf.Timestamp is a Connect Timestamp: epoch milliseconds (nanos truncated);
  google.type.Date an ISO date; google.type.TimeOfDay an ISO time of day; confluent.type.Decimal
  an exact decimal.Decimal (rounded to its precision, as BigDecimal with a MathContext is);
- a wrapper (google.protobuf.StringValue...) is the struct {"value": x}, or with
  wrapper.for.nullables the bare value; the message written itself a wrapper is its bare value
  (Connect's wrapper.for.raw.primitives, on by default);
- a oneof is one field, "<oneof>_<index>" (just "<oneof>" without generate.index.for.unions),
  holding a field per member with only the set one filled; null when none is set;
- map<k, v> is an object for string keys, else [[key, value], ...] sorted by key (as the sinks
  write Connect's maps without string keys, conductor/formats/connectjson.py); repeated a list;
- a message field not set is null; so is an unset proto3 `optional` or proto2 `optional` scalar
  (Connect's optional.for.proto2); other scalars and repeated fields always hold their default.

Each message type's converter is compiled once (a list of field readers), so a record costs its
parse and one pass over its fields.
"""

from __future__ import annotations

import decimal
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, OneofDescriptor

from conductor.errors import RecordError
from conductor.formats.registered import Body, RegisteredFormat
from conductor.formats.spelling import base64_text, time_of_day
from conductor.registry import RegisteredSchema

Convert = Callable[[Any], Any]
WELL_KNOWN = str(resources.files("grpc_tools") / "_proto")  # google/protobuf/*.proto
# Files Confluent's registry knows without a reference (ProtobufSchema's KNOWN_DEPENDENCIES)
# that grpcio-tools does not ship: the ones Connect reads as logical types, and meta.proto for
# the (confluent.field_meta) options. A reference of the same name is used instead.
KNOWN = {
    "google/type/date.proto": 'syntax = "proto3"; package google.type;\n'
    "message Date { int32 year = 1; int32 month = 2; int32 day = 3; }\n",
    "google/type/timeofday.proto": 'syntax = "proto3"; package google.type;\n'
    "message TimeOfDay { int32 hours = 1; int32 minutes = 2; int32 seconds = 3; int32 nanos = 4; }\n",
    "confluent/type/decimal.proto": 'syntax = "proto3"; package confluent.type;\n'
    "message Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }\n",
    "confluent/meta.proto": 'syntax = "proto3"; package confluent;\n'
    'import "google/protobuf/descriptor.proto";\n'
    "message Meta { string doc = 1; map<string, string> params = 2; repeated string tags = 3;"
    " repeated Rule rules = 4; }\n"
    "message Rule { string name = 1; string doc = 2; string expr = 3; string sql = 4; }\n"
    "extend google.protobuf.FileOptions { Meta file_meta = 1088; }\n"
    "extend google.protobuf.MessageOptions { Meta message_meta = 1088; }\n"
    "extend google.protobuf.FieldOptions { Meta field_meta = 1088; }\n"
    "extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }\n"
    "extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }\n",
}
WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
FIRST = (0,)  # the message indexes of the file's first message, written as one 0 byte
TWO_64 = 1 << 64
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799  # 0001-01-01 to 9999-12-31
EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


class ProtobufFormat(RegisteredFormat):
    schema_type = "PROTOBUF"
    converter = "io.confluent.connect.protobuf.ProtobufConverter"

    def compile(self, schema: RegisteredSchema) -> Body:
        where = f"{self.side}: schema id {schema.id}"
        main = f"registered-schema-{schema.id}.proto"
        imports = {name: reference.text for name, reference in self.referenced(schema).items()}
        files = _compile_proto(main, schema.text, imports, where)
        pool = descriptor_pool.DescriptorPool()  # fresh: two versions may define the same names
        try:
            for file in files.file:  # --include_imports lists a file after what it imports
                pool.Add(file)
        except (TypeError, ValueError) as error:
            raise RecordError(f"{where} cannot be loaded: {error}") from None
        (main_file,) = (file for file in files.file if file.name == main)
        prefix = f"{main_file.package}." if main_file.package else ""
        top = [pool.FindMessageTypeByName(prefix + message.name) for message in main_file.message_type]
        converters = Converters(self.options, {file.name: file.syntax for file in files.file}, where)
        has_required = any(_requires(message) for file in files.file for message in file.message_type)
        readers: dict[tuple[int, ...], Callable[[bytes], Any]] = {}

        def reader_of(indexes: tuple[int, ...]) -> Callable[[bytes], Any]:
            message_type = _message_at(top, indexes, where)
            parse = message_factory.GetMessageClass(message_type).FromString
            convert = converters.top(message_type)

            def read_message(data: bytes) -> Any:
                message = parse(data)
                if has_required and not message.IsInitialized():  # as DynamicMessage.parseFrom
                    raise ValueError(
                        f"required fields not set: {', '.join(message.FindInitializationErrors())}"
                    )
                return convert(message)

            readers[indexes] = read_message
            return read_message

        def read(body: bytes) -> Any:
            if body[:1] == b"\x00":
                indexes, start = FIRST, 1
            else:
                indexes, start = _message_indexes(body)
            read_message = readers.get(indexes) or reader_of(indexes)
            return read_message(body[start:])

        return read


def _compile_proto(main: str, text: str, imports: dict[str, str], where: str) -> Any:
    """The FileDescriptorSet of `text` (as file `main`) and what it imports, from protoc run in
    a temporary folder that is all it writes to; RecordError with protoc's message if it refuses."""
    with tempfile.TemporaryDirectory(prefix="conductor-proto-") as folder:
        folder = os.path.realpath(folder)
        given, known = os.path.join(folder, "given"), os.path.join(folder, "known")
        for tree, contents in ((given, {main: text, **imports}), (known, KNOWN)):
            for name, body in contents.items():
                path = os.path.realpath(os.path.join(tree, name))
                if not path.startswith(tree + os.sep):  # names from the registry stay in the folder
                    raise RecordError(f"{where} imports {name!r}, a path out of the folder it is compiled in")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as out:
                    out.write(body)
        output = os.path.join(folder, "set.bin")
        command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{given}", f"-I{known}", f"-I{WELL_KNOWN}"]
        command += ["--include_imports", f"--descriptor_set_out={output}", main]
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            said = done.stderr.replace(given + os.sep, "").strip() or f"exit code {done.returncode}"
            raise RecordError(f"{where} is a .proto protoc refuses: {said}")
        with open(output, "rb") as result:
            return descriptor_pb2.FileDescriptorSet.FromString(result.read())


def _message_indexes(body: bytes) -> tuple[tuple[int, ...], int]:
    """Confluent's MessageIndexes: zig-zag varints, a count then the path; a count of 0 is [0]."""
    count, position = _varint(body, 0)
    if count < 0 or count > len(body):
        raise ValueError(f"message indexes: a count of {count}")
    indexes = []
    for _ in range(count):
        index, position = _varint(body, position)
        indexes.append(index)
    return tuple(indexes) or FIRST, position


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 28:
            raise ValueError("message indexes: a varint cut short or longer than 32 bits")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position


def _message_at(top: list[Descriptor], indexes: tuple[int, ...], where: str) -> Descriptor:
    """The message at a path of indexes: among the file's messages, then their nested ones (map
    entries are not counted: Confluent counts the messages the .proto text declares)."""
    choices = top
    for depth, index in enumerate(indexes):
        if not 0 <= index < len(choices):
            raise RecordError(f"{where}: its message indexes {list(indexes)} name no message")
        if depth == len(indexes) - 1:
            return choices[index]
        choices = [nested for nested in choices[index].nested_types if not nested.GetOptions().map_entry]
    raise RecordError(f"{where}: no message indexes")


def _requires(message: Any) -> bool:
    return any(field.label == field.LABEL_REQUIRED for field in message.field) or any(
        _requires(nested) for nested in message.nested_type
    )


class Converters:
    """What ProtobufData makes of a message type, compiled once per type."""

    def __init__(self, options: Any, syntax_of_file: dict[str, str], where: str) -> None:
        self.unwrap = bool(options.get("wrapper.for.nullables", False))
        self.enum_numbers = bool(options.get("int.for.enums", False))
        self.union_index = bool(options.get("generate.index.for.unions", True))
        self.syntax_of_file = syntax_of_file
        self.where = where
        self.structs: dict[str, Convert] = {}

    def top(self, message_type: Descriptor) -> Convert:
        if message_type.full_name in WRAPPERS:  # wrapper.for.raw.primitives
            return self.unwrapped(message_type)
        return self.struct(message_type)

    def struct(self, message_type: Descriptor) -> Convert:
        known = self.structs.get(message_type.full_name)
        if known is not None:
            return known
        readers: list[tuple[str, Convert]] = []

        def convert(message: Any) -> dict:
            return {name: read(message) for name, read in readers}

        self.structs[message_type.full_name] = convert  # before its fields: a type may hold itself
        proto = descriptor_pb2.DescriptorProto()
        message_type.CopyToProto(proto)
        proto2 = self.syntax_of_file.get(message_type.file.name) in ("", "proto2")
        synthetic = {field.name for field in proto.field if field.proto3_optional}
        nullable = synthetic | {
            field.name
            for field in proto.field
            if proto2 and field.label == field.LABEL_OPTIONAL and not field.HasField("oneof_index")
        }
        unions = [o for o in message_type.oneofs if not any(f.name in synthetic for f in o.fields)]
        for oneof in unions:  # Connect's struct puts the oneofs first
            readers.append(
                (f"{oneof.name}_{oneof.index}" if self.union_index else oneof.name, self.union(oneof))
            )
        in_unions = {field.name for oneof in unions for field in oneof.fields}
        for field in message_type.fields:
            if field.name not in in_unions:
                readers.append((field.name, self.field(field, field.name in nullable)))
        return convert

    def field(self, field: FieldDescriptor, nullable: bool) -> Convert:
        name = field.name
        if _repeated(field):
            if field.type == field.TYPE_MESSAGE and _is_map(field.message_type):
                return self.map(field)
            item = self.value(field)
            if item is None:
                return lambda message: list(getattr(message, name))
            return lambda message: [item(value) for value in getattr(message, name)]
        convert = self.value(field)
        if field.type == field.TYPE_MESSAGE or nullable:
            if convert is None:
                return lambda message: getattr(message, name) if message.HasField(name) else None
            return lambda message: convert(getattr(message, name)) if message.HasField(name) else None
        if convert is None:
            return lambda message: getattr(message, name)
        return lambda message: convert(getattr(message, name))

    def value(self, field: FieldDescriptor) -> Convert | None:
        """The converter of one value of a field's type, None where Python's value is Connect's."""
        kind = field.type
        if kind == field.TYPE_MESSAGE:
            return self.message(field.message_type)
        if kind == field.TYPE_ENUM:
            return None if self.enum_numbers else _enum_names(field.enum_type)
        if kind == field.TYPE_BYTES:
            return base64_text
        if kind in (field.TYPE_UINT64, field.TYPE_FIXED64):
            return _as_int64
        if kind == field.TYPE_GROUP:
            raise RecordError(
                f"{self.where}: {field.full_name} is a proto2 group, which Connect does not read"
            )
        return None

    def message(self, message_type: Descriptor) -> Convert:
        name = message_type.full_name
        logical = LOGICAL.get(name)
        if logical is not None:
            return logical
        if self.unwrap and name in WRAPPERS:
            return self.unwrapped(message_type)
        return self.struct(message_type)

    def unwrapped(self, wrapper: Descriptor) -> Convert:
        convert = self.value(wrapper.fields_by_name["value"])
        if convert is None:
            return lambda message: message.value
        return lambda message: convert(message.value)

    def union(self, oneof: OneofDescriptor) -> Convert:
        members = {field.name: self.value(field) for field in oneof.fields}
        blank = dict.fromkeys(members)
        oneof_name = oneof.name

        def convert(message: Any) -> dict | None:
            member = message.WhichOneof(oneof_name)
            if member is None:
                return None
            union = blank.copy()
            value, convert_member = getattr(message, member), members[member]
            union[member] = value if convert_member is None else convert_member(value)
            return union

        return convert

    def map(self, field: FieldDescriptor) -> Convert:
        """A map, or a repeated message Connect takes for one (an ...Entry of key and value)."""
        name, entry = field.name, field.message_type
        key = self.value(entry.fields_by_name["key"])
        value = self.value(entry.fields_by_name["value"]) or (lambda v: v)
        real = entry.GetOptions().map_entry

        def pairs(message: Any) -> Any:
            held = getattr(message, name)
            return held.items() if real else ((item.key, item.value) for item in held)

        if entry.fields_by_name["key"].type == field.TYPE_STRING:
            return lambda message: {k: value(v) for k, v in pairs(message)}
        key = key or (lambda k: k)
        return lambda message: [[key(k), value(v)] for k, v in sorted(dict(pairs(message)).items())]


def _is_map(entry: Descriptor) -> bool:
    """ProtobufData's isMapDescriptor: named ...Entry, with just a key and a value field."""
    fields = entry.fields
    return (
        entry.name.endswith("Entry")
        and len(fields) == 2
        and (fields[0].name, fields[1].name) == ("key", "value")
        and not _repeated(fields[0])
        and not _repeated(fields[1])
    )


def _repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)  # newer protobufs; `label` is gone in 7
    return field.label == field.LABEL_REPEATED if repeated is None else repeated


def _enum_names(enum_type: EnumDescriptor) -> Convert:
    names: dict[int, str] = {}
    for value in enum_type.values:  # with aliases, protobuf-java names a number by its first
        names.setdefault(value.number, value.name)
    unknown = f"UNKNOWN_ENUM_VALUE_{enum_type.name}_"
    return lambda number: names.get(number) or f"{unknown}{number}"


def _as_int64(value: int) -> int:
    return value - TWO_64 if value >> 63 else value


def _timestamp(message: Any) -> int:
    seconds, nanos = message.seconds, message.nanos
    if not (MIN_SECONDS <= seconds <= MAX_SECONDS and 0 <= nanos <= 999_999_999):
        raise ValueError(f"Timestamp is not valid: seconds {seconds}, nanos {nanos}")
    return seconds * 1000 + nanos // 1_000_000


def _date(message: Any) -> str:
    return date(message.year, message.month, message.day).isoformat()


def _time(message: Any) -> str:
    hours, minutes, seconds, nanos = message.hours, message.minutes, message.seconds, message.nanos
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 60 and 0 <= nanos <= 999_999_999):
        raise ValueError(f"TimeOfDay {hours}:{minutes}:{seconds} and {nanos} ns is not a time of day")
    return time_of_day(((hours * 60 + minutes) * 60 + seconds) * 1000 + nanos // 1_000_000, "a TimeOfDay")


def _decimal(message: Any) -> decimal.Decimal:
    if not message.value:
        raise ValueError("Decimal has no value bytes (Zero length BigInteger)")
    unscaled = int.from_bytes(message.value, "big", signed=True)
    exact = decimal.Decimal(unscaled).scaleb(-message.scale, EXACT)
    if message.precision:  # BigDecimal with MathContext(precision): rounded half up
        return decimal.Context(prec=message.precision, rounding=decimal.ROUND_HALF_UP).plus(exact)
    return exact


LOGICAL: dict[str, Convert] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.type.Date": _date,
    "google.type.TimeOfDay": _time,
    "confluent.type.Decimal": _decimal,
}
