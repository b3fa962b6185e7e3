"""The filter language (docs/filter.md): one implementation for the hub's queries, its
insertion filter and ``mizu dissect -q``.

    query = compile_query('http and response.status >= 500', plugins.macros)
    matching = [entry for entry in entries if query(entry)]

A query is parsed into a syntax tree (:mod:`mizu_core.query.syntax`), checked, and compiled
into closures; the hub also translates the tree into SQL where it can. A bad query raises
:class:`QueryError` with the offset of the offending character and a hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mizu_core.query.evaluate import Compiler, directives, now_ms, redact
from mizu_core.query.parser import ENTRY_FIELDS, parse
from mizu_core.query.syntax import Logic, Node, QueryError, to_text


class Query:
    """A compiled query: call it on an entry (a dict as docs/entries.md describes) for a bool.

    ``limit`` is the number set by ``limit(n)`` (None when absent); :meth:`redact` masks the
    fields named by ``redact(...)``.
    """

    __slots__ = ("_predicate", "limit", "now", "redactions", "text", "tree")

    def __init__(self, text: str, tree: Node | None, now: float | None = None) -> None:
        self.text = text
        self.tree = tree
        self.limit, self.redactions = directives(self.tree)
        self.now = now_ms() if now is None else now
        """The instant time helpers (``minutes(-5)``) are relative to, in ms."""
        compiler = Compiler(self.now)
        self._predicate = (
            compiler.predicate(self.tree) if self.tree is not None else (lambda entry: True)
        )

    def __call__(self, entry: Mapping[str, Any]) -> bool:
        return self._predicate(entry)

    def redact(self, entry: Mapping[str, Any]) -> Mapping[str, Any]:
        """``entry`` with the fields of ``redact(...)`` masked (the entry itself if none)."""
        return redact(entry, self.redactions) if self.redactions else entry

    def __and__(self, other: Query) -> Query:
        """Entries both queries match, with the directives of both."""
        if self.tree is None or other.tree is None:
            return other if self.tree is None else self
        tree = Logic("and", self.tree, other.tree)
        return Query(to_text(tree), tree)

    @property
    def matches_all(self) -> bool:
        return self.tree is None

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def compile_query(text: str, macros: Mapping[str, str] | None = None) -> Query:
    """Compile ``text`` with the plugins' ``macros`` (``PluginManager.macros``).

    Raises :class:`QueryError` (``.position``, ``.hint``) when the query is not valid.
    """
    return Query(text, parse(text, macros or {}))


__all__ = ["ENTRY_FIELDS", "Query", "QueryError", "compile_query", "parse", "to_text"]
