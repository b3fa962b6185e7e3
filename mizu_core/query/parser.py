"""Tokens and a precedence-climbing parser for the filter language (docs/filter.md).

Precedence, loosest first: ``or``, ``and``, ``not``/``!``, comparisons (not chained), then
postfix selectors (``.name``, ``[key]``, ``.helper(args)``). Words that are macros expand to
their parsed expression; a bare word that is neither a macro nor a field of an entry is an
error, so a typo never silently matches nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from mizu_core.query.syntax import (
    COMPARISONS,
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

ENTRY_FIELDS = frozenset(
    {
        "id",
        "protocol",
        "src",
        "dst",
        "outgoing",
        "fromServer",
        "timestamp",
        "startTime",
        "elapsedTime",
        "requestSize",
        "responseSize",
        "request",
        "response",
        "rules",
        "tls",
        "error",
        "unpaired",
    }
)
"""Top-level fields of an entry (docs/entries.md): the roots a selector may start from."""

KEYWORDS = frozenset({"and", "or", "not", "true", "false", "nil"})

_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "/": "/"}
_OPERATOR_HINTS = {
    "=": "compare with ==",
    "&": "join conditions with and",
    "|": "join alternatives with or",
}
_MAX_MACRO_DEPTH = 8
MAX_NESTING = 100
"""Parentheses and ``not`` nested deeper than this are refused (parsing them recurses)."""
MAX_DEPTH = 300
"""The deepest syntax tree a query may have: evaluating it recurses as deep. A chain of ``and``
or ``or`` is one level deeper per condition."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "ident", "string", "regex", "number", "op", "end"
    value: str | int | float
    position: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        start = i
        if char in "\"'" or (char == "r" and i + 1 < size and text[i + 1] in "\"'"):
            regex = char == "r"
            value, i = _read_string(text, i + 1 if regex else i, raw=regex)
            tokens.append(Token("regex" if regex else "string", value, start))
            continue
        if char.isdigit():
            match = _NUMBER.match(text, i)
            assert match is not None
            literal = match.group()
            number: int | float = (
                float(literal) if match.group(1) or match.group(2) else int(literal)
            )
            i = match.end()
            if i < size and (text[i].isalpha() or text[i] == "_"):
                raise QueryError(
                    f"unexpected {text[i]!r} after the number {literal}",
                    i,
                    "separate a number from a word with a space or an operator",
                )
            tokens.append(Token("number", number, start))
            continue
        match = _IDENT.match(text, i)
        if match is not None:
            tokens.append(Token("ident", match.group(), start))
            i = match.end()
            continue
        two = text[i : i + 2]
        if two in ("==", "!=", "<=", ">="):
            tokens.append(Token("op", two, start))
            i += 2
            continue
        if char in "<>!().,[]-":
            tokens.append(Token("op", char, start))
            i += 1
            continue
        if two in ("&&", "||"):
            raise QueryError(f"unknown operator {two!r}", i, "use and" if two == "&&" else "use or")
        raise QueryError(
            f"unexpected character {char!r}",
            i,
            _OPERATOR_HINTS.get(char, "see the filter language reference"),
        )
    tokens.append(Token("end", "", size))
    return tokens


