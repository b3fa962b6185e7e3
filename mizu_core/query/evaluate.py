"""Compiling a syntax tree into a predicate on entries.

Semantics (the hub's SQL push-down follows them exactly):

- A selector that finds nothing is ``nil``. Object keys are looked up exactly, then
  case-insensitively (header names); ``.length`` of a string, list or object is its length.
- ``==``/``!=`` compare strictly: numbers with numbers (``true`` is not ``1``), strings with
  strings; a regex on either side matches the other side (numbers as their decimal text).
- ``< <= > >=`` hold only between two numbers or two strings.
- ``and``/``or``/``not`` take the truth of their operands: ``nil``, ``false``, ``0``, ``""``
  and empty lists/objects are false.
- ``now()``, ``seconds(n)``, ``minutes(n)``, ``hours(n)``, ``days(n)`` are instants in ms
  since the epoch, relative to when the query was compiled (``timestamp >= minutes(-5)``:
  the last five minutes); ``datetime("2024-05-01T10:00:00Z")`` is an instant too.
- ``limit(n)`` and ``redact("selector", ...)`` are true and may only appear as top-level
  ``and`` terms: they set how many entries a listing returns and which fields are masked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

import re2

from mizu_core.entry import NOT_JSON, REDACTED, parse_json
from mizu_core.query.parser import ENTRY_FIELDS, parse
from mizu_core.query.syntax import (
    Call,
    Compare,
    Index,
    Literal,
    Logic,
    Macro,
    Member,
    Name,
    Node,
    Not,
    QueryError,
    Regex,
)

Value = Any
Getter = Callable[[Mapping[str, Any]], Value]

TIME_UNITS_MS = {"seconds": 1000, "minutes": 60_000, "hours": 3_600_000, "days": 86_400_000}
INSTANTS = ("now", "datetime", *TIME_UNITS_MS)
STRING_METHODS = ("startsWith", "endsWith", "contains")
DIRECTIVES = ("limit", "redact")
_MISSING = object()


# -- value semantics (shared with the hub's SQL functions) --------------------------------------


def lookup(container: Value, key: Value) -> Value:
    """``container[key]`` in the language: None when absent; object keys case-insensitive."""
    if isinstance(container, Mapping):
        if not isinstance(key, str):
            return None
        found = container.get(key, _MISSING)
        if found is not _MISSING:
            return found
        folded = key.casefold()
        for name, value in container.items():
            if isinstance(name, str) and name.casefold() == folded:
                return value
        return None
    if isinstance(container, list | tuple) and is_number(key) and float(key).is_integer():
        position = int(key)
        return container[position] if 0 <= position < len(container) else None
    return None


def is_number(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def equal(left: Value, right: Value) -> bool:
    if is_number(left):
        return is_number(right) and left == right
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if is_number(right):
        return False
    return bool(left == right)


def order(op: str, left: Value, right: Value) -> bool:
    if not (
        (is_number(left) and is_number(right)) or (isinstance(left, str) and isinstance(right, str))
    ):
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def regex_text(value: Value) -> str | None:
    """What a regex is matched against: strings, and numbers as their decimal text."""
    if isinstance(value, str):
        return value
    if is_number(value):
        return str(int(value)) if float(value).is_integer() else repr(value)
    return None


def truth(value: Value) -> bool:
    return bool(value) if value is not None else False


def length(value: Value) -> Value:
    return len(value) if isinstance(value, str | list | tuple | Mapping) else None


def json_value(value: Value) -> Value:
    """``x.json()``: a string parsed as JSON (shared with whoever parsed it last), nil when
    it is not JSON; an object or a list as it is."""
    if isinstance(value, Mapping | list):
        return value
    if isinstance(value, str):
        document = parse_json(value)
        return None if document is NOT_JSON else document
    return None


def contains(container: Value, item: Value) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return any(equal(element, item) for element in container)
    if isinstance(container, Mapping):
        return isinstance(item, str) and lookup(container, item) is not None
    return False


def parse_datetime(text: str) -> float:
    """Milliseconds since the epoch of an ISO 8601 instant (UTC if no zone) or of Basenine's
    ``"10/19/2021, 6:29:02 PM"`` form (UTC)."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.strptime(text, "%m/%d/%Y, %I:%M:%S %p")
        except ValueError:
            raise ValueError(text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000


# -- compiling -----------------------------------------------------------------------------------


class Compiler:
    """Turns a tree into nested closures; checks helpers and arguments as it goes."""

    def __init__(self, now_ms: float) -> None:
        self.now_ms = now_ms

    def boolean(self, node: Node) -> Callable[[Mapping[str, Any]], bool]:
        match node:
            case Logic(op="and", left=left, right=right):
                first, second = self.boolean(left), self.boolean(right)
                return lambda entry: first(entry) and second(entry)
            case Logic(op="or", left=left, right=right):
                first, second = self.boolean(left), self.boolean(right)
                return lambda entry: first(entry) or second(entry)
            case Not(operand=operand):
                inner = self.boolean(operand)
                return lambda entry: not inner(entry)
            case Compare():
                return self.compare(node)
            case Macro(word=word, expansion=expansion):
                try:
                    return self.boolean(expansion)
                except QueryError as error:
                    raise QueryError(
                        f"macro {word!r} is broken: {error.message}",
                        node.position,
                        "report it to the plugin's author",
                    ) from None
        getter = self.value(node)
        return lambda entry: truth(getter(entry))

    def compare(self, node: Compare) -> Callable[[Mapping[str, Any]], bool]:
        op = node.op
        if isinstance(node.left, Regex) and isinstance(node.right, Regex):
            raise QueryError("two regexes cannot be compared", node.position, "compare a field")
        for side in (node.left, node.right):
            if isinstance(side, Regex):
                if op not in ("==", "!="):
                    raise QueryError(
                        f"a regex can only be matched with == or !=, not {op}",
                        node.position,
                        'write field == r"pattern"',
                    )
                other = node.right if side is node.left else node.left
                return self.match(side, self.value(other), negate=op == "!=")
        left, right = self.value(node.left), self.value(node.right)
        if op == "==":
            return lambda entry: equal(left(entry), right(entry))
        if op == "!=":
            return lambda entry: not equal(left(entry), right(entry))
        return lambda entry: order(op, left(entry), right(entry))

    def match(
        self, regex: Regex, subject: Getter, negate: bool
    ) -> Callable[[Mapping[str, Any]], bool]:
        search = compile_regex(regex).search

        def matches(entry: Mapping[str, Any]) -> bool:
            text = regex_text(subject(entry))
            return (text is not None and search(text) is not None) != negate

        return matches

    def value(self, node: Node) -> Getter:
        match node:
            case Literal(value=constant):
                return lambda entry: constant
            case Name(name=name):
                return lambda entry: lookup(entry, name)
            case Member(target=target, name="length"):
                base = self.value(target)

                def member_or_length(entry: Mapping[str, Any]) -> Value:
                    container = base(entry)
                    if isinstance(container, Mapping):
                        found = lookup(container, "length")
                        if found is not None:
                            return found
                    return length(container)

                return member_or_length
            case Member(target=target, name=name):
                base = self.value(target)
                return lambda entry: lookup(base(entry), name)
            case Index(target=target, key=key):
                base, index = self.value(target), self.value(key)
                return lambda entry: lookup(base(entry), index(entry))
            case Call():
                return self.call(node)
            case Regex():
                raise QueryError(
                    "a regex can only be matched with == or !=",
                    node.position,
                    'write field == r"pattern"',
                )
        predicate = self.boolean(node)
        return lambda entry: predicate(entry)

    def call(self, node: Call) -> Getter:
        name, args = node.name, node.args
        if node.target is None:
            return self.function(node)
        base = self.value(node.target)
        if name in STRING_METHODS:
            self.arity(node, 1)
            argument = self.value(args[0])
            test = {
                "startsWith": lambda text, part: (
                    isinstance(text, str) and isinstance(part, str) and text.startswith(part)
                ),
                "endsWith": lambda text, part: (
                    isinstance(text, str) and isinstance(part, str) and text.endswith(part)
                ),
                "contains": contains,
            }[name]
            return lambda entry: test(base(entry), argument(entry))
        if name == "json":
            self.arity(node, 0)
            return lambda entry: json_value(base(entry))
        raise QueryError(
            f"unknown helper .{name}()",
            node.position,
            "helpers on a value: startsWith, endsWith, contains, json",
        )

    def function(self, node: Call) -> Getter:
        name = node.name
        if name in INSTANTS:
            instant = instant_of(node, self.now_ms)
            return lambda entry: instant
        if name in DIRECTIVES:
            raise QueryError(
                f"{name}() must be a condition of its own, joined to the rest with and",
                node.position,
                f"write e.g. http and {name}(...)",
            )
        if name in STRING_METHODS or name == "json":
            raise QueryError(
                f"{name}() is called on a value",
                node.position,
                f"write e.g. request.path.{name}(...)" if name != "json" else "write x.json()",
            )
        raise QueryError(
            f"unknown helper {name}()",
            node.position,
            "helpers: now, seconds, minutes, hours, days, datetime, limit, redact",
        )

    def arity(self, node: Call, count: int) -> None:
        check_arity(node, count)

    def predicate(self, node: Node) -> Callable[[Mapping[str, Any]], bool]:
        """The whole query: its top-level ``and`` terms, directives (always true) left out."""
        terms = [self.boolean(term) for term in conjuncts(node) if not is_directive(term)]
        if not terms:
            return lambda entry: True
        combined = terms[0]
        for term in terms[1:]:
            combined = _both(combined, term)
        return combined


def check_arity(node: Call, count: int) -> None:
    if len(node.args) != count:
        plural = "argument" if count == 1 else "arguments"
        raise QueryError(
            f"{node.name}() takes {count} {plural}, got {len(node.args)}",
            node.position,
            f"write {node.name}({'x' if count else ''})",
        )


def _constant(node: Node) -> Value:
    if not isinstance(node, Literal):
        raise QueryError("expected a literal value here", node.position, "write a number")
    return node.value


def instant_of(node: Call, now: float) -> float:
    """The value of ``now()``, ``seconds(n)`` … ``days(n)`` or ``datetime(text)`` in ms."""
    name = node.name
    if name == "now":
        check_arity(node, 0)
        return now
    check_arity(node, 1)
    argument = _constant(node.args[0])
    if name in TIME_UNITS_MS:
        if not is_number(argument) or not math.isfinite(argument):
            raise QueryError(f"{name}() takes a number", node.args[0].position, f"write {name}(-5)")
        return float(now + argument * TIME_UNITS_MS[name])
    try:
        if isinstance(argument, str):
            return parse_datetime(argument)
    except ValueError:
        pass
    raise QueryError(
        "datetime() takes a date as a string",
        node.args[0].position,
        'write datetime("2024-05-01T10:00:00Z") or datetime("5/1/2024, 10:00:00 AM")',
    )


def _both(
    first: Callable[[Mapping[str, Any]], bool], second: Callable[[Mapping[str, Any]], bool]
) -> Callable[[Mapping[str, Any]], bool]:
    return lambda entry: first(entry) and second(entry)


class Pattern(Protocol):
    def search(self, text: str) -> object | None: ...


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the user's QueryError, not a log line
_RE2_OPTIONS.never_capture = True  # only whether it matches is ever asked


@lru_cache(maxsize=256)
def regex(pattern: str) -> Pattern:
    """``pattern`` compiled with RE2, which matches in time linear in the text: a filter a
    user types runs on the hub's store thread, where a backtracking pattern such as
    ``([^/]+)+#`` would stall every query and ingest for as long as it ran. RE2 is the
    syntax of Go's regexp, Mizu's filter regexes from the start; re2.error when it is not
    one."""
    return re2.compile(pattern, options=_RE2_OPTIONS)


def compile_regex(node: Regex) -> Pattern:
    try:
        return regex(node.pattern)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args else "invalid"
        raise QueryError(
            f"bad regex: {reason}", node.position + 2, "check the pattern: RE2 syntax, as in Go"
        ) from None


def is_directive(node: Node) -> bool:
    return isinstance(node, Call) and node.target is None and node.name in DIRECTIVES


def conjuncts(node: Node) -> list[Node]:
    """The top-level ``and`` terms of a tree."""
    if isinstance(node, Logic) and node.op == "and":
        return conjuncts(node.left) + conjuncts(node.right)
    return [node]


def directives(node: Node | None) -> tuple[int | None, tuple[tuple[str | int, ...], ...]]:
    """``limit(n)`` (the smallest if several) and ``redact(...)`` paths of a tree."""
    if node is None:
        return None, ()
    limit: int | None = None
    paths: list[tuple[str | int, ...]] = []
    for term in conjuncts(node):
        if not is_directive(term):
            continue
        assert isinstance(term, Call)
        if term.name == "limit":
            check_arity(term, 1)
            argument = term.args[0]
            count = argument.value if isinstance(argument, Literal) else None
            if not (isinstance(count, int | float) and is_number(count)) or not (
                float(count).is_integer() and count >= 0
            ):
                raise QueryError(
                    "limit() takes a whole number", argument.position, "write limit(100)"
                )
            limit = int(count) if limit is None else min(limit, int(count))
        else:
            if not term.args:
                raise QueryError(
                    "redact() names the fields to mask",
                    term.position,
                    'write redact("request.headers.Authorization")',
                )
            paths.extend(redaction_path(argument) for argument in term.args)
    return limit, tuple(paths)


def redaction_path(argument: Node) -> tuple[str | int, ...]:
    """The path a ``redact()`` argument names: a selector (``request.headers["X-Key"]``) or,
    as Basenine took them, plain dotted names (``request.headers.X-Key``)."""
    if not isinstance(argument, Literal) or not isinstance(argument.value, str):
        raise QueryError(
            "redact() takes selectors as strings",
            argument.position,
            'write redact("request.headers.Authorization")',
        )
    try:
        path = selector_path(parse(argument.value))
    except QueryError:
        path = None
    if path is None:
        names = argument.value.split(".")
        if names[0] not in ENTRY_FIELDS or not all(names):
            raise QueryError(
                f"redact() cannot mask {argument.value!r}",
                argument.position,
                f"name a field of an entry, starting with one of {', '.join(sorted(ENTRY_FIELDS))}",
            )
        path = tuple(int(name) if name.isdigit() else name for name in names)
    return path


def selector_path(node: Node | None) -> tuple[str | int, ...] | None:
    """``request.headers["Host"]`` as ``("request", "headers", "Host")``; None for anything
    that is not a plain selector."""
    path: list[str | int] = []
    while isinstance(node, Member | Index):
        if isinstance(node, Member):
            path.append(node.name)
        elif isinstance(node.key, Literal) and isinstance(node.key.value, str | int):
            if isinstance(node.key.value, bool):
                return None
            path.append(node.key.value)
        else:
            return None
        node = node.target
    if not isinstance(node, Name):
        return None
    path.append(node.name)
    return tuple(reversed(path))


def redact(entry: Mapping[str, Any], paths: Sequence[tuple[str | int, ...]]) -> dict[str, Any]:
    """A copy of ``entry`` with the values at ``paths`` replaced by ``[REDACTED]``; only the
    objects along the paths are copied."""
    result = dict(entry)
    for path in paths:
        _redact_path(result, path)
    return result


def _redact_path(container: dict[str, Any] | list[Any], path: tuple[str | int, ...]) -> None:
    key, rest = path[0], path[1:]
    if isinstance(container, dict):
        if not isinstance(key, str):
            return
        name = key
        if key not in container:
            folded = key.casefold()
            name = next(
                (k for k in container if isinstance(k, str) and k.casefold() == folded), key
            )
            if name not in container:
                return
        if not rest:
            container[name] = REDACTED
            return
        child = container[name]
        if isinstance(child, dict | list):
            container[name] = copy = dict(child) if isinstance(child, dict) else list(child)
            _redact_path(copy, rest)
        return
    if isinstance(key, int) and 0 <= key < len(container):
        if not rest:
            container[key] = REDACTED
            return
        child = container[key]
        if isinstance(child, dict | list):
            container[key] = copy = dict(child) if isinstance(child, dict) else list(child)
            _redact_path(copy, rest)


def now_ms() -> float:
    return time.time() * 1000
