"""Record protection: the keys a key log's secrets give, and the decryption of records.

TLS 1.3 (RFC 8446 section 7): each traffic secret gives a key and an IV through
HKDF-Expand-Label; the nonce is the IV XOR the record's sequence number; the additional data is
the record header; the plaintext ends with the real content type and zero padding.

TLS 1.2 (RFC 5246 section 6.3, RFC 5288, RFC 7905): the master secret gives a key block through
the PRF (P_SHA256, or P_SHA384 for ``*_SHA384`` suites); AES-GCM and AES-CCM nonces are a 4-byte
salt and an 8-byte explicit nonce carried in the record, ChaCha20-Poly1305's the IV XOR the
sequence number; the additional data is the sequence number, type, version and plaintext length.

Every cipher, HKDF and HMAC comes from the ``cryptography`` library.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from mizu_tls.records import APPLICATION_DATA, Record

AES_GCM = "AES-GCM"
AES_CCM = "AES-CCM"
AES_CCM_8 = "AES-CCM-8"
CHACHA20_POLY1305 = "ChaCha20-Poly1305"


@dataclass(frozen=True, slots=True)
class Suite:
    cipher: str
    key_length: int
    hash_name: str
    """``sha256`` or ``sha384``: the PRF's or HKDF's hash."""

    @property
    def hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA384() if self.hash_name == "sha384" else hashes.SHA256()

    @property
    def tag_length(self) -> int:
        return 8 if self.cipher == AES_CCM_8 else 16


TLS13_SUITES = {
    0x1301: Suite(AES_GCM, 16, "sha256"),
    0x1302: Suite(AES_GCM, 32, "sha384"),
    0x1303: Suite(CHACHA20_POLY1305, 32, "sha256"),
    0x1304: Suite(AES_CCM, 16, "sha256"),
    0x1305: Suite(AES_CCM_8, 16, "sha256"),
}
TLS12_SUITES = {
    0x009C: Suite(AES_GCM, 16, "sha256"),
    0x009D: Suite(AES_GCM, 32, "sha384"),
    0x009E: Suite(AES_GCM, 16, "sha256"),
    0x009F: Suite(AES_GCM, 32, "sha384"),
    0xC02B: Suite(AES_GCM, 16, "sha256"),
    0xC02C: Suite(AES_GCM, 32, "sha384"),
    0xC02F: Suite(AES_GCM, 16, "sha256"),
    0xC030: Suite(AES_GCM, 32, "sha384"),
    0xC09C: Suite(AES_CCM, 16, "sha256"),
    0xC09D: Suite(AES_CCM, 32, "sha256"),
    0xC0AC: Suite(AES_CCM, 16, "sha256"),
    0xC0AD: Suite(AES_CCM, 32, "sha256"),
    0xCCA8: Suite(CHACHA20_POLY1305, 32, "sha256"),
    0xCCA9: Suite(CHACHA20_POLY1305, 32, "sha256"),
    0xCCAA: Suite(CHACHA20_POLY1305, 32, "sha256"),
}


class DecryptError(ValueError):
    """A record that the keys do not decrypt (the tag check failed)."""


def _aead(suite: Suite, key: bytes) -> AESGCM | AESCCM | ChaCha20Poly1305:
    if suite.cipher == AES_GCM:
        return AESGCM(key)
    if suite.cipher == CHACHA20_POLY1305:
        return ChaCha20Poly1305(key)
    return AESCCM(key, tag_length=suite.tag_length)


def hkdf_expand_label(
    algorithm: hashes.HashAlgorithm, secret: bytes, label: str, length: int
) -> bytes:
    """HKDF-Expand-Label with an empty context (RFC 8446 section 7.1)."""
    full_label = b"tls13 " + label.encode("ascii")
    info = length.to_bytes(2, "big") + bytes([len(full_label)]) + full_label + b"\x00"
    return HKDFExpand(algorithm=algorithm, length=length, info=info).derive(secret)


def tls12_prf(
    algorithm: hashes.HashAlgorithm, secret: bytes, label: bytes, seed: bytes, length: int
) -> bytes:
    """The TLS 1.2 PRF, P_hash over HMAC (RFC 5246 section 5)."""
    seed = label + seed
    output = bytearray()
    previous = seed  # A(0)
    while len(output) < length:
        mac = hmac.HMAC(secret, algorithm)
        mac.update(previous)
        previous = mac.finalize()
        mac = hmac.HMAC(secret, algorithm)
        mac.update(previous + seed)
        output += mac.finalize()
    return bytes(output[:length])


class Protection:
    """One direction's record decryption, with its sequence number."""

    __slots__ = ("aead", "iv", "secret", "sequence", "suite", "tls13")

    def __init__(self, suite: Suite, key: bytes, iv: bytes, tls13: bool, secret: bytes = b""):
        self.suite = suite
        self.aead = _aead(suite, key)
        self.iv = iv
        self.tls13 = tls13
        self.secret = secret
        """TLS 1.3's traffic secret, for KeyUpdate."""
        self.sequence = 0

    @classmethod
    def tls13_from_secret(cls, suite: Suite, secret: bytes) -> Protection:
        algorithm = suite.hash
        key = hkdf_expand_label(algorithm, secret, "key", suite.key_length)
        iv = hkdf_expand_label(algorithm, secret, "iv", 12)
        return cls(suite, key, iv, tls13=True, secret=secret)

    def updated(self) -> Protection:
        """The protection after a TLS 1.3 KeyUpdate of this direction."""
        algorithm = self.suite.hash
        secret = hkdf_expand_label(algorithm, self.secret, "traffic upd", algorithm.digest_size)
        return Protection.tls13_from_secret(self.suite, secret)

    def decrypt(self, record: Record) -> tuple[int, bytes]:
        """The content type and plaintext of ``record``; raises :class:`DecryptError`."""
        fragment = record.fragment
        sequence = self.sequence
        tag_length = self.suite.tag_length
        if self.tls13:
            nonce = (int.from_bytes(self.iv, "big") ^ sequence).to_bytes(12, "big")
            header = bytes((record.content_type, record.version >> 8, record.version & 0xFF))
            aad = header + len(fragment).to_bytes(2, "big")
            ciphertext = fragment
        elif self.suite.cipher == CHACHA20_POLY1305:
            nonce = (int.from_bytes(self.iv, "big") ^ sequence).to_bytes(12, "big")
            ciphertext = fragment
            aad = self._tls12_aad(record, len(fragment) - tag_length)
        else:
            nonce = self.iv + fragment[:8]
            ciphertext = fragment[8:]
            aad = self._tls12_aad(record, len(fragment) - 8 - tag_length)
        if len(ciphertext) < tag_length:
            raise DecryptError("a protected record shorter than its tag")
        try:
            plaintext = self.aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptError("the record's tag does not check") from None
        self.sequence = sequence + 1
        if not self.tls13:
            return record.content_type, plaintext
        end = len(plaintext)
        while end and not plaintext[end - 1]:
            end -= 1
        if not end:
            raise DecryptError("a TLS 1.3 record with no content type")
        return plaintext[end - 1], plaintext[: end - 1]

    def _tls12_aad(self, record: Record, length: int) -> bytes:
        return (
            self.sequence.to_bytes(8, "big")
            + bytes((record.content_type, record.version >> 8, record.version & 0xFF))
            + length.to_bytes(2, "big")
        )


def tls12_protections(
    suite: Suite, master_secret: bytes, client_random: bytes, server_random: bytes
) -> tuple[Protection, Protection]:
    """The client's and the server's record decryption, from the session's master secret."""
    iv_length = 12 if suite.cipher == CHACHA20_POLY1305 else 4
    block = tls12_prf(
        suite.hash,
        master_secret,
        b"key expansion",
        server_random + client_random,
        2 * (suite.key_length + iv_length),
    )
    key_length = suite.key_length
    client_key, server_key = block[:key_length], block[key_length : 2 * key_length]
    ivs = block[2 * key_length :]
    return (
        Protection(suite, client_key, ivs[:iv_length], tls13=False),
        Protection(suite, server_key, ivs[iv_length:], tls13=False),
    )


__all__ = [
    "APPLICATION_DATA",
    "TLS12_SUITES",
    "TLS13_SUITES",
    "DecryptError",
    "Protection",
    "tls12_protections",
]
