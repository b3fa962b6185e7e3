"""What a tapper removes before an entry leaves the node: secrets, and pairs nobody wants.

Redaction is generic over *names*: the names inside headers (and trailers), query strings,
cookies and body documents (JSON, XML, forms) wherever they sit in an entry's request or
response, so the core needs no protocol knowledge. A protocol's own fields are never looked at
by name (a Redis ``request.key`` stays); only the values of those named containers and bodies
are. A name is normalised (lower case, letters and digits only: ``X-Api-Key`` → ``xapikey``)
and is sensitive when one of the patterns (regular expressions) is found in it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus

from mizu_core.entry import NOT_JSON, parse_json, share_parsed
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


def normalise(name: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", name.lower())


class Redactor:
    """Replaces the values of sensitive names with ``[REDACTED]`` in an entry's request and
    response. Entries are not changed in place: the containers along a change are copied."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS) -> None:
        self.patterns = tuple(patterns)
        combined = "|".join(f"(?:{pattern})" for pattern in self.patterns)
        self._sensitive = re.compile(combined) if combined else None
        self._known: dict[str, bool] = {}

    def is_sensitive(self, name: str) -> bool:
        known = self._known.get(name)
        if known is None:
            known = self._sensitive is not None and bool(self._sensitive.search(normalise(name)))
            if len(self._known) < 10_000:  # names repeat; a flood of new ones must not grow it
                self._known[name] = known
        return known

    def __call__(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        result = dict(entry)
        for side in ("request", "response"):
            message = entry.get(side)
            if isinstance(message, dict):
                result[side] = self._message(message, 0)
        return result

    # -- structure -----------------------------------------------------------------------------

    def _message(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        """A copy of ``node`` with its named containers, bodies and URLs redacted; nested
        objects are searched for more of them."""
        if depth > MAX_DEPTH:
            return node
        result = dict(node)
        if isinstance(node.get("text"), str) and "mimeType" in node:
            result.update(self._body(node))
        for key, value in node.items():
            if key in NAMED_CONTAINERS:
                result[key] = self._named(value)
            elif key in COOKIE_CONTAINERS:
                result[key] = _all_redacted(value)
            elif key == "params" and isinstance(value, list):
                result[key] = self._named(value)
            elif key == "url" and isinstance(value, str):
                result[key] = self._url(value)
            elif isinstance(value, dict):
                result[key] = self._message(value, depth + 1)
            elif isinstance(value, list):
                result[key] = [
                    self._message(item, depth + 1) if isinstance(item, dict) else item
                    for item in value
                ]
        return result

    def _named(self, container: Any) -> Any:
        """``{name: value | [values]}`` or ``[{name|key, value}]`` with sensitive values
        replaced."""
        if isinstance(container, dict):
            return {
                name: REDACTED if self.is_sensitive(str(name)) else value
                for name, value in container.items()
            }
        if isinstance(container, list):
            result = []
            for item in container:
                if isinstance(item, dict) and "value" in item:
                    name = item.get("name", item.get("key"))
                    if isinstance(name, str | bytes) and self.is_sensitive(_text(name)):
                        item = {**item, "value": REDACTED}
                result.append(item)
            return result
        return container

    # -- documents -----------------------------------------------------------------------------

    def _body(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """``text`` redacted as the document it is (base64 bodies are decoded first)."""
        text: str = content["text"]
        mime = str(content.get("mimeType") or "").lower()
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

    def document(self, text: str, mime: str = "") -> str | None:
        """``text`` with sensitive fields redacted, or None when nothing changed."""
        start = text.lstrip()[:1]
        if start in ("{", "["):
            return self._json(text)
        if start == "<":
            return self._xml(text)
        if any(kind in mime for kind in _FORM_TYPES) or ("=" in text and "\n" not in text):
            return self._form(text)
        return None

    def _json(self, text: str) -> str | None:
        document = parse_json(text)
        if document is NOT_JSON:
            return None
        redacted, changed = self._json_value(document, 0)
        if not changed:
            return None
        written = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))
        share_parsed(written, redacted)  # read next by the API rules, OpenAPI, the filter
        return written

    def _json_value(self, value: Any, depth: int) -> tuple[Any, bool]:
        if depth > MAX_DEPTH:
            return value, False
        changed = False
        if isinstance(value, dict):
            result: dict[str, Any] = {}
            for name, item in value.items():
                if self.is_sensitive(name):
                    result[name] = REDACTED
                    changed = True
                else:
                    result[name], inner = self._json_value(item, depth + 1)
                    changed = changed or inner
            return result, changed
        if isinstance(value, list):
            items = []
            for item in value:
                redacted, inner = self._json_value(item, depth + 1)
                items.append(redacted)
                changed = changed or inner
            return items, changed
        return value, False

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
        return None if redacted == text else redacted

    def _form(self, text: str) -> str | None:
        """``a=1&password=x`` → ``a=1&password=[REDACTED]``; names are compared decoded."""
        fields = text.split("&")
        changed = False
        for index, field in enumerate(fields):
            name, equals, _ = field.partition("=")
            if equals and self.is_sensitive(unquote_plus(name)):
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
