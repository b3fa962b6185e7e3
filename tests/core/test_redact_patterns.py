"""Redaction fails closed: what does not parse as the document it claims to be is redacted by
pattern; values shaped like credentials go whatever their name; plugins' secret fields go."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

from mizu_core import Protocol, hookimpl
from mizu_core.plugins import PluginManager
from mizu_core.redact import MAX_DEPTH, REDACTED, Redactor

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl"


def body(text: str, mime: str) -> dict[str, str]:
    entry = {"request": {"postData": {"mimeType": mime, "text": text}}}
    redacted: str = Redactor()(entry)["request"]["postData"]["text"]
    return {"text": redacted}


def test_json_cut_short_is_redacted_by_pattern() -> None:
    cut = '{"user": "ann", "password": "hunter2", "rows": ["aaaa'
    assert body(cut, "application/json")["text"] == (
        f'{{"user": "ann", "password": "{REDACTED}", "rows": ["aaaa'
    )
    assert body('{"token":"abc', "application/json")["text"] == f'{{"token":"{REDACTED}"'


def test_json_deeper_than_the_walk_is_redacted_by_pattern() -> None:
    document: dict[str, object] = {"secret": "deep-one", "other": 1}
    for _ in range(100):
        document = {"level": document}
    redacted = body(json.dumps(document), "application/json")["text"]
    assert "deep-one" not in redacted
    assert redacted.count('"level"') == 100 and '"other":1' in redacted
    # a string just past the walk's depth is not a container the pattern pass would see
    jwt_in_lists: object = JWT
    for _ in range(MAX_DEPTH + 1):
        jwt_in_lists = [jwt_in_lists]
    assert JWT not in body(json.dumps(jwt_in_lists), "application/json")["text"]


def test_ndjson_and_a_byte_order_mark() -> None:
    lines = '{"a": 1}\n{"password": "p1", "b": 2}\nnot json token=t1\n'
    redacted = body(lines, "application/x-ndjson")["text"]
    assert redacted == f'{{"a": 1}}\n{{"password":"{REDACTED}","b":2}}\nnot json token={REDACTED}\n'
    with_mark = body('\ufeff{"password": "p2"}', "application/json")["text"]
    assert with_mark == f'\ufeff{{"password":"{REDACTED}"}}'
    raw = base64.b64encode('\ufeff{"password": "p3"}'.encode()).decode()
    entry = {"request": {"postData": {"mimeType": "", "text": raw, "encoding": "base64"}}}
    decoded = base64.b64decode(Redactor()(entry)["request"]["postData"]["text"])
    assert decoded == b'\xef\xbb\xbf{"password":"' + REDACTED.encode() + b'"}'


def test_a_base64_json_body_keeps_the_escapes_its_bytes_cannot_hold() -> None:
    text = '{"password": "p4", "name": "\\u0100\\ud83d\\ude00"}'
    raw = base64.b64encode(text.encode()).decode()
    entry = {"request": {"postData": {"mimeType": "", "text": raw, "encoding": "base64"}}}
    decoded = base64.b64decode(Redactor()(entry)["request"]["postData"]["text"])
    assert json.loads(decoded) == {"password": REDACTED, "name": "\u0100\U0001f600"}


def test_a_base64_utf8_json_body_keeps_its_escaped_characters_as_utf8() -> None:
    # base64 only for its DEL, which JSON allows in a string; the escape is below 0x100
    text = '{"password": "p5", "name": "\\u00e9 \u00e9", "note": "\x7f"}'
    raw = base64.b64encode(text.encode()).decode()
    entry = {"request": {"postData": {"mimeType": "", "text": raw, "encoding": "base64"}}}
    decoded = base64.b64decode(Redactor()(entry)["request"]["postData"]["text"])
    assert json.loads(decoded.decode("utf-8")) == {
        "password": REDACTED,
        "name": "\u00e9 \u00e9",
        "note": "\x7f",
    }


def test_a_base64_latin1_json_body_keeps_its_bytes() -> None:
    text = b'{"password": "p6", "name": "caf\xe9", "escaped": "\\ud83d\\ude00"}'
    raw = base64.b64encode(text).decode()
    entry = {"request": {"postData": {"mimeType": "", "text": raw, "encoding": "base64"}}}
    decoded = base64.b64decode(Redactor()(entry)["request"]["postData"]["text"])
    assert b'"name":"caf\xe9"' in decoded
    assert json.loads(decoded.decode("latin-1")) == {
        "password": REDACTED,
        "name": "caf\xe9",
        "escaped": "\U0001f600",
    }


def test_multipart_fields_by_name_and_by_their_own_type() -> None:
    mime = "multipart/form-data; boundary=XyZ"
    text = (
        '--XyZ\r\nContent-Disposition: form-data; name="user"\r\n\r\nann\r\n'
        '--XyZ\r\nContent-Disposition: form-data; name="password"\r\n\r\nhunter2\r\n'
        '--XyZ\r\nContent-Disposition: form-data; name="meta"\r\n'
        'Content-Type: application/json\r\n\r\n{"api_key": "k1", "n": 1}\r\n'
        "--XyZ--\r\n"
    )
    redacted = body(text, mime)["text"]
    assert "hunter2" not in redacted and "k1" not in redacted
    assert "\r\n\r\nann\r\n--XyZ" in redacted
    assert f'name="password"\r\n\r\n{REDACTED}\r\n--XyZ' in redacted
    assert f'{{"api_key":"{REDACTED}","n":1}}' in redacted
    assert redacted.endswith("--XyZ--\r\n")


def test_text_of_no_particular_format() -> None:
    text = f"login ok user=ann password=hunter2 theme=dark\nAuthorization: Bearer abcdef123\n{JWT}"
    redacted = body(text, "text/plain")["text"]
    assert redacted == (
        f"login ok user=ann password={REDACTED} theme=dark\nAuthorization: {REDACTED}\n{REDACTED}"
    )
    assert body("<login><password>cut sh", "application/xml")["text"] == (
        f"<login><password>{REDACTED}"
    )
    assert body("just words, code: 404", "text/plain")["text"] == "just words, code: 404"


def test_credential_shaped_values_go_whatever_their_name() -> None:
    entry = {
        "request": {
            "headers": {
                "X-User-Context": JWT,
                "X-Trace": "abc",
                "X-Upstream": ["a", "Basic Zm9vOmJhcg=="],
            },
            "queryString": {"code": "c1", "state": "s", "page": "2"},
            "url": "http://h/callback?code=c1&state=s",
            "postData": {
                "mimeType": "application/json",
                "text": json.dumps({"note": "AKIAABCDEFGHIJKLMNOP", "code": 404}),
            },
        }
    }
    request = Redactor()(entry)["request"]
    assert request["headers"] == {
        "X-User-Context": REDACTED,
        "X-Trace": "abc",
        "X-Upstream": REDACTED,
    }
    assert request["queryString"] == {"code": REDACTED, "state": "s", "page": "2"}
    assert request["url"] == f"http://h/callback?code={REDACTED}&state=s"
    assert json.loads(request["postData"]["text"]) == {"note": REDACTED, "code": 404}
    form = body(
        "grant_type=authorization_code&code=c2&client_secret=s2",
        "application/x-www-form-urlencoded",
    )
    assert form["text"] == f"grant_type=authorization_code&code={REDACTED}&client_secret={REDACTED}"


def test_a_plugin_declares_its_secret_and_payload_fields() -> None:
    class Plugin:
        @hookimpl
        def protocols(self) -> list[Protocol]:
            vault = Protocol("vault", "1", "V", "Vault", "vault", secret_fields=("passphrase",))
            return [replace(vault, payload_fields=("note", "args"))]

    plugins = PluginManager()
    plugins.register(Plugin(), "vault")
    redactor = Redactor(protocols=plugins.declared_protocols())
    entry = {
        "protocol": {"name": "vault"},
        "request": {
            "method": "UNSEAL",
            "passphrase": "p",
            "note": '{"token": "t", "n": 1}',
            "args": ["token=t2", "plain", 3, {"passphrase": "q"}],
            "key": "password=kept",  # not declared: a protocol's own fields are data
        },
    }
    assert redactor(entry)["request"] == {
        "method": "UNSEAL",
        "passphrase": REDACTED,
        "note": f'{{"token":"{REDACTED}","n":1}}',
        "args": [f"token={REDACTED}", "plain", 3, {"passphrase": REDACTED}],
        "key": "password=kept",
    }
    other = {"protocol": {"name": "other"}, "request": {"passphrase": "p"}}
    assert redactor(other)["request"] == {"passphrase": "p"}  # only the declaring protocol's
