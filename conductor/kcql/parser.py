"""KCQL parser: recursive descent, one ``parse_<rule>`` method per grammar rule.

Keywords are matched in any case; identifiers keep theirs.  The statement keywords below are
reserved where a name is expected (back-quote them to use them as names); clause keywords
are not, so a field may be called ``ttl``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, TypeVar

from conductor.kcql.ast import (
    METADATA,
    PREFIXES,
    Field,
    FieldPath,
    Source,
    Statement,
    Target,
    WriteMode,
    spell,
)  # fmt: skip
from conductor.kcql.dateformat import DateFormatError, translate
from conductor.kcql.errors import KcqlSyntaxError
from conductor.kcql.lexer import Token, TokenKind, split_path, split_statements, tokenize
from conductor.syntax import TokenParser

T = TypeVar("T")
RESERVED = frozenset({"INSERT", "UPSERT", "INTO", "SELECT", "FROM", "AS"})
CLAUSES = (
    "IGNORE", "PK", "AUTOCREATE", "WITHDOCTYPE", "WITHINDEXSUFFIX", "WITHPIPELINE", "TTL",
    "BATCH", "PROPERTIES",
)  # fmt: skip
END = (TokenKind.SEMI, TokenKind.EOF)
QUOTED_PREFIX = re.compile(r"(_key|_value)(\.|$)|_header\.")
RAW_TEXT = (TokenKind.NAME, TokenKind.DOT, TokenKind.CHAR, TokenKind.STAR)


def parse_kcql(text: str) -> tuple[Statement, ...]:
    """Parse one or more ';'-separated statements; raise KcqlSyntaxError at the first error."""
    return Parser(text).parse_document()


def parse_kcql_many(text: str) -> tuple[list[Statement], list[KcqlSyntaxError]]:
    """Parse every statement, collecting one error per statement that does not parse.

    The text is split at top-level ';' first, so an error in one statement does not hide the
    next; positions stay relative to the whole text.  A text without any statement gives
    one error.
    """
    statements: list[Statement] = []
    errors: list[KcqlSyntaxError] = []
    for start, end in split_statements(text):
        if not text[start:end].rstrip(";").strip():
            continue
        try:
            statements.append(Parser(text, start).parse_statement())
        except KcqlSyntaxError as err:
            errors.append(err)
    if not statements and not errors:
        try:
            Parser(text).parse_document()
        except KcqlSyntaxError as err:
            errors.append(err)
    return statements, errors


class Parser(TokenParser):
    """Parses KCQL text from ``offset`` on, one token of lookahead in ``self.token``."""

    Kind = TokenKind
    Error = KcqlSyntaxError

    def __init__(self, source: str, offset: int = 0) -> None:
        super().__init__(source, tokenize(source, offset))

    # -- grammar rules -----------------------------------------------------------------

    def parse_document(self) -> tuple[Statement, ...]:
        """document := [statement] {';' [statement]} EOF   (at least one statement)"""
        statements: list[Statement] = []
        while True:
            while self.token.kind is TokenKind.SEMI:
                self.advance()
            if self.token.kind is TokenKind.EOF:
                break
            statements.append(self.parse_statement())
        if not statements:
            raise self.unexpected("'INSERT' or 'UPSERT'")
        return tuple(statements)

    def parse_statement(self) -> Statement:
        """statement := write_mode 'INTO' target 'SELECT' projection 'FROM' topic {clause}"""
        first = self.token
        write_mode = self.parse_write_mode()
        self.expect_keyword("INTO")
        target = self.parse_target()
        self.expect_keyword("SELECT")
        fields = self.parse_projection()
        self.expect_keyword("FROM")
        topic = self.parse_topic()
        clauses = self.parse_clauses()
        return Statement(
            write_mode, target, topic, fields, **clauses,
            text=self.source[first.start : self.previous.end],
            start=first.start, line=first.line, column=first.column,
        )  # fmt: skip

    def parse_write_mode(self) -> WriteMode:
        """write_mode := 'INSERT' | 'UPSERT'"""
        if self.optional_keyword("INSERT"):
            return "INSERT"
        if self.optional_keyword("UPSERT"):
            return "UPSERT"
        raise self.unexpected("'INSERT' or 'UPSERT'")

    def parse_target(self) -> Target:
        """target := QUOTED_NAME | STRING | path
        where the path's first segment may be '_key' or '_value' (alone: the whole key or value)
        or '_header' (with a header name after it).  A quoted target reads as if unquoted, split
        at the dots outside '...': `_header.'a.b'` routes by the header named a.b."""
        first = self.token
        quoted_alone = first.kind is TokenKind.STRING or (
            first.kind is TokenKind.QUOTED_NAME and not self.peek_is(TokenKind.DOT)
        )
        if quoted_alone:
            self.advance()
            segments = split_path(first.value)
            if segments is None:
                raise KcqlSyntaxError(
                    f"Expected a target name, found {self.describe(first)}, which has an empty part",
                    self.source, first.start, expected="a target name", found=self.describe(first),
                )  # fmt: skip
            path = tuple(segments)
        else:
            path = self.parse_path("a target name")[0]
        kind: Any = PREFIXES.get(path[0], "static")
        if kind == "header" and len(path) == 1:
            found = self.describe(self.previous)
            raise KcqlSyntaxError(
                f"Expected '_header.<name>' (the header whose content names the target), found {found}",
                self.source, first.start, expected="'_header.<name>'", found=found,
            )  # fmt: skip
        if kind != "static":
            path = path[1:]
        return Target(kind, path, start=first.start, line=first.line, column=first.column)

    def parse_projection(self) -> tuple[Field, ...]:
        """projection := field {',' field}   (no field twice under one name)"""
        fields = self.delimited(self.parse_field)
        seen: set[tuple[str, tuple[str, ...], bool, str | None]] = set()
        for selected in fields:
            identity = (selected.source, selected.path, selected.wildcard, selected.name)
            if identity in seen:
                raise KcqlSyntaxError(
                    f"Field '{spell(selected.source, selected.path, False) or '*'}' is selected twice",
                    self.source, selected.start,
                )  # fmt: skip
            seen.add(identity)
        return fields

    def parse_field(self) -> Field:
        """field := '*' | 'now' '(' ')' ['AS' alias] | reference '.' '*' | reference ['AS' alias]
        (`now()` back-quoted too, as Stream-Reactor's Cassandra sink writes it)"""
        first = self.token
        if first.kind is TokenKind.STAR:
            self.advance()
            source: Source = "value"
            path: tuple[str, ...] = ()
            wildcard = True
        elif self.at_now():
            source, path, wildcard = "now", (), False
        else:
            source, path, wildcard = self.parse_reference(wildcard_ok=True)
        alias = None
        if not wildcard and self.optional_keyword("AS"):
            alias = self.parse_alias()
        return Field(source, path, wildcard, alias, start=first.start, line=first.line, column=first.column)

    def at_now(self) -> bool:
        """Consume now() or its back-quoted form if it comes next."""
        token = self.token
        if token.kind is TokenKind.QUOTED_NAME and token.value.lower() == "now()":
            self.advance()
            return True
        if token.kind is TokenKind.NAME and token.value.lower() == "now" and self.peek_is(TokenKind.LPAREN):
            self.advance()
            self.advance()
            self.expect(TokenKind.RPAREN, "')' after 'now(' (now() takes no argument)")
            return True
        return False

    def parse_alias(self) -> str:
        """alias := NAME | QUOTED_NAME | STRING"""
        if self.token.kind is TokenKind.STRING and self.token.value:
            return self.advance().value
        return self.parse_segment("an alias")

    def parse_field_path(self) -> FieldPath:
        """field_path := reference"""
        first = self.token
        source, path, _ = self.parse_reference(wildcard_ok=False)
        return FieldPath(source, path, start=first.start, line=first.line, column=first.column)

    def parse_reference(self, wildcard_ok: bool) -> tuple[Source, tuple[str, ...], bool]:
        """reference := ('_key' | '_value') ['.' path] | '_header' '.' path | '_' '.' metadata | path
        (where ``wildcard_ok``, a key or value path may end in '.' '*')"""
        prefix = self.token
        if prefix.kind is TokenKind.NAME and prefix.value == "_" and self.peek_is(TokenKind.DOT):
            return self.parse_metadata(wildcard_ok)
        if prefix.kind is TokenKind.QUOTED_NAME and QUOTED_PREFIX.match(prefix.value):
            # `_key.'a b'` as Stream-Reactor's Cassandra sink reads it: a key path, not a name.
            self.advance()
            head, *path = split_path(prefix.value) or [prefix.value]
            return PREFIXES[head], tuple(path), False
        if prefix.kind is not TokenKind.NAME or prefix.value not in PREFIXES:
            return ("value", *self.parse_path("a field name", wildcard_ok))
        source = PREFIXES[prefix.value]
        self.advance()
        if source != "header" and self.token.kind is not TokenKind.DOT:
            return source, (), False
        self.expect(TokenKind.DOT, f"'.' after '{prefix.value}'")
        return self.parse_subpath(source, wildcard_ok and source != "header")

    def parse_subpath(self, source: Source, wildcard_ok: bool) -> tuple[Source, tuple[str, ...], bool]:
        """subpath := '*' | path   (the '*' only where ``wildcard_ok``)"""
        if wildcard_ok and self.token.kind is TokenKind.STAR:
            self.advance()
            return source, (), True
        return (source, *self.parse_path("a field name", wildcard_ok))

    def parse_metadata(self, wildcard_ok: bool) -> tuple[Source, tuple[str, ...], bool]:
        """metadata := '_' '.' ('topic' | 'partition' | 'offset' | 'timestamp' | 'key' '.' subpath)
        Stream-Reactor's older spelling of the record's coordinates and of key fields."""
        self.advance()
        self.advance()
        token = self.token
        name = token.value.lower() if token.kind is TokenKind.NAME else ""
        if name in METADATA:
            self.advance()
            return name, (), False  # type: ignore[return-value]
        if name == "key":
            self.advance()
            self.expect(TokenKind.DOT, "'.' and a key field after '_.key'")
            return self.parse_subpath("key", wildcard_ok)
        raise self.unexpected("'key', 'topic', 'partition', 'offset' or 'timestamp' after '_.'")

    def parse_path(self, expected: str, wildcard_ok: bool = False) -> tuple[tuple[str, ...], bool]:
        """path := segment {'.' segment} ['.' '*']   (the '*' only where ``wildcard_ok``)"""
        segments = [self.parse_segment(expected)]
        while self.token.kind is TokenKind.DOT:
            self.advance()
            if wildcard_ok and self.token.kind is TokenKind.STAR:
                self.advance()
                return tuple(segments), True
            segments.append(self.parse_segment("a field name" if wildcard_ok else expected))
        return tuple(segments), False

    def parse_segment(self, expected: str) -> str:
        """segment := NAME | QUOTED_NAME   (a NAME that is not a reserved keyword)"""
        token = self.token
        if token.kind is TokenKind.QUOTED_NAME and token.value:
            return self.advance().value
        if token.kind is TokenKind.NAME and token.value.upper() not in RESERVED:
            return self.advance().value
        raise self.unexpected(expected)

    def parse_topic(self) -> str:
        """topic := STRING | segment {'.' segment}"""
        if self.token.kind is TokenKind.STRING and self.token.value:
            return self.advance().value
        return ".".join(self.parse_path("a topic name")[0])

    def parse_clauses(self) -> dict[str, Any]:
        """clauses := {ignore | primary_key | autocreate | doc_type | index_suffix | pipeline
        | ttl | batch | properties}   (each at most once, in any order)"""
        handlers: dict[str, Callable[[], tuple[str, Any]]] = {
            "IGNORE": self.parse_ignore,
            "PK": self.parse_primary_key,
            "AUTOCREATE": self.parse_autocreate,
            "WITHDOCTYPE": self.parse_doc_type,
            "WITHINDEXSUFFIX": self.parse_index_suffix,
            "WITHPIPELINE": self.parse_pipeline,
            "TTL": self.parse_ttl,
            "BATCH": self.parse_batch,
            "PROPERTIES": self.parse_properties,
        }
        clauses: dict[str, Any] = {}
        seen: set[str] = set()
        while self.token.kind not in END:
            token = self.token
            keyword = token.value.upper() if token.kind is TokenKind.NAME else ""
            if keyword not in handlers:
                expected = f"one of: {', '.join(CLAUSES)}, or ';'"
                raise KcqlSyntaxError(
                    f"Unexpected {self.describe(token)} after the statement; expected {expected}",
                    self.source, token.start, expected=expected, found=self.describe(token),
                )  # fmt: skip
            if keyword in seen:
                raise KcqlSyntaxError(
                    f"Duplicate clause '{keyword}'", self.source, token.start,
                    found=self.describe(token),
                )  # fmt: skip
            seen.add(keyword)
            name, value = handlers[keyword]()
            clauses[name] = value
        return clauses

    def parse_ignore(self) -> tuple[str, Any]:
        """ignore := 'IGNORE' field_path {',' field_path}"""
        self.expect_keyword("IGNORE")
        return "ignored", self.delimited(self.parse_field_path)

    def parse_primary_key(self) -> tuple[str, Any]:
        """primary_key := 'PK' field_path {',' field_path}"""
        self.expect_keyword("PK")
        return "primary_keys", self.delimited(self.parse_field_path)

    def parse_autocreate(self) -> tuple[str, Any]:
        """autocreate := 'AUTOCREATE'"""
        self.expect_keyword("AUTOCREATE")
        return "autocreate", True

    def parse_doc_type(self) -> tuple[str, Any]:
        """doc_type := 'WITHDOCTYPE' '=' option_value"""
        return "doc_type", self.parse_option_value("WITHDOCTYPE", "a document type")

    def parse_pipeline(self) -> tuple[str, Any]:
        """pipeline := 'WITHPIPELINE' '=' option_value"""
        return "pipeline", self.parse_option_value("WITHPIPELINE", "a pipeline name")

    def parse_option_value(self, keyword: str, what: str) -> str:
        """option_value := STRING | segment {'.' segment}"""
        self.parse_assignment(keyword)
        if self.token.kind is TokenKind.STRING:
            return self.advance().value
        return ".".join(self.parse_path(f"{what} after '{keyword}='")[0])

    def parse_index_suffix(self) -> tuple[str, Any]:
        """index_suffix := 'WITHINDEXSUFFIX' '=' (STRING | raw_text)
        raw_text := the tokens up to the next blank or ';', e.g. _{YYYY-MM-dd}"""
        self.parse_assignment("WITHINDEXSUFFIX")
        first = self.token
        if first.kind in END:
            raise self.unexpected("an index suffix after 'WITHINDEXSUFFIX='")
        last = self.advance()
        while self.token.start == last.end and self.token.kind not in END:
            last = self.advance()
        quoted = last is first and first.kind is TokenKind.STRING
        suffix = first.value if quoted else self.source[first.start : last.end]
        try:
            translate(suffix)
        except DateFormatError as err:
            offset = first.start if quoted else first.start + err.position - 1
            raise KcqlSyntaxError(f"{err.reason} in WITHINDEXSUFFIX", self.source, offset) from None
        return "index_suffix", suffix

    def parse_ttl(self) -> tuple[str, Any]:
        """ttl := 'TTL' '=' INTEGER   (1 or more: seconds)"""
        return "ttl", self.parse_integer("TTL", minimum=1)

    def parse_batch(self) -> tuple[str, Any]:
        """batch := 'BATCH' '=' INTEGER   (1 or more)"""
        return "batch_size", self.parse_integer("BATCH", minimum=1)

    def parse_integer(self, keyword: str, minimum: int) -> int:
        """integer_option := keyword '=' INTEGER"""
        self.parse_assignment(keyword)
        token = self.token
        if (
            token.kind is TokenKind.NAME
            and token.value.isascii()
            and token.value.isdigit()
            and int(token.value) >= minimum
        ):
            return int(self.advance().value)
        what = "an integer" if minimum <= 0 else "a positive integer"
        raise self.unexpected(f"{what} after '{keyword}='")

    def parse_properties(self) -> tuple[str, Any]:
        """properties := 'PROPERTIES' '(' [property {',' property}] ')'"""
        self.expect_keyword("PROPERTIES")
        self.expect(TokenKind.LPAREN, "'(' after 'PROPERTIES'")
        pairs: tuple[tuple[Token, str], ...] = ()
        if self.token.kind is not TokenKind.RPAREN:
            pairs = self.delimited(self.parse_property)
        self.expect(TokenKind.RPAREN, "',' or ')'")
        properties: dict[str, str] = {}
        for key, value in pairs:
            if key.value in properties:
                raise KcqlSyntaxError(
                    f"Duplicate property {self.describe(key)}", self.source, key.start,
                    found=self.describe(key),
                )  # fmt: skip
            properties[key.value] = value
        return "properties", MappingProxyType(properties)

    def parse_property(self) -> tuple[Token, str]:
        """property := property_text '=' property_text"""
        key = self.parse_property_text("a property key")
        self.expect(TokenKind.EQUALS, f"'=' after the property key {self.describe(key)}")
        return key, self.parse_property_text("a property value").value

    def parse_property_text(self, expected: str) -> Token:
        """property_text := STRING | raw_text
        raw_text := touching tokens up to a blank, ',', ')' or '=': a.b-c, 23"""
        first = self.token
        if first.kind is TokenKind.STRING:
            return self.advance()
        if first.kind not in (TokenKind.NAME, TokenKind.DOT, TokenKind.CHAR, TokenKind.QUOTED_NAME):
            raise self.unexpected(expected)
        last = self.advance()
        while self.token.start == last.end and self.token.kind in RAW_TEXT:
            last = self.advance()
        if last is first:
            return first
        text = self.source[first.start : last.end]
        return Token(TokenKind.NAME, text, first.start, last.end, first.line, first.column)

    def parse_assignment(self, keyword: str) -> None:
        """assignment := keyword '='"""
        self.expect_keyword(keyword)
        self.expect(TokenKind.EQUALS, f"'=' after '{keyword}'")
