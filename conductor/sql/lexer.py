"""SQL lexer: source text -> frozen tokens with their offsets, lines and columns.

Words (keywords, names, numbers) are one NAME kind; the parser decides which is which,
comparing keywords case-insensitively.  A word may hold '-' after its first character, as
Kafka topic names do (``my-topic``); a '-' before a digit starts a negative number, and an
integer followed by '.' and a digit runs on as a decimal (``-1.5`` is one word).
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterator
from dataclasses import dataclass

from conductor.kcql.lexer import read_quoted
from conductor.sql.errors import SqlSyntaxError


class TokenKind(enum.Enum):
    NAME = "name"
    QUOTED_NAME = "back-quoted name"
    STRING = "string"
    COMPARATOR = "comparator"
    COMMA = "','"
    DOT = "'.'"
    STAR = "'*'"
    LPAREN = "'('"
    RPAREN = "')'"
    SEMI = "';'"
    CHAR = "character"
    EOF = "end of input"


PUNCTUATION = {
    ",": TokenKind.COMMA,
    ".": TokenKind.DOT,
    "*": TokenKind.STAR,
    "(": TokenKind.LPAREN,
    ")": TokenKind.RPAREN,
    ";": TokenKind.SEMI,
}
COMPARATORS = ("<=", ">=", "<>", "!=", "=", "<", ">")  # two-character ones first
QUOTES = {"'": (TokenKind.STRING, "string"), "`": (TokenKind.QUOTED_NAME, "quoted name")}
DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    value: str  # the word, the unescaped string / back-quoted name, the comparator or character
    start: int  # offset in the whole source text
    end: int
    line: int  # 1-based
    column: int  # 1-based


def tokenize(source: str, offset: int = 0) -> Iterator[Token]:
    """Yield the tokens of ``source`` from ``offset`` on, ending with one EOF token.

    The EOF token sits just after the last non-blank character, so "found end of input"
    points at the end of the text the user typed rather than at trailing newlines.
    """
    line_starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]

    def make(kind: TokenKind, value: str, start: int, end: int) -> Token:
        line = bisect.bisect_right(line_starts, start)
        return Token(kind, value, start, end, line, start - line_starts[line - 1] + 1)

    pos, length = offset, len(source)
    while True:
        while pos < length and source[pos].isspace():
            pos += 1
        if pos >= length:
            end = max(len(source.rstrip()), offset)
            yield make(TokenKind.EOF, "", end, end)
            return
        ch = source[pos]
        if ch.isalnum() or ch == "_" or (ch == "-" and source[pos + 1 : pos + 2] in DIGITS):
            end = read_word(source, pos)
            yield make(TokenKind.NAME, source[pos:end], pos, end)
        elif ch in QUOTES:
            kind, what = QUOTES[ch]
            value, end = read_quoted(source, pos)
            if end < 0:
                raise SqlSyntaxError(
                    f"Unterminated {what} starting",
                    source,
                    pos,
                    expected=f"a closing {ch}",
                    found="end of input",
                )
            yield make(kind, value, pos, end)
        elif comparator := next((c for c in COMPARATORS if source.startswith(c, pos)), None):
            end = pos + len(comparator)
            yield make(TokenKind.COMPARATOR, comparator, pos, end)
        else:
            end = pos + 1
            yield make(PUNCTUATION.get(ch, TokenKind.CHAR), ch, pos, end)
        pos = end


def read_word(source: str, start: int) -> int:
    """Return the offset after the word at ``start``, a decimal's fraction included."""
    end = scan_word(source, start + 1)
    digits = source[start + 1 if source[start] == "-" else start : end]
    if (
        digits
        and set(digits) <= DIGITS
        and source[end : end + 1] == "."
        and source[end + 1 : end + 2] in DIGITS
    ):
        end = scan_word(source, end + 1)
    return end


def scan_word(source: str, pos: int) -> int:
    while pos < len(source) and (source[pos].isalnum() or source[pos] in "_-"):
        pos += 1
    return pos
