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
from typing import Any
from urllib.parse import unquote_plus

import re2

from mizu_core.entry import NOT_JSON, parse_json, share_parsed
from mizu_core.model import Protocol
from mizu_core.query.evaluate import REDACTED

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

NAMED_CONTAINERS = frozenset({"headers", "trailers", "queryString"})
"""Keys whose value maps names to values (or is a list of ``{name, value}``)."""
COOKIE_CONTAINERS = frozenset({"cookies"})
"""Every value inside is a cookie: all of them are redacted."""
MAX_DEPTH = 64

_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")
_XML_ELEMENT = re.compile(r"<((?:[\w.-]+:)?([\w.-]+))(\s[^<>]*)?>([^<]*)</\1\s*>")
_XML_TAG = re.compile(r"<[^<>!?/][^<>]*>")
_XML_ATTRIBUTE = re.compile(r"(\s(?:[\w.-]+:)?([\w.-]+)\s*=\s*)(\"[^\"]*\"|'[^']*')")
_FORM_TYPES = ("application/x-www-form-urlencoded",)
_BYTE_ORDER_MARKS = ("\ufeff", "\xef\xbb\xbf")
"""UTF-8's byte-order mark as text, and as its three octets read as latin-1 (base64 bodies)."""

_SECRET_SHAPES = (
    r"(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Dd]igest|[Nn]egotiate|NTLM|[Tt]oken)"
    r"\s+[A-Za-z0-9._~+/=:-]{6,}"
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
# Both engines must find the same matches: re.ASCII gives re RE2's ASCII \s and \b, and the
# pattern avoids what only one of them has (\Z, look-arounds, back-references).
SECRET_VALUE = re.compile(_SECRET_SHAPES, re.ASCII)
"""Values that are credentials by their shape: authorization schemes with their token, JWTs
(a JSON header always starts ``eyJ``), the keys of AWS, Stripe, GitHub, GitLab, Slack and
Google, PEM private keys."""
_SECRET_VALUE_SCAN = re2.compile(_SECRET_SHAPES)
"""The same shapes for long texts (bodies): RE2 scans them in one pass, where re tries every
alternative at every offset (20x slower on a 64 KB body); re's call costs less on short values."""
_LONG_TEXT = 512


def _secret_shapes_for(text: str) -> re.Pattern[str]:
    """The engine that finds :data:`SECRET_VALUE`'s shapes in ``text`` fastest."""
    return SECRET_VALUE if len(text) < _LONG_TEXT else _SECRET_VALUE_SCAN


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


class Redactor:
    """Replaces the values of sensitive names with ``[REDACTED]`` in an entry's request and
    response. Entries are not changed in place: the containers along a change are copied."""

    def __init__(
        self,
        patterns: Iterable[str] = DEFAULT_PATTERNS,
        protocols: Iterable[Protocol] = (),
    ) -> None:
        """``protocols``: what the plugins declared (their secret and payload fields)."""
        self.patterns = tuple(patterns)
        combined = "|".join(f"(?:{pattern})" for pattern in self.patterns)
        self._sensitive = re.compile(combined) if combined else None
        self._parameter = re.compile("|".join(PARAMETER_PATTERNS))
        self._known: dict[str, bool] = {}
        self.secret_fields: dict[str, frozenset[str]] = {}
        self.payload_fields: dict[str, frozenset[str]] = {}
        for protocol in protocols:
            for declared, fields in (
                (self.secret_fields, protocol.secret_fields),
                (self.payload_fields, protocol.payload_fields),
            ):
                declared[protocol.name] = declared.get(protocol.name, frozenset()) | set(fields)

    def is_sensitive(self, name: str) -> bool:
        known = self._known.get(name)
        if known is None:
            known = self._sensitive is not None and bool(self._sensitive.search(normalise(name)))
            if len(self._known) < 10_000:  # names repeat; a flood of new ones must not grow it
                self._known[name] = known
        return known

    def is_sensitive_parameter(self, name: str) -> bool:
        """A query string's or a form's field: OAuth's ``code`` besides the sensitive names."""
        return self.is_sensitive(name) or bool(self._parameter.search(normalise(name)))

    def __call__(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        result = dict(entry)
        protocol = entry.get("protocol")
        name = protocol.get("name") if isinstance(protocol, dict) else None
        secret = payload = frozenset[str]()
        if isinstance(name, str):
            secret = self.secret_fields.get(name, secret)
            payload = self.payload_fields.get(name, payload)
        for side in ("request", "response"):
            message = entry.get(side)
            if isinstance(message, dict):
                result[side] = self._message(message, 0, secret, payload)
        return result

    # -- structure -----------------------------------------------------------------------------

    def _message(
        self,
        node: dict[str, Any],
        depth: int,
        secret: frozenset[str] = frozenset(),
        payload: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """A copy of ``node`` with its named containers, bodies, URLs, the protocol's ``secret``
        fields and its ``payload`` fields redacted; nested objects are searched for more."""
        if depth > MAX_DEPTH:
            return node
        result = dict(node)
        if isinstance(node.get("text"), str) and "mimeType" in node:
            result.update(self._body(node))
        for key, value in node.items():
            if key in secret:
                result[key] = REDACTED
            elif key in payload and isinstance(value, str):
                result[key] = self.document(value) or value
            elif key in NAMED_CONTAINERS:
                result[key] = self._named(value, parameters=key == "queryString")
            elif key in COOKIE_CONTAINERS:
                result[key] = _all_redacted(value)
            elif key == "params" and isinstance(value, list):
                result[key] = self._named(value, parameters=True)
            elif key == "url" and isinstance(value, str):
                result[key] = self._url(value)
            elif isinstance(value, dict):
                result[key] = self._message(value, depth + 1, secret, payload)
            elif isinstance(value, list):
                texts = key in payload  # a command's arguments, say
                result[key] = [
                    self._message(item, depth + 1, secret, payload)
                    if isinstance(item, dict)
                    else (self.document(item) or item)
                    if texts and isinstance(item, str)
                    else item
                    for item in value
                ]
        return result

    def _named(self, container: Any, parameters: bool = False) -> Any:
        """``{name: value | [values]}`` or ``[{name|key, value}]`` with the values of sensitive
        names, and values shaped like credentials, replaced. ``parameters``: the names are a
        query string's or a form's."""
        sensitive = self.is_sensitive_parameter if parameters else self.is_sensitive
        if isinstance(container, dict):
            return {
                name: REDACTED if sensitive(str(name)) or _secret_shaped(value) else value
                for name, value in container.items()
            }
        if isinstance(container, list):
            result = []
            for item in container:
                if isinstance(item, dict) and "value" in item:
                    name = item.get("name", item.get("key"))
                    if (isinstance(name, str | bytes) and sensitive(_text(name))) or (
                        _secret_shaped(item["value"])
                    ):
                        item = {**item, "value": REDACTED}
                result.append(item)
            return result
        return container

    # -- documents -----------------------------------------------------------------------------

    def _body(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """``text`` redacted as the document it is (base64 bodies are decoded first)."""
        text: str = content["text"]
        mime = str(content.get("mimeType") or "")
        if content.get("encoding") == "base64":
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                return {}
            # latin-1 maps every byte to one character and back: the bytes survive untouched
            redacted = self.document(raw.decode("latin-1"), mime)
            if redacted is None:
                return {}
            return {"text": base64.b64encode(redacted.encode("latin-1")).decode("ascii")}
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

    def _json(self, text: str) -> str | None:
        """A JSON document, or lines of JSON (NDJSON); what does not parse is redacted by
        pattern."""
        document = parse_json(text)
        if document is NOT_JSON:
            if "\n" not in text.strip():
                return self.patterns_in(text)
            lines = text.split("\n")
            changed = False
            for index, line in enumerate(lines):
                redacted = self._json(line) if line.strip() else None
                if redacted is not None:
                    lines[index] = redacted
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
        if isinstance(value, str) and _secret_shaped(value):
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
            name = _PART_NAME.search(head)
            if name is not None and self.is_sensitive_parameter(name.group(1) or name.group(2)):
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

        redacted = _secret_shapes_for(text).sub(REDACTED, text)  # first: "Bearer x" is one value
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
                or _secret_shaped(unquote_plus(value))
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


def _secret_shaped(value: Any) -> bool:
    """A value (or one of a header's values) shaped like a credential."""
    if isinstance(value, str):
        return value != REDACTED and _secret_shapes_for(value).search(value) is not None
    if isinstance(value, list):
        return any(_secret_shaped(item) for item in value)
    return False


def _all_redacted(container: Any) -> Any:
    if isinstance(container, dict):
        return {name: REDACTED for name in container}
    if isinstance(container, list):
        return [
            {**item, "value": REDACTED} if isinstance(item, dict) and "value" in item else item
            for item in container
        ]
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
