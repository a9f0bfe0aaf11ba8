"""Kafka Connect's predicates (org.apache.kafka.connect.transforms.predicates.*): which records
a transform applies to (``transforms.<alias>.predicate``, turned around by ``negate``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conductor.records import Record
from conductor.transforms.base import Settings


@dataclass(frozen=True, slots=True)
class TopicNameMatches:
    pattern: re.Pattern[str]

    @classmethod
    def configure(cls, s: Settings) -> TopicNameMatches | None:
        pattern = s.regex("pattern")
        return None if pattern is None else cls(pattern)

    def test(self, record: Record) -> bool:
        return self.pattern.fullmatch(record.topic) is not None


@dataclass(frozen=True, slots=True)
class HasHeaderKey:
    name: str

    @classmethod
    def configure(cls, s: Settings) -> HasHeaderKey:
        name = s.string("name", "", required=True)
        if name == "":
            s.problem("name", "String must be non-empty")
        return cls(name)

    def test(self, record: Record) -> bool:
        return any(header_name == self.name for header_name, _ in record.headers)


@dataclass(frozen=True, slots=True)
class RecordIsTombstone:
    @classmethod
    def configure(cls, s: Settings) -> RecordIsTombstone:
        return cls()

    def test(self, record: Record) -> bool:
        return record.value is None
