"""JA4 against the published values of its specification and of a fingerprinting service."""

from __future__ import annotations

import hashlib

from mizu_tls.handshake import ALPN, SERVER_NAME, SIGNATURE_ALGORITHMS, ClientHello
from mizu_tls.ja4 import ja4, ja4_r

CHROME_CIPHERS = "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035"
SIGNATURE_ALGORITHM_LIST = "0403,0804,0401,0503,0805,0501,0806,0601"


def hello(extensions: str, alpn: bytes = b"h2", grease: bool = True) -> ClientHello:
    """A ClientHello with Chrome's cipher suites and the given extensions (original order),
    GREASE values included as Chrome sends them."""
    ciphers = [int(c, 16) for c in CHROME_CIPHERS.split(",")]
    kinds = [int(e, 16) for e in extensions.split(",")]
    if grease:
        ciphers.insert(0, 0x4A4A)
        kinds = [0x1A1A, *kinds, 0x3A3A]
    return ClientHello(
        legacy_version=0x0303,
        random=bytes(32),
        cipher_suites=ciphers,
        extensions=[(kind, b"") for kind in kinds],
        sni="example.com" if SERVER_NAME in kinds else "",
        alpn=[alpn.decode("latin-1")] if ALPN in kinds else [],
        supported_versions=[0x2A2A, 0x0304, 0x0303],
        signature_algorithms=[int(a, 16) for a in SIGNATURE_ALGORITHM_LIST.split(",")]
        if SIGNATURE_ALGORITHMS in kinds
        else [],
        first_alpn=alpn if ALPN in kinds else b"",
    )


def test_a_published_fingerprint() -> None:
    # Chrome 143 as a fingerprinting service reported it, with its ja4_r (below): the hashes of
    # the specification's own Chrome example (8daaf6152771 for the same cipher suites) and of
    # this extension list.
    extensions = "002d,0033,0010,fe0d,0017,44cd,0000,000b,000a,002b,ff01,0023,0012,0005,000d,001b"
    assert ja4(hello(extensions)) == "t13d1516h2_8daaf6152771_d8a2da3f94cd"


def test_raw_form_lists_sorted_values_without_sni_and_alpn() -> None:
    extensions = "002d,0033,0010,fe0d,0017,44cd,0000,000b,000a,002b,ff01,0023,0012,0005,000d,001b"
    assert ja4_r(hello(extensions)) == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,fe0d,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601"
    )
    ciphers = ja4_r(hello(extensions)).split("_")[1]
    assert hashlib.sha256(ciphers.encode()).hexdigest()[:12] == "8daaf6152771"


def test_no_sni_no_alpn_and_odd_alpn_values() -> None:
    plain = hello("000a,000d,002b", grease=False)
    assert ja4(plain).startswith("t13i1503" + "00_")
    assert ja4(hello("0010,000d", alpn=b"http/1.1")).startswith("t13i1502h1_")
    assert ja4(hello("0010,000d", alpn=b"\xabxyz\x01")).startswith("t13i1502a1_")
    assert ja4(hello("0010", alpn=b"h")).endswith("_000000000000")  # no extensions hashed
