"""The aggregator job's windowed SQL: lexer, parser, AST and WHERE conditions.

>>> (job,) = parse_sql(
...     "INSERT INTO out SELECT home_id, COUNT(*) FROM readings"
...     " WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY home_id"
... )
>>> job.input_topic, job.window.size_ms, [item.alias for item in job.items]
('readings', 60000, ['home_id', 'count'])
"""

from __future__ import annotations

from conductor.sql.ast import (
    Aggregate,
    Aggregation,
    And,
    Comparison,
    Condition,
    FieldRef,
    GroupItem,
    IsNull,
    Literal,
    Not,
    Operand,
    Or,
    Window,
)
from conductor.sql.conditions import compile_condition
from conductor.sql.errors import SqlSyntaxError
from conductor.sql.parser import parse_sql, parse_sql_many

__all__ = [
    "Aggregate",
    "Aggregation",
    "And",
    "Comparison",
    "Condition",
    "FieldRef",
    "GroupItem",
    "IsNull",
    "Literal",
    "Not",
    "Operand",
    "Or",
    "SqlSyntaxError",
    "Window",
    "compile_condition",
    "parse_sql",
    "parse_sql_many",
]
