"""The filter language's syntax tree and its canonical text form.

Nodes are frozen dataclasses; ``position`` (the offset of the node's first character in the
query text) takes no part in equality, so a tree printed by :func:`to_text` and parsed again
compares equal to the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class QueryError(ValueError):
    """A query that cannot be compiled: what is wrong, where (0-based offset) and a hint."""

    def __init__(self, message: str, position: int, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.hint = hint

    def describe(self, text: str) -> str:
        """The error with the query and a caret under the offending character."""
        lines = [f"{self.message} at position {self.position}", f"  {text}"]
        lines.append("  " + " " * self.position + "^")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, object]:
        return {"message": self.message, "position": self.position, "hint": self.hint}

    def __str__(self) -> str:
        text = f"{self.message} at position {self.position}"
        return f"{text} ({self.hint})" if self.hint else text


@dataclass(frozen=True, slots=True)
class Node:
    position: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A string, a number, ``true``, ``false`` or ``nil`` (None)."""

    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Regex(Node):
    """``r"..."``: on either side of ``==``/``!=``, matches the other side (Go's MatchString:
    unanchored, as in Basenine; anchor with ``^``/``$``)."""

    pattern: str


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A top-level field of the entry: ``timestamp``, ``request``, ``outgoing``…"""

    name: str


@dataclass(frozen=True, slots=True)
class Member(Node):
    """``target.name``; ``.length`` of a string, list or object is its length."""

    target: Node
    name: str


@dataclass(frozen=True, slots=True)
class Index(Node):
    """``target[key]``: a list index or an object key (looked up case-insensitively)."""

    target: Node
    key: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A helper: ``name(args)`` or, with a target, ``target.name(args)``."""

    target: Node | None
    name: str
    args: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True)
class Macro(Node):
    """A plugin's word (``http``), kept with the expression it stands for."""

    word: str
    expansion: Node = field(compare=False)


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Logic(Node):
    """``and`` / ``or``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str
    left: Node
    right: Node


COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")

_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "compare": 4, "postfix": 5}


def quote(text: str) -> str:
    """``text`` as a double-quoted string literal that parses back to ``text``."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def to_text(node: Node) -> str:
    """The canonical text of a tree: minimal parentheses, double-quoted strings."""
    return _text(node, 0)


def _text(node: Node, context: int) -> str:
    match node:
        case Literal(value=value):
            if value is None:
                return "nil"
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, str):
                return quote(value)
            return repr(value)
        case Regex(pattern=pattern):
            # regex literals keep backslashes as written; only their quote is escaped
            return 'r"' + pattern.replace('"', '\\"') + '"'
        case Name(name=name):
            return name
        case Macro(word=word):
            return word
        case Member(target=target, name=name):
            return f"{_text(target, _PRECEDENCE['postfix'])}.{name}"
        case Index(target=target, key=key):
            return f"{_text(target, _PRECEDENCE['postfix'])}[{_text(key, 0)}]"
        case Call(target=target, name=name, args=args):
            inner = ", ".join(_text(arg, 0) for arg in args)
            prefix = "" if target is None else _text(target, _PRECEDENCE["postfix"]) + "."
            return f"{prefix}{name}({inner})"
        case Not(operand=operand):
            text = "not " + _text(operand, _PRECEDENCE["not"])
            return _wrap(text, _PRECEDENCE["not"], context)
        case Logic(op=op, left=left, right=right):
            level = _PRECEDENCE[op]
            # left-associative: a right operand of the same operator needs parentheses
            text = f"{_text(left, level)} {op} {_text(right, level + 1)}"
            return _wrap(text, level, context)
        case Compare(op=op, left=left, right=right):
            level = _PRECEDENCE["compare"]
            text = f"{_text(left, level + 1)} {op} {_text(right, level + 1)}"
            return _wrap(text, level, context)
    raise TypeError(f"not a query node: {node!r}")


def _wrap(text: str, level: int, context: int) -> str:
    return f"({text})" if level < context else text
