"""KCQL lexer: source text -> frozen tokens with their offsets, lines and columns.

Words (keywords, identifiers, numbers) are one NAME kind; the parser decides which is which,
comparing keywords case-insensitively.  Characters the grammar has no use for become CHAR
tokens, so the parser can report them ("found '{'") or glue them into a raw value
(``WITHINDEXSUFFIX=_{YYYY-MM-dd}``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator

from conductor.kcql.errors import KcqlSyntaxError
from conductor.syntax import Token, scan


class TokenKind(enum.Enum):
    NAME = "name"
    QUOTED_NAME = "back-quoted name"
    STRING = "string"
    COMMA = "','"
    DOT = "'.'"
    STAR = "'*'"
    EQUALS = "'='"
    LPAREN = "'('"
    RPAREN = "')'"
    SEMI = "';'"
    CHAR = "character"
    EOF = "end of input"


PUNCTUATION = {
    ",": TokenKind.COMMA,
    ".": TokenKind.DOT,
    "*": TokenKind.STAR,
    "=": TokenKind.EQUALS,
    "(": TokenKind.LPAREN,
    ")": TokenKind.RPAREN,
    ";": TokenKind.SEMI,
}
QUOTES = {"'": (TokenKind.STRING, "string"), "`": (TokenKind.QUOTED_NAME, "quoted name")}


def is_word_char(ch: str) -> bool:
    # Stream-Reactor's FIELD and TOPICNAME characters: '@' as in Elasticsearch's @timestamp,
    # '/', ':', '+', '{' and '}' in names of other systems (a store refuses what it cannot hold).
    return ch.isalnum() or ch in WORD_PUNCTUATION


WORD_PUNCTUATION = frozenset("_-@/:+{}")


def tokenize(source: str, offset: int = 0) -> Iterator[Token]:
    """Yield the tokens of ``source`` from ``offset`` on, ending with one EOF token."""

    def read(pos: int) -> tuple[TokenKind, str, int]:
        ch = source[pos]
        if is_word_char(ch):
            end = pos + 1
            while end < len(source) and is_word_char(source[end]):
                end += 1
            return TokenKind.NAME, source[pos:end], end
        if ch in QUOTES:
            kind, what = QUOTES[ch]
            value, end = read_quoted(source, pos)
            if end < 0:
                raise KcqlSyntaxError(
                    f"Unterminated {what} starting", source, pos,
                    expected=f"a closing {ch}", found="end of input",
                )  # fmt: skip
            return kind, value, end
        return PUNCTUATION.get(ch, TokenKind.CHAR), ch, pos + 1

    return scan(source, offset, TokenKind.EOF, read)


def read_quoted(source: str, start: int) -> tuple[str, int]:
    """Read the quoted text opening at ``start``; a doubled quote stands for itself.

    Return the unescaped text and the offset after the closing quote, or -1 if it never closes.
    """
    quote = source[start]
    parts: list[str] = []
    pos = start + 1
    while True:
        close = source.find(quote, pos)
        if close < 0:
            return "", -1
        parts.append(source[pos:close])
        if source.startswith(quote, close + 1):
            parts.append(quote)
            pos = close + 2
        else:
            return "".join(parts), close + 1


def split_statements(source: str) -> list[tuple[int, int]]:
    """Return the (start, end) spans of the statements separated by top-level ';'.

    A span's end includes its ';'.  A ';' inside '...' or `...` does not separate, and an
    unterminated quote runs to the end of the text, exactly as the lexer reads it.
    """
    spans: list[tuple[int, int]] = []
    start = pos = 0
    while pos < len(source):
        ch = source[pos]
        if ch in QUOTES:
            _, end = read_quoted(source, pos)
            pos = len(source) if end < 0 else end
            continue
        pos += 1
        if ch == ";":
            spans.append((start, pos))
            start = pos
    if start < len(source):
        spans.append((start, len(source)))
    return spans


def split_path(text: str) -> list[str] | None:
    """A quoted target's parts, read as Stream-Reactor reads them: one enclosing pair of single
    quotes dropped (Kcql.unescape), then split at the dots outside '...', quotes dropped
    (QuotedPathSplitter): `_key.'a.b'.c` -> ['_key', 'a.b', 'c'].  None if a part is empty.
    """
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    segments: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif ch == "." and not quoted:
            segments.append("".join(current))
            current = []
        else:
            current.append(ch)
    segments.append("".join(current))
    return None if "" in segments else segments
