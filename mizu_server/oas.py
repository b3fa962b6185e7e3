"""OpenAPI 3.1 documents inferred from observed HTTP traffic, one per service (destination).

Each request path is turned into a template: segments that vary by nature (numbers, UUIDs,
hex hashes, e-mail addresses, dates, other high-entropy tokens) become ``{param}`` named
after the segment before them (``/orders/17`` → ``/orders/{orderId}``). Per template and
method the inference keeps the query parameters, request and response bodies as JSON Schema
merged from every sample (types, required fields, formats, enums for small sets of strings),
status codes, content types and one example per body, redacted and size-capped. Static
assets (scripts, styles, images, fonts) are left out.

The state is bounded whatever the traffic: :data:`MAX_SERVICES` services,
:data:`MAX_PATHS` templates per service, and caps on properties, depth, parameters, statuses
and media types; what is left out is counted.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mizu_core import __version__
from mizu_server.rules import NOT_JSON, body_json, endpoint_address

MAX_SERVICES = 200
MAX_PATHS = 300
"""Templates per service; requests to further paths are counted and left out."""
MAX_OPERATIONS_PER_PATH = 8
MAX_PARAMETERS = 50
MAX_STATUSES = 20
MAX_MEDIA_TYPES = 6
MAX_PROPERTIES = 100
MAX_DEPTH = 8
MAX_BODY_CHARS = 256 * 1024
"""Bodies longer than this are not parsed (their media type still counts)."""
DETAILED_SAMPLES = 64
SAMPLE_EVERY = 16
"""An operation's first samples all shape its schemas, then one in this many (all are
counted): the schemas settle early, and a hot endpoint costs little per request."""
ENUM_MAX_VALUES = 5
ENUM_MAX_LENGTH = 40
EXAMPLE_MAX_CHARS = 2048
EXAMPLE_MAX_ITEMS = 3
REDACTED = "[REDACTED]"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_STATIC_PATH = re.compile(
    r"\.(?:js|mjs|cjs|css|map|png|jpe?g|gif|svg|ico|webp|avif|bmp|woff2?|ttf|otf|eot|html?"
    r"|mp4|webm|mp3|wav|ogg)$",
    re.IGNORECASE,
)
_STATIC_MEDIA = re.compile(r"^(?:image|font|audio|video)/|^text/css|javascript", re.IGNORECASE)
_SENSITIVE = re.compile(
    r"pass(?:word|wd)?|secret|token|api[-_]?key|auth|cookie|session|credential|card|cvv|ssn",
    re.IGNORECASE,
)
_INTEGER = re.compile(r"^-?\d+$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_HEX = re.compile(r"^(?=.*\d)[0-9a-f]{16,}$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s/]+@[^@\s/]+\.[a-z]{2,}$", re.IGNORECASE)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)


def header_map(headers: Any) -> dict[str, str]:
    """A message's headers by lower-case name, first value of each."""
    if not isinstance(headers, Mapping):
        return {}
    found: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(value, list):
            if not value:
                continue
            value = value[0]
        found.setdefault(str(name).lower(), str(value))
    return found


# -- path templates ---------------------------------------------------------------------------


@lru_cache(maxsize=8192)  # path segments repeat (names always, ids often): bounded memo
def segment_kind(segment: str) -> str | None:
    """The kind of parameter ``segment`` looks like, or None for a literal path segment."""
    if _INTEGER.match(segment):
        return "integer"
    if _UUID.match(segment):
        return "uuid"
    if _EMAIL.match(segment):
        return "email"
    if _DATE.match(segment):
        return "date"
    if _HEX.match(segment):
        return "hash"
    if len(segment) >= 12 and _entropy(segment) >= 3.0 and re.search(r"\d", segment):
        return "token"
    if len(segment) >= 24 and _entropy(segment) >= 4.0:
        return "token"
    return None


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


_PARAM = None  # a path segment that is a parameter, in a template's shape


