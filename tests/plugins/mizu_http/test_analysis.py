"""Entries, rows and detail views from dissected messages."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st
from mizu_http.analysis import (
    finish_request,
    finish_response,
    form_params,
    header_values,
    is_error,
    query_pairs,
    represent,
    summarize,
)

from mizu_core.entry import MAX_REMEMBERED_QUERIES

HTTP11 = {"name": "http", "version": "1.1", "abbr": "HTTP", "macro": "http"}


def test_request_views() -> None:
    request = finish_request(
        {
            "method": "GET",
            "target": "/a%20b?x=1&x=2&e=",
            "headers": {"host": "svc:8080", "Cookie": ["a=1; b=2", "a=3"]},
        }
    )
    assert request["url"] == "http://svc:8080/a%20b?x=1&x=2&e="
    assert request["path"] == "/a%20b"
    assert request["queryString"] == {"x": ["1", "2"], "e": ""}
    assert request["cookies"] == {"a": ["1", "3"], "b": "2"}
    proxied = finish_request({"method": "GET", "target": "http://other/p?q=1", "headers": {}})
    assert (proxied["url"], proxied["path"]) == ("http://other/p?q=1", "/p")


@given(st.text(alphabet="ab=&+%2fé;\x00 ", max_size=24))
def test_query_pairs_are_the_standard_librarys(query: str) -> None:
    assert query_pairs(query) == parse_qsl(query, keep_blank_values=True)


def test_query_pairs_decode_escapes_and_plus() -> None:
    assert query_pairs("a+b=%C3%A9%2&=x&&c&d=%zz+1") == [
        ("a b", "\u00e9%2"),
        ("", "x"),
        ("c", ""),
        ("d", "%zz 1"),
    ]


def test_response_cookies_and_header_lookup_ignore_case() -> None:
    response = finish_response({"headers": {"set-cookie": ["s=1; Path=/", "t=2; HttpOnly"]}})
    assert response["cookies"] == {"s": "1", "t": "2"}
    assert header_values({"X-Thing": ["1", "2"]}, "x-thing") == ["1", "2"]


def test_multipart_form() -> None:
    body = (
        '--B\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nfile text\r\n"
        '--B\r\nContent-Disposition: form-data; name="n"\r\n\r\nvalue\r\n--B--\r\n'
    )
    params = form_params({"mimeType": "multipart/form-data; boundary=B", "text": body})
    assert params == [
        {"name": "f", "fileName": "a.txt", "contentType": "text/plain", "value": "file text"},
        {"name": "n", "value": "value"},
    ]
    assert form_params({"mimeType": "application/json", "text": "{}"}) is None


def test_summary_queries_escape_quotes() -> None:
    entry = {
        "protocol": HTTP11,
        "request": {"method": "GET", "path": '/say"hi"'},
        "response": {"status": 404},
    }
    row = summarize(entry)
    assert row["summary"] == '/say"hi"'
    assert row["summaryQuery"] == 'http and request.path == "/say\\"hi\\""'
    assert row["statusQuery"] == "http and response.status == 404"


def test_remembered_row_queries_are_each_entrys_own() -> None:
    # More paths than the rows' queries kept, under two protocols: the kept ones are forgotten,
    # never mixed up.
    grpc = {"name": "http", "version": "2.0", "abbr": "gRPC", "macro": "grpc"}
    paths = MAX_REMEMBERED_QUERIES + 7
    for index in range(2 * paths):
        protocol = grpc if index % 2 else HTTP11
        macro = protocol["macro"]
        path = f"/p{index % paths}"
        row = summarize(
            {
                "protocol": protocol,
                "request": {"method": "GET", "path": path},
                "response": {"status": 200 + index % 3},
            }
        )
        assert row["summaryQuery"] == f'{macro} and request.path == "{path}"'
        assert row["methodQuery"] == f'{macro} and request.method == "GET"'
        assert row["statusQuery"] == f"{macro} and response.status == {200 + index % 3}"


def test_representation_sections() -> None:
    entry = {
        "protocol": HTTP11,
        "request": finish_request(
            {
                "method": "POST",
                "target": "/f?q=1",
                "headers": {"Host": "h"},
                "postData": {
                    "mimeType": "application/x-www-form-urlencoded",
                    "text": "a=1",
                },
            }
        ),
        "response": {
            "status": 200,
            "headers": {"Content-Type": "application/json"},
            "content": {"mimeType": "application/json", "text": '{"a":1}'},
        },
    }
    sections = represent(entry)
    assert [s["title"] for s in sections["request"]] == [
        "Details",
        "Headers",
        "Query String",
        "Form",
        "Body",
    ]
    body = sections["response"][-1]
    assert body["data"] == '{\n  "a": 1\n}'
    assert body["selector"] == "response.content.text"


def test_websocket_representation_shows_the_payload() -> None:
    entry = {
        "protocol": {"name": "websocket", "abbr": "WS", "macro": "ws"},
        "request": {"method": "binary", "path": "/ws", "payload": "AAE=", "encoding": "base64"},
        "response": None,
    }
    details, payload = represent(entry)["request"]
    assert details["data"][0]["value"] == "binary"
    assert (payload["data"], payload["encoding"]) == ("AAE=", "base64")
    assert summarize(entry)["summaryQuery"] == 'ws and request.path == "/ws"'


def test_http_errors_are_4xx_and_5xx_with_their_reason_phrase() -> None:
    def verdict(response: dict[str, object], protocol: dict[str, str] = HTTP11) -> tuple:
        row = summarize({"protocol": protocol, "request": {"method": "GET"}, "response": response})
        return row["status"], row["error"], row["statusName"]

    assert verdict({"status": 200, "statusText": "OK"}) == (200, False, "OK")
    assert verdict({"status": 302, "statusText": "Found"}) == (302, False, "Found")
    assert verdict({"status": 404, "statusText": "Nope"}) == (404, True, "Nope")
    http2 = {"name": "http", "version": "2.0", "abbr": "HTTP/2", "macro": "http2"}
    # HTTP/2 sends no reason phrase: the standard one names the status
    assert verdict({"status": 503, "statusText": ""}, http2) == (503, True, "Service Unavailable")
    reset = {"status": 0, "statusText": "RST_STREAM", "resetCode": 7}
    assert verdict(reset, http2) == ("RST", True, "REFUSED_STREAM")


def test_grpc_errors_are_statuses_other_than_ok_by_name() -> None:
    grpc = {"name": "http", "version": "2.0", "abbr": "gRPC", "macro": "grpc"}

    def row(response: dict[str, object]) -> dict[str, object]:
        return summarize({"protocol": grpc, "request": {"method": "POST"}, "response": response})

    assert (row({"status": 200, "grpcStatus": 0})["error"], row({"grpcStatus": 0})["status"]) == (
        False,
        "OK",
    )
    failed = row({"status": 200, "grpcStatus": 16})
    assert (failed["status"], failed["error"], failed["statusName"]) == (
        "UNAUTHENTICATED",
        True,
        "UNAUTHENTICATED",
    )
    assert failed["statusQuery"] == "grpc and response.grpcStatus == 16"
    # no grpc-status (a proxy answered): judged by the HTTP status
    assert row({"status": 502})["error"] is True
    # a grpc-status that did not decode (mid-connection HPACK): not known, not taken for OK
    unknown = row({"status": 200, "undecodedHeaders": 2})
    assert (unknown["status"], unknown["error"], unknown["statusName"]) == (
        "?",
        False,
        "grpc-status not decoded",
    )
    assert unknown["statusQuery"] == "grpc and response.undecodedHeaders > 0"


def test_websocket_closes_other_than_clean_ones_are_errors() -> None:
    ws = {"name": "websocket", "version": "13", "abbr": "WS", "macro": "ws"}

    def row(request: dict[str, object]) -> dict[str, object]:
        return summarize({"protocol": ws, "request": request, "response": None})

    assert row({"method": "text", "payload": "hi"})["error"] is False
    assert row({"method": "close", "closeCode": 1000})["error"] is False
    failed = row({"method": "close", "closeCode": 1011})
    assert (failed["status"], failed["error"], failed["statusName"]) == (
        1011,
        True,
        "INTERNAL_ERROR",
    )
    # A stored entry may hold anything: a boolean is not a close code, in either build.
    assert row({"method": "close", "closeCode": True})["status"] == ""


VERDICT_CASES = [
    (HTTP11, {"method": "GET"}, {"status": 200, "statusText": "OK"}, False),
    (HTTP11, {"method": "GET"}, {"status": 404, "statusText": "Nope"}, True),
    (HTTP11, {"method": "GET"}, {"status": 399}, False),
    (HTTP11, {"method": "GET"}, {"status": 400}, True),
    (HTTP11, {"method": "GET"}, None, False),
    (HTTP11, None, {"status": 500}, True),
    (HTTP11, {"method": "GET"}, {"status": True}, False),  # a stored boolean is no status
    (HTTP11, {"method": "GET"}, {"status": "500"}, False),  # nor a text
    ({"macro": "http2"}, {"method": "GET"}, {"status": 0, "resetCode": 8}, True),
    ({"macro": "http2"}, {"method": "GET"}, {"status": 200, "resetCode": 8}, False),
    ({"macro": "grpc"}, {"method": "POST"}, {"status": 200, "grpcStatus": 0}, False),
    ({"macro": "grpc"}, {"method": "POST"}, {"status": 200, "grpcStatus": 5}, True),
    ({"macro": "grpc"}, {"method": "POST"}, {"status": 500, "grpcStatus": 0}, False),
    ({"macro": "grpc"}, {"method": "POST"}, {"status": 200, "grpcStatus": True}, True),
    ({"macro": "grpc"}, {"method": "POST"}, {"status": 502}, True),
    ({"macro": "grpc"}, {"method": "POST"}, {"status": 500, "undecodedHeaders": 1}, False),
    ({"macro": "http2"}, {"method": "POST"}, {"status": 200, "grpcStatus": 5}, False),
    ({"macro": "ws"}, {"method": "close", "closeCode": 1001}, None, False),
    ({"macro": "ws"}, {"method": "close", "closeCode": 4000}, None, True),
    ({"macro": "ws"}, {"method": "close", "closeCode": False}, None, False),
    ({"macro": "http"}, {"method": "close", "closeCode": 4000}, None, False),
    ({}, {"method": "GET"}, {"status": 404}, True),  # no macro: HTTP's
]


def test_is_error_says_what_the_row_says() -> None:
    for protocol, request, response, failed in VERDICT_CASES:
        entry = {"protocol": protocol, "request": request, "response": response}
        assert is_error(entry) is failed, entry
        assert summarize(entry)["error"] is failed, entry
    stored = {"macro": "grpc"}, {"method": "POST"}, {"status": 200, "grpcStatus": True}
    row = summarize(dict(zip(("protocol", "request", "response"), stored, strict=True)))
    assert (row["status"], row["statusQuery"]) == ("CANCELLED", "grpc and response.grpcStatus == 1")
