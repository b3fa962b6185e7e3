"""One TLS connection: its handshake read in the clear, its records decrypted when the key log
has the session's secrets, the decrypted bytes handed to the core as an inner connection, and
one ``tls`` entry as soon as the handshake is over (a long-lived connection shows while it is
open), or when the connection ends before that."""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from mizu_core import (
    CloseReason,
    ConnectionContext,
    Direction,
    Dissector,
    InnerConnection,
    Layer,
    Message,
)
from mizu_tls import certificates, handshake, ja4
from mizu_tls.declarations import RESYNC_WINDOW, TLS
from mizu_tls.handshake import ClientHello, ServerHello
from mizu_tls.keylog import KeyLog
from mizu_tls.names import (
    ALERT_LEVELS,
    alert_name,
    cipher_suite_name,
    is_grease,
    version_name,
)
from mizu_tls.records import (
    ALERT,
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    HandshakeReader,
    Record,
    RecordReader,
    TlsError,
    record_run_start,
)

if TYPE_CHECKING:
    from mizu_tls.protection import Protection

log = logging.getLogger("mizu_tls")

TLS13 = 0x0304
MAX_WAITING = 256 << 10
"""Protected bytes kept per direction while the key log lacks the session's secrets (a client
writes them as it connects: they may be read a moment after the records)."""
MAX_WAIT_SECONDS = 2.0
"""How long, by the capture's clock, a record waits for its session's secrets: a client writes
them before it sends its Finished, so a longer wait means the key log will not have them."""
MAX_CERTIFICATES = 8

NO_KEY_LOG = "no key log (give one with --tls-keylog)"
NO_KEY = "no secret for this session in the key log"
NO_HANDSHAKE = "the capture missed the handshake"
MALFORMED_HELLO = "the ClientHello is not valid TLS (see malformed)"
WRONG_KEY = "the key log's secret does not decrypt this session (tag check failed)"
LOST_BYTES = "the capture lost bytes of this connection"

_reported: set[str] = set()


def report_once(kind: str, message: str, *args: object) -> None:
    """Log the first problem of a kind with what to do; the rest are only counted."""
    if kind not in _reported:
        _reported.add(kind)
        log.warning(message + " (further such cases are only counted)", *args)


class _Side:
    """One direction's records and keys."""

    __slots__ = (
        "application",
        "bytes",
        "decrypted",
        "encrypted",
        "handshake",
        "protected",
        "protected_handshake",
        "protection",
        "records",
        "stopped",
        "unsynced",
        "waiting",
        "waiting_bytes",
    )

    def __init__(self, midstream: bool) -> None:
        self.unsynced: bytearray | None = bytearray() if midstream else None
        """A direction taken up mid-connection, until a record boundary is found in it."""
        self.records = RecordReader()
        self.handshake = HandshakeReader()
        self.protected_handshake = HandshakeReader()
        self.protection: Protection | None = None
        self.encrypted = False
        """Every record from here on is protected (TLS 1.2 after ChangeCipherSpec)."""
        self.application = False
        """TLS 1.3: the handshake's Finished was read, application traffic secrets apply."""
        self.waiting: deque[tuple[Record, float]] = deque()
        self.waiting_bytes = 0
        self.stopped = ""
        """Why this direction is no longer read ("" while it is)."""
        self.bytes = 0
        self.protected = 0
        """Protected records seen, decrypted or not."""
        self.decrypted = 0


