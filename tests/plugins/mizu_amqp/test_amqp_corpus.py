"""The public AMQP captures: goldens for every hook, and tshark's reading of every method."""

from __future__ import annotations

from pathlib import Path

import pytest
from amqp_oracle import dissected_methods, tshark_methods

DATA = Path(__file__).parents[2] / "data" / "amqp"
CAPTURES = sorted(DATA.glob("*.pcap"))


def test_corpus_is_there() -> None:
    assert [capture.name for capture in CAPTURES] == [
        "deepflow_amqp-error.pcap",
        "deepflow_amqp1.pcap",
        "deepflow_amqp2.pcap",
        "deepflow_amqp3.pcap",
        "ndpi_amqp.pcap",
    ]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.stem)
def test_golden(mizu_golden, capture: Path) -> None:
    outputs = mizu_golden.check(capture, plugin="amqp")
    assert outputs.stats["plugin_errors"] == {}
    assert outputs.entries


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.stem)
def test_every_method_matches_tshark(mizu_golden, capture: Path) -> None:
    outputs = mizu_golden.check(capture, plugin="amqp", hooks=())
    assert dissected_methods(outputs.pairs) == tshark_methods(capture)


def test_mid_connection_capture_resynchronises(mizu_golden) -> None:
    """nDPI's capture starts mid-connection: no protocol header, no handshake."""
    outputs = mizu_golden.check(DATA / "ndpi_amqp.pcap", plugin="amqp", hooks=())
    assert "protocol_headers" not in outputs.stats["plugin_counters"]["amqp"]
    methods = [pair.request.data["method"] for pair in outputs.pairs if pair.request]
    assert methods.count("basic.publish") == 23
    assert methods.count("basic.deliver") == 8
    assert methods.count("basic.ack") == 5
    assert all(pair.connection.key.endswith(":5672") for pair in outputs.pairs)


def test_refused_channel_pairs_the_close(mizu_golden) -> None:
    """A redeclared exchange with other flags: 406, the channel closes, the request goes
    unanswered and the close carries the failing method's ids."""
    outputs = mizu_golden.check(DATA / "deepflow_amqp-error.pcap", plugin="amqp", hooks=())
    closes = [e for e in outputs.entries if e["request"]["method"] == "channel.close"]
    refused = [e for e in closes if e["request"]["replyCode"] == 406]
    assert len(refused) == 1
    assert refused[0]["request"]["classId"] == 40 and refused[0]["request"]["methodId"] == 10
    assert refused[0]["response"]["method"] == "channel.close-ok"
    declares = [e for e in outputs.entries if e["request"]["method"] == "exchange.declare"]
    assert [e["response"] is None for e in declares] == [False, True, False]
