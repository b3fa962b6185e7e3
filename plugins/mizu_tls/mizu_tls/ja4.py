"""The JA4 fingerprint of a ClientHello (FoxIO's JA4 specification, "JA4: TLS Client
Fingerprinting"), and its raw form ``ja4_r``.

``t13d1516h2_8daaf6152771_b186095e22b6``: the transport (``t`` for TCP), the version the client
offers (the highest of supported_versions, else the hello's own), ``d`` with an SNI or ``i``
without, the number of cipher suites and of extensions (two digits each, at most 99), the first
and last characters of the first ALPN value (``00`` with none); then the first 12 hex digits of
the SHA-256 of the sorted cipher suites, and of the sorted extensions less SNI and ALPN followed
by ``_`` and the signature algorithms in their order. GREASE values never count.
"""

from __future__ import annotations

from mizu_tls.handshake import ALPN, SERVER_NAME, ClientHello
from mizu_tls.names import is_grease

_VERSION_CODES = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_EMPTY_HASH = "000000000000"


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _alpn_code(value: bytes) -> str:
    if not value:
        return "00"
    first, last = value[0], value[-1]
    if _alnum(first) and _alnum(last):
        return chr(first) + chr(last)
    hexed = value.hex()
    return hexed[0] + hexed[-1]


def _hash12(text: str) -> str:
    # imported with the first ClientHello, not with the plugin: hashlib loads OpenSSL's
    # library, a cost that every run would pay, with or without TLS in its capture
    import hashlib

    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12] if text else _EMPTY_HASH


def ja4_parts(hello: ClientHello) -> tuple[str, str, str]:
    """The three parts of JA4 before hashing: the prefix, the cipher list, the extensions and
    signature algorithms (as ``ja4_r`` shows them)."""
    versions = [v for v in hello.supported_versions if not is_grease(v)]
    version = max(versions) if versions else hello.legacy_version
    ciphers = [c for c in hello.cipher_suites if not is_grease(c)]
    extension_types = [kind for kind, _ in hello.extensions if not is_grease(kind)]
    prefix = (
        "t"
        + _VERSION_CODES.get(version, "00")
        + ("d" if SERVER_NAME in extension_types else "i")
        + f"{min(len(ciphers), 99):02d}"
        + f"{min(len(extension_types), 99):02d}"
        + _alpn_code(hello.first_alpn)
    )
    cipher_list = ",".join(f"{c:04x}" for c in sorted(ciphers))
    hashed_extensions = ",".join(
        f"{kind:04x}" for kind in sorted(extension_types) if kind not in (SERVER_NAME, ALPN)
    )
    algorithms = ",".join(f"{a:04x}" for a in hello.signature_algorithms if not is_grease(a))
    extension_list = f"{hashed_extensions}_{algorithms}" if algorithms else hashed_extensions
    return prefix, cipher_list, extension_list


def ja4(hello: ClientHello) -> str:
    prefix, ciphers, extensions = ja4_parts(hello)
    extension_hash = _hash12(extensions) if extensions.split("_")[0] else _EMPTY_HASH
    return f"{prefix}_{_hash12(ciphers)}_{extension_hash}"


def ja4_r(hello: ClientHello) -> str:
    return "_".join(ja4_parts(hello))
