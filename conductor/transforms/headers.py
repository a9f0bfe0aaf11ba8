"""Kafka Connect's header transforms: DropHeaders, InsertHeader, HeaderFrom. Header values are
bytes: text as UTF-8, other JSON values as JSON."""

from __future__ import annotations

from dataclasses import dataclass

from conductor.records import Record
from conductor.transforms.base import Settings, encode, operating, require_map, with_operating


@dataclass(frozen=True, slots=True)
class DropHeaders:
    names: frozenset[str]

    @classmethod
    def configure(cls, s: Settings, side: str) -> DropHeaders:
        return cls(frozenset(s.listing("headers", required=True, non_empty=True)))

    def apply(self, record: Record) -> Record:
        names = self.names
        return record.transformed(headers=[h for h in record.headers if h[0] not in names])


@dataclass(frozen=True, slots=True)
class InsertHeader:
    name: str
    value: bytes

    @classmethod
    def configure(cls, s: Settings, side: str) -> InsertHeader:
        name = s.string("header", "", required=True)
        literal = s.string("value.literal", "", required=True)
        return cls(name, literal.encode())

    def apply(self, record: Record) -> Record:
        return record.transformed(headers=[*record.headers, (self.name, self.value)])


@dataclass(frozen=True, slots=True)
class HeaderFrom:
    side: str
    fields: tuple[str, ...]
    names: tuple[str, ...]
    move: bool

    @classmethod
    def configure(cls, s: Settings, side: str) -> HeaderFrom:
        fields = s.listing("fields", required=True, non_empty=True)
        names = s.listing("headers", required=True, non_empty=True)
        if len(fields) != len(names):
            s.problem("headers", "'fields' config must have the same number of elements as 'headers' config.")
        given = s.string("operation", required=True) is not None
        operation = s.choice("operation", ("copy", "move"), "copy") if given else "copy"
        s.boolean("replace.null.with.default", True)
        return cls(side, tuple(fields), tuple(names), operation == "move")

    def apply(self, record: Record) -> Record:
        value = require_map(operating(record, self.side), f"header {'move' if self.move else 'copy'}")
        updated = dict(value)
        headers = list(record.headers)
        for field, name in zip(self.fields, self.names, strict=True):
            if self.move:
                updated.pop(field, None)
            headers.append((name, encode(value.get(field))))
        return with_operating(record, self.side, updated).transformed(headers=headers)
