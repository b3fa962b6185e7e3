"""The protocols the plugin declares (docs/entries.md: ``http`` 1.0/1.1/2.0, gRPC, WS)."""

from __future__ import annotations

from mizu_core import Protocol

HTTP_PORTS = (80, 443, 3000, 5000, 8000, 8008, 8080, 8443, 8888, 9000)
"""Hints only (443 for cleartext HTTP on the TLS port, as some meshes do)."""
GRPC_PORTS = (50051, 9090)


def _http1(version: str, reference_link: str) -> Protocol:
    return Protocol(
        name="http",
        version=version,
        abbr="HTTP",
        long_name="Hypertext Transfer Protocol",
        macro="http",
        background_color="#205cf5",
        foreground_color="#ffffff",
        reference_link=reference_link,
        priority=0,
        ports=HTTP_PORTS,
        # `http` is every HTTP version, as users of Kubeshark and Wireshark expect; `http2` and
        # `grpc` narrow it
        macros={"http": 'protocol.name == "http"'},
    )


HTTP10 = _http1("1.0", "https://www.rfc-editor.org/rfc/rfc1945")
HTTP11 = _http1("1.1", "https://www.rfc-editor.org/rfc/rfc9112")
HTTP2 = Protocol(
    name="http",
    version="2.0",
    abbr="HTTP/2",
    long_name="Hypertext Transfer Protocol Version 2 (HTTP/2)",
    macro="http2",
    background_color="#244c5a",
    foreground_color="#ffffff",
    reference_link="https://www.rfc-editor.org/rfc/rfc9113",
    priority=0,
    ports=HTTP_PORTS,
)
GRPC = Protocol(
    name="http",
    version="2.0",
    abbr="gRPC",
    long_name="Google Remote Procedure Call",
    macro="grpc",
    background_color="#32a852",
    foreground_color="#ffffff",
    reference_link="https://grpc.github.io/grpc/core/md_doc__p_r_o_t_o_c_o_l-_h_t_t_p2.html",
    priority=0,
    ports=GRPC_PORTS,
)
WEBSOCKET = Protocol(
    name="websocket",
    version="13",
    abbr="WS",
    long_name="WebSocket",
    macro="ws",
    background_color="#f2a93b",
    foreground_color="#000000",
    reference_link="https://www.rfc-editor.org/rfc/rfc6455",
    priority=0,
    ports=HTTP_PORTS,
    payload_fields=("payload",),
)

ALL = (HTTP10, HTTP11, HTTP2, GRPC, WEBSOCKET)
