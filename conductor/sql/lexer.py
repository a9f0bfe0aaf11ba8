"""SQL lexer: source text -> frozen tokens with their offsets, lines and columns.

Words (keywords, names, numbers) are one NAME kind; the parser decides which is which,
comparing keywords case-insensitively.  A word may hold '-' after its first character, as
Kafka topic names do (``my-topic``); a '-' before a digit starts a negative number, and an
integer followed by '.' and a digit runs on as a decimal (``-1.5`` is one word).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator

from conductor.kcql.lexer import read_quoted
from conductor.sql.errors import SqlSyntaxError
from conductor.syntax import Token, scan


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


def tokenize(source: str, offset: int = 0) -> Iterator[Token]:
    """Yield the tokens of ``source`` from ``offset`` on, ending with one EOF token."""

    def read(pos: int) -> tuple[TokenKind, str, int]:
        ch = source[pos]
        if ch.isalnum() or ch == "_" or (ch == "-" and source[pos + 1 : pos + 2] in DIGITS):
            end = read_word(source, pos)
            return TokenKind.NAME, source[pos:end], end
        if ch in QUOTES:
            kind, what = QUOTES[ch]
            value, end = read_quoted(source, pos)
            if end < 0:
                raise SqlSyntaxError(
                    f"Unterminated {what} starting", source, pos,
                    expected=f"a closing {ch}", found="end of input",
                )  # fmt: skip
            return kind, value, end
        if comparator := next((c for c in COMPARATORS if source.startswith(c, pos)), None):
            return TokenKind.COMPARATOR, comparator, pos + len(comparator)
        return PUNCTUATION.get(ch, TokenKind.CHAR), ch, pos + 1

    return scan(source, offset, TokenKind.EOF, read)


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
