"""Record protection: the keys a key log's secrets give, and the decryption of records.

TLS 1.3 (RFC 8446 section 7): each traffic secret gives a key and an IV through
HKDF-Expand-Label; the nonce is the IV XOR the record's sequence number; the additional data is
the record header; the plaintext ends with the real content type and zero padding.

TLS 1.2 (RFC 5246 section 6.3, RFC 5288, RFC 7905): the master secret gives a key block through
the PRF (P_SHA256, or P_SHA384 for ``*_SHA384`` suites); AES-GCM and AES-CCM nonces are a 4-byte
salt and an 8-byte explicit nonce carried in the record, ChaCha20-Poly1305's the IV XOR the
sequence number; the additional data is the sequence number, type, version and plaintext length.
CBC suites (RFC 5246 section 6.2.3.2): an explicit IV starts each record; the HMAC covers the
sequence number, type, version, length and content, then padding is added (MAC-then-encrypt),
or, when both hellos carried encrypt_then_mac (RFC 7366), it covers the IV and ciphertext.

Every cipher, HKDF and HMAC comes from the ``cryptography`` library.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from mizu_tls.records import APPLICATION_DATA, Record

AES_GCM = "AES-GCM"
AES_CCM = "AES-CCM"
AES_CCM_8 = "AES-CCM-8"
CHACHA20_POLY1305 = "ChaCha20-Poly1305"
AES_CBC = "AES-CBC"
BLOCK = 16
"""AES's block: the length of a CBC record's explicit IV."""
HASHES: dict[str, type[hashes.SHA1 | hashes.SHA256 | hashes.SHA384]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}


@dataclass(frozen=True, slots=True)
class Suite:
    cipher: str
    key_length: int
    hash_name: str
    """``sha256`` or ``sha384``: the PRF's or HKDF's hash."""
    mac_name: str = ""
    """A CBC suite's HMAC hash (``sha1``, ``sha256``, ``sha384``); "" for AEAD suites."""

    @property
    def hash(self) -> hashes.HashAlgorithm:
        return HASHES[self.hash_name]()

    @property
    def mac(self) -> hashes.HashAlgorithm:
        return HASHES[self.mac_name]()

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
    0x002F: Suite(AES_CBC, 16, "sha256", "sha1"),
    0x0033: Suite(AES_CBC, 16, "sha256", "sha1"),
    0x0035: Suite(AES_CBC, 32, "sha256", "sha1"),
    0x0039: Suite(AES_CBC, 32, "sha256", "sha1"),
    0x003C: Suite(AES_CBC, 16, "sha256", "sha256"),
    0x003D: Suite(AES_CBC, 32, "sha256", "sha256"),
    0x0067: Suite(AES_CBC, 16, "sha256", "sha256"),
    0x006B: Suite(AES_CBC, 32, "sha256", "sha256"),
    0xC009: Suite(AES_CBC, 16, "sha256", "sha1"),
    0xC00A: Suite(AES_CBC, 32, "sha256", "sha1"),
    0xC013: Suite(AES_CBC, 16, "sha256", "sha1"),
    0xC014: Suite(AES_CBC, 32, "sha256", "sha1"),
    0xC023: Suite(AES_CBC, 16, "sha256", "sha256"),
    0xC024: Suite(AES_CBC, 32, "sha384", "sha384"),
    0xC027: Suite(AES_CBC, 16, "sha256", "sha256"),
    0xC028: Suite(AES_CBC, 32, "sha384", "sha384"),
}


class DecryptError(ValueError):
    """A record that the keys do not decrypt (the tag check failed)."""


