"""The per-entry hooks' work: finishing entries (analyze), list rows (summarize) and the
detail view (represent).

Dissectors report what was on the wire (the request target, headers, decoded bodies); the
views derived from it for people and filters (absolute URL, path, query string, cookies, form
parameters) are made here, the same for HTTP/1 and HTTP/2.
"""

from __future__ import annotations

import base64
import http
import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from mizu_core import (
    NOT_JSON,
    Entry,
    Pair,
    Representation,
    Section,
    Summary,
    all_of,
    body,
    json_body,
    key_selector,
    parse_json,
    row_query,
    table,
)
from mizu_http.http1 import add_header

FORM_URLENCODED: Final = "application/x-www-form-urlencoded"
MULTIPART_FORM: Final = "multipart/form-data"


MAX_TITLED_NAMES: Final = 64
_TITLED_NAMES: Final[dict[str, str]] = {}
"""``name.title()`` of the header names looked up (the code's few): each is looked up for
every message, and a dict lookup costs a twentieth of the method call."""


def header_values(headers: Mapping[str, Any], name: str) -> list[str]:
    """Every value of header ``name`` (given in lower case; found in any case), in order."""
    # Entries' headers are dicts: typed as one, the compiled build looks them up in C rather
    # than through a method call each.
    table: dict[str, Any] = headers if isinstance(headers, dict) else dict(headers)
    value = table.get(name)
    if value is None:
        # Most messages spell names one way: the exact and the capitalised form first.
        titled = _TITLED_NAMES.get(name)
        if titled is None:
            titled = name.title()
            if len(_TITLED_NAMES) < MAX_TITLED_NAMES:
                _TITLED_NAMES[name] = titled
        value = table.get(titled)
        if value is None:
            # Absent (cookies, mostly), or spelled otherwise. Lower-casing keeps the length of
            # a name that becomes ASCII: names of another length are passed over without a
            # lower-cased copy of each, or of all of them joined.
            size = len(name)
            values: list[str] = []
            for key in table:
                if len(key) == size and key.lower() == name:
                    found = table[key]
                    values.extend(found if isinstance(found, list) else [found])
            return values
    return value if isinstance(value, list) else [value]


def query_pairs(query: str) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(query, keep_blank_values=True)``, the same pairs at a fifth of
    the cost: compiled, and calling ``unquote`` only for the parts that hold an escape."""
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        name = name.replace("+", " ")
        value = value.replace("+", " ")
        pairs.append(
            (
                unquote(name) if "%" in name else name,
                unquote(value) if "%" in value else value,
            )
        )
    return pairs


def _pairs_object(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        add_header(result, name, value)
    return result


def request_cookies(headers: Mapping[str, Any]) -> dict[str, Any]:
    pairs = []
    for header in header_values(headers, "cookie"):
        for part in header.split(";"):
            name, equals, value = part.strip().partition("=")
            if name and equals:
                pairs.append((name, value))
    return _pairs_object(pairs) if pairs else {}


def response_cookies(headers: Mapping[str, Any]) -> dict[str, Any]:
    pairs = []
    for header in header_values(headers, "set-cookie"):
        name, equals, value = header.split(";", 1)[0].strip().partition("=")
        if name and equals:
            pairs.append((name, value))
    return _pairs_object(pairs) if pairs else {}


def _body_bytes(body: Mapping[str, Any]) -> bytes:
    text = body.get("text", "")
    if body.get("encoding") == "base64":
        return base64.b64decode(text)
    return str(text).encode("utf-8")


def form_params(post_data: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """HAR ``params`` of an urlencoded or multipart form, None for other bodies."""
    mime = str(post_data.get("mimeType", ""))
    if len(mime) < len(MULTIPART_FORM):
        # Shorter than both names: cutting, stripping and lower-casing it cannot make either
        # (lower() lengthens only what it makes non-ASCII). Most bodies are JSON or gRPC.
        return None
    kind = mime.split(";", 1)[0].strip().lower()
    if kind == FORM_URLENCODED:
        text = _body_bytes(post_data).decode("utf-8", "replace")
        return [{"name": name, "value": value} for name, value in query_pairs(text)]
    if kind != MULTIPART_FORM:
        return None
    # Imported here: the email package costs every start-up ~0.07 s and few captures need it.
    from email.parser import BytesParser
    from email.policy import HTTP

    document = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + mime.encode("latin-1", "replace") + b"\r\n\r\n" + _body_bytes(post_data)
    )
    if not document.is_multipart():
        return None
    params = []
    for part in document.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        param: dict[str, Any] = {"name": str(name)}
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        if filename is not None:
            param["fileName"] = filename
            param["contentType"] = part.get_content_type()
        try:
            param["value"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            param["value"] = base64.b64encode(payload).decode("ascii")
            param["encoding"] = "base64"
        params.append(param)
    return params


def finish_request(request: Mapping[str, Any], scheme: str = "http") -> dict[str, Any]:
    """The entry's request: the wire's target split into URL, path, query string, cookies.
    ``scheme`` is the URL's when the request does not say (HTTP/1; ``https`` inside TLS)."""
    result = dict(request)
    target = result.pop("target", None)
    target = str(result.get("path", "") if target is None else target)
    headers = result.get("headers", {})
    if "://" in target and "://" in target.split("?", 1)[0]:  # absolute form (to a proxy)
        url = target
        split = urlsplit(target)
        path, query = split.path or "/", split.query
    else:
        path, _, query = target.partition("?")
        if result.get("httpVersion") == "HTTP/2.0":
            hosts = header_values(headers, ":authority") or header_values(headers, "host")
            schemes = header_values(headers, ":scheme")
            scheme = schemes[0] if schemes else scheme
        else:
            hosts = header_values(headers, "host")
        url = f"{scheme}://{hosts[0]}{target}" if hosts and target.startswith("/") else target
    result["url"] = url
    result["path"] = path
    result["queryString"] = _pairs_object(query_pairs(query)) if query else {}
    result["cookies"] = request_cookies(headers)
    post_data = result.get("postData")
    if post_data and not post_data.get("truncated"):
        params = form_params(post_data)
        if params is not None:
            result["postData"] = {**post_data, "params": params}
    return result


