"""java.text.SimpleDateFormat patterns, in UTC, as TimestampRouter and TimestampConverter set them:
the numeric letters y M d H m s S, 'quoted' text ('' for a quote) and other characters as they
are. Parsing is lenient, as SimpleDateFormat's default (month 13 is next January) and, as
DateFormat.parse, reads from the start and leaves what follows the pattern."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

LETTERS = "yMdHmsS"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# letter -> the time unit in ms that the field changes with (to reuse the last text formatted)
UNITS = {"y": 86_400_000, "M": 86_400_000, "d": 86_400_000, "H": 3_600_000, "m": 60_000, "s": 1000, "S": 1}

Token = tuple[str, str]  # ("field", "yyyy") or ("text", "-")


class PatternError(ValueError):
    pass


def tokenize(pattern: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(pattern):
        ch = pattern[pos]
        if ch == "'":
            end = pos + 1
            text = []
            while True:
                if end >= len(pattern):
                    raise PatternError(f"Unterminated quote at position {pos + 1}")
                if pattern[end] == "'":
                    if pattern.startswith("''", end):
                        text.append("'")
                        end += 2
                        continue
                    break
                text.append(pattern[end])
                end += 1
            tokens.append(("text", "".join(text) if end > pos + 1 else "'"))
            pos = end + 1
        elif ch.isascii() and ch.isalpha():
            end = pos
            while end < len(pattern) and pattern[end] == ch:
                end += 1
            run = pattern[pos:end]
            if ch not in LETTERS or (ch == "M" and len(run) > 2):
                raise PatternError(
                    f"{run!r} is not supported yet; conductor reads the numbers y, M, d, H, m, s, S"
                )
            tokens.append(("field", run))
            pos = end
        else:
            tokens.append(("text", ch))
            pos += 1
    return tokens


def formatter(pattern: str) -> Callable[[int], str]:
    """Epoch milliseconds -> text; the last text is kept for the pattern's finest unit."""
    tokens = tokenize(pattern)
    unit = min((UNITS[value[0]] for kind, value in tokens if kind == "field"), default=None)
    last: list[tuple[int, str]] = [(-(1 << 64), "")]

    def format_ms(epoch_ms: int) -> str:
        key = epoch_ms // unit if unit else 0
        if last[0][0] == key:
            return last[0][1]
        t = EPOCH + timedelta(milliseconds=epoch_ms)
        numbers = {"y": t.year, "M": t.month, "d": t.day, "H": t.hour, "m": t.minute, "s": t.second}
        numbers["S"] = t.microsecond // 1000
        parts = []
        for kind, value in tokens:
            if kind == "text":
                parts.append(value)
            elif value == "yy":
                parts.append(f"{t.year % 100:02d}")
            else:
                parts.append(f"{numbers[value[0]]:0{len(value)}d}")
        text = "".join(parts)
        last[0] = (key, text)
        return text

    return format_ms


def parser(pattern: str) -> Callable[[str], int | None]:
    """Text -> epoch milliseconds, or None when the text does not match the pattern."""
    tokens = tokenize(pattern)
    regex, fields = [], []
    for index, (kind, value) in enumerate(tokens):
        if kind == "text":
            regex.append(re.escape(value))
            continue
        abutting = index + 1 < len(tokens) and tokens[index + 1][0] == "field"
        regex.append(f"(\\d{{{len(value)}}})" if abutting else "(\\d+)")
        fields.append(value)
    compiled = re.compile("".join(regex))

    def parse(text: str) -> int | None:
        match = compiled.match(text)
        if match is None:
            return None
        found = {"y": 1970, "M": 1, "d": 1, "H": 0, "m": 0, "s": 0, "S": 0}
        for run, digits in zip(fields, match.groups(), strict=True):
            number = int(digits)
            if run == "yy" and len(digits) == 2:
                number += 2000 if number < (datetime.now(UTC).year + 20) % 100 else 1900
            found[run[0]] = number
        months = found["y"] * 12 + found["M"] - 1
        try:
            start = datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)
        except ValueError:
            return None
        moment = start + timedelta(
            days=found["d"] - 1,
            hours=found["H"],
            minutes=found["m"],
            seconds=found["s"],
            milliseconds=found["S"],
        )
        delta = moment - EPOCH
        return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000

    return parse
