"""The entry, its list row and its detail view as types, and the helpers plugins build them with.

An entry is a JSON object (docs/entries.md): what ``mizu dissect`` prints, what the hub stores
and serves. It stays a plain ``dict`` on the hot path, so that it is built once and encoded
once; these :class:`~typing.TypedDict` types say what it holds, for the hooks' signatures and
for type checkers. Re-exported from :mod:`mizu_core`.

The helpers make the pieces every plugin needs the same way: the ``*Query`` strings of a row
(:func:`query_literal`, :func:`equals`, :func:`key_selector`, :func:`all_of`,
:func:`row_query`) and the sections
of a detail view (:func:`table`, :func:`row`, :func:`body`, :func:`json_body`).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final, Literal, NotRequired, TypedDict


class ProtocolJson(TypedDict):
    """An entry's ``protocol``: what its plugin declared (:class:`~mizu_core.Protocol`)."""

    name: str
    version: str
    abbr: str
    longName: str
    macro: str
    backgroundColor: str
    foregroundColor: str
    referenceLink: str
    priority: int


class EndpointJson(TypedDict):
    """An entry's ``src`` or ``dst``; ``name`` is ``"name.namespace"`` once resolved."""

    ip: str
    port: int
    name: str
    namespace: str


class Entry(TypedDict):
    """One request/response pair, or one unanswered message (docs/entries.md)."""

    id: str
    protocol: ProtocolJson
    src: EndpointJson
    dst: EndpointJson
    outgoing: bool
    fromServer: bool
    """The connection's server sent the message that opened the exchange (a WebSocket frame
    it pushed, an AMQP ``basic.deliver``): ``src`` and ``dst`` follow the message, this says
    which of them is the server."""
    timestamp: int
    """Milliseconds since the epoch: the request's first byte."""
    startTime: str
    elapsedTime: float
    """Milliseconds from the request's first byte to the response's last."""
    requestSize: int
    responseSize: int
    request: dict[str, Any] | None
    """The protocol's own object; every request has a ``method``."""
    response: dict[str, Any] | None
    rules: NotRequired[dict[str, Any]]
    """``{passed: [name], failed: [{name, reason}]}`` once API rules are configured."""
    unpaired: NotRequired[str]
    """Why a message has no partner: ``gap``, ``midstream``, ``timeout``, ``closed``."""
    error: NotRequired[bool]
    """The owner plugin's word (its ``summarize``'s ``error``), set by the core once
    ``analyze`` has returned."""
    tls: NotRequired[dict[str, Any]]
    """The TLS session: ``{version, cipher, sni, alpn, decrypted}`` on the entries of decrypted
    traffic (a layer's fields) and on ``tls`` entries, which add ``ja4`` and ``reason``."""


class Summary(TypedDict, total=False):
    """What ``summarize`` returns: the row's fields only the protocol knows."""

    summary: str
    summaryQuery: str
    method: str
    methodQuery: str
    status: str | int
    statusQuery: str
    error: bool
    """The exchange failed, in the protocol's own terms (a 5xx, a gRPC status, a RST)."""
    statusName: str
    """The protocol's name of the status (``NOT_FOUND``, ``UNKNOWN_TOPIC_OR_PARTITION``)."""


class Row(Summary):
    """An entry's row in the live list and in ``GET /entries``: the core's fields, then the
    owner's :class:`Summary`."""

    id: str
    proto: ProtocolJson
    timestamp: int
    src: EndpointJson
    dst: EndpointJson
    isOutgoing: bool
    latency: float
    rules: NotRequired[dict[str, int]]
    """How many API rules the entry passed and failed."""
    tls: NotRequired[dict[str, Any]]
    """The entry's ``tls``, for the lock the list shows on decrypted traffic."""
    seq: NotRequired[int]
    """The entry's place in the hub's store: a listing's ``leftOff``."""


class TableRow(TypedDict):
    """A row of a table section: ``selector`` is the filter path of ``value``."""

    name: str
    value: Any
    selector: str


class Section(TypedDict):
    """A part of the detail view: a table of named values, or a body of text."""

    type: Literal["table", "body"]
    title: str
    data: Any
    """A table's rows (:class:`TableRow`), a body's text."""
    encoding: NotRequired[str]
    """``base64`` for a binary body."""
    mimeType: NotRequired[str]
    selector: NotRequired[str]


Representation = dict[str, list[Section]]
"""What ``represent`` returns: ``{"request": [Section], "response": [Section]}``."""


# -- the filter strings of a row -----------------------------------------------------------------

_ESCAPED = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def escape_query_string(text: str) -> str:
    """``text`` as the inside of a double-quoted filter-language string."""
    # Rows are made for every entry as it is captured, and most texts have nothing to escape:
    # five substring searches cost a quarter of translate's lookup of every character.
    if "\\" in text or '"' in text or "\n" in text or "\r" in text or "\t" in text:
        return text.translate(_ESCAPED)
    return text


def query_literal(value: object) -> str:
    """``value`` as a filter-language literal: a quoted string, a number, ``true``/``false``,
    ``nil``."""
    if isinstance(value, str):
        return f'"{escape_query_string(value)}"'
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    return f'"{escape_query_string(str(value))}"'


def equals(selector: str, value: object) -> str:
    """The filter ``selector == value``: ``equals("request.path", "/a")`` is
    ``request.path == "/a"``."""
    return f"{selector} == {query_literal(value)}"


