"""SQL parser for the aggregator's windowed statements: recursive descent, one ``parse_<rule>``
method per grammar rule.

Keywords are matched in any case; identifiers keep theirs.  The keywords in RESERVED are not
names (back-quote them to use them as names); the others, TIMESTAMP and the function names
among them, are keywords only where the grammar expects one, so a field may be called
``timestamp`` or ``count``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TypeVar

from conductor.kcql.lexer import split_statements
from conductor.sql.ast import (
    AGGREGATES,
    PLAIN_NAME,
    Aggregate,
    Aggregation,
    And,
    Comparator,
    Comparison,
    Condition,
    Emit,
    FieldRef,
    GroupItem,
    IsNull,
    Literal,
    Not,
    Operand,
    Or,
    Value,
    Window,
    WindowKind,
)
from conductor.sql.checks import Item, check_items, check_keyed, check_topics
from conductor.sql.errors import SqlSyntaxError
from conductor.sql.lexer import Token, TokenKind, tokenize
from conductor.syntax import TokenParser

T = TypeVar("T")
RESERVED = frozenset({
    "INSERT", "INTO", "SELECT", "FROM", "AS", "KEYED", "WHERE", "WINDOW", "GROUP", "BY", "EMIT",
    "AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE",
})  # fmt: skip
UNITS = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
UNITS |= {f"{unit}S": ms for unit, ms in UNITS.items()}
COMPARATORS: dict[str, Comparator] = {
    "=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
}  # fmt: skip
CONSTANTS: dict[str, Value] = {"TRUE": True, "FALSE": False, "NULL": None}
END = (TokenKind.SEMI, TokenKind.EOF)
INTEGER = re.compile(r"[0-9]+")
NUMBER = re.compile(r"-?([0-9]+)(\.[0-9]+)?")
KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
LONG_MAX = 2**63 - 1  # a Java long: Kafka's timestamps, and the range of a literal
MAX_DEPTH = 64  # of NOT and parentheses: deep enough for people, shallow enough for the stack


def parse_sql(text: str) -> tuple[Aggregation, ...]:
    """Parse one or more ';'-separated statements; raise SqlSyntaxError at the first error."""
    return Parser(text).parse_document()


def parse_sql_many(text: str) -> tuple[list[Aggregation], list[SqlSyntaxError]]:
    """Parse every statement, collecting one error per statement that does not parse.

    The text is split at top-level ';' first, so an error in one statement does not hide the
    next; positions stay relative to the whole text.  As in parse_sql, only the blank after a
    final ';' is not a statement.
    """
    statements: list[Aggregation] = []
    errors: list[SqlSyntaxError] = []
    spans = split_statements(text) or [(0, 0)]
    for index, (start, end) in enumerate(spans):
        if 0 < index == len(spans) - 1 and not text[start:end].strip():
            continue
        try:
            statements.append(Parser(text, start).parse_statement())
        except SqlSyntaxError as err:
            errors.append(err)
    return statements, errors


def one_of(*options: str) -> str:
    """'A', 'B' or 'C'"""
    return options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"


class Parser(TokenParser):
    """Parses SQL text from ``offset`` on, one token of lookahead in ``self.token``."""

    Kind = TokenKind
    Error = SqlSyntaxError

    def __init__(self, source: str, offset: int = 0) -> None:
        super().__init__(source, tokenize(source, offset))
        self.depth = 0

    # -- grammar rules -----------------------------------------------------------------

    def parse_document(self) -> tuple[Aggregation, ...]:
        """document := statement {';' statement} [';']   (at least one statement)"""
        statements = [self.parse_statement()]
        while self.token.kind is TokenKind.SEMI:
            self.advance()
            if self.token.kind is TokenKind.EOF:
                break
            statements.append(self.parse_statement())
        return tuple(statements)

    def parse_statement(self) -> Aggregation:
        """statement := 'INSERT' 'INTO' topic 'SELECT' item {',' item} 'FROM' topic
        [timestamp] [keyed] [where] window group_by [emit]"""
        first = self.expect_keyword("INSERT")
        self.expect_keyword("INTO")
        into = self.token
        output_topic = self.parse_topic()
        select = self.expect_keyword("SELECT")
        named_items = self.delimited(self.parse_item)
        self.expect_keyword("FROM", "',' or 'FROM'")
        input_topic = self.parse_topic()
        # The clauses come in grammar order; a missing WINDOW lists what else could come there.
        could_come = ["'TIMESTAMP'", "'KEYED'", "'WHERE'"]
        timestamp_field: FieldRef | None = None
        keyed: tuple[FieldRef, ...] | None = None
        where: Condition | None = None
        if self.at_keyword("TIMESTAMP"):
            timestamp_field, could_come = self.parse_timestamp(), could_come[1:]
        if self.at_keyword("KEYED"):
            keyed, could_come = self.parse_keyed(), could_come[-1:]
        if self.at_keyword("WHERE"):
            where, could_come = self.parse_where(), ["'AND'", "'OR'"]
        window = self.parse_window(one_of(*could_come, "'WINDOW'"))
        group_by = self.parse_group_by()
        emit: Emit = "FINAL"
        could_end = ["','", "'EMIT'", "';'", "end of input"]
        if self.at_keyword("EMIT"):
            emit, could_end = self.parse_emit(), could_end[2:]
        if self.token.kind not in END:
            raise self.unexpected(one_of(*could_end))
        check_topics(self.source, into.start, output_topic, input_topic)
        check_items(self.source, select.start, named_items, group_by)
        check_keyed(self.source, keyed, group_by)
        return Aggregation(
            output_topic, input_topic, tuple(item for item, _ in named_items), group_by,
            keyed is not None, timestamp_field, where, window, emit,
            text=self.source[first.start : self.previous.end],
            start=first.start, line=first.line, column=first.column,
        )  # fmt: skip

    def parse_topic(self) -> str:
        """topic := topic_name {'.' topic_name}
        (a Kafka topic name: ASCII letters, digits, '.', '_' and '-', at most 249 of them)"""
        first = self.token
        parts = [self.parse_topic_name()]
        while self.token.kind is TokenKind.DOT:
            self.advance()
            parts.append(self.parse_topic_name())
        topic = ".".join(parts)
        if not KAFKA_TOPIC.fullmatch(topic) or topic in (".", ".."):
            expected = "a Kafka topic name (ASCII letters, digits, '.', '_' and '-', at most 249)"
            raise self.unexpected(expected, first, self.previous)
        return topic

    def parse_topic_name(self) -> str:
        """topic_name := NAME | QUOTED_NAME   (a NAME that is not reserved; it may start with a
        digit, as in 2024-readings)"""
        token = self.token
        if token.kind is TokenKind.QUOTED_NAME and token.value:
            return self.advance().value
        if token.kind is TokenKind.NAME and token.value.upper() not in RESERVED:
            return self.advance().value
        raise self.unexpected("a topic name")

    def parse_item(self) -> tuple[Item, int]:
        """item := aggregate ['AS' alias] | field ['AS' alias]
        (returned with the offset of its output name, where a check about the name points)"""
        first = self.token
        place = {"start": first.start, "line": first.line, "column": first.column}
        item: Item
        if self.at_aggregate():
            function, argument = self.parse_aggregate()
            if argument is None:
                item = Aggregate(function, None, "count", **place)
            else:
                item = Aggregate(function, argument, f"{function.lower()}_{'_'.join(argument.path)}", **place)
        else:
            field = self.parse_field()
            item = GroupItem(field, field.path[-1], **place)
        if not self.optional_keyword("AS"):
            return item, first.start
        name_at = self.token.start
        return replace(item, alias=self.parse_name("an alias")), name_at

    def at_aggregate(self) -> bool:
        """A function name followed by '(' (without one, ``count`` is a field)."""
        token = self.token
        return (
            token.kind is TokenKind.NAME
            and token.value.upper() in AGGREGATES
            and self.peek().kind is TokenKind.LPAREN
        )

    def parse_aggregate(self) -> tuple[str, FieldRef | None]:
        """aggregate := 'COUNT' '(' '*' ')'
        | ('COUNT'|'SUM'|'AVG'|'MIN'|'MAX'|'EARLIEST'|'LATEST') '(' field ')'"""
        function = self.advance().value.upper()
        self.expect(TokenKind.LPAREN)
        argument = None
        if function == "COUNT" and self.token.kind is TokenKind.STAR:
            self.advance()
        else:
            argument = self.parse_field("a field name or '*'" if function == "COUNT" else "a field name")
        self.expect(TokenKind.RPAREN, "')'")
        return function, argument

    def parse_field(self, expected: str = "a field name") -> FieldRef:
        """field := name {'.' name}"""
        first = self.token
        path = [self.parse_name(expected)]
        while self.token.kind is TokenKind.DOT:
            self.advance()
            path.append(self.parse_name("a field name"))
        return FieldRef(tuple(path), start=first.start, line=first.line, column=first.column)

    def parse_name(self, expected: str) -> str:
        """name := NAME | QUOTED_NAME
        (a NAME that starts with a letter or '_' and is not reserved; an alias is a name too)"""
        token = self.token
        if token.kind is TokenKind.QUOTED_NAME and token.value:
            return self.advance().value
        if (
            token.kind is TokenKind.NAME
            and PLAIN_NAME.fullmatch(token.value)
            and token.value.upper() not in RESERVED
        ):
            return self.advance().value
        raise self.unexpected(expected)

    def parse_timestamp(self) -> FieldRef:
        """timestamp := 'TIMESTAMP' 'BY' field"""
        self.expect_keyword("TIMESTAMP")
        self.expect_keyword("BY")
        return self.parse_field()

    def parse_keyed(self) -> tuple[FieldRef, ...]:
        """keyed := 'KEYED' 'BY' field {',' field}"""
        self.expect_keyword("KEYED")
        self.expect_keyword("BY")
        return self.delimited(self.parse_field)

    def parse_where(self) -> Condition:
        """where := 'WHERE' or_expr"""
        self.expect_keyword("WHERE")
        return self.parse_or()

    def parse_or(self) -> Condition:
        """or_expr := and_expr {'OR' and_expr}"""
        first = self.token
        items = [self.parse_and()]
        while self.optional_keyword("OR"):
            items.append(self.parse_and())
        if len(items) == 1:
            return items[0]
        return Or(tuple(items), start=first.start, line=first.line, column=first.column)

    def parse_and(self) -> Condition:
        """and_expr := not_expr {'AND' not_expr}"""
        first = self.token
        items = [self.parse_not()]
        while self.optional_keyword("AND"):
            items.append(self.parse_not())
        if len(items) == 1:
            return items[0]
        return And(tuple(items), start=first.start, line=first.line, column=first.column)

    def parse_not(self) -> Condition:
        """not_expr := 'NOT' not_expr | predicate"""
        first = self.token
        if not self.optional_keyword("NOT"):
            return self.parse_predicate()
        with_depth = self.deeper(first)
        condition = self.parse_not()
        self.depth = with_depth
        return Not(condition, start=first.start, line=first.line, column=first.column)

    def parse_predicate(self) -> Condition:
        """predicate := '(' or_expr ')' | operand comparator operand | operand 'IS' ['NOT'] 'NULL'"""
        first = self.token
        if first.kind is TokenKind.LPAREN:
            with_depth = self.deeper(first)
            self.advance()
            condition = self.parse_or()
            self.expect(TokenKind.RPAREN, "'AND', 'OR' or ')'")
            self.depth = with_depth
            return condition
        place = {"start": first.start, "line": first.line, "column": first.column}
        left = self.parse_operand()
        if self.optional_keyword("IS"):
            negated = self.optional_keyword("NOT")
            self.expect_keyword("NULL", "'NOT' or 'NULL'" if not negated else "'NULL'")
            return IsNull(left, negated, **place)
        if self.token.kind is not TokenKind.COMPARATOR:
            raise self.unexpected("a comparator (=, !=, <>, <, <=, >, >=) or 'IS'")
        op = self.advance()
        right = self.parse_operand()
        if (
            isinstance(left, Literal)
            and isinstance(right, Literal)
            and left.value is not None
            and right.value is not None
            and left.kind != right.kind
        ):
            raise SqlSyntaxError(
                f"Cannot compare {left.kind} {self.spelled(first)} with {right.kind} {self.spelled(self.previous)}",
                self.source, first.start,
            )  # fmt: skip
        return Comparison(left, COMPARATORS[op.value], right, **place)

    def parse_operand(self) -> Operand:
        """operand := field | NUMBER | STRING | 'TRUE' | 'FALSE' | 'NULL'
        NUMBER := ['-'] DIGITS ['.' DIGITS]   (within a Java long's range)"""
        token = self.token
        place = {"start": token.start, "line": token.line, "column": token.column}
        if token.kind is TokenKind.STRING:
            return Literal(self.advance().value, **place)
        if token.kind is TokenKind.NAME and token.value.upper() in CONSTANTS:
            return Literal(CONSTANTS[self.advance().value.upper()], **place)
        number = NUMBER.fullmatch(token.value) if token.kind is TokenKind.NAME else None
        if number is None:
            return self.parse_field("a field name or a value")
        whole, fraction = number.groups()
        # Past 19 digits it is out of range anyway, and int() of thousands of digits raises.
        value: int | float = (
            float(token.value) if fraction else int(token.value) if len(whole) <= 19 else 2**63
        )
        if not -LONG_MAX - 1 <= value <= LONG_MAX:
            raise self.unexpected("a number from -2^63 to 2^63-1")
        self.advance()
        return Literal(value, **place)

    def parse_window(self, expected: str) -> Window:
        """window := 'WINDOW' ( 'TUMBLING' '(' 'SIZE' duration [',' 'GRACE' 'PERIOD' duration] ')'
        | 'HOPPING' '(' 'SIZE' duration ',' 'ADVANCE' 'BY' duration [',' 'GRACE' 'PERIOD' duration] ')' )"""
        first = self.expect_keyword("WINDOW", expected)
        kind: WindowKind
        if self.optional_keyword("TUMBLING"):
            kind = "TUMBLING"
        elif self.optional_keyword("HOPPING"):
            kind = "HOPPING"
        else:
            raise self.unexpected("'TUMBLING' or 'HOPPING'")
        self.expect(TokenKind.LPAREN, f"'(' after '{kind}'")
        self.expect_keyword("SIZE")
        size, size_text = self.parse_duration("SIZE", "a SIZE greater than 0")
        advance = size
        if kind == "HOPPING":
            self.expect(TokenKind.COMMA, "',' and 'ADVANCE BY'")
            self.expect_keyword("ADVANCE")
            self.expect_keyword("BY")
            at = self.token
            advance, _ = self.parse_duration("ADVANCE BY", "an ADVANCE greater than 0")
            if advance > size:
                raise self.unexpected(f"an ADVANCE no longer than the SIZE ({size_text})", at, self.previous)
        grace, with_grace = 0, False
        if self.token.kind is TokenKind.COMMA:
            self.advance()
            self.expect_keyword("GRACE")
            self.expect_keyword("PERIOD")
            grace, _ = self.parse_duration("GRACE PERIOD")
            with_grace = True
        self.expect(TokenKind.RPAREN, "')'" if with_grace else "',' or ')'")
        return Window(kind, size, advance, grace, start=first.start, line=first.line, column=first.column)

    def parse_duration(self, after: str, positive: str | None = None) -> tuple[int, str]:
        """duration := INTEGER unit;  unit := MILLISECOND[S] | SECOND[S] | MINUTE[S] | HOUR[S] | DAY[S]
        Returns the milliseconds and the duration as written; ``positive`` (what to expect)
        refuses 0."""
        number = self.token
        if number.kind is not TokenKind.NAME or not INTEGER.fullmatch(number.value):
            raise self.unexpected(f"an integer after '{after}'")
        self.advance()
        unit = self.token
        if unit.kind is not TokenKind.NAME or unit.value.upper() not in UNITS:
            raise self.unexpected("a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS)")
        self.advance()
        digits = number.value.lstrip("0") or "0"
        # int() of thousands of digits is an error of its own: stop long before it.
        ms = int(digits) * UNITS[unit.value.upper()] if len(digits) <= 19 else LONG_MAX + 1
        if ms > LONG_MAX:
            raise self.unexpected("a duration of at most 2^63-1 milliseconds", number, unit)
        if positive and ms == 0:
            raise self.unexpected(positive, number, unit)
        return ms, self.source[number.start : unit.end]

    def parse_group_by(self) -> tuple[FieldRef, ...]:
        """group_by := 'GROUP' 'BY' field {',' field}"""
        self.expect_keyword("GROUP")
        self.expect_keyword("BY")
        return self.delimited(self.parse_field)

    def parse_emit(self) -> Emit:
        """emit := 'EMIT' ('FINAL' | 'CHANGES')   (FINAL when there is no EMIT)"""
        self.expect_keyword("EMIT")
        if self.optional_keyword("FINAL"):
            return "FINAL"
        if self.optional_keyword("CHANGES"):
            return "CHANGES"
        raise self.unexpected("'FINAL' or 'CHANGES'")

    # -- helpers -------------------------------------------------------------------------

    def deeper(self, token: Token) -> int:
        """Go one NOT or '(' deeper; return the depth to restore after it."""
        if self.depth >= MAX_DEPTH:
            raise SqlSyntaxError(f"Condition nests deeper than {MAX_DEPTH} levels", self.source, token.start)
        self.depth += 1
        return self.depth - 1

    def spelled(self, token: Token) -> str:
        return self.source[token.start : token.end]
