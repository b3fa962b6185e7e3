"""The shape of the message tables: what one field of a Kafka request or response looks like.

The tables themselves (:mod:`mizu_kafka.messages`) are data generated from Apache Kafka's JSON
message definitions by ``tools/generate_messages.py``; supporting a new version of an API is a
regeneration, not new code.
"""

from __future__ import annotations

from typing import NamedTuple

LATEST = 0x7FFF
"""Upper bound of an open version range ("3+")."""


class Field(NamedTuple):
    """One field of a message or of a nested struct.

    ``kind`` is a Kafka type (``int32``, ``string``, ``bytes``, ``records``, ``uuid`` …), an
    array of one (``[]int32``), ``struct`` or ``[]struct`` (with ``fields``). The field is
    present in versions ``low..high``, may be null in ``nullable_low..nullable_high`` and, when
    ``tag`` is not ``None``, travels in the tagged-field section of flexible versions.
    """

    name: str
    kind: str
    low: int
    high: int = LATEST
    nullable_low: int = -1
    nullable_high: int = -1
    tag: int | None = None
    fields: tuple[Field, ...] = ()


class ApiSchema(NamedTuple):
    """The request and response layouts of one API key, in every version up to ``max_version``
    (flexible encodings from ``request_flexible`` / ``response_flexible`` on)."""

    max_version: int
    request_flexible: int
    response_flexible: int
    request: tuple[Field, ...]
    response: tuple[Field, ...]
