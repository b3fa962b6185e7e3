"""The hand-written decoders of hot frames give what the pamqp path gives, on frames pamqp
marshals from random arguments and properties."""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mizu_amqp.connection import decode_method
from mizu_amqp.hot import content_header
from mizu_amqp.values import properties_json
from pamqp import commands, frame, header
from pamqp_reading import through_pamqp

short_strings = st.text(max_size=40).filter(lambda text: len(text.encode()) < 256)
exchanges = st.text("abcXYZ019-_.:", max_size=40)
"""pamqp refuses other exchange names (the spec's pattern)."""
tags = st.integers(0, 2**63 - 1)  # pamqp encodes them signed
table_values = st.one_of(
    short_strings,
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(width=32, allow_nan=False, allow_infinity=False),  # pamqp writes single precision
    st.decimals(places=2, min_value=-1000, max_value=1000).map(decimal.Decimal),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(short_strings, st.integers(0, 9), max_size=2),
    st.none(),
)
tables = st.dictionaries(short_strings, table_values, max_size=5)
simple_tables = st.dictionaries(
    short_strings, st.one_of(short_strings, st.booleans(), st.integers(-(2**31), 2**31 - 1))
)


def payload_of(value: Any) -> bytes:
    """A marshalled frame's payload (its 7-octet header and frame-end octet stripped)."""
    return frame.marshal(value, 1)[7:-1]


methods = st.one_of(
    st.builds(commands.Basic.Publish, exchange=exchanges, routing_key=short_strings,
              mandatory=st.booleans(), immediate=st.booleans()),
    st.builds(commands.Basic.Deliver, consumer_tag=short_strings, delivery_tag=tags,
              redelivered=st.booleans(), exchange=exchanges, routing_key=short_strings),
    st.builds(commands.Basic.Ack, delivery_tag=tags, multiple=st.booleans()),
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(method=methods)
def test_hot_methods_decode_as_pamqp(method: Any) -> None:
    payload = payload_of(method)
    assert decode_method(payload, 1) == through_pamqp(payload)


properties = st.builds(
    commands.Basic.Properties,
    content_type=st.none() | short_strings,
    content_encoding=st.none() | short_strings,
    headers=st.none() | tables | simple_tables,
    delivery_mode=st.none() | st.integers(1, 2),
    priority=st.none() | st.integers(0, 9),
    correlation_id=st.none() | short_strings,
    reply_to=st.none() | short_strings,
    expiration=st.none() | st.integers(0, 10**6).map(str),
    message_id=st.none() | short_strings,
    timestamp=st.none()
    | st.datetimes(
        min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2100, 1, 1)
    ).map(lambda moment: moment.replace(microsecond=0, tzinfo=datetime.UTC)),
    message_type=st.none() | short_strings,
    user_id=st.none() | short_strings,
    app_id=st.none() | short_strings,
)


@settings(max_examples=100, deadline=None)
@given(properties=properties, body_size=st.integers(0, 2**40))
def test_content_headers_decode_as_pamqp(
    properties: commands.Basic.Properties, body_size: int
) -> None:
    payload = payload_of(header.ContentHeader(0, body_size, properties))
    expected = header.ContentHeader()
    expected.unmarshal(payload)
    assert content_header(payload) == (
        expected.body_size,
        properties_json(expected.properties, payload),
    )


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack(">IH", 60 << 16 | 40, 0) + b"\x05ab",  # a shortstr cut short, no bits
        struct.pack(">I", 60 << 16 | 80) + b"\x00" * 4,  # a delivery tag cut short
        struct.pack(">IH", 60 << 16 | 40, 0) + b"\x01\xff\x00\x00",  # not UTF-8
    ],
)
def test_malformed_hot_methods_raise_what_the_dissector_catches(payload: bytes) -> None:
    with pytest.raises((ValueError, IndexError, struct.error)):
        decode_method(payload, 1)
