"""What the plugin declares before any AMQP connection is seen: its protocol and its settings.

Kept apart from the dissector so that discovering the plugin does not import pamqp and the
decoding modules; they load when the plugin first claims a connection.
"""

from __future__ import annotations

from typing import Final

from mizu_amqp.frames import DEFAULT_FRAME_LIMIT
from mizu_core import Protocol

AMQP: Final = Protocol(
    name="amqp",
    version="0-9-1",
    abbr="AMQP",
    long_name="Advanced Message Queuing Protocol 0-9-1",
    macro="amqp",
    background_color="#ff6600",
    foreground_color="#ffffff",
    reference_link="https://www.rabbitmq.com/amqp-0-9-1-reference.html",
    priority=1,
    ports=(5672,),
    payload_fields=("body",),
)


class Settings:
    """The plugin's settings (``plugins.amqp.*``)."""

    # A plain class, not a dataclass: its generated methods would be compiled at every start-up.
    __slots__ = ("max_body_size", "max_frame_size", "max_unconfirmed")

    def __init__(
        self,
        max_body_size: int = 64 << 10,
        max_unconfirmed: int = 1024,
        max_frame_size: int = DEFAULT_FRAME_LIMIT,
    ) -> None:
        self.max_body_size = max_body_size
        """Body octets kept per message; the rest is counted, not kept."""
        self.max_unconfirmed = max_unconfirmed
        """Publishes of one connection held for their publisher confirm."""
        self.max_frame_size = max_frame_size
        """Largest frame accepted when the connection's negotiation (``frame-max``) was not
        seen or allowed more: a larger size is taken for garbage."""
