"""Kafka request and response messages: headers, bodies by API key and version, error codes.

Request header v1 (v2 in flexible versions, with tagged fields): ``apiKey int16, apiVersion
int16, correlationId int32, clientId nullable string``. Response header v0 (v1 in flexible
versions): ``correlationId int32``; ApiVersions responses always use v0 so that a client can
read the answer of a broker that does not know the version it asked for.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mizu_kafka.codec import ERROR_CODE_SUFFIXES, Malformed, Reader, Truncated
from mizu_kafka.messages import API_NAMES, APIS, ERROR_NAMES
from mizu_kafka.records import RecordBudget
from mizu_kafka.schema import MessageReader

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35
REQUEST_HEADER = struct.Struct(">hhih")
MIN_REQUEST = REQUEST_HEADER.size
MAX_REQUEST = 256 << 20
VERSION_SLACK = 4
"""Versions newer than the tables by this much still look like Kafka (and say so)."""


@dataclass(slots=True)
class Settings:
    max_records: int = 100
    max_value_bytes: int = 4096
    max_frame_bytes: int = 8 << 20
    max_decompressed_bytes: int = 16 << 20

    def budget(self) -> RecordBudget:
        return RecordBudget(self.max_records, self.max_value_bytes, self.max_decompressed_bytes)


class RequestKey:
    """What decoding a response needs from its request."""

    def __init__(self, api_key: int, api_version: int) -> None:
        self.api_key = api_key
        self.api_version = api_version


# The names of unknown keys and codes are made only when asked for: a default argument to
# get() would format its text for every message.


def api_name(api_key: int) -> str:
    name = API_NAMES.get(api_key)
    return name if name is not None else f"Unknown({api_key})"


def error_name(code: int) -> str:
    name = ERROR_NAMES.get(code)
    return name if name is not None else f"UNKNOWN_ERROR_{code}"


def _printable_ascii(data: bytes) -> bool:
    return all(32 <= byte < 127 for byte in data)


def plausible_request(data: bytes, start: int = 0) -> bool | None:
    """Whether a request frame starts at ``start``: its size, API key and version, correlation
    id and client id make sense. ``None`` while too few bytes are there to tell."""
    available = len(data) - start
    if available < 4:
        return None if available <= 0 or data[start] == 0 else False
    (size,) = struct.unpack_from(">i", data, start)
    if not MIN_REQUEST <= size <= MAX_REQUEST:
        return False
    if available < 4 + MIN_REQUEST:
        return None
    api_key, version, correlation_id, client_id_length = REQUEST_HEADER.unpack_from(data, start + 4)
    if api_key not in API_NAMES or correlation_id < 0 or version < 0:
        return False
    schema = APIS.get(api_key)
    if version > (schema.max_version if schema else 0) + VERSION_SLACK:
        return False
    if not -1 <= client_id_length <= size - MIN_REQUEST:
        return False
    client_id_start = start + 4 + MIN_REQUEST
    client_id = data[client_id_start : client_id_start + max(client_id_length, 0)]
    if not _printable_ascii(client_id):
        return False
    return None if len(client_id) < client_id_length else True


def find_request_start(data: bytes) -> int | None:
    """The first offset where a plausible request header starts."""
    for start in range(max(len(data) - 4, 0)):
        if data[start] == 0 and plausible_request(data, start):
            return start
    return None


def frame_checks_out(
    data: bytes, start: int, decode: Callable[[bytes, bool], dict[str, Any]], largest: int
) -> bool | None:
    """Whether the frame whose size is at ``start``, at most ``largest`` bytes, decodes without
    a fault and without bytes left over (``decode`` reads a body; its flag says the body is cut
    short); ``None`` until the whole frame is there. A part of a frame proves nothing: the
    lengths in garbage run past its end as a real frame's do."""
    size = int.from_bytes(data[start : start + 4], "big", signed=True)
    if size > largest:
        return False
    if len(data) - start - 4 < size:
        return None
    decoded = decode(data[start + 4 : start + 4 + size], False)
    return "decodeError" not in decoded and "trailingBytes" not in decoded