@lru_cache(maxsize=4096)
def path_template(path: str) -> tuple[str | None, ...] | None:
    """The shape of ``path``: literal segments, and None where a parameter is; None for a path
    the document cannot hold (static assets, braces)."""
    if not path.startswith("/") or "{" in path or "}" in path or _STATIC_PATH.search(path):
        return None
    return tuple(_PARAM if segment_kind(segment) else segment for segment in path[1:].split("/"))


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith("ses") or word.endswith("xes"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 1:
        return word[:-1]
    return word


def parameter_names(shape: tuple[str | None, ...]) -> list[str]:
    """A name for each parameter of ``shape``: the previous literal made singular + ``Id``
    (``orders/{orderId}``), ``param`` when there is none, numbered when repeated."""
    names: list[str] = []
    previous = ""
    for segment in shape:
        if segment is not _PARAM:
            previous = segment
            continue
        words = re.findall(r"[A-Za-z0-9]+", _singular(previous))
        base = (
            words[0].lower() + "".join(word.capitalize() for word in words[1:]) + "Id"
            if words and not words[-1].isdigit()
            else "param"
        )
        name, number = base, 2
        while name in names:
            name, number = f"{base}{number}", number + 1
        names.append(name)
        previous = ""
    return names


def template_text(shape: tuple[str | None, ...]) -> str:
    names = iter(parameter_names(shape))
    return "/" + "/".join(
        "{" + next(names) + "}" if segment is _PARAM else segment for segment in shape
    )


# -- JSON Schema from samples -----------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def string_format(text: str) -> str | None:
    if _UUID.match(text):
        return "uuid"
    if _EMAIL.match(text):
        return "email"
    if _DATE_TIME.match(text):
        return "date-time"
    if _DATE.match(text):
        return "date"
    return None


@dataclass(slots=True)
class SchemaSketch:
    """What the samples of one JSON location had in common; :meth:`schema` turns it into JSON
    Schema."""

    count: int = 0
    types: set[str] = field(default_factory=set)
    objects: int = 0
    properties: dict[str, SchemaSketch] = field(default_factory=dict)
    dropped_properties: int = 0
    items: SchemaSketch | None = None
    strings: int = 0
    values: set[str] | None = field(default_factory=set)
    """Distinct short strings while there are few; None once they are many."""
    formats: set[str | None] = field(default_factory=set)

    def add(self, value: Any, depth: int = 0) -> None:
        self.count += 1
        kind = _json_type(value)
        self.types.add(kind)
        if depth >= MAX_DEPTH:
            return
        if kind == "object":
            self.objects += 1
            for name, item in value.items():
                sketch = self.properties.get(name)
                if sketch is None:
                    if len(self.properties) >= MAX_PROPERTIES:
                        self.dropped_properties += 1
                        continue
                    sketch = self.properties[name] = SchemaSketch()
                    if _SENSITIVE.search(str(name)):
                        sketch.values = None  # a secret's values must not become an enum
                sketch.add(item, depth + 1)
        elif kind == "array":
            if self.items is None and value:
                self.items = SchemaSketch()
            for item in value[:MAX_PROPERTIES]:
                assert self.items is not None
                self.items.add(item, depth + 1)
        elif kind == "string":
            self.strings += 1
            self.formats.add(string_format(value))
            if self.values is not None:
                if len(value) > ENUM_MAX_LENGTH:
                    self.values = None
                else:
                    self.values.add(value)
                    if len(self.values) > ENUM_MAX_VALUES:
                        self.values = None

    def schema(self) -> dict[str, Any]:
        types = set(self.types)
        if {"integer", "number"} <= types:
            types.discard("integer")
        ordered = [kind for kind in _TYPE_ORDER if kind in types]
        schema: dict[str, Any] = {}
        if ordered:
            schema["type"] = ordered[0] if len(ordered) == 1 else ordered
        if self.properties:
            schema["properties"] = {
                name: sketch.schema() for name, sketch in self.properties.items()
            }
            required = sorted(
                name for name, sketch in self.properties.items() if sketch.count >= self.objects
            )
            if required:
                schema["required"] = required
        if self.items is not None:
            schema["items"] = self.items.schema()
        if "string" in types:
            formats = self.formats - {None}
            if len(self.formats) == 1 and formats:
                schema["format"] = formats.pop()
            elif (
                self.values
                and len(self.values) >= 2
                and not formats
                and self.strings >= 4
                and len(self.values) * 2 <= self.strings
            ):
                enum: list[str | None] = [*sorted(self.values)]
                if "null" in types:
                    enum.append(None)
                schema["enum"] = enum
        return schema


_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


def redacted_example(value: Any, depth: int = 0) -> Any:
    """``value`` with secrets masked (by key name) and long arrays and deep nesting cut."""
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _SENSITIVE.search(str(key)) else redacted_example(item, depth + 1)
            for key, item in list(value.items())[:MAX_PROPERTIES]
        }
    if isinstance(value, list):
        return [redacted_example(item, depth + 1) for item in value[:EXAMPLE_MAX_ITEMS]]
    return value


