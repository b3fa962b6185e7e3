"""gRPC over HTTP/2: length-prefixed messages, their compression, and schema-less protobuf."""

from __future__ import annotations

import base64
from typing import Any, Final

from mizu_http import bodies
from mizu_http.protobuf import decode_message

GRPC_CONTENT_TYPE: Final = "application/grpc"


def is_grpc(content_type: str) -> bool:
    """``application/grpc``, ``application/grpc+proto``, ``application/grpc-web``…"""
    # peers send it in lower case: the lowered copy only for one that does not
    return content_type.startswith(GRPC_CONTENT_TYPE) or content_type.lower().startswith(
        GRPC_CONTENT_TYPE
    )


def framed(body: bytes) -> bool:
    """Whether ``body`` is a run of whole gRPC length-prefixed messages, for a body whose
    content-type is unknown (no text or JSON body starts with the flag octet 0 or 1 and a
    length that ends exactly where the messages do)."""
    position = 0
    while position + 5 <= len(body) and body[position] in (0, 1):
        position += 5 + int.from_bytes(body[position + 1 : position + 5], "big")
    return 0 < position == len(body)


def messages(body: bytes, encoding: str, limit: int) -> list[dict[str, Any]]:
    """The length-prefixed messages of a gRPC body.

    :param encoding: the ``grpc-encoding`` header, for messages whose compressed flag is set.
    :param limit: cap of each decompressed message.

    A last message cut short (the body cap, a gap) is kept as bytes, marked ``truncated``.
    """
    found: list[dict[str, Any]] = []
    position = 0
    while position + 5 <= len(body):
        compressed = body[position] & 1
        # by shifts: int.from_bytes is a method call through Python from compiled code
        length = (
            body[position + 1] << 24
            | body[position + 2] << 16
            | body[position + 3] << 8
            | body[position + 4]
        )
        data = body[position + 5 : position + 5 + length]
        position += 5 + length
        message: dict[str, Any] = {"compressed": bool(compressed), "size": length}
        if len(data) < length:
            message["truncated"] = True
            message["data"] = base64.b64encode(data).decode("ascii")
            message["encoding"] = "base64"
            found.append(message)
            break
        if compressed:
            try:
                data, cut = bodies.content_decode(data, encoding or "identity", limit)
            except bodies.DecodeError as error:
                message["decodeError"] = str(error)
                message["data"] = base64.b64encode(data).decode("ascii")
                message["encoding"] = "base64"
                found.append(message)
                continue
            if cut:
                message["truncated"] = True
        try:
            message["fields"] = decode_message(data)
        except ValueError as not_protobuf:  # JSON over gRPC, say: shown as sent
            # (a name of its own: the compiled build gives a name one exception type)
            message["data"] = base64.b64encode(data).decode("ascii")
            message["encoding"] = "base64"
            message["decodeError"] = str(not_protobuf)
        found.append(message)
    if position < len(body):
        found.append(
            {
                "truncated": True,
                "data": base64.b64encode(body[position:]).decode("ascii"),
                "encoding": "base64",
            }
        )
    return found
