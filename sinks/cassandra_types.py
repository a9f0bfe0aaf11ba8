"""JSON values to the Python values the Cassandra driver binds, one converter per column.

`converter(cql_type)` is called once per column at setup with the driver's type class (from
the prepared statement); the function it returns runs per record and either returns the value
to bind or raises `Unconvertible`. Each converter tries the JSON type it expects first.

The rules are strict but kind: a value converts when no information is lost, else it fails.
- text/varchar: str; a number or boolean becomes its JSON spelling. ascii: ASCII str only.
- tinyint/smallint/int/bigint/varint/counter: int, a float without fraction, a numeric string;
  range-checked. Never a boolean.
- float/double: int, float, Decimal or numeric string. decimal: the same, exact (through str()).
- boolean: bool, or the string "true"/"false" (any case).
- timestamp: epoch milliseconds (int, or a string of digits) or ISO-8601 (`Z` or offset;
  none means UTC). date: ISO date (or a timestamp string: its UTC date) or epoch ms.
  time: ISO time string, or int nanoseconds since midnight.
- uuid: UUID string; timeuuid must be a version 1 UUID. inet: an IPv4/IPv6 address string.
  blob: base64 string.
- list/set/vector: JSON array, elements converted; map: JSON object, keys and values
  converted (keys arrive as strings: "1" fits map<int, ...>); tuple: array of the right
  length; UDT: JSON object, fields matched by name (exact, then lowercase), others ignored.
- any other type (duration, custom types): passed to the driver as is.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from cassandra import cqltypes

Converter = Callable[[Any], Any]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_DATE = date(1970, 1, 1)
ONE_MS = timedelta(milliseconds=1)
MS_PER_DAY = 86_400_000
NS_PER_DAY = 86_400 * 10**9
FLOAT_MAX = 3.4028234663852886e38
INT_BITS = {"tinyint": 8, "smallint": 16, "int": 32, "bigint": 64, "counter": 64}


class Unconvertible(ValueError):
    """A value that does not fit the column's type; `detail` says why when that helps."""

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(detail)


def shown(value: Any, limit: int = 50) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(cql_type: Any) -> str:
    """The CQL spelling of a driver type class, for messages."""
    if issubclass(cql_type, cqltypes.VectorType):
        return f"vector<{type_name(cql_type.subtype)}, {cql_type.vector_size}>"
    if issubclass(cql_type, cqltypes.UserType):
        return cql_type.typename
    return cql_type.cql_parameterized_type()


# -- scalars -----------------------------------------------------------------------------