def capped_example(value: Any) -> tuple[bool, Any]:
    """(True, example) when the redacted ``value`` fits :data:`EXAMPLE_MAX_CHARS`."""
    example = redacted_example(value)
    if len(json.dumps(example, ensure_ascii=False, default=str)) > EXAMPLE_MAX_CHARS:
        return False, None
    return True, example


# -- operations -------------------------------------------------------------------------------


def media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower() or "application/octet-stream"


def is_json_media(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


@dataclass(slots=True)
class BodySketch:
    """The bodies of one media type at one place (a request, or a response status)."""

    count: int = 0
    schema: SchemaSketch | None = None
    has_example: bool = False
    example: Any = None
    not_parsed: int = 0

    def add(self, media: str, body: Mapping[str, Any]) -> None:
        self.count += 1
        if not is_json_media(media):
            return
        text = body.get("text")
        if not isinstance(text, str) or len(text) > MAX_BODY_CHARS:
            self.not_parsed += 1
            return
        value = body_json(body)
        if value is NOT_JSON:
            self.not_parsed += 1
            return
        if self.schema is None:
            self.schema = SchemaSketch()
        self.schema.add(value)
        if not self.has_example:
            self.has_example, self.example = capped_example(value)

    def media_object(self, media: str) -> dict[str, Any]:
        if self.schema is not None:
            result: dict[str, Any] = {"schema": self.schema.schema()}
            if self.has_example:
                result["example"] = self.example
            return result
        if media.startswith("text/") or media in ("application/x-www-form-urlencoded",):
            return {"schema": {"type": "string"}}
        return {"schema": {"type": "string", "contentMediaType": media}}


def _add_body(bodies: dict[str, BodySketch], headers: dict[str, str], body: Any) -> bool:
    """Count one body under its media type; False when there was none or too many types."""
    if not isinstance(body, Mapping) or not body.get("text"):
        return False
    media = media_type(str(body.get("mimeType") or headers.get("content-type", "")))
    sketch = bodies.get(media)
    if sketch is None:
        if len(bodies) >= MAX_MEDIA_TYPES:
            return False
        sketch = bodies[media] = BodySketch()
    sketch.add(media, body)
    return True


@dataclass(slots=True)
class ResponseSketch:
    count: int = 0
    status_text: str = ""
    bodies: dict[str, BodySketch] = field(default_factory=dict)


@dataclass(slots=True)
class Operation:
    count: int = 0
    detailed: int = 0
    """Samples that shaped the schemas (see :data:`SAMPLE_EVERY`)."""
    query: dict[str, SchemaSketch] = field(default_factory=dict)
    query_examples: dict[str, Any] = field(default_factory=dict)
    request_bodies: dict[str, BodySketch] = field(default_factory=dict)
    with_request_body: int = 0
    responses: dict[int, ResponseSketch] = field(default_factory=dict)
    unanswered: int = 0

    def add(
        self,
        request: Mapping[str, Any],
        request_headers: dict[str, str],
        response: Mapping[str, Any] | None,
        response_headers: dict[str, str],
    ) -> None:
        self.count += 1
        detailed = self.count <= DETAILED_SAMPLES or self.count % SAMPLE_EVERY == 0
        outcome = self._count_response(response)
        if not detailed:
            return
        self.detailed += 1
        if outcome is not None:
            _add_body(outcome.bodies, response_headers, response and response.get("content"))
        query = request.get("queryString")
        for name, value in query.items() if isinstance(query, Mapping) else ():
            sketch = self.query.get(name)
            if sketch is None:
                if len(self.query) >= MAX_PARAMETERS:
                    continue
                sketch = self.query[name] = SchemaSketch()
                first = value[0] if isinstance(value, list) and value else value
                if _SENSITIVE.search(name):
                    sketch.values = None  # a secret's values must not become an enum
                    self.query_examples[name] = REDACTED
                else:
                    self.query_examples[name] = _scalar(str(first)[:ENUM_MAX_LENGTH])
            for one in value if isinstance(value, list) else [value]:
                sketch.add(_scalar(str(one)))
        if _add_body(self.request_bodies, request_headers, request.get("postData")):
            self.with_request_body += 1

    def _count_response(self, response: Mapping[str, Any] | None) -> ResponseSketch | None:
        if response is None:
            self.unanswered += 1
            return None
        status = response.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            return None
        outcome = self.responses.get(status)
        if outcome is None:
            if len(self.responses) >= MAX_STATUSES:
                return None
            outcome = self.responses[status] = ResponseSketch(
                status_text=str(response.get("statusText") or "")
            )
        outcome.count += 1
        return outcome

    def document(self, method: str, template: str, operation_id: str) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "summary": f"{method.upper()} {template}",
        }
        parameters = [
            {
                "name": name,
                "in": "query",
                "required": sketch.count >= self.detailed,
                "schema": _parameter_schema(sketch),
                "example": self.query_examples[name],
            }
            for name, sketch in sorted(self.query.items())
        ]
        if parameters:
            operation["parameters"] = parameters
        if self.request_bodies:
            operation["requestBody"] = {
                "required": self.with_request_body >= self.detailed,
                "content": {
                    media: sketch.media_object(media)
                    for media, sketch in sorted(self.request_bodies.items())
                },
            }
        responses: dict[str, Any] = {}
        for status, outcome in sorted(self.responses.items()):
            described: dict[str, Any] = {
                "description": outcome.status_text or f"status {status}",
                "x-mizu-count": outcome.count,
            }
            if outcome.bodies:
                described["content"] = {
                    media: sketch.media_object(media)
                    for media, sketch in sorted(outcome.bodies.items())
                }
            responses[str(status)] = described
        if not responses:
            responses["default"] = {"description": "no response was seen"}
        operation["responses"] = responses
        operation["x-mizu-count"] = self.count
        return operation


