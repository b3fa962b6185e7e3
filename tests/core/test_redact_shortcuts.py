"""Redaction's shortcuts (remembered verdicts, one secret-shape search over a whole text, a JSON
body proved untouched without the walk's copy) give the entries the full walk gives: on every
capture of the suite, and on entries made to hide secrets in odd places."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mizu_core import Protocol, hookimpl
from mizu_core.capture import CaptureError, FileSource
from mizu_core.decode import UnsupportedLinkType
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from mizu_core.redact import (
    _SECRET_VALUE_SCAN,
    MAX_DEPTH,
    REDACTED,
    SECRET_VALUE,
    Redactor,
    may_hold_secret_value,
)
from tests.core.test_redact import _SHAPE_PIECES

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted(
    path
    for path in (ROOT / "tests" / "data").rglob("*")
    if path.suffix in (".pcap", ".pcapng") and "plugins" not in path.parts
)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl"


def agree(entries: list[dict[str, Any]], protocols: tuple[Protocol, ...] = ()) -> None:
    """Each entry redacted with the shortcuts (twice: what it remembers from the first pass
    must not change the second) and without them: the same bytes, the entry left alone."""
    fast = Redactor(protocols=protocols)
    full = Redactor(protocols=protocols, shortcuts=False)
    for _ in range(2):
        for entry in entries:
            before = copy.deepcopy(entry)
            expected = orjson.dumps(full(entry), default=repr)
            assert orjson.dumps(fast(entry), default=repr) == expected, entry
            assert entry == before


def capture_entries(path: Path, plugins: PluginManager) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    engine = Engine(plugins, entries.append, EngineSettings(tapper_id="t"))
    with contextlib.suppress(CaptureError, UnsupportedLinkType):  # the suite's odd captures
        engine.run(FileSource(str(path)))
    engine.finish()
    return entries


@pytest.fixture(scope="module")
def plugins() -> PluginManager:
    manager = PluginManager().discover()
    manager.configure({})
    return manager


def test_every_capture_is_redacted_alike(plugins: PluginManager) -> None:
    protocols = tuple(plugins.declared_protocols())
    seen = 0
    for path in CAPTURES:
        entries = capture_entries(path, plugins)
        agree(entries, protocols)
        seen += len(entries)
    assert seen > 250  # the captures' entries were read, not skipped


# -- texts ------------------------------------------------------------------------------------

_PIECES = st.one_of(
    _SHAPE_PIECES,  # and what whitespace RE2 and re once disagreed on, and what RE2 is not given
    st.sampled_from(["NTLM\x0b", "Digest\x0c", "pk_test_", "\ud800", '"', "\\"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30))
def test_a_text_said_to_hold_no_secret_holds_none(pieces: list[str]) -> None:
    """The one search over a whole text lets through every text either engine finds a
    credential's shape in (and the engines agree, the vertical tab included)."""
    text = "".join(pieces)
    found = SECRET_VALUE.search(text) is not None
    if "\ud800" not in text:  # RE2 is given UTF-8, which a lone surrogate is not
        assert (_SECRET_VALUE_SCAN.search(text) is not None) == found
    if found:
        assert may_hold_secret_value(text)


_NAMES = st.sampled_from(
    [
        "id",
        "name",
        "user",
        "password",
        "Pass_Word",
        "to-ken",
        ":authority",
        "x-api-key",
        "keyword",
        "session_id",
        "code",
        "",
        "é",
        "a\\b",
        'q"uote',
    ]
)
_STRINGS = st.one_of(
    st.sampled_from(
        [
            "ann",
            "reader",
            f"Bearer {JWT}",
            JWT,
            "AKIAABCDEFGHIJKLMNOP",
            "token=t1",
            "\\u0042earer abcdefgh",
            "Bearer\tabcdefgh",
            "<password>p</password>",
            "[REDACTED]",
            "é\u2028",
        ]
    ),
    st.text(max_size=12),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    _STRINGS,
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_NAMES, inner, max_size=4)
    ),
    max_leaves=20,
)


def nested(depth: int, leaf: Any) -> Any:
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"level": leaf}
    return leaf


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """JSON as services write it, and as it reaches a tapper: cut short, deeper than the walk,
    with numbers the readers disagree on, escaped, as lines of JSON."""
    document = draw(_DOCUMENTS)
    if draw(st.booleans()):
        document = nested(draw(st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2)), document)
    text = json.dumps(
        document, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))
    )
    text = draw(
        st.sampled_from(
            [
                text,
                text[: draw(st.integers(0, len(text)))],  # cut at the body cap
                f"{text}\n{text}\n",
                text.replace("1", "NaN", 1),
                text.replace("0", "1e400", 1),
                f"[{text}, {10**400}]",
                text.replace("a", "\\u0061"),
            ]
        )
    )
    return text if text.lstrip()[:1] in ("{", "[") else f"[{text}]"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_texts())
