"""The WITHINDEXSUFFIX pattern (``_{YYYY-MM-dd}``) compiled once into a fast formatter.

Text outside ``{...}`` is kept as is; inside, Java DateTimeFormatter letters are read, with
'quoted' literals ('' for a quote) and other non-letters kept.  Times are UTC.  ``YYYY`` is the
calendar year: Stream-Reactor passes it to Java, where it is the week-based year (2025-12-29
formats as 2026); we do not copy that bug.
"""

from __future__ import annotations

import calendar
import re
import string
import time
from collections.abc import Callable

from conductor.errors import ConductorError

DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS = 86_400_000, 3_600_000, 60_000, 1000

# (letter, run length) -> (str.format field over (year, year % 100, month, day, hour,
# minute, second), the time unit in ms that the field changes with)
FIELDS: dict[tuple[str, int], tuple[str, int]] = {
    **{(letter, 4): ("{0:04d}", DAY_MS) for letter in "yYu"},
    **{(letter, 2): ("{1:02d}", DAY_MS) for letter in "yYu"},
    ("M", 2): ("{2:02d}", DAY_MS),
    ("M", 1): ("{2}", DAY_MS),
    ("d", 2): ("{3:02d}", DAY_MS),
    ("d", 1): ("{3}", DAY_MS),
    ("H", 2): ("{4:02d}", HOUR_MS),
    ("H", 1): ("{4}", HOUR_MS),
    ("m", 2): ("{5:02d}", MINUTE_MS),
    ("m", 1): ("{5}", MINUTE_MS),
    ("s", 2): ("{6:02d}", SECOND_MS),
    ("s", 1): ("{6}", SECOND_MS),
}
KNOWN_LETTERS = frozenset(letter for letter, _ in FIELDS)


class DateFormatError(ConductorError):
    """A WITHINDEXSUFFIX pattern we cannot format; ``position`` is 1-based in ``pattern``."""

    def __init__(self, reason: str, pattern: str, position: int) -> None:
        self.reason = reason
        self.pattern = pattern
        self.position = position
        super().__init__(f"{reason} at position {position} of {pattern!r}")