def _scalar(text: str) -> Any:
    """A query parameter's value as the type it looks like, for its schema."""
    if _INTEGER.match(text) and len(text) < 19:
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def _parameter_schema(sketch: SchemaSketch) -> dict[str, Any]:
    schema = sketch.schema()
    schema.pop("required", None)
    return schema


def operation_id(method: str, template: str, taken: set[str]) -> str:
    """``getOrdersOrderId`` for ``GET /orders/{orderId}``, numbered if ``taken`` has it."""
    words = re.findall(r"[A-Za-z0-9]+", template)
    base = method + "".join(word[:1].upper() + word[1:] for word in words)
    name, number = base, 2
    while name in taken:
        name, number = f"{base}{number}", number + 1
    taken.add(name)
    return name


# -- services ---------------------------------------------------------------------------------


@dataclass(slots=True)
class PathSketch:
    shape: tuple[str | None, ...]
    parameter_kinds: list[set[str]]
    operations: dict[str, Operation] = field(default_factory=dict)


@dataclass(slots=True)
class ServiceSketch:
    name: str
    servers: dict[str, None] = field(default_factory=dict)
    paths: dict[tuple[str | None, ...], PathSketch] = field(default_factory=dict)
    entries: int = 0
    dropped: int = 0

    def add(
        self,
        request: Mapping[str, Any],
        request_headers: dict[str, str],
        response: Mapping[str, Any] | None,
    ) -> None:
        method = str(request.get("method", "")).lower()
        path = str(request.get("path") or "").split("?", 1)[0]
        shape = path_template(path)
        if method not in METHODS or shape is None:
            return
        response_headers = header_map(response.get("headers")) if response is not None else {}
        if response is not None:
            content = response.get("content")
            mime = content.get("mimeType") if isinstance(content, Mapping) else None
            if _STATIC_MEDIA.search(str(mime or response_headers.get("content-type", ""))):
                return
        sketch = self.paths.get(shape)
        if sketch is None:
            if len(self.paths) >= MAX_PATHS:
                self.dropped += 1
                return
            sketch = self.paths[shape] = PathSketch(
                shape, [set() for segment in shape if segment is _PARAM]
            )
        operation = sketch.operations.get(method)
        if operation is None:
            if len(sketch.operations) >= MAX_OPERATIONS_PER_PATH:
                self.dropped += 1
                return
            operation = sketch.operations[method] = Operation()
        self.entries += 1
        if operation.count < DETAILED_SAMPLES or operation.count % SAMPLE_EVERY == 0:
            kinds = iter(sketch.parameter_kinds)
            for segment in path[1:].split("/"):
                kind = segment_kind(segment)
                if kind is not None:
                    next(kinds).add(kind)
        host = request_headers.get(":authority") or request_headers.get("host")
        if host and len(self.servers) < 4:
            self.servers[f"{request_headers.get(':scheme', 'http')}://{host}"] = None
        operation.add(request, request_headers, response, response_headers)

    def document(self) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        taken: set[str] = set()
        for shape, sketch in sorted(self.paths.items(), key=lambda item: template_text(item[0])):
            template = template_text(shape)
            item: dict[str, Any] = {}
            names = parameter_names(shape)
            if names:
                item["parameters"] = [
                    {
                        "name": name,
                        "in": "path",
                        "required": True,
                        "schema": _path_parameter_schema(kinds),
                    }
                    for name, kinds in zip(names, sketch.parameter_kinds, strict=True)
                ]
            for method in METHODS:
                if method in sketch.operations:
                    item[method] = sketch.operations[method].document(
                        method, template, operation_id(method, template, taken)
                    )
            paths[template] = item
        document: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {
                "title": self.name,
                "version": "1.0",
                "description": (
                    f"Inferred by Mizu {__version__} from {self.entries} observed requests."
                ),
            },
        }
        if self.servers:
            document["servers"] = [{"url": url} for url in self.servers]
        document["paths"] = paths
        if self.dropped:
            document["info"]["x-mizu-dropped"] = self.dropped
        return document


