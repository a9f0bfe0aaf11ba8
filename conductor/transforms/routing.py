"""Kafka Connect's routing transforms (RegexRouter, TimestampRouter) and Filter.

A router changes the record's topic: routes (KCQL's FROM) are looked up by the new one, and the
record keeps the topic it was read from in ``original_topic`` for the offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from conductor.records import Record
from conductor.transforms.base import Settings, TransformError
from conductor.transforms.simpledate import PatternError, formatter

GROUP_NUMBER = re.compile(r"\d+")
GROUP_NAME = re.compile(r"\{([A-Za-z][A-Za-z0-9]*)\}")


def python_replacement(replacement: str, pattern: re.Pattern[str]) -> str:
    """java.util.regex.Matcher's replacement (`$1`, `${name}`, `\\$`) as a re.sub template;
    raises ValueError with Java's message for a reference the pattern cannot fill."""
    out: list[str] = []
    pos, length = 0, len(replacement)
    while pos < length:
        ch = replacement[pos]
        if ch == "\\":
            if pos + 1 >= length:
                raise ValueError("character to be escaped is missing")
            out.append(replacement[pos + 1].replace("\\", "\\\\"))
            pos += 2
        elif ch == "$":
            if (name := GROUP_NAME.match(replacement, pos + 1)) is not None:
                if name.group(1) not in pattern.groupindex:
                    raise ValueError(f"No group with name {{{name.group(1)}}}")
                out.append(f"\\g<{name.group(1)}>")
                pos = name.end()
                continue
            digits = GROUP_NUMBER.match(replacement, pos + 1)
            if digits is None:
                raise ValueError("Illegal group reference")
            # as Java: the longest run of digits that still names a group
            text = digits.group()[0]
            for digit in digits.group()[1:]:
                if int(text + digit) > pattern.groups:
                    break
                text += digit
            if int(text) > pattern.groups:
                raise ValueError(f"No group {text}")
            out.append(f"\\g<{text}>")
            pos += 1 + len(text)
        else:
            out.append(ch)
            pos += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class RegexRouter:
    regex: re.Pattern[str]
    replacement: str  # as re.sub's template
    # topic -> routed topic: a worker reads few topics, so the regex runs once for each
    routed: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def configure(cls, s: Settings, side: str) -> RegexRouter | None:
        regex = s.regex("regex")
        replacement = s.string("replacement", required=True)
        if regex is None or replacement is None:
            return None
        try:
            return cls(regex, python_replacement(replacement, regex))
        except ValueError as error:
            s.problem("replacement", f"{error} in {replacement!r}")
            return None

    def apply(self, record: Record) -> Record:
        topic = record.topic
        routed = self.routed.get(topic)
        if routed is None:
            # Java's matches() then replaceFirst(): the first match found, as re.sub with count=1
            matched = self.regex.fullmatch(topic) is not None
            routed = self.routed[topic] = (
                self.regex.sub(self.replacement, topic, count=1) if matched else topic
            )
        return record if routed == topic else record.transformed(topic=routed)


@dataclass(frozen=True, slots=True)
class TimestampRouter:
    topic_format: str
    timestamp_format: str
    format_timestamp: Callable[[int], str] = field(compare=False, repr=False)

    @classmethod
    def configure(cls, s: Settings, side: str) -> TimestampRouter | None:
        topic_format = s.string("topic.format", "${topic}-${timestamp}")
        timestamp_format = s.string("timestamp.format", "yyyyMMdd")
        formatter = simple_date_format(s, "timestamp.format", timestamp_format)
        return None if formatter is None else cls(topic_format, timestamp_format, formatter)

    def apply(self, record: Record) -> Record:
        if record.timestamp is None or record.timestamp < 0:
            raise TransformError(f"Timestamp missing on record {record.where}")
        topic = self.topic_format.replace("${topic}", record.topic)
        return record.transformed(
            topic=topic.replace("${timestamp}", self.format_timestamp(record.timestamp))
        )


def simple_date_format(s: Settings, name: str, pattern: str) -> Callable[[int], str] | None:
    try:
        return formatter(pattern)
    except PatternError as error:
        s.problem(name, f"{pattern!r}: {error}")
        return None


@dataclass(frozen=True, slots=True)
class Filter:
    """Drops every record it is applied to: a predicate (with negate) chooses which."""

    @classmethod
    def configure(cls, s: Settings, side: str) -> Filter:
        return cls()

    def apply(self, record: Record) -> None:
        return None