def compile_suffix(pattern: str) -> Callable[[int], str]:
    """Return a function from epoch milliseconds (UTC) to the formatted suffix.

    The pattern is translated once to a ``str.format`` template; the last result is kept,
    keyed by the finest unit the pattern shows (day, hour, minute or second), so records of
    the same day (for a daily suffix) cost one integer division and a comparison.
    """
    template, unit = translate(pattern)
    if unit is None:
        constant = template.format()
        return lambda epoch_ms: constant
    last: tuple[int, str] = (-1 << 64, "")

    def format_suffix(epoch_ms: int) -> str:
        nonlocal last
        key = epoch_ms // unit
        cached = last
        if cached[0] == key:
            return cached[1]
        t = time.gmtime(epoch_ms // 1000)
        text = template.format(t.tm_year, t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
        last = (key, text)
        return text

    return format_suffix


# str.format field -> the regex of what it writes (a repeated field must repeat its value).
FIELD_PATTERNS = {"04d": r"(\d{4})", "02d": r"(\d{2})", "": r"(\d{1,2})"}


def compile_suffix_reader(pattern: str) -> Callable[[str], tuple[int, int] | None] | None:
    """Return a function from a formatted suffix back to the period it names, as epoch ms (UTC)
    of its start and of its end (the next period's start), or None for text that
    ``compile_suffix(pattern)`` would not have written: another format, an impossible date, an
    ambiguous unpadded one. None instead of a function for a pattern that does not name one
    period: no year, or a finer field without the ones above it (``_{dd}``, ``_{yyyy-dd}``).

    >>> read = compile_suffix_reader("_{yyyy-MM-dd}")
    >>> read("_2026-11-30"), read("_2026-02-30"), read("_20261130")
    ((1795996800000, 1796083200000), None, None)
    """
    template, unit = translate(pattern)
    if unit is None:
        return None
    parts, fields = [], []
    for text, name, spec, _ in string.Formatter().parse(template):
        parts.append(re.escape(text))
        if name is not None:
            parts.append(FIELD_PATTERNS[spec])
            fields.append(int(name))
    # (year, month, day, hour, minute, second): the fields shown must run from the year down.
    shown = [bool({0, 1} & set(fields))] + [position in fields for position in range(2, 7)]
    finest = shown.index(False) - 1 if False in shown else len(shown) - 1
    if finest < 0 or any(shown[finest + 1 :]):
        return None
    greedy = re.compile("".join(parts)).fullmatch
    # Unpadded fields side by side (yyyyMd) can split digits more than one way: the greedy and
    # the lazy reading are the two extremes, so when they differ the name is ambiguous.
    lazy = re.compile("".join(parts).replace(r"{1,2})", r"{1,2}?)")).fullmatch
    write = compile_suffix(pattern)

    def read_suffix(text: str) -> tuple[int, int] | None:
        found = greedy(text)
        if found is None or found.groups() != lazy(text).groups():
            return None
        values = [2000, 0, 1, 1, 0, 0, 0]  # (year, yy, month, day, hour, minute, second)
        for position, digits in zip(fields, found.groups(), strict=True):
            values[position] = int(digits)
        if 0 not in fields:
            values[0] = 2000 + values[1]
        year, _, month, day, hour, minute, second = values
        if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
            return None
        start = calendar.timegm((year, month, day, hour, minute, second)) * 1000
        if write(start) != text:  # e.g. two fields that disagree
            return None
        if finest == 0:
            return start, calendar.timegm((year + 1, 1, 1, 0, 0, 0)) * 1000
        if finest == 1:
            return start, calendar.timegm((year + month // 12, month % 12 + 1, 1, 0, 0, 0)) * 1000
        return start, start + (DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS)[finest - 2]

    return read_suffix


def translate(pattern: str) -> tuple[str, int | None]:
    """Return the ``str.format`` template of ``pattern`` and its finest time unit in ms
    (None if it has no date fields)."""
    parts: list[str] = []
    unit: int | None = None
    pos, length = 0, len(pattern)
    while pos < length:
        ch = pattern[pos]
        if ch == "}":
            raise DateFormatError("Unmatched '}'", pattern, pos + 1)
        if ch != "{":
            parts.append(literal(ch))
            pos += 1
            continue
        opening = pos
        pos += 1
        while pos < length and pattern[pos] != "}":
            ch = pattern[pos]
            if ch == "{":
                raise DateFormatError("Nested '{'", pattern, pos + 1)
            if ch == "'":
                text, pos = read_literal(pattern, pos)
                parts.append(literal(text))
            elif ch.isascii() and ch.isalpha():
                run_end = pos
                while run_end < length and pattern[run_end] == ch:
                    run_end += 1
                run = pattern[pos:run_end]
                if ch not in KNOWN_LETTERS:
                    raise DateFormatError(f"Unknown date pattern letter {ch!r}", pattern, pos + 1)
                if (ch, len(run)) not in FIELDS:
                    raise DateFormatError(f"Unsupported date pattern {run!r}", pattern, pos + 1)
                spec, field_unit = FIELDS[ch, len(run)]
                parts.append(spec)
                unit = field_unit if unit is None else min(unit, field_unit)
                pos = run_end
            else:
                parts.append(literal(ch))
                pos += 1
        if pos >= length:
            raise DateFormatError("Unclosed '{'", pattern, opening + 1)
        pos += 1
    return "".join(parts), unit


def read_literal(pattern: str, start: int) -> tuple[str, int]:
    """Read the 'quoted' literal at ``start``; return its text and the offset after it."""
    if pattern.startswith("''", start):
        return "'", start + 2
    pos = start + 1
    text: list[str] = []
    while pos < len(pattern):
        if pattern[pos] == "'":
            if pattern.startswith("'", pos + 1):
                text.append("'")
                pos += 2
                continue
            return "".join(text), pos + 1
        text.append(pattern[pos])
        pos += 1
    raise DateFormatError("Unterminated quote", pattern, start + 1)


def literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