def key_selector(selector: str, key: str) -> str:
    """The selector of ``key`` in the object at ``selector``: ``request.headers["Host"]``."""
    return f"{selector}[{query_literal(key)}]"


def all_of(*queries: str) -> str:
    """The filter that every non-empty one of ``queries`` matches: ``all_of("http",
    equals("request.method", "GET"))`` is ``http and request.method == "GET"``."""
    return " and ".join([query for query in queries if query])


MAX_REMEMBERED_QUERIES: Final = 4096
"""Queries :func:`row_query` keeps, at most (all are forgotten when there are more)."""
_ROW_QUERIES: Final[dict[str, dict[str, dict[object, str]]]] = {}
"""Remembered queries by ``within``, selector and value: lookups by texts whose hashes are kept
in them, cheaper than by a tuple made, hashed and freed at each call."""
_REMEMBERED: Final = [0]
"""How many queries :data:`_ROW_QUERIES` holds."""


def row_query(within: str, selector: str, value: object) -> str:
    """``all_of(within, equals(selector, value))``, for a list row's ``summaryQuery``,
    ``methodQuery`` or ``statusQuery``: ``within`` is the protocol's macro, or a row query
    for two conditions (``row_query(row_query("amqp", "request.exchange", "logs"),
    "request.routingKey", "eu")``). The core asks for the row of every entry, and a capture's
    entries repeat a few methods, statuses and names: the query is remembered when ``value``
    is a text or an integer (not a boolean, which would share a key with 0 or 1), up to
    :data:`MAX_REMEMBERED_QUERIES` of them."""
    if type(value) is not str and type(value) is not int:
        return all_of(within, equals(selector, value))
    by_selector = _ROW_QUERIES.get(within)
    if by_selector is not None:
        by_value = by_selector.get(selector)
        if by_value is not None:
            query = by_value.get(value)
            if query is not None:
                return query
    query = all_of(within, equals(selector, value))
    if _REMEMBERED[0] >= MAX_REMEMBERED_QUERIES:
        _ROW_QUERIES.clear()
        _REMEMBERED[0] = 0
    _ROW_QUERIES.setdefault(within, {}).setdefault(selector, {})[value] = query
    _REMEMBERED[0] += 1
    return query


# -- the sections of a detail view ----------------------------------------------------------------


def row(name: str, value: Any, selector: str) -> TableRow:
    return {"name": name, "value": value, "selector": selector}


def table(title: str, rows: Iterable[TableRow | tuple[str, Any, str]]) -> Section:
    """A table section; ``rows`` may be :func:`row`\\ s or ``(name, value, selector)``."""
    return {
        "type": "table",
        "title": title,
        "data": [item if isinstance(item, dict) else row(*item) for item in rows],
    }


def body(
    title: str,
    text: str,
    selector: str = "",
    mime_type: str = "text/plain",
    encoding: str = "",
) -> Section:
    """A body section: ``text`` shown as it is (base64 when ``encoding`` says so)."""
    section: Section = {"type": "body", "title": title, "data": text, "mimeType": mime_type}
    if encoding:
        section["encoding"] = encoding
    if selector:
        section["selector"] = selector
    return section


def json_body(title: str, value: Any, selector: str = "") -> Section:
    """A body section showing ``value`` as indented JSON."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return body(title, text, selector, "application/json")


# -- bodies ---------------------------------------------------------------------------------------


class _NotJson:
    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Final = _NotJson()
"""What :func:`parse_json` gives for a text that is not JSON."""
REDACTED: Final = "[REDACTED]"
"""What a redacted value reads: by the tappers' redaction and the filter language's
``redact``."""
SHARED_TEXTS = 256
"""How many recent texts keep their parsed document (:func:`parse_json`)."""
SHARED_CHARS = 256 << 10
"""Longer texts are parsed every time: what is kept stays small."""


class _RecentDocuments:
    """The documents of the texts parsed last, least recently used out (any thread)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._documents: OrderedDict[str | bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str | bytes) -> Any:
        with self._lock:
            document = self._documents.get(text, _UNKNOWN)
            if document is not _UNKNOWN:
                self._documents.move_to_end(text)
            return document

    def put(self, text: str | bytes, document: Any) -> None:
        with self._lock:
            self._documents[text] = document
            if len(self._documents) > self.size:
                self._documents.popitem(last=False)


_UNKNOWN = object()
_recent = _RecentDocuments(SHARED_TEXTS)


def parse_json(text: str | bytes) -> Any:
    """``text`` parsed as JSON, or :data:`NOT_JSON`.

    A body is read as JSON by several parts of Mizu in turn: redaction, the API rules, the
    filter language's ``json()``, OpenAPI inference, the detail view. The same text is parsed
    once while it is among the recent ones and the document shared: never change what this
    returns."""
    if len(text) > SHARED_CHARS:
        return _parse(text)
    document = _recent.get(text)
    if document is _UNKNOWN:
        document = _parse(text)
        _recent.put(text, document)
    return document


def share_parsed(text: str, document: Any) -> None:
    """Say that ``text`` is ``document`` in JSON (its writer knows), so that the next
    :func:`parse_json` of it need not parse it."""
    if len(text) <= SHARED_CHARS:
        _recent.put(text, document)


def _parse(text: str | bytes) -> Any:
    # the standard library's reader, not orjson's: orjson reads an integer beyond 64 bits as a
    # float, and a body's numbers must stay what they are (an id compared by a rule, a type
    # inferred for OpenAPI)
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return NOT_JSON
