"""WHERE, compiled once into closures that test a record's decoded JSON value.

SQL's three-valued logic: a comparison with a missing or null field is unknown (None), NOT of
unknown is unknown, AND is false if any part is false and OR true if any part is true; a row
passes only if the whole condition is true.  AND and OR stop at the first part that decides,
so a part after it is not evaluated (nor its type checked).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from conductor.errors import RecordError
from conductor.routes import MISSING, dig
from conductor.sql.ast import And, Comparison, Condition, FieldRef, IsNull, Literal, Not, Operand, Or, kind_of

Truth = bool | None
Test = Callable[[dict[str, Any]], Truth]
Getter = Callable[[dict[str, Any]], Any]

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# ``literal op field`` is ``field mirrored op literal``: the hot path has the field on the left.
MIRRORED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
# The types a value may have to be compared with a literal of each kind (bool is not a number).
COMPARABLE: dict[str, tuple[type, ...]] = {"number": (int, float), "string": (str,), "boolean": (bool,)}


def compile_condition(condition: Condition | None) -> Callable[[dict[str, Any]], bool]:
    """A function telling whether a decoded value passes ``condition`` (no condition: all pass).

    Comparing values of incompatible types raises RecordError naming the field.
    """
    if condition is None:
        return lambda value: True
    test = compile_test(condition)
    return lambda value: test(value) is True


def compile_test(condition: Condition) -> Test:
    """The condition as a function returning True, False or None (unknown)."""
    match condition:
        case Comparison():
            return compile_comparison(condition)
        case IsNull(operand=operand, negated=negated):
            get = compile_operand(operand)
            return lambda value: ((found := get(value)) is None or found is MISSING) is not negated
        case Not():
            inner = compile_test(condition.condition)
            return lambda value: None if (truth := inner(value)) is None else not truth
        case And():
            return compile_junction(condition.items, decisive=False)
        case Or():
            return compile_junction(condition.items, decisive=True)
    raise TypeError(f"not a condition: {condition!r}")


def compile_junction(items: tuple[Condition, ...], decisive: bool) -> Test:
    """AND (``decisive`` False: any false part decides) or OR (any true part decides)."""
    tests = tuple(compile_test(item) for item in items)

    def junction(value: dict[str, Any]) -> Truth:
        result: Truth = not decisive
        for test in tests:
            truth = test(value)
            if truth is decisive:
                return decisive
            if truth is None:
                result = None
        return result

    return junction


def compile_comparison(comparison: Comparison) -> Test:
    left, op, right = comparison.left, comparison.op, comparison.right
    if isinstance(left, Literal) and isinstance(right, FieldRef):
        left, op, right = right, MIRRORED[op], left
    if isinstance(right, Literal) and right.value is None:
        return lambda value: None  # x = NULL is unknown for every x: IS NULL is the test
    if isinstance(left, FieldRef) and isinstance(right, Literal):
        return field_against_literal(left, OPERATORS[op], right)
    return operands_against_each_other(left, OPERATORS[op], right)


def field_against_literal(field: FieldRef, compare: Callable[[Any, Any], bool], literal: Literal) -> Test:
    """The common case, ``celsius > 30``: one lookup and one type test per record."""
    get = compile_operand(field)
    constant = literal.value
    comparable = COMPARABLE[literal.kind]

    def test(value: dict[str, Any]) -> Truth:
        found = get(value)
        if type(found) in comparable:
            return compare(found, constant)
        if found is None or found is MISSING:
            return None
        raise mismatch(field, found, literal, constant)

    return test


def operands_against_each_other(left: Operand, compare: Callable[[Any, Any], bool], right: Operand) -> Test:
    """Two fields (or two literals): both sides are read per record and their kinds must agree."""
    get_left, get_right = compile_operand(left), compile_operand(right)

    def test(value: dict[str, Any]) -> Truth:
        a, b = get_left(value), get_right(value)
        if a is None or a is MISSING or b is None or b is MISSING:
            return None
        kind = kind_of(a)
        if kind not in COMPARABLE or kind != kind_of(b):
            raise mismatch(left, a, right, b)
        return compare(a, b)

    return test


def compile_operand(operand: Operand) -> Getter:
    if isinstance(operand, Literal):
        constant = operand.value
        return lambda value: constant
    path = operand.path
    if len(path) == 1:
        (name,) = path
        return lambda value: value.get(name, MISSING)
    return lambda value: dig(value, path)


def mismatch(left: Operand, a: Any, right: Operand, b: Any) -> RecordError:
    return RecordError(f"WHERE cannot compare {describe(left, a)} with {describe(right, b)}")


def describe(operand: Operand, value: Any) -> str:
    """``field 'celsius' (string 'hot')``, ``number 20``: what the comparison met."""
    kind = kind_of(value)
    if kind in ("object", "array"):
        shown = f"an {kind}"
    else:
        text = str(value).lower() if kind == "boolean" else repr(value)
        shown = f"{kind} {text[:40] + '...' if len(text) > 43 else text}"
    return f"field '{operand.dotted}' ({shown})" if isinstance(operand, FieldRef) else shown