def to_text(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return repr(value)
    if kind is Decimal:
        return str(value)
    raise Unconvertible()


def to_ascii(value: Any) -> str:
    text = to_text(value)
    if not text.isascii():
        raise Unconvertible("not ASCII")
    return text


def integer(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return value
    if kind is float:
        if value.is_integer():
            return int(value)
        raise Unconvertible("has a fraction")
    if kind is Decimal:
        if value == value.to_integral_value():
            return int(value)
        raise Unconvertible("has a fraction")
    if kind is str:
        try:
            return int(value)
        except ValueError:
            number = to_decimal(value)
            if number == number.to_integral_value():
                return int(number)
            raise Unconvertible("has a fraction") from None
    raise Unconvertible()


def integer_of(bits: int | None) -> Converter:
    if bits is None:
        return integer
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def to_int(value: Any) -> int:
        number = value if type(value) is int else integer(value)
        if low <= number <= high:
            return number
        raise Unconvertible(f"out of range {low}..{high}")

    return to_int


def to_double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is int or kind is Decimal:
        return float(value)
    if kind is str:
        try:
            return float(value)
        except ValueError:
            raise Unconvertible("not a number") from None
    raise Unconvertible()


def to_float(value: Any) -> float:
    number = to_double(value)
    if abs(number) > FLOAT_MAX and math.isfinite(number):
        raise Unconvertible("too large for a 32-bit float")
    return number


def to_decimal(value: Any) -> Decimal:
    kind = type(value)
    if kind is Decimal:
        return value
    if kind is bool or kind not in (int, float, str):
        raise Unconvertible()
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise Unconvertible("not a number") from None
    if not number.is_finite():
        raise Unconvertible("not finite")
    return number


def to_boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    if type(value) is str:
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    raise Unconvertible()


def parse_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Unconvertible("not ISO-8601") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def to_timestamp(value: Any) -> int:
    """Epoch milliseconds, which the driver binds as they are."""
    kind = type(value)
    if kind is int:
        return value
    if kind is float:
        return round(value)
    if kind is str:
        if value.isdigit() or (value[:1] == "-" and value[1:].isdigit()):
            return int(value)
        return (parse_datetime(value) - EPOCH) // ONE_MS
    raise Unconvertible()


def to_date(value: Any) -> date:
    kind = type(value)
    if kind is str:
        if len(value) == 10:
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        return parse_datetime(value).astimezone(UTC).date()
    if kind is int:
        try:
            return EPOCH_DATE + timedelta(days=value // MS_PER_DAY)
        except OverflowError:
            raise Unconvertible("out of range") from None
    raise Unconvertible()


def to_time(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            raise Unconvertible("not an ISO time") from None
    if kind is int and 0 <= value < NS_PER_DAY:
        return value
    raise Unconvertible()


def to_uuid(value: Any) -> UUID:
    if type(value) is str:
        try:
            return UUID(value)
        except ValueError:
            raise Unconvertible("not a UUID") from None
    raise Unconvertible()


def to_timeuuid(value: Any) -> UUID:
    result = to_uuid(value)
    if result.version != 1:
        raise Unconvertible("not a version 1 (time) UUID")
    return result


def to_inet(value: Any) -> str:
    if type(value) is str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise Unconvertible("not an IP address") from None
    raise Unconvertible()


def to_blob(value: Any) -> bytes:
    if type(value) is str:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Unconvertible("not base64") from None
    raise Unconvertible()


SCALARS: dict[str, Converter] = {
    "text": to_text, "varchar": to_text, "ascii": to_ascii,
    "tinyint": integer_of(8), "smallint": integer_of(16), "int": integer_of(32),
    "bigint": integer_of(64), "counter": integer_of(64), "varint": integer,
    "float": to_float, "double": to_double, "decimal": to_decimal, "boolean": to_boolean,
    "timestamp": to_timestamp, "date": to_date, "time": to_time,
    "uuid": to_uuid, "timeuuid": to_timeuuid, "inet": to_inet, "blob": to_blob,
}  # fmt: skip


# -- collections -------------------------------------------------------------------------


def element(convert: Converter, item: Any) -> Any:
    if item is None:
        raise Unconvertible("null element")
    try:
        return convert(item)
    except Unconvertible as err:
        raise Unconvertible(
            f"element {shown(item, 30)}" + (f": {err.detail}" if err.detail else "")
        ) from None


def sequence_of(convert: Converter, size: int | None = None) -> Converter:
    def to_list(value: Any) -> list[Any]:
        if type(value) is not list:
            raise Unconvertible("not an array")
        if size is not None and len(value) != size:
            raise Unconvertible(f"{len(value)} elements, not {size}")
        return [element(convert, item) for item in value]

    return to_list


def map_of(convert_key: Converter, convert_value: Converter) -> Converter:
    def to_map(value: Any) -> dict[Any, Any]:
        if type(value) is not dict:
            raise Unconvertible("not an object")
        return {element(convert_key, k): element(convert_value, v) for k, v in value.items()}

    return to_map


def tuple_of(converts: list[Converter]) -> Converter:
    def to_tuple(value: Any) -> tuple[Any, ...]:
        if type(value) is not list or len(value) != len(converts):
            raise Unconvertible(f"not an array of {len(converts)}")
        return tuple(
            None if item is None else element(convert, item)
            for convert, item in zip(converts, value, strict=True)
        )

    return to_tuple


def udt_of(names: tuple[str, ...], converts: list[Converter]) -> Converter:
    fields = list(zip(names, converts, strict=True))

    def to_udt(value: Any) -> tuple[Any, ...]:
        if type(value) is not dict:
            raise Unconvertible("not an object")
        lowered = None
        result = []
        for name, convert in fields:
            item = value.get(name)
            if item is None and name not in value:
                if lowered is None:
                    lowered = {key.lower(): v for key, v in value.items()}
                item = lowered.get(name)
            result.append(None if item is None else element(convert, item))
        return tuple(result)

    return to_udt


def passthrough(value: Any) -> Any:
    return value


def converter(cql_type: Any) -> Converter:
    """The converter for a driver type class (from a prepared statement's column metadata)."""
    if issubclass(cql_type, (cqltypes.ReversedType, cqltypes.FrozenType)):
        return converter(cql_type.subtypes[0])
    if issubclass(cql_type, cqltypes.VectorType):
        return sequence_of(converter(cql_type.subtype), cql_type.vector_size)
    if issubclass(cql_type, cqltypes.UserType):
        return udt_of(tuple(cql_type.fieldnames), [converter(t) for t in cql_type.subtypes])
    if issubclass(cql_type, cqltypes.TupleType):
        return tuple_of([converter(t) for t in cql_type.subtypes])
    if issubclass(cql_type, (cqltypes.ListType, cqltypes.SetType)):
        return sequence_of(converter(cql_type.subtypes[0]))
    if issubclass(cql_type, cqltypes.MapType):
        key, value = cql_type.subtypes
        return map_of(converter(key), converter(value))
    return SCALARS.get(cql_type.typename, passthrough)