def _decode_body(
    reader: Reader, read: MessageReader, truncated: bool, out: dict[str, Any]
) -> str | None:
    """Decode into ``out``; the reason decoding stopped early, if it did."""
    payload: dict[str, Any] = {}
    out["payload"] = payload
    try:
        read(reader, payload)
    except Truncated:
        return "body cut at the capture cap" if truncated else "body shorter than its layout"
    except Malformed as error:
        return str(error)
    if reader.remaining and not truncated:
        # librdkafka pads its ApiVersions v0 request, say: worth showing, not an error.
        out["trailingBytes"] = reader.remaining
    return None


def decode_request(body: bytes, truncated: bool, settings: Settings) -> dict[str, Any]:
    """A request frame's body (after the size) as the entry's ``request``."""
    reader = Reader(body, budget=settings.budget())
    api_key = reader.int16()
    version = reader.int16()
    data: dict[str, Any] = {
        "method": api_name(api_key),
        "apiKey": api_key,
        "apiVersion": version,
        "correlationId": reader.int32(),
    }
    schema = APIS.get(api_key)
    try:
        data["clientId"] = _client_id(reader)
    except (Truncated, Malformed):
        data["clientId"] = None
        data["decodeError"] = "request header cut short"
        return data
    if schema is None or not 0 <= version <= schema.max_version:
        data["decodeError"] = _unsupported(api_key, version)
        return data
    reader.version = version
    reader.flexible = version >= schema.request_flexible
    try:
        if reader.flexible:
            reader.skip_tagged_fields()
    except (Truncated, Malformed):
        data["decodeError"] = "request header cut short"
        return data
    problem = _decode_body(reader, schema.read_request, truncated, data)
    if problem:
        data["decodeError"] = problem
    return data


def _client_id(reader: Reader) -> str | None:
    length = reader.int16()
    return None if length < 0 else reader.take(length).decode("utf-8", "replace")


def _unsupported(api_key: int, version: int) -> str:
    schema = APIS.get(api_key)
    if schema is None:
        return f"API key {api_key} ({api_name(api_key)}) is not in Mizu's Kafka tables"
    return (
        f"{api_name(api_key)} v{version} is not in Mizu's Kafka tables "
        f"(known up to v{schema.max_version})"
    )


def decode_response(
    body: bytes, truncated: bool, request: RequestKey | None, settings: Settings
) -> dict[str, Any]:
    """A response frame's body as the entry's ``response``, decoded with its request's API key
    and version."""
    reader = Reader(body, budget=settings.budget())
    data: dict[str, Any] = {"correlationId": reader.int32()}
    if request is None:
        data["decodeError"] = "request not captured: the response's layout is unknown"
        return data
    api_key, version = request.api_key, request.api_version
    data["apiKey"] = api_key
    data["apiVersion"] = version
    schema = APIS.get(api_key)
    if schema is None or not 0 <= version <= schema.max_version:
        data["decodeError"] = _unsupported(api_key, version)
        return data
    if api_key == API_VERSIONS and reader.remaining >= 2:
        (error_code,) = struct.unpack_from(">h", body, reader.position)
        if error_code == UNSUPPORTED_VERSION:
            version = 0  # the broker answers a version it does not know in v0
    reader.version = version
    reader.flexible = version >= schema.response_flexible
    try:
        if reader.flexible and api_key != API_VERSIONS:
            reader.skip_tagged_fields()
    except (Truncated, Malformed):
        data["decodeError"] = "response header cut short"
        return data
    problem = _decode_body(reader, schema.read_response, truncated, data)
    if problem:
        data["decodeError"] = problem
    code = reader.error_code
    data["errorCode"] = code
    data["errorName"] = error_name(code)
    return data


def error_codes(value: Any, path: str = "") -> Iterator[tuple[str, int]]:
    """Every ``…errorCode`` field under ``value``, with its selector below ``payload``."""
    if isinstance(value, dict):
        for name, inner in value.items():
            selector = f"{path}.{name}" if path else name
            if name.endswith(ERROR_CODE_SUFFIXES) and isinstance(inner, int):
                yield selector, inner
            elif isinstance(inner, dict | list) and name != "records":
                yield from error_codes(inner, selector)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            if isinstance(inner, dict):
                yield from error_codes(inner, f"{path}[{index}]")
