"""Filter-language trees as SQL over the store's indexed columns.

A translation is *sound*: every entry the query matches satisfies the SQL. Where it is also
*exact* (the SQL matches precisely the entries the query does), the store need not decode and
re-check rows in Python. Terms it cannot express (a header, a body, ``json()``) become TRUE and
make the result inexact; ``not`` and ``or`` only take exact or translatable operands, so
soundness holds through them.

Each column holds the value the language's :func:`~mizu_core.query.evaluate.lookup` finds at
its path when that is a string or a number, else NULL; ``typeof`` guards keep SQLite's mixed
comparisons (text > integer) from disagreeing with the language's strict ones. A boolean
column (:data:`BOOLEAN_COLUMNS`) holds 1 or 0 for ``true`` or ``false``, else NULL, and is
compared only with ``true`` and ``false`` (the language never finds ``true == 1``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mizu_core.query import Query
from mizu_core.query.evaluate import (
    INSTANTS,
    instant_of,
    is_directive,
    is_number,
    lookup,
    regex,
    regex_text,
)
from mizu_core.query.syntax import (
    Call,
    Compare,
    Literal,
    Logic,
    Macro,
    Member,
    Name,
    Node,
    Not,
    Regex,
)

COLUMNS: dict[tuple[str, ...], str] = {
    ("timestamp",): "timestamp",
    ("protocol", "name"): "protocol",
    ("protocol", "macro"): "macro",
    ("request", "method"): "method",
    ("request", "path"): "path",
    ("response", "status"): "status",
    ("src", "ip"): "src_ip",
    ("src", "port"): "src_port",
    ("src", "name"): "src_name",
    ("dst", "ip"): "dst_ip",
    ("dst", "port"): "dst_port",
    ("dst", "name"): "dst_name",
    ("elapsedTime",): "elapsed",
    ("responseSize",): "response_size",
    ("error",): "error",
    ("fromServer",): "from_server",
}
"""Selector path → column of the ``entries`` table."""

BOOLEAN_COLUMNS = frozenset({"error", "from_server"})
"""Columns of ``true``/``false`` fields, last in ``COLUMNS``."""

COLUMN_NAMES = tuple(COLUMNS.values())
"""The columns :func:`column_values` fills, in its order."""

INDEXED = ("timestamp", "macro", "status", "path", "src_ip", "dst_ip", "dst_name", "error")
"""Columns with an index of their own (each ``(epoch, column)``, implicitly followed by
``seq``, so an equality within an epoch walks it newest first with no sort; see the store's
``EPOCH_BITS``). Every index costs each insert about as much as the row itself:
these are the columns whose values can be rare (a protocol's macro, an error status, a path
prefix, a peer, a time range, the errors); a common value (``protocol.name == "http"``, a
method) fills a page from a plain backward scan quickly anyway."""

_INT64 = 1 << 63
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SQL_OP = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True, slots=True)
class Sql:
    where: str
    params: tuple[Any, ...]
    exact: bool


TRUE = Sql("1", (), True)


def column_value(entry: Mapping[str, Any], path: tuple[str, ...]) -> str | int | float | None:
    """What a column stores for ``entry``: the language's value at ``path`` if it is a string
    or a number SQLite holds exactly, else NULL."""
    value: Any = entry
    for name in path:
        value = lookup(value, name)
    if path in _BOOLEAN_PATHS:
        return int(value) if isinstance(value, bool) else None
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if is_number(value):
        # beyond SQLite's 64-bit integers, a real keeps the order right
        return value if -_INT64 <= value < _INT64 else float(value)
    return None


_PLAIN_PATHS = tuple(path for path, column in COLUMNS.items() if column not in BOOLEAN_COLUMNS)
_BOOLEAN_PATHS = tuple(path for path, column in COLUMNS.items() if column in BOOLEAN_COLUMNS)
assert tuple(COLUMNS) == _PLAIN_PATHS + _BOOLEAN_PATHS, "boolean columns come last"
_PLAIN_GROUPS = tuple(
    (first, tuple(path[1:] for path in paths))
    for first, paths in itertools.groupby(_PLAIN_PATHS, key=lambda path: path[0])
)
"""The plain paths by their first name, in order: ``src.ip``, ``src.port`` and ``src.name``
look ``src`` up once."""
assert all(len(path) <= 2 for path in _PLAIN_PATHS), "column_values looks two names deep"
_MISSING = object()


def column_values(entry: Mapping[str, Any]) -> list[str | int | float | None]:
    """:func:`column_value` of every column, in ``COLUMNS`` order. Ingest calls it per entry:
    plain dicts holding the exact key and a string, a small integer or a finite float take a
    short path."""
    if type(entry) is not dict:
        return [column_value(entry, path) for path in COLUMNS]
    values: list[str | int | float | None] = []
    append = values.append
    for first, rests in _PLAIN_GROUPS:
        outer = entry.get(first, _MISSING)
        for rest in rests:
            value = outer
            if rest:
                value = outer.get(rest[0], _MISSING) if type(outer) is dict else _MISSING
            kind = type(value)
            if (
                kind is str
                or (kind is int and -_INT64 <= value < _INT64)
                or (kind is float and math.isfinite(value))
            ):
                append(value)
            else:
                append(column_value(entry, (first, *rest)))
    for path in _BOOLEAN_PATHS:
        value = entry.get(path[0], _MISSING)
        append(int(value) if type(value) is bool else column_value(entry, path))
    return values


def sql_regex(pattern: str, value: Any) -> int:
    """``mizu_regex(pattern, column)`` in SQL: the language's regex match."""
    text = regex_text(value)
    return int(text is not None and regex(pattern).search(text) is not None)


