"""What a tapper removes before an entry leaves the node: secrets, and pairs nobody wants.

Redaction is generic over *names*: the names inside headers (and trailers), query strings,
cookies and body documents (JSON, XML, forms) wherever they sit in an entry's request or
response, so the core needs no protocol knowledge. A protocol's own fields are never looked at
by name (a Redis ``request.key`` stays); only the values of those named containers and bodies
are. A name is normalised (lower case, letters and digits only: ``X-Api-Key`` → ``xapikey``)
and is sensitive when one of the patterns (regular expressions) is found in it. A plugin
names the fields of its own that hold secrets (``Protocol.secret_fields``): those are redacted
in its entries wherever they sit; and those that hold what applications send
(``Protocol.payload_fields``: a WebSocket message, an AMQP body, a Kafka record's value), whose
text is redacted as a body's is.

Redaction fails closed. Values shaped like credentials (``Bearer …``, ``Basic …``, a JWT, a
cloud provider's key) are redacted in any header, query string, form or JSON value whatever
their name. A body that cannot be read as the document it claims to be (cut at the body cap,
nested too deep, of an unknown or mixed type) is redacted by pattern over its text:
``name=value``, ``"name": "value"``, ``<name>value`` of a sensitive name, and the shapes above.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote_plus

import orjson
import re2

from mizu_core.entry import NOT_JSON, REDACTED, parse_json, share_parsed
from mizu_core.model import Protocol

DEFAULT_PATTERNS: tuple[str, ...] = (
    "token",
    "authorization",
    "authentication",
    "auth$",
    "cookie",
    "passw(or)?d",
    "passcode",
    "secret",
    "key$",
    "jwt",
    "bearer",
    "credential",
    "session",
)
"""Mizu's sensitive names. ``key`` and ``auth`` only at the end of a name, so that
``X-Api-Key`` and ``X-Auth`` go but ``keyword``, ``Keep-Alive`` and HTTP/2's ``:authority``
stay."""

PARAMETER_PATTERNS: tuple[str, ...] = ("^code$", "^codeverifier$")
"""Sensitive in query strings and forms only: OAuth's authorization code and its PKCE
verifier (a JSON ``code`` is an error or status code far more often)."""

NAMED_CONTAINERS: Final = frozenset({"headers", "trailers", "queryString"})
"""Keys whose value maps names to values (or is a list of ``{name, value}``)."""
COOKIE_CONTAINERS: Final = frozenset({"cookies"})
"""Every value inside is a cookie: all of them are redacted."""
_SPECIAL_KEYS: Final = NAMED_CONTAINERS | COOKIE_CONTAINERS | {"params", "url"}
MAX_DEPTH: Final = 64
KNOWN_NAMES: Final = 10_000
"""How many names a redactor remembers the verdict of: names repeat endlessly (headers, a
service's JSON fields), and a flood of new ones must not grow it."""
PLAIN_VALUES: Final = 4096
"""How many short values (header values, mostly) are remembered as not shaped like
credentials; the memory is emptied when full."""
_PLAIN_VALUE_CHARS: Final = 256

_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")
_XML_ELEMENT = re.compile(r"<((?:[\w.-]+:)?([\w.-]+))(\s[^<>]*)?>([^<]*)</\1\s*>")
_XML_TAG = re.compile(r"<[^<>!?/][^<>]*>")
_XML_ATTRIBUTE = re.compile(r"(\s(?:[\w.-]+:)?([\w.-]+)\s*=\s*)(\"[^\"]*\"|'[^']*')")
_FORM_TYPES = ("application/x-www-form-urlencoded",)
_BYTE_ORDER_MARKS = ("\ufeff", "\xef\xbb\xbf")
"""UTF-8's byte-order mark as text, and as its three octets read as latin-1 (base64 bodies)."""

_SECRET_SHAPES = (
    r"(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Dd]igest|[Nn]egotiate|NTLM|[Tt]oken)"
    r"[\t\n\v\f\r ]+[A-Za-z0-9._~+/=:-]{6,}"
    r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|(?:sk|pk|rk)_(?:live|test)_[0-9A-Za-z]{10,}"
    r"|gh[pousr]_[0-9A-Za-z]{30,}"
    r"|github_pat_[0-9A-Za-z_]{30,}"
    r"|glpat-[0-9A-Za-z_-]{20,}"
    r"|xox[abprs]-[0-9A-Za-z-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|-----BEGIN[A-Z ]* PRIVATE KEY-----"
    r"(?:(?:.|\n)*?-----END[A-Z ]* PRIVATE KEY-----|(?:.|\n)*)"
)
# Both engines must find the same matches: re.ASCII gives re RE2's ASCII \b, whitespace is
# spelled out (RE2's \s lacks the vertical tab), and the pattern avoids what only one of them has
# (\Z, look-arounds, back-references).
SECRET_VALUE = re.compile(_SECRET_SHAPES, re.ASCII)
"""Values that are credentials by their shape: authorization schemes with their token, JWTs
(a JSON header always starts ``eyJ``), the keys of AWS, Stripe, GitHub, GitLab, Slack and
Google, PEM private keys."""
_SECRET_VALUE_SCAN = re2.compile(_SECRET_SHAPES)
"""The same shapes for long texts (bodies): RE2 scans them in one pass, where re tries every
alternative at every offset (20x slower on a 64 KB body); re's call costs less on short values."""
_LONG_TEXT = 512


_SECRET_VALUE_ANYWHERE = re2.Set.SearchSet()
_SECRET_VALUE_ANYWHERE.Add(_SECRET_SHAPES)
_SECRET_VALUE_ANYWHERE.Compile()
"""The same shapes as one yes-or-no question, one call into RE2's automaton: on a 100-character
text a tenth of what re's search costs (which tries every alternative at every offset), and
without the Python layer RE2's search goes through. RE2 sets never give up for lack of memory
(they have no slower engine to fall back on), so a text this finds nothing in has no shape."""


def _secret_shapes_for(text: str) -> re.Pattern[str]:
    """The engine that finds :data:`SECRET_VALUE`'s shapes in ``text`` fastest."""
    return SECRET_VALUE if len(text) < _LONG_TEXT else _SECRET_VALUE_SCAN


def may_hold_secret_value(text: str) -> bool:
    """False only when no value shaped like a credential (:data:`SECRET_VALUE`) is anywhere
    in ``text``: what is searched more closely, and replaced, is what this lets through."""
    try:
        return _SECRET_VALUE_ANYWHERE.Match(text) is not None
    except UnicodeEncodeError:  # a lone surrogate RE2 cannot be given: the engines decide
        return True


_NAMED_VALUE = re.compile(
    r"""(?<![\w.-])(["']?)([A-Za-z_][\w.-]{0,63})\1(\s*[=:]\s*)"""
    r"""("(?:[^"\\\n]|\\.)*"?|'[^'\n]*'?|[^\s&;,"'<>{}\[\]]+)"""
)
"""``name=value``, ``name: value``, ``"name": "value"`` (a quoted value may be cut short)."""
_XML_OPENED = re.compile(r"<((?:[\w.-]+:)?([\w.-]+))(\s[^<>]*)?>([^<]+)")
"""An element's opening tag and its text, whether or not it is closed."""
_MULTIPART_BOUNDARY = re.compile(r"""boundary=(?:"([^"]+)"|([^\s;,]+))""", re.IGNORECASE)
_PART_NAME = re.compile(r"""\bname="([^"]*)"|\bname=([^\s;]+)""", re.IGNORECASE)
_PART_TYPE = re.compile(r"^content-type:\s*([^\r\n]+)", re.IGNORECASE | re.MULTILINE)


def normalise(name: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", name.lower())


class _Scope:
    """What the walk of one protocol's entries looks for: its plugin's secret and payload
    fields, and every key that is more than a container to search (:attr:`special`)."""

    def __init__(self, secret: frozenset[str], payload: frozenset[str]) -> None:
        self.secret = secret
        self.payload = payload
        self.special: frozenset[str] = secret | payload | _SPECIAL_KEYS


class Redactor:
    """Replaces the values of sensitive names with ``[REDACTED]`` in an entry's request and
    response. Entries are not changed in place: the containers along a change are copied, and
    what nothing was replaced in is shared with the entry given."""

    def __init__(
        self,
        patterns: Iterable[str] = DEFAULT_PATTERNS,
        protocols: Iterable[Protocol] = (),
        shortcuts: bool = True,
    ) -> None:
        """``protocols``: what the plugins declared (their secret and payload fields).
        ``shortcuts``: what proves a value or a document has nothing to redact before it is
        searched value by value (remembered verdicts, one search over a whole text, a JSON
        document read without a copy); False searches every value, the reference the
        shortcuts are tested against. Both give the same entries."""
        self.patterns = tuple(patterns)
        self.shortcuts = shortcuts
        combined = "|".join(f"(?:{pattern})" for pattern in self.patterns)
        self._sensitive = re.compile(combined) if combined else None
        self._parameter = re.compile("|".join(PARAMETER_PATTERNS))
        # the verdicts on names seen: each name is in one of a pair, so that all the names of
        # a container are found plain at once (a set's issuperset)
        self._plain_names: set[str] = set()
        self._sensitive_names: set[str] = set()
        self._plain_parameters: set[str] = set()
        self._sensitive_parameters: set[str] = set()
        self._plain_values: set[str] = set()
        """Short values lately found not shaped like credentials (header values repeat; never
        one that is: no secret is kept here)."""
        self.secret_fields: dict[str, frozenset[str]] = {}
        self.payload_fields: dict[str, frozenset[str]] = {}
        for protocol in protocols:
            for declared, fields in (
                (self.secret_fields, protocol.secret_fields),
                (self.payload_fields, protocol.payload_fields),
            ):
                declared[protocol.name] = declared.get(protocol.name, frozenset()) | set(fields)
        self._scopes = {
            name: _Scope(
                self.secret_fields.get(name, frozenset()),
                self.payload_fields.get(name, frozenset()),
            )
            for name in self.secret_fields.keys() | self.payload_fields.keys()
        }
        self._no_fields = _Scope(frozenset(), frozenset())

    def is_sensitive(self, name: str) -> bool:
        if name in self._plain_names:
            return False
        if name in self._sensitive_names:
            return True
        sensitive = self._sensitive is not None and bool(self._sensitive.search(normalise(name)))
        _remember(name, sensitive, self._plain_names, self._sensitive_names)
        return sensitive

    def is_sensitive_parameter(self, name: str) -> bool:
        """A query string's or a form's field: OAuth's ``code`` besides the sensitive names."""
        if name in self._plain_parameters:
            return False
        if name in self._sensitive_parameters:
            return True
        sensitive = self.is_sensitive(name) or bool(self._parameter.search(normalise(name)))
        _remember(name, sensitive, self._plain_parameters, self._sensitive_parameters)
        return sensitive

    def __call__(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        result = dict(entry)
        protocol = entry.get("protocol")
        name = protocol.get("name") if isinstance(protocol, dict) else None
        scope = self._no_fields
        if isinstance(name, str):
            scope = self._scopes.get(name, scope)
        for side in ("request", "response"):
            message = entry.get(side)
            if isinstance(message, dict):
                result[side] = self._message(message, 0, scope)
        return result

    # -- structure -----------------------------------------------------------------------------

    def _message(self, node: dict[str, Any], depth: int, scope: _Scope) -> dict[str, Any]:
        """``node`` with its named containers, bodies, URLs, the protocol's secret fields and
        its payload fields redacted (a copy, or ``node`` itself when nothing was); nested
        objects are searched for more."""
        if depth > MAX_DEPTH:
            return node
        replaced: dict[str, Any] | None = None
        text = node.get("text")
        if isinstance(text, str) and "mimeType" in node:
            body = self._body(node)
            if body:
                replaced = body
        special = scope.special
        for key, value in node.items():
            if key in special:
                redacted = self._field(key, value, depth, scope)
            elif isinstance(value, dict):
                redacted = self._message(value, depth + 1, scope)
            elif isinstance(value, list):
                redacted = self._items(value, depth + 1, scope, False)
            else:
                continue
            # what the walk gives a key overrides the body's own ``text`` (a payload field)
            if redacted is not value or (replaced is not None and key in replaced):
                if replaced is None:
                    replaced = {}
                replaced[key] = redacted
        if replaced is None:
            return node
        result = dict(node)
        result.update(replaced)
        return result

    def _field(self, key: str, value: Any, depth: int, scope: _Scope) -> Any:
        """The value of one of :attr:`_Scope.special`'s keys, redacted."""
        if key in scope.secret:
            return REDACTED
        if key in scope.payload and isinstance(value, str):
            return self.document(value) or value
        if key in NAMED_CONTAINERS:
            return self._named(value, parameters=key == "queryString")
        if key in COOKIE_CONTAINERS:
            return _all_redacted(value)
        if key == "params" and isinstance(value, list):
            return self._named(value, parameters=True)
        if key == "url" and isinstance(value, str):
            return self._url(value)
        if isinstance(value, dict):
            return self._message(value, depth + 1, scope)
        if isinstance(value, list):
            return self._items(value, depth + 1, scope, key in scope.payload)
        return value

    def _items(self, items: list[Any], depth: int, scope: _Scope, texts: bool) -> list[Any]:
        """A list's objects searched as :meth:`_message` searches them, and its strings redacted
        as documents when they are ``texts`` (a command's arguments, say); ``items`` itself when
        nothing was replaced."""
        result: list[Any] | None = None
        for index, item in enumerate(items):
            if isinstance(item, dict):
                redacted: Any = self._message(item, depth, scope)
            elif texts and isinstance(item, str):
                redacted = self.document(item) or item
            else:
                continue
            if redacted is not item:
                if result is None:
                    result = list(items)
                result[index] = redacted
        return items if result is None else result

    def _named(self, container: Any, parameters: bool = False) -> Any:
        """``{name: value | [values]}`` or ``[{name|key, value}]`` with the values of sensitive
        names, and values shaped like credentials, replaced (``container`` itself when none
        was). ``parameters``: the names are a query string's or a form's."""
        if isinstance(container, dict):
            plain = self._plain_parameters if parameters else self._plain_names
            if (
                self.shortcuts
                and plain.issuperset(container)
                and self._all_plain(container.values())
            ):
                return container  # names and values all seen before, and harmless
            redacted: dict[Any, Any] | None = None
            for name, value in container.items():
                label = str(name)
                sensitive = (
                    self.is_sensitive_parameter(label) if parameters else self.is_sensitive(label)
                )
                if sensitive or self._secret_shaped(value):
                    if redacted is None:
                        redacted = dict(container)
                    redacted[name] = REDACTED
            return container if redacted is None else redacted
        if isinstance(container, list):
            result: list[Any] | None = None
            for index, item in enumerate(container):
                if isinstance(item, dict) and "value" in item:
                    name = item.get("name", item.get("key"))
                    sensitive = False
                    if isinstance(name, str | bytes):
                        label = _text(name)
                        sensitive = (
                            self.is_sensitive_parameter(label)
                            if parameters
                            else self.is_sensitive(label)
                        )
                    if sensitive or self._secret_shaped(item["value"]):
                        if result is None:
                            result = list(container)
                        result[index] = {**item, "value": REDACTED}
            return container if result is None else result
        return container

    def _secret_shaped(self, value: Any) -> bool:
        """A value (or one of a header's values) shaped like a credential."""
        if isinstance(value, str):
            if not self.shortcuts:
                return value != REDACTED and _secret_shapes_for(value).search(value) is not None
            if value in self._plain_values or value == REDACTED:
                return False
            if may_hold_secret_value(value) and _secret_shapes_for(value).search(value) is not None:
                return True
            if len(value) <= _PLAIN_VALUE_CHARS:
                if len(self._plain_values) >= PLAIN_VALUES:
                    self._plain_values.clear()
                self._plain_values.add(value)
            return False
        if isinstance(value, list):
            return any(self._secret_shaped(item) for item in value)
        return False

    def _all_plain(self, values: Iterable[Any]) -> bool:
        """Every one of ``values`` a string known not to be shaped like a credential."""
        try:
            return self._plain_values.issuperset(values)
        except TypeError:  # a list of values is not remembered: each is looked at
            return False

    # -- documents -----------------------------------------------------------------------------

    def _body(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """``text`` redacted as the document it is (base64 bodies are decoded first)."""
        text: str = content["text"]
        mime = str(content.get("mimeType") or "")
        if content.get("encoding") == "base64":
            try:
                raw = binascii.a2b_base64(text, strict_mode=True)  # b64decode(validate=True)
            except (binascii.Error, ValueError):
                return {}
            # A UTF-8 body (base64 for its control characters only) is read as the text it is,
            # so that a character the JSON writer decoded from an escape is written back as that
            # text's own bytes. Any other body is read as latin-1, which maps every byte to one
            # character and back: the bytes survive untouched.
            try:
                decoded, charset = raw.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                decoded, charset = raw.decode("latin-1"), "latin-1"
            redacted = self.document(decoded, mime)
            if redacted is None:
                return {}
            return {"text": base64.b64encode(_encoded(redacted, charset)).decode("ascii")}
        redacted = self.document(text, mime)
        return {} if redacted is None else {"text": redacted}

    def document(self, text: str, mime: str = "", depth: int = 0) -> str | None:
        """``text`` with sensitive fields redacted, or None when nothing changed. What does
        not read as JSON, XML, a form or multipart is redacted by pattern."""
        mark = ""
        if text.startswith(_BYTE_ORDER_MARKS):
            mark = next(mark for mark in _BYTE_ORDER_MARKS if text.startswith(mark))
        content = text[len(mark) :]
        start = content.lstrip()[:1]
        kind = mime.lower()
        if "multipart/" in kind and depth < 2:
            redacted = self._multipart(content, mime, depth)
        elif start in ("{", "["):
            redacted = self._json(content)
        elif start == "<":
            redacted = self._xml(content)
        elif any(form in kind for form in _FORM_TYPES) or (
            "=" in content and "\n" not in content and " " not in content
        ):
            redacted = self._form(content)
        else:
            redacted = self.patterns_in(content)
        return None if redacted is None else mark + redacted

    def _json(self, text: str, strings_plain: bool = False) -> str | None:
        """A JSON document, or lines of JSON (NDJSON); what does not parse is redacted by
        pattern. ``strings_plain``: ``text`` is known to have no escape and no credential's
        shape (a line of a text that has none)."""
        if self.shortcuts and self._json_untouched(text, strings_plain):
            return None
        return self._json_walk(text)

    def _json_walk(self, text: str) -> str | None:
        """:meth:`_json` without the proof that nothing in ``text`` is to be redacted."""
        document = parse_json(text)
        if document is NOT_JSON:
            if "\n" not in text.strip():
                return self.patterns_in(text)
            lines = text.split("\n")
            changed = False
            # one search over the whole text answers for each of its lines
            lines_plain = self.shortcuts and _strings_plain(text)
            for index, line in enumerate(lines):
                redacted_line = self._json(line, lines_plain) if line.strip() else None
                if redacted_line is not None:
                    lines[index] = redacted_line
                    changed = True
            return "\n".join(lines) if changed else None
        redacted, changed, deep = self._json_value(document, 0)
        if not changed and not deep:
            return None
        written = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))
        if deep:  # beyond MAX_DEPTH, names are found by pattern
            return self.patterns_in(written) or (written if changed else None)
        share_parsed(written, redacted)  # read next by the API rules, OpenAPI, the filter
        return written

    def _json_untouched(self, text: str, strings_plain: bool = False) -> bool:
        """True only when ``text`` is a JSON document that :meth:`_json` would leave as it is:
        it parses, nests no deeper than :data:`MAX_DEPTH`, and has no sensitive name and no
        string shaped like a credential. Proved without the copy the walk makes: orjson reads
        it (a stricter reader than the one the walk uses: what it takes, that one takes, with
        the same names and strings), and when the text has no escape its strings are spans of
        it, so one search over the text finds any shape in them."""
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
        return self._json_plain(document, 0, strings_plain or _strings_plain(text))

    def _json_plain(self, value: Any, depth: int, strings_plain: bool) -> bool:
        """Nothing in ``value`` that :meth:`_json_value` would replace or find too deep;
        ``strings_plain``: its strings are known not to be shaped like credentials."""
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                return False
            if not self._plain_names.issuperset(value) and any(map(self.is_sensitive, value)):
                return False
            for item in value.values():
                if not (strings_plain and isinstance(item, str)) and not self._json_plain(
                    item, depth + 1, strings_plain
                ):
                    return False
            return True
        if isinstance(value, list):
            if depth > MAX_DEPTH:
                return False
            return all(self._json_plain(item, depth + 1, strings_plain) for item in value)
        if isinstance(value, str):
            return strings_plain or not self._secret_shaped(value)
        return True

    def _json_value(self, value: Any, depth: int) -> tuple[Any, bool, bool]:
        """``value`` redacted, whether that changed it, and whether it nests deeper than
        :data:`MAX_DEPTH` (that part is left as it is)."""
        if depth > MAX_DEPTH and isinstance(value, dict | list):
            return value, False, True
        changed = deep = False
        if isinstance(value, dict):
            result: dict[str, Any] = {}
            for name, item in value.items():
                if self.is_sensitive(name):
                    result[name] = REDACTED
                    changed = True
                else:
                    result[name], inner, too_deep = self._json_value(item, depth + 1)
                    changed = changed or inner
                    deep = deep or too_deep
            return result, changed, deep
        if isinstance(value, list):
            items = []
            for item in value:
                redacted, inner, too_deep = self._json_value(item, depth + 1)
                items.append(redacted)
                changed = changed or inner
                deep = deep or too_deep
            return items, changed, deep
        if isinstance(value, str) and self._secret_shaped(value):
            return REDACTED, True, False
        return value, False, False

    def _multipart(self, text: str, mime: str, depth: int) -> str | None:
        """Each part of a ``multipart/*`` body: a sensitive field's value replaced, any other
        part redacted as the document its own Content-Type says it is."""
        found = _MULTIPART_BOUNDARY.search(mime)
        if found is None:
            return self.patterns_in(text)
        delimiter = "--" + (found.group(1) or found.group(2))
        parts = text.split(delimiter)
        changed = False
        for index in range(1, len(parts)):
            part = parts[index]
            separator = "\r\n\r\n" if "\r\n\r\n" in part else "\n\n"
            head, found_separator, content = part.partition(separator)
            if not found_separator:
                redacted = self.patterns_in(part)
                if redacted is not None:
                    parts[index] = redacted
                    changed = True
                continue
            found_name = _PART_NAME.search(head)
            name = None
            if found_name is not None:  # ``name=""`` is a name, the empty one
                quoted = found_name.group(1)
                name = quoted if quoted is not None else found_name.group(2)
            if name is not None and self.is_sensitive_parameter(name):
                ending = "\r\n" if content.endswith("\r\n") else ""
                parts[index] = head + found_separator + REDACTED + ending
                changed = True
                continue
            part_type = _PART_TYPE.search(head)
            redacted = self.document(content, part_type.group(1) if part_type else "", depth + 1)
            if redacted is not None:
                parts[index] = head + found_separator + redacted
                changed = True
        return delimiter.join(parts) if changed else None

    def patterns_in(self, text: str) -> str | None:
        """``text`` read as no particular format: the values of sensitive names (``name=value``,
        ``"name": "value"``, ``<name>value``) and values shaped like credentials replaced; None
        when there was nothing to replace."""

        def named(match: re.Match[str]) -> str:
            if not self.is_sensitive(match.group(2)):
                return match.group(0)
            value = match.group(4)
            quote = value[0] if value[0] in "\"'" else ""
            return f"{match.group(1)}{match.group(2)}{match.group(1)}{match.group(3)}" + (
                f"{quote}{REDACTED}{quote}"
            )

        def element(match: re.Match[str]) -> str:
            if not self.is_sensitive(match.group(2)) or not match.group(4).strip():
                return match.group(0)
            return f"<{match.group(1)}{match.group(3) or ''}>{REDACTED}"

        redacted = text
        if not self.shortcuts or may_hold_secret_value(text):  # first: "Bearer x" is one value
            redacted = _secret_shapes_for(text).sub(REDACTED, text)
        if "=" in redacted or ":" in redacted:  # what every name=value and name: value has
            redacted = _NAMED_VALUE.sub(named, redacted)
        if "<" in redacted:
            redacted = _XML_OPENED.sub(element, redacted)
        return None if redacted == text else redacted

    def _xml(self, text: str) -> str | None:
        def element(match: re.Match[str]) -> str:
            if not self.is_sensitive(match.group(2)):
                return match.group(0)
            return f"<{match.group(1)}{match.group(3) or ''}>{REDACTED}</{match.group(1)}>"

        def attribute(match: re.Match[str]) -> str:
            if not self.is_sensitive(match.group(2)):
                return match.group(0)
            quote = match.group(3)[0]
            return f"{match.group(1)}{quote}{REDACTED}{quote}"

        redacted = _XML_ELEMENT.sub(element, text)
        redacted = _XML_TAG.sub(lambda tag: _XML_ATTRIBUTE.sub(attribute, tag.group(0)), redacted)
        # an element cut short or holding more elements than its text: found by pattern
        redacted = self.patterns_in(redacted) or redacted
        return None if redacted == text else redacted

    def _form(self, text: str) -> str | None:
        """``a=1&password=x`` → ``a=1&password=[REDACTED]``; names are compared decoded."""
        fields = text.split("&")
        changed = False
        for index, field in enumerate(fields):
            name, equals, value = field.partition("=")
            if equals and (
                self.is_sensitive_parameter(unquote_plus(name))
                or self._secret_shaped(unquote_plus(value))
            ):
                fields[index] = f"{name}={REDACTED}"
                changed = True
        return "&".join(fields) if changed else None

    def _url(self, url: str) -> str:
        base, mark, rest = url.partition("?")
        if not mark:
            return url
        query, hash_mark, fragment = rest.partition("#")
        redacted = self._form(query)
        if redacted is None:
            return url
        return f"{base}?{redacted}{hash_mark}{fragment}"


def _encoded(text: str, charset: str) -> bytes:
    """A base64 body's redacted text as bytes again, in the charset it was read with; a
    character that charset cannot hold (the JSON writer decoded it from an escape, so it is
    inside a string) is written as that escape again."""
    try:
        return text.encode(charset)
    except UnicodeEncodeError:
        return "".join(_encodable(char, charset) for char in text).encode(charset)


def _encodable(char: str, charset: str) -> str:
    try:
        char.encode(charset)
    except UnicodeEncodeError:
        return json.dumps(char)[1:-1]
    return char


def _strings_plain(text: str) -> bool:
    """No string of the JSON ``text`` is shaped like a credential: with no escape in the text,
    its strings are spans of it, and no shape is anywhere in it."""
    return "\\" not in text and not may_hold_secret_value(text)


def _remember(name: str, sensitive: bool, plain: set[str], sensitives: set[str]) -> None:
    """Keep a name's verdict, while fewer than :data:`KNOWN_NAMES` are kept."""
    if len(plain) + len(sensitives) < KNOWN_NAMES:
        (sensitives if sensitive else plain).add(name)


def _all_redacted(container: Any) -> Any:
    if isinstance(container, dict):
        return {name: REDACTED for name in container} if container else container
    if isinstance(container, list):
        result: list[Any] | None = None
        for index, item in enumerate(container):
            if isinstance(item, dict) and "value" in item:
                if result is None:
                    result = list(container)
                result[index] = {**item, "value": REDACTED}
        return container if result is None else result
    return container


def _text(name: str | bytes) -> str:
    return name.decode("latin-1") if isinstance(name, bytes) else name


class UserAgentFilter:
    """``tap.ignored-user-agents``: pairs whose request's User-Agent header matches one of
    the patterns (regular expressions, searched case-insensitively) are dropped."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        combined = "|".join(f"(?:{pattern})" for pattern in self.patterns)
        self._ignored = re.compile(combined, re.IGNORECASE) if combined else None

    def ignores(self, entry: Mapping[str, Any]) -> bool:
        if self._ignored is None:
            return False
        request = entry.get("request")
        headers = request.get("headers") if isinstance(request, dict) else None
        if not isinstance(headers, dict):
            return False
        for name, value in headers.items():
            if isinstance(name, str) and name.lower() == "user-agent":
                values = value if isinstance(value, list) else [value]
                return any(self._ignored.search(str(agent)) for agent in values)
        return False


def redacting(
    write: Callable[[dict[str, Any]], None], redactor: Redactor
) -> Callable[[dict[str, Any]], None]:
    """``write`` behind ``redactor``: what it is given is redacted first."""

    def write_redacted(entry: dict[str, Any]) -> None:
        write(redactor(entry))

    return write_redacted