def _path_parameter_schema(kinds: set[str]) -> dict[str, Any]:
    if kinds == {"integer"}:
        return {"type": "integer"}
    schema: dict[str, Any] = {"type": "string"}
    if len(kinds) == 1 and (kind := next(iter(kinds))) in ("uuid", "email", "date"):
        schema["format"] = kind
    return schema


def service_name(entry: Mapping[str, Any]) -> str:
    """The destination's resolved name, else its ``ip:port`` (the service map's node)."""
    dst = entry.get("dst") or {}
    return str(dst.get("name") or endpoint_address(dst))


class OasInference:
    """Per-service sketches, fed stored entries; documents built on demand."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceSketch] = {}
        self.dropped_services = 0

    def observe(self, entry: Mapping[str, Any]) -> None:
        request = entry.get("request")
        if entry.get("protocol", {}).get("name") != "http" or not isinstance(request, Mapping):
            return
        request_headers = header_map(request.get("headers"))
        if request_headers.get("content-type", "").startswith("application/grpc"):
            return
        name = service_name(entry)
        service = self.services.get(name)
        if service is None:
            if len(self.services) >= MAX_SERVICES:
                self.dropped_services += 1
                return
            service = self.services[name] = ServiceSketch(name)
        response = entry.get("response")
        service.add(request, request_headers, response if isinstance(response, Mapping) else None)

    def listing(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "entries": service.entries, "paths": len(service.paths)}
            for name, service in sorted(self.services.items())
            if service.paths
        ]

    def document(self, name: str) -> dict[str, Any] | None:
        service = self.services.get(name)
        return service.document() if service is not None and service.paths else None

    def documents(self) -> Iterable[dict[str, Any]]:
        for name in sorted(self.services):
            document = self.document(name)
            if document is not None:
                yield document