class TlsDissector(Dissector):
    def __init__(
        self, context: ConnectionContext, keylog: KeyLog | None, midstream: bool = False
    ) -> None:
        super().__init__(context)
        self.keylog = keylog
        self.sides = (_Side(midstream), _Side(midstream))
        self.client_hello: ClientHello | None = None
        self.server_hello: ServerHello | None = None
        self.hello_retry = False
        self.alpn = ""
        self.certificates: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.inner: InnerConnection | None = None
        self.midstream = midstream
        self.emitted = False
        self.reason = NO_HANDSHAKE if midstream else ""
        """Why the connection is not (or not wholly) decrypted."""
        self.malformed = ""
        self.first_time = -1.0
        self.records = [0, 0]

    # -- the core's calls ----------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        if self.first_time < 0:
            self.first_time = timestamp
        side = self.sides[direction]
        side.bytes += len(data)
        if side.stopped:
            return
        if side.unsynced is not None:
            data = self._resynchronised(side, data)
            if not data:
                return
        try:
            records = side.records.feed(data)
        except TlsError as error:
            self._stop(direction, f"not TLS: {error}", timestamp)
            self._malformed(str(error))
            return
        for record in records:
            self.records[direction] += 1
            self._record(direction, side, record, timestamp)
            if not self.emitted and (self.midstream or self._handshake_over()):
                self._emit(timestamp, None)  # before any entry of the inner connection
            if side.stopped:
                return

    def gap(self, direction: Direction, length: int, timestamp: float) -> None:
        self.context.count("gaps")
        unsynced = self.sides[direction].unsynced
        if unsynced is not None:
            unsynced.clear()  # the boundary is still to be found, after the gap
            return
        self._stop(direction, LOST_BYTES, timestamp)

    def _resynchronised(self, side: _Side, data: bytes) -> bytes:
        """What follows the first record boundary found in a direction taken up in the middle
        of a record (b"" until one is found)."""
        buffer = side.unsynced
        assert buffer is not None
        buffer += data
        start = record_run_start(buffer)
        if start is None:
            if len(buffer) > 2 * RESYNC_WINDOW:
                self.context.count("bytes_skipped", len(buffer) - RESYNC_WINDOW)
                del buffer[:-RESYNC_WINDOW]
            return b""
        self.context.count("resyncs")
        if start:
            self.context.count("bytes_skipped", start)
        side.unsynced = None
        return bytes(buffer[start:])

    def close(self, timestamp: float, reason: CloseReason) -> None:
        if self.keylog is not None and any(side.waiting for side in self.sides):
            self.keylog.refresh(force=True)
            for direction in Direction:
                self._retry_waiting(direction)
                if self.sides[direction].waiting:
                    self._give_up_waiting(direction, timestamp)
        if self.inner is not None:
            self.inner.close(timestamp, reason)
        if not self.emitted:
            self._emit(timestamp, reason)

    def _handshake_over(self) -> bool:
        """Both sides have sent their Finished (what the session is, and whether it is
        decrypted, is known), and no record waits for the key log's secrets."""
        if self.server_hello is None:
            return False
        client, server = self.sides
        if client.waiting or server.waiting:
            return False
        if self._tls13:
            # The client's Finished, its first protected record, follows the server's flight.
            return client.protected > 0 or bool(client.stopped)
        return (client.protected > 0 or bool(client.stopped)) and (
            server.protected > 0 or bool(server.stopped)
        )

    # -- records -------------------------------------------------------------------------------

    def _record(self, direction: Direction, side: _Side, record: Record, time: float) -> None:
        content_type = record.content_type
        if content_type == CHANGE_CIPHER_SPEC:
            if not self._tls13:
                side.encrypted = True
            return
        if side.encrypted or content_type == APPLICATION_DATA:
            self._protected(direction, side, record, time)
        elif content_type == HANDSHAKE:
            try:
                for message_type, body in side.handshake.feed(record.fragment):
                    self._handshake(direction, message_type, body)
            except (TlsError, UnicodeError) as error:
                self._malformed(f"handshake: {error}")
        elif content_type == ALERT:
            self._alert(direction, record.fragment)

    @property
    def _tls13(self) -> bool:
        # Only TLS 1.3 has a HelloRetryRequest: the ChangeCipherSpec after it (for middleboxes)
        # starts no protection, and the real ServerHello follows in clear.
        server_hello = self.server_hello
        return self.hello_retry or (server_hello is not None and server_hello.version == TLS13)

    def _protected(self, direction: Direction, side: _Side, record: Record, time: float) -> None:
        side.protected += 1
        if self.keylog is None or self.client_hello is None:
            if record.content_type == ALERT:
                self._alert(direction, b"")
            if not self.reason:
                self.reason = self._missing_key_reason()
            return
        side.waiting.append((record, time))
        side.waiting_bytes += record.size
        self._retry_waiting(direction)
        if side.waiting and (
            side.waiting_bytes > MAX_WAITING or time - side.waiting[0][1] > MAX_WAIT_SECONDS
        ):
            self._give_up_waiting(direction, time)

    def _retry_waiting(self, direction: Direction) -> None:
        """Decrypt the records kept for want of keys, in order, as far as the keys go."""
        side = self.sides[direction]
        waiting = side.waiting
        while waiting and not side.stopped:
            protection = side.protection or self._keys(direction, waiting[0][1])
            if protection is None:
                return
            record, time = waiting.popleft()
            side.waiting_bytes -= record.size
            self._decrypt(direction, side, protection, record, time)

    def _give_up_waiting(self, direction: Direction, time: float) -> None:
        side = self.sides[direction]
        for record, _ in side.waiting:
            if record.content_type == ALERT:
                self._alert(direction, b"")
        side.waiting.clear()
        side.waiting_bytes = 0
        if not self.reason:
            self.reason = self._missing_key_reason()
        # The records given up break the sequence the next ones are decrypted with.
        self._stop(direction, self.reason, time)

    def _decrypt(
        self,
        direction: Direction,
        side: _Side,
        protection: Protection,
        record: Record,
        time: float,
    ) -> None:
        from mizu_tls.protection import DecryptError

        try:
            content_type, plaintext = protection.decrypt(record)
        except DecryptError:
            self.context.count("tag failures")
            report_once(
                "wrong-key",
                "tls: a record of %s does not decrypt with the key log's secret (its tag check "
                "failed): is the key log from the same run of the client as the capture?",
                self.context.connection.key,
            )
            self.reason = WRONG_KEY
            self._stop(direction, WRONG_KEY, time)
            return
        side.decrypted += 1
        if content_type == APPLICATION_DATA:
            self._application(direction, plaintext, time)
        elif content_type == HANDSHAKE:
            try:
                for message_type, body in side.protected_handshake.feed(plaintext):
                    self._protected_handshake(direction, side, message_type, body)
            except (TlsError, UnicodeError) as error:
                self._malformed(f"encrypted handshake: {error}")
        elif content_type == ALERT:
            self._alert(direction, plaintext)

    def _application(self, direction: Direction, data: bytes, time: float) -> None:
        inner = self.inner
        if inner is None:
            fields = self._session_fields()
            fields["decrypted"] = True
            inner = self.inner = self.context.unwrap(Layer("tls", fields, self.alpn))
            self.context.count("connections decrypted")
        inner.feed(direction, data, time)

    def _stop(self, direction: Direction, why: str, time: float) -> None:
        side = self.sides[direction]
        if side.stopped:
            return
        side.stopped = why
        side.waiting.clear()
        if self.inner is not None:
            self.inner.gap(direction, 0, time)

    # -- keys ----------------------------------------------------------------------------------

    def _keys(self, direction: Direction, time: float) -> Protection | None:
        """The direction's record protection from the key log, or None (``reason`` says why
        once it is final)."""
        client_hello, server_hello = self.client_hello, self.server_hello
        if client_hello is None or server_hello is None:
            if not self.reason and client_hello is None:
                self.reason = self._missing_key_reason()
            return None
        keylog = self.keylog
        if keylog is None:
            self.reason = NO_KEY_LOG
            return None
        # Decryption, and the cryptography library's ciphers with it, is imported by the first
        # connection that has a key log: most runs decrypt nothing, and every run loads the
        # plugin.
        from mizu_tls.protection import TLS12_SUITES, TLS13_SUITES, Protection, tls12_protections

        side = self.sides[direction]
        suite_number = server_hello.cipher_suite
        if self._tls13:
            suite = TLS13_SUITES.get(suite_number)
        else:
            suite = TLS12_SUITES.get(suite_number) if server_hello.version == 0x0303 else None
        if suite is None:
            self.reason = (
                f"{cipher_suite_name(suite_number)} with {version_name(server_hello.version)} "
                "is not decrypted by Mizu"
            )
            self._stop(direction, self.reason, time)
            return None
        random = client_hello.random
        if self._tls13:
            client = direction == Direction.CLIENT_TO_SERVER
            label = (
                ("CLIENT_TRAFFIC_SECRET_0" if client else "SERVER_TRAFFIC_SECRET_0")
                if side.application
                else (
                    "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
                    if client
                    else "SERVER_HANDSHAKE_TRAFFIC_SECRET"
                )
            )
            secret = keylog.get(random, label)
            if secret is None:
                return None
            side.protection = Protection.tls13_from_secret(suite, secret)
            return side.protection
        master_secret = keylog.get(random, "CLIENT_RANDOM")
        if master_secret is None:
            return None
        client_protection, server_protection = tls12_protections(
            suite, master_secret, random, server_hello.random, server_hello.encrypt_then_mac
        )
        side.protection = (
            client_protection if direction == Direction.CLIENT_TO_SERVER else server_protection
        )
        return side.protection

    def _missing_key_reason(self) -> str:
        if self.client_hello is None:
            return MALFORMED_HELLO if self.malformed else NO_HANDSHAKE
        if self.keylog is None:
            return NO_KEY_LOG
        return NO_KEY

    # -- handshake messages --------------------------------------------------------------------

    def _handshake(self, direction: Direction, message_type: int, body: bytes) -> None:
        if message_type == handshake.CLIENT_HELLO and direction == Direction.CLIENT_TO_SERVER:
            hello = handshake.parse_client_hello(body)
            if self.client_hello is None:
                self.client_hello = hello
        elif message_type == handshake.SERVER_HELLO and direction == Direction.SERVER_TO_CLIENT:
            server_hello = handshake.parse_server_hello(body)
            if server_hello.retry:
                self.hello_retry = True
                return
            self.server_hello = server_hello
            self.alpn = server_hello.alpn
        elif message_type == handshake.CERTIFICATE and direction == Direction.SERVER_TO_CLIENT:
            self._certificates(body, tls13=False)

    def _protected_handshake(
        self, direction: Direction, side: _Side, message_type: int, body: bytes
    ) -> None:
        if not self._tls13:
            return  # TLS 1.2's Finished (and a renegotiation, which Mizu does not follow)
        server = direction == Direction.SERVER_TO_CLIENT
        if message_type == handshake.ENCRYPTED_EXTENSIONS and server:
            self.alpn = handshake.parse_encrypted_extensions_alpn(body)
        elif message_type == handshake.CERTIFICATE and server:
            self._certificates(body, tls13=True)
        elif message_type == handshake.FINISHED and not side.application:
            side.application = True
            side.protection = None  # the traffic secret applies from the next record
        elif message_type == handshake.KEY_UPDATE and side.protection is not None:
            self.context.count("key updates")
            side.protection = side.protection.updated()

    def _certificates(self, body: bytes, tls13: bool) -> None:
        if self.certificates:
            return
        chain = handshake.parse_certificates(body, tls13)
        self.certificates = [certificates.describe(der) for der in chain[:MAX_CERTIFICATES]]

    def _alert(self, direction: Direction, fragment: bytes) -> None:
        if self.emitted:
            self.context.count("alerts after the handshake")
            return
        sender = "client" if direction == Direction.CLIENT_TO_SERVER else "server"
        if len(fragment) < 2:
            self.alerts.append({"from": sender, "level": "", "description": "encrypted alert"})
            return
        self.alerts.append(
            {
                "from": sender,
                "level": ALERT_LEVELS.get(fragment[0], str(fragment[0])),
                "description": alert_name(fragment[1]),
            }
        )

    def _malformed(self, what: str) -> None:
        self.context.count("malformed")
        if not self.malformed:
            self.malformed = what
        report_once(
            "malformed",
            "tls: %s sent bytes that are not valid TLS (%s); the connection's entry shows what "
            "was read before them",
            self.context.connection.key,
            what,
        )

    # -- the entry -----------------------------------------------------------------------------

    def _session_fields(self) -> dict[str, Any]:
        server_hello = self.server_hello
        client_hello = self.client_hello
        return {
            "version": version_name(server_hello.version) if server_hello else "",
            "cipher": cipher_suite_name(server_hello.cipher_suite) if server_hello else "",
            "sni": client_hello.sni if client_hello else "",
            "alpn": self.alpn,
        }

    def _emit(self, time: float, ended: CloseReason | None) -> None:
        """The connection's entry: at the end of the handshake (``ended`` None), or when the
        connection ends before it."""
        self.emitted = True
        hello = self.client_hello
        client, server = self.sides
        start = self.first_time if self.first_time >= 0 else self.context.connection.start_time
        request: dict[str, Any] = {"method": "TLS", "sni": "", "alpn": []}
        if hello is not None:
            request.update(
                sni=hello.sni,
                alpn=hello.alpn,
                versions=[version_name(v) for v in hello.supported_versions if not is_grease(v)]
                or [version_name(hello.legacy_version)],
                cipherSuites=[
                    cipher_suite_name(s) for s in hello.cipher_suites if not is_grease(s)
                ],
                ja4=ja4.ja4(hello),
                ja4_r=ja4.ja4_r(hello),
            )
        request.update(records=self.records[0], bytes=client.bytes)
        fields = self._session_fields()
        decrypted = self.inner is not None or (client.decrypted > 0 and server.decrypted > 0)
        fatal = next((a for a in self.alerts if a["level"] == "fatal"), None)
        if fatal is not None:
            status = fatal["description"]
        elif self.server_hello is not None:
            status = f"{fields['version']} {self.alpn}".strip()
        elif self.midstream:
            status = "handshake not seen"
        else:
            status = "no ServerHello"
        response: dict[str, Any] = {
            "status": status,
            **fields,
            "decrypted": decrypted,
            "certificates": self.certificates,
            "alerts": self.alerts,
            "helloRetry": self.hello_retry,
            "records": self.records[1],
            "bytes": server.bytes,
        }
        if ended is not None:
            response["ended"] = str(ended)
        stopped = client.stopped or server.stopped
        reason = (
            self.reason
            or stopped
            or ("no application data" if not decrypted and self.server_hello else "")
        )
        if reason and not decrypted:
            response["reason"] = reason
        elif self.reason and decrypted:
            response["reason"] = self.reason  # decrypted in part
        if self.malformed:
            response["malformed"] = self.malformed
        end = max(time, start)
        self.context.emit(
            Message(TLS, Direction.CLIENT_TO_SERVER, start, start, client.bytes, request),
            Message(TLS, Direction.SERVER_TO_CLIENT, start, end, server.bytes, response),
        )