def translate(query: Query) -> Sql:
    """The WHERE clause for ``query``."""
    if query.tree is None:
        return TRUE
    return _Translator(query.now).translate(query.tree) or Sql("1", (), False)


class _Translator:
    def __init__(self, now: float) -> None:
        self.now = now

    def translate(self, node: Node) -> Sql | None:
        match node:
            case Logic(op="and", left=left, right=right):
                first, second = self.translate(left), self.translate(right)
                if first is None or second is None:
                    known = first or second
                    return None if known is None else Sql(known.where, known.params, False)
                return Sql(
                    f"({first.where} AND {second.where})",
                    first.params + second.params,
                    first.exact and second.exact,
                )
            case Logic(op="or", left=left, right=right):
                first, second = self.translate(left), self.translate(right)
                if first is None or second is None:
                    return None
                return Sql(
                    f"({first.where} OR {second.where})",
                    first.params + second.params,
                    first.exact and second.exact,
                )
            case Not(operand=operand):
                inner = self.translate(operand)
                if inner is None or not inner.exact:
                    return None
                return Sql(f"(NOT {inner.where})", inner.params, True)
            case Macro(expansion=expansion):
                return self.translate(expansion)
            case Compare():
                return _compare(node, self.now)
            case Call(target=target, name=name, args=args) if target is not None:
                return _method(target, name, args)
            case Call() if is_directive(node):
                return TRUE
            case Name() | Member() if column_of(node) in BOOLEAN_COLUMNS:
                # truthy: true, or a value that is not a boolean (NULL: a string, a list…)
                column = column_of(node)
                return Sql(f"({column} = 1 OR {column} IS NULL)", (), False)
        return None


def column_of(node: Node) -> str | None:
    path: list[str] = []
    while isinstance(node, Member):
        path.append(node.name)
        node = node.target
    if not isinstance(node, Name):
        return None
    path.append(node.name)
    return COLUMNS.get(tuple(reversed(path)))


def _compare(node: Compare, now: float) -> Sql | None:
    op, left, right = node.op, node.left, node.right
    if column_of(left) is None:
        left, right, op = right, left, _FLIP[op]
    column = column_of(left)
    if column is None:
        return None
    if column in BOOLEAN_COLUMNS:
        if not (isinstance(right, Literal) and isinstance(right.value, bool)) or op not in (
            "==",
            "!=",
        ):
            return None
        negate = "NOT " if op == "!=" else ""
        return Sql(f"({negate}({column} IS NOT NULL AND {column} = ?))", (int(right.value),), True)
    if isinstance(right, Regex):
        negate = "NOT " if op == "!=" else ""
        return Sql(f"({negate}mizu_regex(?, {column}))", (right.pattern,), True)
    if isinstance(right, Call) and right.target is None and right.name in INSTANTS:
        value: Any = instant_of(right, now)
    elif isinstance(right, Literal):
        value = right.value
    else:
        return None
    if isinstance(value, str):
        guard = f"typeof({column}) = 'text'"
    elif (isinstance(value, float) and math.isfinite(value)) or (
        isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value < _INT64
    ):
        guard = f"typeof({column}) IN ('integer', 'real')"
    else:
        return None  # true, false, nil: a NULL column may hold them or a list, unlike SQL
    if op == "!=":
        return Sql(f"(NOT ({guard} AND {column} = ?))", (value,), True)
    return Sql(f"({guard} AND {column} {_SQL_OP[op]} ?)", (value,), True)


def _method(target: Node, name: str, args: tuple[Node, ...]) -> Sql | None:
    column = column_of(target)
    if column is None or column in BOOLEAN_COLUMNS or len(args) != 1:
        return None  # a boolean column holds no text: a string there is NULL
    argument = args[0]
    if not (isinstance(argument, Literal) and isinstance(argument.value, str)):
        return None
    part = argument.value
    guard = f"typeof({column}) = 'text'"
    if name == "startsWith":
        if not part:
            return Sql(f"({guard})", (), True)
        # a range over the text, which the column's index answers (SQLite compares text as
        # UTF-8 bytes, in code point order like Python); a prefix with no successor (all
        # U+10FFFF) has nothing above it
        above = prefix_successor(part)
        if above is None:
            return Sql(f"({guard} AND {column} >= ?)", (part,), True)
        return Sql(f"({guard} AND {column} >= ? AND {column} < ?)", (part, above), True)
    if name == "endsWith":
        if not part:
            return Sql(f"({guard})", (), True)
        return Sql(f"({guard} AND substr({column}, ?) = ?)", (-len(part), part), True)
    if name == "contains":
        # a list or an object (a NULL column) may contain it too: sound, not exact
        return Sql(f"(({guard} AND instr({column}, ?) > 0) OR {column} IS NULL)", (part,), False)
    return None


def prefix_successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``; None if none is."""
    while prefix:
        last = ord(prefix[-1]) + 1
        if last == 0xD800:  # surrogates are not text: skip to the next encodable code point
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None
