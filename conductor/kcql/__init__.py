"""KCQL, the Kafka Connect Query Language of Stream-Reactor's sinks: lexer, parser and AST.

>>> (statement,) = parse_kcql("INSERT INTO idx SELECT * FROM topic PK id")
>>> statement.target.name, statement.topic, statement.primary_keys[0].dotted
('idx', 'topic', 'id')
"""

from __future__ import annotations

from conductor.kcql.ast import Field, FieldPath, Statement, Target
from conductor.kcql.dateformat import DateFormatError, compile_suffix, compile_suffix_reader
from conductor.kcql.errors import KcqlSyntaxError
from conductor.kcql.parser import parse_kcql, parse_kcql_many

__all__ = [
    "DateFormatError",
    "Field",
    "FieldPath",
    "KcqlSyntaxError",
    "Statement",
    "Target",
    "compile_suffix",
    "compile_suffix_reader",
    "parse_kcql",
    "parse_kcql_many",
]