def _read_string(text: str, i: int, raw: bool) -> tuple[str, int]:
    """The string starting at the quote ``text[i]``; returns (value, index after it).

    Raw (regex) strings keep backslashes, except before their own quote.
    """
    quote, start = text[i], i
    i += 1
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\\" and i + 1 < len(text):
            following = text[i + 1]
            if raw:
                out.append(following if following == quote else char + following)
                i += 2
                continue
            if following == "u":
                digits = text[i + 2 : i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise QueryError("bad \\u escape", i, "write \\u followed by four hex digits")
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            if following not in _ESCAPES:
                raise QueryError(
                    f"unknown escape \\{following}",
                    i,
                    'escapes are \\" \\\\ \\n \\t \\r \\uXXXX; for regexes use r"..."',
                )
            out.append(_ESCAPES[following])
            i += 2
            continue
        out.append(char)
        i += 1
    raise QueryError("unterminated string", start, f"close it with {quote}")


class Parser:
    def __init__(self, text: str, macros: Mapping[str, str], depth: int = 0) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.macros = macros
        self.depth = depth
        self.nesting = 0

    # -- token helpers -------------------------------------------------------------------------

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, value: object = None) -> bool:
        token = self.current
        return token.kind == kind and (value is None or token.value == value)

    def at_word(self, word: str) -> bool:
        return self.at("ident", word)

    def expect(self, value: str, hint: str) -> Token:
        if not self.at("op", value):
            raise QueryError(f"expected {value!r}, found {self.describe()}", self.position, hint)
        return self.advance()

    @property
    def position(self) -> int:
        return self.current.position

    def describe(self, token: Token | None = None) -> str:
        token = token or self.current
        if token.kind == "end":
            return "the end of the query"
        if token.kind in ("string", "regex"):
            return f"the string {token.value!r}"
        return repr(str(token.value))

    # -- grammar -------------------------------------------------------------------------------

    def parse(self) -> Node | None:
        """The whole query; None when it is empty (everything matches)."""
        if self.at("end"):
            return None
        node = self.parse_or()
        if not self.at("end"):
            hint = "join conditions with and / or"
            if self.at("op", "="):
                hint = "compare with =="
            raise QueryError(f"unexpected {self.describe()}", self.position, hint)
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.at_word("or"):
            position = self.advance().position
            node = Logic("or", node, self.parse_and(), position=position)
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.at_word("and"):
            position = self.advance().position
            node = Logic("and", node, self.parse_not(), position=position)
        return node

    def parse_not(self) -> Node:
        if self.at_word("not") or self.at("op", "!"):
            position = self.advance().position
            with self.nested(position):
                return Not(self.parse_not(), position=position)
        return self.parse_comparison()

    @contextlib.contextmanager
    def nested(self, position: int) -> Iterator[None]:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise QueryError(
                "the query nests too deeply",
                position,
                f"at most {MAX_NESTING} levels of parentheses and not",
            )
        try:
            yield
        finally:
            self.nesting -= 1

    def parse_comparison(self) -> Node:
        left = self.parse_postfix()
        token = self.current
        if token.kind == "op" and token.value in COMPARISONS:
            self.advance()
            right = self.parse_postfix()
            if self.current.kind == "op" and self.current.value in COMPARISONS:
                raise QueryError(
                    "comparisons cannot be chained",
                    self.position,
                    "join two comparisons with and",
                )
            return Compare(str(token.value), left, right, position=token.position)
        return left

    def parse_postfix(self) -> Node:
        node = self.parse_primary()
        while True:
            if self.at("op", "."):
                self.advance()
                token = self.current
                if token.kind != "ident":
                    raise QueryError(
                        f"expected a field name after '.', found {self.describe()}",
                        token.position,
                        'use ["..."] for names with other characters',
                    )
                self.advance()
                name = str(token.value)
                if self.at("op", "("):
                    node = Call(node, name, self.parse_args(), position=token.position)
                else:
                    node = Member(node, name, position=token.position)
            elif self.at("op", "["):
                position = self.advance().position
                key = self.parse_or()
                self.expect("]", "close the index with ]")
                node = Index(node, key, position=position)
            else:
                return node

    def parse_args(self) -> tuple[Node, ...]:
        self.expect("(", "")
        args: list[Node] = []
        if not self.at("op", ")"):
            args.append(self.parse_or())
            while self.at("op", ","):
                self.advance()
                args.append(self.parse_or())
        self.expect(")", "close the argument list with )")
        return tuple(args)

    def parse_primary(self) -> Node:
        token = self.current
        if token.kind == "string":
            self.advance()
            return Literal(token.value, position=token.position)
        if token.kind == "regex":
            self.advance()
            return Regex(str(token.value), position=token.position)
        if token.kind == "number":
            self.advance()
            return Literal(token.value, position=token.position)
        if token.kind == "op" and token.value == "-":
            self.advance()
            if not self.at("number"):
                raise QueryError(
                    "'-' must be followed by a number", self.position, "write e.g. minutes(-5)"
                )
            number = self.advance().value
            assert isinstance(number, int | float)
            return Literal(-number, position=token.position)
        if token.kind == "op" and token.value == "(":
            self.advance()
            with self.nested(token.position):
                node = self.parse_or()
            self.expect(")", "close the parenthesis with )")
            return node
        if token.kind == "ident":
            return self.parse_word()
        raise QueryError(
            f"expected a value, found {self.describe()}",
            token.position,
            "a selector (request.path), a string, a number, true, false, nil or a helper",
        )

    def parse_word(self) -> Node:
        token = self.advance()
        word = str(token.value)
        if word == "true" or word == "false":
            return Literal(word == "true", position=token.position)
        if word == "nil":
            return Literal(None, position=token.position)
        if word in ("and", "or", "not"):
            raise QueryError(
                f"expected a value before {word!r}",
                token.position,
                "a condition is missing on one side",
            )
        if self.at("op", "("):
            return Call(None, word, self.parse_args(), position=token.position)
        if word in self.macros and not self.at("op", ".") and not self.at("op", "["):
            return Macro(word, self.expand(word, token.position), position=token.position)
        if word in ENTRY_FIELDS:
            return Name(word, position=token.position)
        choices = sorted(set(self.macros) | ENTRY_FIELDS)
        close = difflib.get_close_matches(word, choices, n=3)
        hint = (
            f"did you mean {' or '.join(close)}?"
            if close
            else f"selectors start with one of {', '.join(sorted(ENTRY_FIELDS))}; "
            f"protocol words: {', '.join(sorted(self.macros)) or 'none'}"
        )
        raise QueryError(f"unknown word {word!r}", token.position, hint)

    def expand(self, word: str, position: int) -> Node:
        if self.depth >= _MAX_MACRO_DEPTH:
            raise QueryError(f"macro {word!r} expands into itself", position, "fix the plugin")
        try:
            node = Parser(self.macros[word], self.macros, self.depth + 1).parse()
        except QueryError as error:
            raise QueryError(
                f"macro {word!r} is broken: {error.message}",
                position,
                f"its expression is {self.macros[word]!r}; report it to the plugin's author",
            ) from None
        if node is None:
            raise QueryError(f"macro {word!r} is empty", position, "report it to the plugin")
        return node


def parse(text: str, macros: Mapping[str, str] | None = None) -> Node | None:
    """The syntax tree of ``text``; None for an empty query. Raises :class:`QueryError`."""
    tree = Parser(text, macros or {}).parse()
    if tree is not None:
        _check_depth(tree)
    return tree


def _check_depth(tree: Node) -> None:
    pending = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise QueryError(
                "the query is too deep to evaluate",
                node.position,
                f"at most {MAX_DEPTH} levels: match alternatives with one regex, "
                'such as src.ip == r"^10\\.0\\.0\\.(1|2|3)$"',
            )
        pending.extend((child, depth + 1) for child in _children(node))


def _children(node: Node) -> list[Node]:
    found: list[Node] = []
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        if isinstance(value, Node):
            found.append(value)
        elif isinstance(value, tuple):
            found.extend(item for item in value if isinstance(item, Node))
    return found
