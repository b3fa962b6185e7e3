"""What :mod:`mizu_kafka.messages` knows of one Kafka API: its versions and its readers.

The readers are generated from Apache Kafka's JSON message definitions by
``tools/generate_messages.py``; supporting a new version of an API is a regeneration, not new
code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from mizu_kafka.codec import Reader

MessageReader = Callable[[Reader, dict[str, Any]], None]
"""Reads a request or response body into the message's ``payload``."""


class ApiSchema(NamedTuple):
    """The request and response readers of one API key, for every version up to
    ``max_version`` (flexible encodings from ``request_flexible`` / ``response_flexible`` on)."""

    max_version: int
    request_flexible: int
    response_flexible: int
    read_request: MessageReader
    read_response: MessageReader
