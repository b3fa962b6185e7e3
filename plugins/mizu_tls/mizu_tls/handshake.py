"""The handshake messages Mizu reads: ClientHello, ServerHello, EncryptedExtensions and
Certificate (RFC 8446 section 4, RFC 5246 section 7.4), fields named as in the RFCs."""

from __future__ import annotations

from dataclasses import dataclass, field

from mizu_tls.records import TlsError

CLIENT_HELLO = 1
SERVER_HELLO = 2
NEW_SESSION_TICKET = 4
END_OF_EARLY_DATA = 5
ENCRYPTED_EXTENSIONS = 8
CERTIFICATE = 11
SERVER_KEY_EXCHANGE = 12
CERTIFICATE_REQUEST = 13
SERVER_HELLO_DONE = 14
CERTIFICATE_VERIFY = 15
CLIENT_KEY_EXCHANGE = 16
FINISHED = 20
KEY_UPDATE = 24

SERVER_NAME = 0
SUPPORTED_GROUPS = 10
SIGNATURE_ALGORITHMS = 13
ALPN = 16
ENCRYPT_THEN_MAC = 22
SUPPORTED_VERSIONS = 43

HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
"""The ServerHello random that makes it a HelloRetryRequest (SHA-256 of the words)."""


class Reader:
    """Bounds-checked reads over one message body."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, length: int) -> bytes:
        end = self.offset + length
        if end > len(self.data):
            raise TlsError("a handshake field runs past its message")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.number(length_size))

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset


def numbers(data: bytes) -> list[int]:
    """A vector of 16-bit numbers."""
    if len(data) % 2:
        raise TlsError("a list of 16-bit values has an odd length")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def extensions(reader: Reader) -> list[tuple[int, bytes]]:
    """The ``(type, data)`` extensions that end a hello (none when absent)."""
    if not reader.remaining:
        return []
    block = Reader(reader.vector(2))
    found = []
    while block.remaining:
        kind = block.number(2)
        found.append((kind, block.vector(2)))
    return found


def alpn_names(data: bytes) -> list[str]:
    names = Reader(Reader(data).vector(2))
    found = []
    while names.remaining:
        found.append(names.vector(1).decode("ascii", "backslashreplace"))
    return found


def first_alpn_bytes(data: bytes) -> bytes:
    names = Reader(Reader(data).vector(2))
    return names.vector(1) if names.remaining else b""


def server_name(data: bytes) -> str:
    names = Reader(Reader(data).vector(2))
    while names.remaining:
        kind = names.number(1)
        name = names.vector(2)
        if kind == 0:
            return name.decode("ascii", "backslashreplace")
    return ""


@dataclass(slots=True)
class ClientHello:
    legacy_version: int
    random: bytes
    cipher_suites: list[int]
    extensions: list[tuple[int, bytes]]
    sni: str = ""
    alpn: list[str] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)
    first_alpn: bytes = b""


def parse_client_hello(body: bytes) -> ClientHello:
    reader = Reader(body)
    legacy_version = reader.number(2)
    random = reader.take(32)
    reader.vector(1)  # legacy_session_id
    cipher_suites = numbers(reader.vector(2))
    reader.vector(1)  # legacy_compression_methods
    hello = ClientHello(legacy_version, random, cipher_suites, extensions(reader))
    for kind, data in hello.extensions:
        if kind == SERVER_NAME:
            hello.sni = server_name(data)
        elif kind == ALPN:
            hello.alpn = alpn_names(data)
            hello.first_alpn = first_alpn_bytes(data)
        elif kind == SUPPORTED_VERSIONS:
            hello.supported_versions = numbers(Reader(data).vector(1))
        elif kind == SIGNATURE_ALGORITHMS:
            hello.signature_algorithms = numbers(Reader(data).vector(2))
    return hello


@dataclass(slots=True)
class ServerHello:
    version: int
    """The version chosen: supported_versions' when present, else the legacy field's."""
    random: bytes
    cipher_suite: int
    alpn: str = ""
    retry: bool = False
    """A HelloRetryRequest: the client sends a second ClientHello."""
    encrypt_then_mac: bool = False
    """TLS 1.2 CBC records are MACed after encryption (RFC 7366)."""


def parse_server_hello(body: bytes) -> ServerHello:
    reader = Reader(body)
    version = reader.number(2)
    random = reader.take(32)
    reader.vector(1)  # legacy_session_id_echo
    cipher_suite = reader.number(2)
    reader.number(1)  # legacy_compression_method
    hello = ServerHello(version, random, cipher_suite, retry=random == HELLO_RETRY_REQUEST_RANDOM)
    for kind, data in extensions(reader):
        if kind == SUPPORTED_VERSIONS:
            hello.version = Reader(data).number(2)
        elif kind == ALPN:
            names = alpn_names(data)
            hello.alpn = names[0] if names else ""
        elif kind == ENCRYPT_THEN_MAC:
            hello.encrypt_then_mac = True
    return hello


def parse_encrypted_extensions_alpn(body: bytes) -> str:
    """The ALPN a TLS 1.3 server chose, which it sends encrypted."""
    for kind, data in extensions(Reader(body)):
        if kind == ALPN:
            names = alpn_names(data)
            return names[0] if names else ""
    return ""


def parse_certificates(body: bytes, tls13: bool) -> list[bytes]:
    """The DER certificates of a Certificate message, the sender's own first."""
    reader = Reader(body)
    if tls13:
        reader.vector(1)  # certificate_request_context
    chain = Reader(reader.vector(3))
    found = []
    while chain.remaining:
        found.append(chain.vector(3))
        if tls13:
            chain.vector(2)  # the entry's extensions
    return found