def finish_response(response: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(response)
    result["cookies"] = response_cookies(result.get("headers", {}))
    return result


def analyze(pair: Pair, entry: Entry) -> Entry | None:
    """The ``analyze`` hook: HTTP's entries get their views (WebSocket's are made whole)."""
    message = pair.request or pair.response
    if message is not None and message.protocol.name == "http":
        return analyze_http(entry)
    return None


def analyze_http(entry: Entry) -> Entry:
    request = entry.get("request")
    if request is not None:
        # A connection inside a layer (decrypted TLS) carries it as an entry field.
        entry["request"] = finish_request(request, "https" if "tls" in entry else "http")
    response = entry.get("response")
    if response is not None:
        entry["response"] = finish_response(response)
    return entry


# -- summarize -----------------------------------------------------------------------------------


GRPC_STATUS_NAMES: Final = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""gRPC status codes by number (grpc/doc/statuscodes.md)."""
HTTP2_ERROR_NAMES: Final = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)
"""HTTP/2 error codes by number (RFC 9113 section 7), as an ``RST_STREAM`` carries them."""
WEBSOCKET_CLOSE_NAMES: Final = {
    1000: "NORMAL_CLOSURE",
    1001: "GOING_AWAY",
    1002: "PROTOCOL_ERROR",
    1003: "UNSUPPORTED_DATA",
    1005: "NO_STATUS_RCVD",
    1006: "ABNORMAL_CLOSURE",
    1007: "INVALID_FRAME_PAYLOAD_DATA",
    1008: "POLICY_VIOLATION",
    1009: "MESSAGE_TOO_BIG",
    1010: "MANDATORY_EXTENSION",
    1011: "INTERNAL_ERROR",
    1012: "SERVICE_RESTART",
    1013: "TRY_AGAIN_LATER",
    1014: "BAD_GATEWAY",
    1015: "TLS_HANDSHAKE",
}
"""WebSocket close codes (RFC 6455 section 7.4.1, IANA registry); 1000, 1001 and 1005 are a
clean end, every other code says something went wrong."""
CLEAN_WEBSOCKET_CLOSES: Final = frozenset({1000, 1001, 1005})


def grpc_status_name(code: int) -> str:
    return GRPC_STATUS_NAMES[code] if 0 <= code < len(GRPC_STATUS_NAMES) else f"CODE_{code}"


def http_status_name(response: dict[str, Any], status: int) -> str:
    """The reason phrase sent (HTTP/1), else the standard one (HTTP/2 sends none)."""
    text = response.get("statusText")
    if isinstance(text, str) and text:
        return text
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _fields(value: Any) -> dict[str, Any]:
    """An entry's object (``{}`` for None) as a dict, which the compiled build reads in C
    rather than through a method call per lookup: entries are dicts, unless a caller made
    them otherwise."""
    if isinstance(value, dict):
        return value
    return dict(value) if value else {}


# What a row's status shows, by what the exchange holds: the first kind that applies.
NO_STATUS: Final = 0
RESET: Final = 1
"""An HTTP/2 stream reset before any answer."""
GRPC_STATUS: Final = 2
GRPC_UNDECODED: Final = 3
"""A gRPC answer whose grpc-status referred to an HPACK entry the capture never saw."""
HTTP_STATUS: Final = 4
"""An HTTP status, gRPC without a grpc-status (a proxy's answer) included."""
WEBSOCKET_CLOSE: Final = 5


def _status_kind(macro: str, request: dict[str, Any], response: dict[str, Any]) -> int:
    status = response.get("status")
    if "resetCode" in response and not status:
        return RESET
    if macro == "grpc" and response.get("grpcStatus") is not None:
        return GRPC_STATUS
    if macro == "grpc" and response.get("undecodedHeaders"):
        return GRPC_UNDECODED
    if isinstance(status, int) and not isinstance(status, bool):
        return HTTP_STATUS
    close_code = request.get("closeCode")
    # a stored true is no code (and 1 once compiled)
    if macro == "ws" and isinstance(close_code, int) and not isinstance(close_code, bool):
        return WEBSOCKET_CLOSE
    return NO_STATUS


def _as_int(value: Any) -> int:
    # int() of an untyped value is a call through Python; most are ints already (a stored
    # boolean is not, in either build)
    return value if type(value) is int else int(value)


def _failed(kind: int, request: dict[str, Any], response: dict[str, Any]) -> bool:
    if kind == RESET:
        return True
    if kind == GRPC_STATUS:
        return _as_int(response["grpcStatus"]) != 0
    if kind == HTTP_STATUS:
        return bool(response["status"] >= 400)
    if kind == WEBSOCKET_CLOSE:
        return request["closeCode"] not in CLEAN_WEBSOCKET_CLOSES
    return False


def is_error(entry: Mapping[str, Any]) -> bool:
    """The ``error`` of the entry's row (:func:`summarize`), without the rest of the row."""
    fields = _fields(entry)
    request = _fields(fields.get("request"))
    response = _fields(fields.get("response"))
    macro = _fields(fields["protocol"]).get("macro", "http")
    return _failed(_status_kind(macro, request, response), request, response)


def summarize(entry: Mapping[str, Any]) -> Summary:
    fields = _fields(entry)
    protocol = _fields(fields["protocol"])
    request = _fields(fields.get("request"))
    response = _fields(fields.get("response"))
    macro = protocol.get("macro", "http")
    path = str(request.get("path", ""))
    method = str(request.get("method", ""))
    kind = _status_kind(macro, request, response)
    row: Summary = {
        "summary": path,
        "summaryQuery": row_query(macro, "request.path", path),
        "method": method,
        "methodQuery": row_query(macro, "request.method", method),
        "status": "",
        "statusQuery": "",
        "error": _failed(kind, request, response),
        "statusName": "",
    }
    if kind == RESET:
        code = int(response["resetCode"])
        name = HTTP2_ERROR_NAMES[code] if 0 <= code < len(HTTP2_ERROR_NAMES) else f"0x{code:x}"
        row["status"], row["statusName"] = "RST", name
        row["statusQuery"] = row_query(macro, "response.resetCode", code)
    elif kind == GRPC_STATUS:
        code = _as_int(response["grpcStatus"])
        # shown by name, as Kafka's error codes are: "5" says nothing to most people
        name = grpc_status_name(code)
        row["status"], row["statusName"] = name, name
        row["statusQuery"] = row_query("grpc", "response.grpcStatus", code)
    elif kind == GRPC_UNDECODED:
        row["status"], row["statusName"] = "?", "grpc-status not decoded"
        row["statusQuery"] = all_of("grpc", "response.undecodedHeaders > 0")
    elif kind == HTTP_STATUS:
        status = response["status"]
        row["status"] = status
        row["statusName"] = http_status_name(response, status)
        row["statusQuery"] = row_query(macro, "response.status", status)
    elif kind == WEBSOCKET_CLOSE:
        code = request["closeCode"]
        row["status"], row["statusName"] = code, WEBSOCKET_CLOSE_NAMES.get(code, "")
        row["statusQuery"] = row_query("ws", "request.closeCode", code)
    return row


# -- represent -----------------------------------------------------------------------------------


def _object_table(title: str, side: str, key: str, values: Mapping[str, Any]) -> Section:
    return table(
        title,
        [(name, value, key_selector(f"{side}.{key}", name)) for name, value in values.items()],
    )


def pretty(text: str, mime_type: str) -> str:
    """JSON bodies indented for reading; everything else as it is."""
    if "json" in mime_type.lower():
        document = parse_json(text)
        if document is not NOT_JSON:
            return json.dumps(document, indent=2, ensure_ascii=False)
    return text


def _body_section(title: str, content: Mapping[str, Any], selector: str) -> Section:
    mime_type = str(content.get("mimeType", ""))
    if content.get("encoding"):
        return body(title, content.get("text", ""), selector, mime_type, content["encoding"])
    return body(title, pretty(str(content.get("text", "")), mime_type), selector, mime_type)


def _side_sections(side: str, message: Mapping[str, Any]) -> list[Section]:
    sections = []
    if side == "request":
        details = [
            ("Method", message.get("method", ""), "request.method"),
            ("URL", message.get("url", ""), "request.url"),
            ("Path", message.get("path", ""), "request.path"),
        ]
    else:
        details = [
            ("Status", message.get("status", ""), "response.status"),
            ("Status Text", message.get("statusText", ""), "response.statusText"),
        ]
        if "grpcStatus" in message:
            details.append(("gRPC Status", message["grpcStatus"], "response.grpcStatus"))
            details.append(("gRPC Message", message.get("grpcMessage", ""), "response.grpcMessage"))
    details += [
        ("HTTP Version", message.get("httpVersion", ""), f"{side}.httpVersion"),
        ("Headers Size", message.get("headersSize", -1), f"{side}.headersSize"),
        ("Body Size", message.get("bodySize", -1), f"{side}.bodySize"),
    ]
    # what a capture that began mid-connection or lost bytes could not show
    if message.get("unrecovered"):
        lost = ", ".join(message["unrecovered"])
        details.append(("Not Captured", lost, f"{side}.unrecovered"))
    if message.get("undecodedHeaders"):
        undecoded = message["undecodedHeaders"]
        details.append(("Undecoded Headers", undecoded, f"{side}.undecodedHeaders"))
    sections.append(table("Details", details))
    sections.append(_object_table("Headers", side, "headers", message.get("headers", {})))
    if message.get("queryString"):
        sections.append(_object_table("Query String", side, "queryString", message["queryString"]))
    if message.get("cookies"):
        sections.append(_object_table("Cookies", side, "cookies", message["cookies"]))
    body_key = "postData" if side == "request" else "content"
    content = message.get(body_key) or {}
    if content.get("params"):
        sections.append(
            table(
                "Form",
                [
                    (
                        param["name"],
                        param.get("value", ""),
                        f"{side}.{body_key}.params[{index}].value",
                    )
                    for index, param in enumerate(content["params"])
                ],
            )
        )
    if "messages" in message:
        sections.append(json_body("Messages", message["messages"], f"{side}.messages"))
    elif content.get("text"):
        sections.append(_body_section("Body", content, f"{side}.{body_key}.text"))
    return sections


def _websocket_sections(message: Mapping[str, Any]) -> list[Section]:
    details = [
        ("Opcode", message.get("method", ""), "request.method"),
        ("Path", message.get("path", ""), "request.path"),
        ("Size", message.get("size", 0), "request.size"),
    ]
    if "closeCode" in message:
        details.append(("Close Code", message["closeCode"], "request.closeCode"))
    payload = {"text": message.get("payload", ""), "encoding": message.get("encoding")}
    mime_type = "application/octet-stream" if message.get("encoding") else "text/plain"
    return [
        table("Details", details),
        _body_section("Payload", {**payload, "mimeType": mime_type}, "request.payload"),
    ]


def represent(entry: Mapping[str, Any]) -> Representation:
    if entry["protocol"].get("name") == "websocket":
        return {"request": _websocket_sections(entry.get("request") or {}), "response": []}
    result: Representation = {"request": [], "response": []}
    for side in ("request", "response"):
        message = entry.get(side)
        if message:
            result[side] = _side_sections(side, message)
    return result