def _aead(suite: Suite, key: bytes) -> AESGCM | AESCCM | ChaCha20Poly1305 | None:
    if suite.cipher == AES_CBC:
        return None
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

    __slots__ = (
        "aead",
        "encrypt_then_mac",
        "iv",
        "key",
        "mac_key",
        "secret",
        "sequence",
        "suite",
        "tls13",
    )

    def __init__(
        self,
        suite: Suite,
        key: bytes,
        iv: bytes,
        tls13: bool,
        secret: bytes = b"",
        mac_key: bytes = b"",
        encrypt_then_mac: bool = False,
    ):
        self.suite = suite
        self.aead = _aead(suite, key)
        self.key = key
        self.iv = iv
        self.tls13 = tls13
        self.secret = secret
        """TLS 1.3's traffic secret, for KeyUpdate."""
        self.mac_key = mac_key
        self.encrypt_then_mac = encrypt_then_mac
        """A CBC suite's HMAC covers the ciphertext (RFC 7366), not the plaintext."""
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
        aead = self.aead
        if aead is None:
            plaintext = self._decrypt_cbc(record)
            self.sequence += 1
            return record.content_type, plaintext
        fragment = record.fragment
        sequence = self.sequence
        tag_length = self.suite.tag_length
        explicit_nonce = 0 if self.tls13 or self.suite.cipher == CHACHA20_POLY1305 else 8
        if len(fragment) < explicit_nonce + tag_length:
            raise DecryptError("a protected record shorter than its tag")
        if self.tls13:
            nonce = (int.from_bytes(self.iv, "big") ^ sequence).to_bytes(12, "big")
            header = bytes((record.content_type, record.version >> 8, record.version & 0xFF))
            aad = header + len(fragment).to_bytes(2, "big")
            ciphertext = fragment
        elif explicit_nonce:
            nonce = self.iv + fragment[:explicit_nonce]
            ciphertext = fragment[explicit_nonce:]
            aad = self._tls12_aad(record, len(ciphertext) - tag_length)
        else:
            nonce = (int.from_bytes(self.iv, "big") ^ sequence).to_bytes(12, "big")
            ciphertext = fragment
            aad = self._tls12_aad(record, len(fragment) - tag_length)
        try:
            plaintext = aead.decrypt(nonce, ciphertext, aad)
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

    def _decrypt_cbc(self, record: Record) -> bytes:
        fragment = record.fragment
        mac_length = self.suite.mac.digest_size
        if self.encrypt_then_mac:
            sealed, mac = fragment[:-mac_length], fragment[-mac_length:]
            self._check_mac(record, sealed, mac)
            return self._unpadded(sealed)
        plaintext = self._unpadded(fragment)
        if len(plaintext) < mac_length:
            raise DecryptError("a CBC record shorter than its MAC")
        content, mac = plaintext[:-mac_length], plaintext[-mac_length:]
        self._check_mac(record, content, mac)
        return content

    def _unpadded(self, sealed: bytes) -> bytes:
        """The plaintext of an explicit IV and CBC ciphertext, its padding removed."""
        if len(sealed) < 2 * BLOCK or len(sealed) % BLOCK:
            raise DecryptError("a CBC record that is not whole blocks")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(sealed[:BLOCK])).decryptor()
        plaintext = decryptor.update(sealed[BLOCK:]) + decryptor.finalize()
        padding = plaintext[-1]
        if padding >= len(plaintext) or plaintext[-padding - 1 :] != bytes([padding]) * (
            padding + 1
        ):
            raise DecryptError("a CBC record's padding does not check")
        return plaintext[: -padding - 1]

    def _check_mac(self, record: Record, content: bytes, mac: bytes) -> None:
        check = hmac.HMAC(self.mac_key, self.suite.mac)
        check.update(self._tls12_aad(record, len(content)) + content)
        try:
            check.verify(mac)
        except InvalidSignature:
            raise DecryptError("the record's MAC does not check") from None

    def _tls12_aad(self, record: Record, length: int) -> bytes:
        return (
            self.sequence.to_bytes(8, "big")
            + bytes((record.content_type, record.version >> 8, record.version & 0xFF))
            + length.to_bytes(2, "big")
        )


def tls12_protections(
    suite: Suite,
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    encrypt_then_mac: bool = False,
) -> tuple[Protection, Protection]:
    """The client's and the server's record decryption, from the session's master secret
    (``encrypt_then_mac``: the ServerHello accepted it, which matters to CBC suites)."""
    cbc = suite.cipher == AES_CBC
    # CBC records carry their IV: the key block's IVs are not used, nor made.
    iv_length = 0 if cbc else 12 if suite.cipher == CHACHA20_POLY1305 else 4
    mac_length = suite.mac.digest_size if cbc else 0
    key_length = suite.key_length
    block = tls12_prf(
        suite.hash,
        master_secret,
        b"key expansion",
        server_random + client_random,
        2 * (mac_length + key_length + iv_length),
    )
    client_mac, server_mac = block[:mac_length], block[mac_length : 2 * mac_length]
    keys = block[2 * mac_length :]
    client_key, server_key = keys[:key_length], keys[key_length : 2 * key_length]
    ivs = keys[2 * key_length :]
    return (
        Protection(suite, client_key, ivs[:iv_length], False, b"", client_mac, encrypt_then_mac),
        Protection(suite, server_key, ivs[iv_length:], False, b"", server_mac, encrypt_then_mac),
    )


__all__ = [
    "APPLICATION_DATA",
    "TLS12_SUITES",
    "TLS13_SUITES",
    "DecryptError",
    "Protection",
    "tls12_protections",
]
