"""NSS key log files (``SSLKEYLOGFILE``), as curl, browsers, Python's ``ssl``
(``keylog_filename``), Node (``--tls-keylog``) and Go (``KeyLogWriter``) write them.

Each line is ``LABEL <client random, hex> <secret, hex>``; ``#`` starts a comment. The file is
followed: when a session's secret is missing, what was appended since the last read is read
(a client writes its secrets as it connects, while Mizu captures). Secrets are held in memory
only, never logged, never put in an entry.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("mizu_tls")

LABELS = frozenset(
    {
        "CLIENT_RANDOM",  # TLS 1.2 and earlier: the master secret
        "CLIENT_EARLY_TRAFFIC_SECRET",
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EARLY_EXPORTER_SECRET",
        "EXPORTER_SECRET",
    }
)
UNUSED_LABELS = frozenset(
    {
        "RSA",  # a pre-master secret by its encrypted value: RSA key exchange, not decrypted
        # OpenSSL logs the secrets after each KeyUpdate: Mizu derives them from the first.
        "CLIENT_TRAFFIC_SECRET_N",
        "SERVER_TRAFFIC_SECRET_N",
    }
)
"""Labels of valid lines whose secrets Mizu does not need."""
REREAD_INTERVAL = 0.05
"""Seconds between two looks at the file for new lines: misses come in bursts."""
MAX_LINE = 1024


class KeyLog:
    """The secrets of a key log file, by client random and label."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.secrets: dict[bytes, dict[str, bytes]] = {}
        self.bad_lines = 0
        self.lines = 0
        self._position = 0
        self._identity: tuple[int, int] | None = None
        self._partial = b""
        self._line_number = 0
        self._last_look = -1.0
        self._reported_unreadable = False

    def get(self, client_random: bytes, label: str) -> bytes | None:
        """The secret of ``label`` for the session of ``client_random``; reads new lines of the
        file first when it is not known yet."""
        known = self.secrets.get(client_random)
        if known is not None and label in known:
            return known[label]
        self.refresh()
        known = self.secrets.get(client_random)
        return known.get(label) if known is not None else None

    def has_session(self, client_random: bytes) -> bool:
        if client_random not in self.secrets:
            self.refresh()
        return client_random in self.secrets

    def refresh(self, force: bool = False) -> None:
        """Read what was appended since the last read (all of it when the file was replaced or
        truncated), at most every :data:`REREAD_INTERVAL` seconds unless ``force``."""
        now = time.monotonic()
        if not force and now - self._last_look < REREAD_INTERVAL:
            return
        self._last_look = now
        try:
            with self.path.open("rb") as file:
                status = os.fstat(file.fileno())
                identity = (status.st_dev, status.st_ino)
                if identity != self._identity or status.st_size < self._position:
                    self._identity, self._position, self._partial = identity, 0, b""
                    self._line_number = 0
                if status.st_size == self._position:
                    return
                file.seek(self._position)
                data = file.read(status.st_size - self._position)
        except OSError as error:
            if not self._reported_unreadable:
                self._reported_unreadable = True
                log.warning(
                    "tls: cannot read the key log %s (%s); connections stay encrypted until "
                    "it can be read",
                    self.path,
                    error.strerror or error,
                )
            return
        self._position += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # a line still being written
        if len(self._partial) > MAX_LINE:
            self._partial = b""
            self._bad_line("longer than any key log line")
        for line in lines:
            self._line_number += 1
            self._add(line.strip())

    def _add(self, line: bytes) -> None:
        if not line or line.startswith(b"#"):
            return
        words = line.split()
        if len(words) != 3:
            self._bad_line("expected LABEL CLIENT_RANDOM SECRET")
            return
        label = words[0].decode("ascii", "replace")
        try:
            client_random = bytes.fromhex(words[1].decode("ascii"))
            secret = bytes.fromhex(words[2].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            self._bad_line("the client random and the secret must be hexadecimal")
            return
        if label not in LABELS:
            if label not in UNUSED_LABELS:
                self._bad_line(f"unknown label {label[:40]!r}")
            return
        if len(client_random) != 32 or len(secret) not in (32, 48, 64):
            self._bad_line("a client random has 32 bytes, a secret 32, 48 or 64")
            return
        self.lines += 1
        self.secrets.setdefault(client_random, {})[label] = secret

    def _bad_line(self, reason: str) -> None:
        self.bad_lines += 1
        if self.bad_lines == 1:
            # The line itself is never shown: it may hold a secret.
            log.warning(
                "tls: key log %s line %d is not a key log line (%s); it is skipped, and so are "
                "further such lines. Give --tls-keylog the file SSLKEYLOGFILE names.",
                self.path,
                self._line_number,
                reason,
            )
