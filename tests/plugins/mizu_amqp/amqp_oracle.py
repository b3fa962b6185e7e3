"""tshark as the independent oracle for AMQP captures: every method frame it decodes, as the
same tuples the dissector's messages give, so that the two can be compared as multisets."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mizu_amqp.values import spec_name
from pamqp.commands import INDEX_MAPPING

from mizu_core import Direction, Pair
from tests.support.tshark import REASSEMBLE_OUT_OF_ORDER

Method = tuple[str, int, str, str | None, str | None, str | None, int | None]
"""(sender "ip:port", channel, method, exchange, routing key, queue, body size)."""

CONTENT_METHODS = {"basic.publish", "basic.deliver", "basic.return", "basic.get-ok"}


def _layers(packet: dict[str, Any]) -> list[dict[str, Any]]:
    amqp = packet["_source"]["layers"].get("amqp", [])
    return amqp if isinstance(amqp, list) else [amqp]


def _endpoint(layers: dict[str, Any]) -> str:
    ip = layers.get("ip", {}).get("ip.src") or layers["ipv6"]["ipv6.src"]
    address = f"[{ip}]" if ":" in ip else ip
    return f"{address}:{layers['tcp']['tcp.srcport']}"


def tshark_methods(capture: Path, port: int = 5672) -> Counter[Method]:
    """Every AMQP method tshark finds in ``capture`` (content methods with their body size)."""
    output = subprocess.run(
        [
            "tshark", "-r", str(capture), *REASSEMBLE_OUT_OF_ORDER, "-d", f"tcp.port=={port},amqp",
            "-T", "json", "--no-duplicate-keys", "-Y", "amqp",
        ],
        capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    methods: Counter[Method] = Counter()
    pending: dict[tuple[str, int], list[Any]] = {}
    for packet in json.loads(output or b"[]"):
        sender = _endpoint(packet["_source"]["layers"])
        for frame in _layers(packet):
            channel = int(frame["amqp.channel"])
            frame_type = frame["amqp.type"]
            if frame_type == "1":
                index = int(frame["amqp.method.class"]) << 16 | int(frame["amqp.method.method"])
                name = spec_name(INDEX_MAPPING[index].name)
                arguments = frame.get("amqp.method.arguments") or {}
                record = [
                    sender,
                    channel,
                    name,
                    arguments.get("amqp.method.arguments.exchange"),
                    arguments.get("amqp.method.arguments.routing_key"),
                    arguments.get("amqp.method.arguments.queue"),
                    None,
                ]
                if name in CONTENT_METHODS:
                    pending[sender, channel] = record
                else:
                    methods[tuple(record)] += 1  # type: ignore[arg-type]
            elif frame_type == "2":
                record = pending.pop((sender, channel), None)
                if record is None:
                    continue  # its method frame is before the start of the capture
                record[6] = int(frame["amqp.header.body-size"])
                methods[tuple(record)] += 1  # type: ignore[arg-type]
    return methods


def dissected_methods(pairs: Iterable[Pair]) -> Counter[Method]:
    """The same tuples from the dissector's pairs."""
    methods: Counter[Method] = Counter()
    for pair in pairs:
        for message in (pair.request, pair.response):
            if message is None:
                continue
            connection = pair.connection
            sender = (
                connection.client
                if message.direction == Direction.CLIENT_TO_SERVER
                else connection.server
            )
            data = message.data
            methods[
                (
                    str(sender),
                    data["channel"],
                    data["method"],
                    data.get("exchange"),
                    data.get("routingKey"),
                    data.get("queue"),
                    data.get("bodySize"),
                )
            ] += 1
    return methods
