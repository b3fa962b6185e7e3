"""The types plugins and the core exchange: protocols, connections, messages and pairs.

Everything here is part of the public plugin API (re-exported from :mod:`mizu_core`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from mypy_extensions import mypyc_attr


class Direction(enum.IntEnum):
    """Which way bytes travel on a connection."""

    CLIENT_TO_SERVER = 0
    SERVER_TO_CLIENT = 1

    @property
    def reverse(self) -> Direction:
        # Not Direction(1 - self): an enum's lookup by value goes through its metaclass.
        if self is Direction.CLIENT_TO_SERVER:
            return Direction.SERVER_TO_CLIENT
        return Direction.CLIENT_TO_SERVER


@dataclass(frozen=True, slots=True)
class Protocol:
    """What a plugin declares about one protocol it dissects.

    ``name`` and ``version`` identify it in entries (``http`` / ``1.1``); ``abbr`` is the badge
    text in the dashboard; ``macro`` is the filter-language word that selects its entries
    (``http``), and ``macros`` adds further words mapped to filter expressions. ``priority``
    orders the plugins a new connection is offered to (lower first); ``ports`` are hints that a
    connection on them is likely this protocol, never a requirement. ``secret_fields`` names
    the fields of this protocol's requests and responses that hold credentials (a password, an
    authentication exchange's bytes): redaction replaces their values wherever they sit.
    ``payload_fields`` names those holding what the application sent (a message's body, a
    record's value): redaction reads their text as it reads an HTTP body.
    """

    name: str
    version: str
    abbr: str
    long_name: str
    macro: str
    background_color: str = "#416CDE"
    foreground_color: str = "#ffffff"
    reference_link: str = ""
    priority: int = 100
    ports: tuple[int, ...] = ()
    macros: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    secret_fields: tuple[str, ...] = ()
    payload_fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``protocol`` object of an entry (docs/entries.md)."""
        return {
            "name": self.name,
            "version": self.version,
            "abbr": self.abbr,
            "longName": self.long_name,
            "macro": self.macro,
            "backgroundColor": self.background_color,
            "foregroundColor": self.foreground_color,
            "referenceLink": self.reference_link,
            "priority": self.priority,
        }


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int

    def to_json(self) -> dict[str, Any]:
        return {"ip": self.ip, "port": self.port, "name": "", "namespace": ""}

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(slots=True)
class ConnectionInfo:
    """One TCP connection as the core sees it.

    ``client`` opened the connection (seen in the handshake) or, for a capture that starts
    mid-connection, is the core's best guess (``role_guessed`` is then true).
    """

    number: int
    client: Endpoint
    server: Endpoint
    start_time: float
    role_guessed: bool = False

    @property
    def key(self) -> str:
        return f"{self.client}->{self.server}"


@dataclass(slots=True)
class ConnectionStats:
    """Counters of one connection, indexed by :class:`Direction`.

    A class of this compiled module: reassembly counts every packet in it, and reads and
    writes its fields in C, not through Python's attribute lookup."""

    packets: list[int]
    bytes: list[int]
    last_time: float

    @classmethod
    def empty(cls, now: float) -> ConnectionStats:
        return cls(packets=[0, 0], bytes=[0, 0], last_time=now)


@mypyc_attr(allow_interpreted_subclasses=True)
class Message:
    """One protocol message decoded by a dissector.

    ``data`` is the protocol's own object (the entry's ``request`` or ``response``); ``size`` is
    its length on the wire in bytes; the times are those of its first and last byte.

    Not a dataclass: the ``__init__`` that ``dataclasses`` writes runs interpreted even in the
    compiled build, and a message is made for every request and every response.
    """

    __match_args__ = ("protocol", "direction", "first_time", "last_time", "size", "data")

    def __init__(
        self,
        protocol: Protocol,
        direction: Direction,
        first_time: float,
        last_time: float,
        size: int,
        data: dict[str, Any],
    ) -> None:
        self.protocol = protocol
        self.direction = direction
        self.first_time = first_time
        self.last_time = last_time
        self.size = size
        self.data = data

    def __eq__(self, other: object) -> bool:
        # As the dataclass compared: the fields in order, with a message of the same class.
        if type(other) is not type(self) or not isinstance(other, Message):
            return NotImplemented
        return (
            self.protocol,
            self.direction,
            self.first_time,
            self.last_time,
            self.size,
            self.data,
        ) == (
            other.protocol,
            other.direction,
            other.first_time,
            other.last_time,
            other.size,
            other.data,
        )

    def __repr__(self) -> str:
        return (
            f"Message(protocol={self.protocol!r}, direction={self.direction!r}, "
            f"first_time={self.first_time!r}, last_time={self.last_time!r}, "
            f"size={self.size!r}, data={self.data!r})"
        )


def make_message(
    protocol: Protocol,
    direction: Direction,
    first_time: float,
    last_time: float,
    size: int,
    data: dict[str, Any],
) -> Message:
    """A :class:`Message`, for compiled plugins: their call of the class goes through Python's
    type call with a tuple of arguments (about 1,100 instructions), a call of this function
    costs half."""
    return Message(protocol, direction, first_time, last_time, size, data)


@mypyc_attr(allow_interpreted_subclasses=True)
class Pair:
    """A request and its response, or a message that got no answer (``response`` None), or an
    answer whose request was not captured (``request`` None).

    ``unpaired`` says why a message that has a partner in its protocol is alone (``gap``,
    ``midstream``, ``timeout``, ``closed``); "" for a pair, and for a message its protocol
    answers never (a one-way message). A plain class, as :class:`Message` is."""

    __match_args__ = ("connection", "request", "response", "unpaired")

    def __init__(
        self,
        connection: ConnectionInfo,
        request: Message | None,
        response: Message | None,
        unpaired: str = "",
    ) -> None:
        self.connection = connection
        self.request = request
        self.response = response
        self.unpaired = unpaired

    @property
    def protocol(self) -> Protocol:
        message = self.request or self.response
        assert message is not None, "a pair holds at least one message"
        return message.protocol

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Pair):
            return NotImplemented
        return (self.connection, self.request, self.response, self.unpaired) == (
            other.connection,
            other.request,
            other.response,
            other.unpaired,
        )

    def __repr__(self) -> str:
        return (
            f"Pair(connection={self.connection!r}, request={self.request!r}, "
            f"response={self.response!r}, unpaired={self.unpaired!r})"
        )