def test_a_json_body_proved_untouched_is_one_the_walk_leaves(text: str) -> None:
    redactor = Redactor()
    if redactor._json_untouched(text):
        assert redactor._json_walk(text) is None
    body = {"request": {"postData": {"mimeType": "application/json", "text": text}}}
    agree([body])


# -- entries ----------------------------------------------------------------------------------

_HEADER_VALUES = st.one_of(
    _STRINGS,
    st.lists(_STRINGS, min_size=1, max_size=3),
    st.integers(0, 5),
)


def _form(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in pairs)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    names = st.lists(st.tuples(_NAMES, _STRINGS), max_size=4)
    pairs = draw(names)
    document = draw(_DOCUMENTS)
    mime, text = draw(
        st.sampled_from(
            [
                ("application/json", json.dumps(document)),
                ("application/x-ndjson", f"{json.dumps(document)}\n{json.dumps(pairs)}\n"),
                (
                    "application/xml",
                    "<r>"
                    + "".join(
                        f'<{re.sub(r"[^a-z]", "x", n) or "e"} a="{v}">{v}</x>' for n, v in pairs
                    )
                    + "</r>",
                ),
                ("application/x-www-form-urlencoded", _form(pairs)),
                (
                    "multipart/form-data; boundary=XyZ",
                    "".join(
                        f'--XyZ\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
                        for n, v in pairs
                    )
                    + "--XyZ--\r\n",
                ),
                ("text/plain", " ".join(f"{n}: {v}" for n, v in pairs)),
                ("application/grpc", "\x00\x00\x00\x00\x10" + _form(pairs)),
            ]
        )
    )
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    body: dict[str, Any] = {"mimeType": mime, "size": len(text), "text": text}
    if draw(st.booleans()):
        body["text"] = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
        body["encoding"] = "base64"
    return body


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    headers = draw(st.dictionaries(_NAMES, _HEADER_VALUES, max_size=5))
    pairs = draw(st.lists(st.tuples(_NAMES, _STRINGS), max_size=3))
    request: dict[str, Any] = {
        "method": "POST",
        "url": "http://h/p?" + _form(pairs) + draw(st.sampled_from(["", "#frag"])),
        "headers": headers,
        "queryString": dict(pairs),
        "cookies": draw(st.sampled_from([{}, {"sid": "s1"}, [{"name": "sid", "value": "s"}]])),
        "postData": draw(bodies()),
        "note": draw(_STRINGS),
        "args": draw(st.lists(_STRINGS, max_size=3)),
    }
    if draw(st.booleans()):
        request["postData"]["params"] = [{"name": n, "value": v} for n, v in pairs]
    response: dict[str, Any] = {
        "status": 200,
        "headers": [
            {"name": n, "value": v} for n, v in draw(st.lists(st.tuples(_NAMES, _STRINGS)))
        ],
        "content": draw(bodies()),
        "messages": [{"fields": [{"field": 1, "value": draw(_STRINGS)}], "headers": headers}],
        "passphrase": draw(_STRINGS),
    }
    return {
        "protocol": {"name": draw(st.sampled_from(["vault", "http"]))},
        "request": request,
        "response": response,
    }


class _Vault:
    @hookimpl
    def protocols(self) -> list[Protocol]:
        return [
            Protocol(
                "vault",
                "1",
                "V",
                "Vault",
                "vault",
                secret_fields=("passphrase",),
                payload_fields=("note", "args"),
            )
        ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries(), min_size=1, max_size=3))
def test_entries_hiding_secrets_in_odd_places_are_redacted_alike(
    made: list[dict[str, Any]],
) -> None:
    plugins = PluginManager()
    plugins.register(_Vault(), "vault")
    agree(made, tuple(plugins.declared_protocols()))


def test_what_nothing_was_redacted_in_is_shared_and_the_rest_copied() -> None:
    entry = {
        "request": {
            "headers": {"Accept": "*/*", "Authorization": "Bearer abcdefgh"},
            "postData": {"mimeType": "application/json", "text": '{"id": 1}'},
        },
        "response": {
            "headers": {"Server": "s"},
            "content": {"mimeType": "text/plain", "text": "ok"},
        },
    }
    redacted = Redactor()(entry)
    assert redacted is not entry and redacted["response"] is entry["response"]
    assert redacted["request"]["postData"] is entry["request"]["postData"]
    assert redacted["request"]["headers"] == {"Accept": "*/*", "Authorization": REDACTED}
    assert entry["request"]["headers"]["Authorization"] == "Bearer abcdefgh"
