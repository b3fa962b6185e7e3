"""Real HTTP peers on loopback for the plugin's tests, and tshark as the oracle."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import brotli
import zstandard
from aiohttp import web

from tests.support.tcpdump import record
from tests.support.tshark import REASSEMBLE_OUT_OF_ORDER

RECORD_FLUSH = 1.2
"""tcpdump hands packets over in blocks; its block timeout is about a second, so the last
packets of a block are written only if the recording lasts that much longer."""

JSON_DOCUMENT = {"user": {"id": 7, "name": "ada"}, "tags": ["a", "b"]}
ASSET = b"".join(b"%05d mizu http test asset line\n" % i for i in range(400))


def _compressed(coding: str) -> bytes:
    if coding == "gzip":
        compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
        return compressor.compress(ASSET) + compressor.flush()
    if coding == "br":
        return brotli.compress(ASSET)
    if coding == "zstd":
        return zstandard.ZstdCompressor().compress(ASSET)
    # stacked: gzip first, then br (Content-Encoding lists them in the order applied)
    return brotli.compress(_compressed("gzip"))


def build_app() -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/json")
    async def json_route(request: web.Request) -> web.Response:
        response = web.json_response(JSON_DOCUMENT)
        response.set_cookie("session", "abc123", path="/")
        return response

    @routes.get("/coded/{coding}")
    async def coded(request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        header = "gzip, br" if coding == "stacked" else coding
        return web.Response(
            body=_compressed(coding),
            headers={"Content-Encoding": header, "Content-Type": "text/plain"},
        )

    @routes.get("/chunked")
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index in range(3):
            await response.write(b"part %d\n" % index)
        await response.write_eof()
        return response

    @routes.get("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        """No length: chunked for HTTP/1.1, read until the close for HTTP/1.0."""
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for index in range(3):
            await response.write(b"part %d\n" % index)
        await response.write_eof()
        return response

    @routes.get("/empty")
    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    @routes.get("/cached")
    async def cached(request: web.Request) -> web.Response:
        return web.Response(status=304, headers={"ETag": '"v1"'})

    @routes.post("/form")
    async def form(request: web.Request) -> web.Response:
        fields = await request.post()
        return web.json_response({name: str(value) for name, value in fields.items()})

    @routes.post("/echo")
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    app = web.Application()
    app.add_routes(routes)
    return app


class Server:
    """An aiohttp server on 127.0.0.1, run by a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def start(self) -> Server:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the aiohttp test server did not start")
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@contextmanager
def serving(app: web.Application) -> Iterator[Server]:
    server = Server(app).start()
    try:
        yield server
    finally:
        server.stop()


def run_client(work: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(work(), 30))


def raw_exchange(port: int, request: bytes, until: bytes) -> bytes:
    """Send ``request`` bytes at once (pipelining) and read until the answer ends with
    ``until`` or the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while not received.endswith(until):
            data = connection.recv(65536)
            if not data:
                break
            received += data
        return received


PIPELINED = (
    b"GET /json HTTP/1.1\r\nHost: pipelined\r\n\r\n"
    b"GET /empty HTTP/1.1\r\nHost: pipelined\r\n\r\n"
    b"HEAD /json HTTP/1.1\r\nHost: pipelined\r\n\r\n"
    b"GET /chunked HTTP/1.1\r\nHost: pipelined\r\n\r\n"
)


async def http1_client_session(port: int) -> None:
    """The exchanges of the HTTP/1 scenario, on one keep-alive connection."""
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", auto_decompress=False) as session:
        for path in (
            "/json",
            "/coded/gzip",
            "/coded/br",
            "/coded/zstd",
            "/coded/stacked",
            "/chunked",
            "/empty",
            "/cached",
        ):
            async with session.get(path) as response:
                await response.read()
        async with session.head("/json") as response:
            await response.read()
        async with session.post("/form", data={"a": "1", "b": "two words"}) as response:
            await response.read()
        form = aiohttp.FormData()
        form.add_field("upload", b"\xff\xfe binary", filename="x.bin")
        form.add_field("note", "text value")
        async with session.post("/form", data=form) as response:
            await response.read()
        async with session.post("/echo", data=b"x" * 3000, expect100=True) as response:
            await response.read()
        async with session.get(
            "/json", cookies={"c1": "v1", "c2": "v2"}, params={"q": "1", "r": "x y"}
        ) as response:
            await response.read()


def record_http1(path: Path) -> Path:
    """Record the HTTP/1 scenario: an aiohttp client's keep-alive exchanges, then pipelined
    requests over a raw socket."""
    with serving(build_app()) as server, record(path, f"tcp port {server.port}"):
        run_client(lambda: http1_client_session(server.port))
        raw_exchange(server.port, PIPELINED, until=b"0\r\n\r\n")
        time.sleep(RECORD_FLUSH)
    return path


# -- tshark ------------------------------------------------------------------------------------


def tshark_http(capture: Path, decode_as: tuple[str, ...] = ()) -> list[tuple[int, dict[str, Any]]]:
    """tshark's HTTP/1 messages of ``capture`` as ``(tcp stream, message)``, in capture order."""
    command = [
        "tshark",
        "-r",
        str(capture),
        *REASSEMBLE_OUT_OF_ORDER,
        "-Y",
        "http",
        "-T",
        "json",
        "--no-duplicate-keys",
    ]
    for rule in decode_as:
        command += ["-d", rule]
    output = subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
    messages: list[tuple[int, dict[str, Any]]] = []
    for packet in json.loads(output or b"[]"):
        layers = packet["_source"]["layers"]
        stream = int(layers["tcp"]["tcp.stream"])
        http = layers.get("http")
        if isinstance(http, list):  # several messages in one packet (pipelining)
            messages.extend((stream, message) for message in http)
        elif http is not None:
            messages.append((stream, http))
    return messages


def header_count(headers: dict[str, Any]) -> int:
    """Header lines of a header object (a repeated name counts each time)."""
    return sum(len(value) if isinstance(value, list) else 1 for value in headers.values())


def tshark_summary(message: dict[str, Any]) -> dict[str, Any]:
    """Method, URI, status, header lines and decoded body of one tshark message; the body is
    left out when tshark could not decode its content encoding (4.0 knows neither zstd nor
    stacked encodings)."""
    summary: dict[str, Any] = {}
    undecoded = False
    for key, value in message.items():
        if isinstance(value, dict) and "http.request.method" in value:
            summary["method"] = value["http.request.method"]
            summary["uri"] = value["http.request.uri"]
        if isinstance(value, dict) and "http.response.code" in value:
            summary["status"] = int(value["http.response.code"])
        if key.startswith("Content-encoded entity body") and " -> " not in key:
            undecoded = True
    lines = message.get("http.request.line") or message.get("http.response.line") or []
    summary["header_lines"] = len(lines) if isinstance(lines, list) else 1
    if "http.file_data" in message and not undecoded:
        summary["file_data"] = message["http.file_data"]
    return summary


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def tshark_h2_streams(
    capture: Path, server_port: int, decode_as: bool = True
) -> dict[tuple[int, int], dict[str, Any]]:
    """tshark's HTTP/2 streams of ``capture``, by (client port, stream id): the headers of each
    side (trailers included) in order, DATA payload sizes and bytes, gRPC message counts.

    ``decode_as`` tells tshark the port speaks HTTP/2 (prior knowledge); without it, tshark
    finds HTTP/2 only after an ``Upgrade: h2c``.
    """
    command = [
        "tshark",
        "-r",
        str(capture),
        *REASSEMBLE_OUT_OF_ORDER,
        "-Y",
        "http2",
        "-T",
        "json",
        "--no-duplicate-keys",
    ]
    if decode_as:
        command += ["-d", f"tcp.port=={server_port},http2"]
    output = subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
    streams: dict[tuple[int, int], dict[str, Any]] = {}
    for packet in json.loads(output or b"[]"):
        layers = packet["_source"]["layers"]
        ports = int(layers["tcp"]["tcp.srcport"]), int(layers["tcp"]["tcp.dstport"])
        side = "request" if ports[1] == server_port else "response"
        connection = ports[0] if side == "request" else ports[1]
        last_data_stream = None
        for layer in _as_list(layers.get("http2")):
            for frame in _as_list(layer.get("http2.stream")):
                if "http2.streamid" not in frame or not int(frame["http2.streamid"]):
                    continue
                number = int(frame["http2.streamid"])
                stream = streams.setdefault(
                    (connection, number),
                    {
                        "request_headers": [],
                        "response_headers": [],
                        "request_data": 0,
                        "response_data": 0,
                        "request_grpc": 0,
                        "response_grpc": 0,
                        "request_body": b"",
                        "response_body": b"",
                    },
                )
                kind = frame.get("http2.type")
                if kind in ("1", "9"):  # HEADERS, CONTINUATION
                    stream[f"{side}_headers"] += [
                        (header["http2.header.name"], header.get("http2.header.value", ""))
                        for header in _as_list(frame.get("http2.header"))
                    ]
                elif kind == "0":
                    stream[f"{side}_data"] += int(frame["http2.length"]) - int(
                        frame.get("http2.pad_length", 0)
                    )
                    data = frame.get("http2.data.data", "").replace(":", "")
                    stream[f"{side}_body"] += bytes.fromhex(data)
                    last_data_stream = stream
        if last_data_stream is not None:
            messages = sum(
                1 for layer in _as_list(layers.get("grpc")) if "grpc.compressed_flag" in layer
            )
            last_data_stream[f"{side}_grpc"] += messages
    return streams


def header_pairs(headers: dict[str, Any]) -> Counter[tuple[str, str]]:
    """A header object as (name, value) pairs, a repeated name counting each time."""
    return Counter(
        (name, value)
        for name, values in headers.items()
        for value in (values if isinstance(values, list) else [values])
    )


def check_h2_against_tshark(capture: Path, entries: list[dict[str, Any]]) -> int:
    """Compare every HTTP/2 entry with tshark's stream of the same connection and id: headers
    (trailers included), DATA bytes, gRPC message counts; and that tshark answered no stream
    we left out. Returns how many entries were compared."""
    h2 = [e for e in entries if e["request"] and "streamId" in e["request"]]
    port = int(h2[0]["dst"]["port"])
    # tshark finds HTTP/2 after an upgrade by itself, and with prior knowledge when told.
    theirs = tshark_h2_streams(capture, port, decode_as=False)
    for key, stream in tshark_h2_streams(capture, port).items():
        theirs.setdefault(key, stream)
    for entry in h2:
        request, response = entry["request"], entry["response"]
        stream = theirs[(entry["src"]["port"], request["streamId"])]
        if stream["request_headers"]:  # not the request of an h2c upgrade (that was HTTP/1.1)
            assert header_pairs(request["headers"]) == Counter(stream["request_headers"])
            assert request["bodySize"] == stream["request_data"]
        assert header_pairs(response["headers"]) == Counter(stream["response_headers"])
        assert response["bodySize"] == stream["response_data"]
        if "messages" in request:
            assert len(request["messages"]) == stream["request_grpc"]
            assert len(response["messages"]) == stream["response_grpc"]
    assert len(h2) == len([s for s in theirs.values() if s["response_headers"]])
    return len(h2)


# -- HTTP/2: hypercorn (h2c) with httpx and curl ------------------------------------------------


SLOW_PARTS = 8
SLOW_PAUSE = 0.1
"""``/slow/ID`` (and gRPC's Slow) answers in parts this far apart: a response in flight when a
capture starts. After its first part it waits for :data:`CAPTURE_STARTED`."""
CAPTURE_STARTED = threading.Event()
"""Set by a recorder once tcpdump listens (the machine may be slow to start it)."""


def call_status(call: int) -> int:
    """The status ``/call/ID`` answers with: one call in five is not found."""
    return 404 if call % 5 == 0 else 200


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny ASGI application: ``/json``, ``/gzip``, ``/echo`` (POST), and ``/call/ID`` and
    ``/slow/ID``, whose bodies and ``x-call`` header echo the call's id."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(b"content-type", b"application/json")]
    kind, _, call = scope["path"][1:].partition("/")
    if kind in ("call", "slow"):
        status = call_status(int(call)) if kind == "call" else 200
        headers.append((b"x-call", call.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        parts = SLOW_PARTS if kind == "slow" else 1
        for part in range(parts):
            if part == 1:
                await asyncio.to_thread(CAPTURE_STARTED.wait, 30)
            if part:
                await asyncio.sleep(SLOW_PAUSE)
            body = json.dumps({"call": call, "part": part}).encode()
            await send({"type": "http.response.body", "body": body, "more_body": part < parts - 1})
        return
    if scope["path"] == "/gzip":
        compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
        payload = compressor.compress(ASSET) + compressor.flush()
        headers = [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")]
    elif scope["path"] == "/echo":
        payload = body
    else:
        payload = json.dumps(JSON_DOCUMENT).encode()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@contextmanager
def hypercorn_serving() -> Iterator[int]:
    """hypercorn serving :func:`asgi_app` over cleartext HTTP/1.1 and h2c; yields the port."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve(asgi_app, config, shutdown_trigger=stop.wait),),  # type: ignore[arg-type]
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("hypercorn did not start") from None
            time.sleep(0.05)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def record_h2c(path: Path) -> Path:
    """httpx speaking HTTP/2 with prior knowledge (several streams on one connection), then
    curl asking for ``Upgrade: h2c``."""
    import httpx

    with hypercorn_serving() as port, record(path, f"tcp port {port}"):
        with httpx.Client(http1=False, http2=True, base_url=f"http://127.0.0.1:{port}") as client:
            client.get("/json", params={"q": "1"}, headers={"cookie": "a=1; b=2"})
            client.get("/gzip", headers={"accept-encoding": "gzip"})
            client.post("/echo", content=b"h2 body " * 500)
        subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "--http2", f"http://127.0.0.1:{port}/json"],
            check=True,
            timeout=30,
        )
        time.sleep(RECORD_FLUSH)
    return path


CALL_BATCHES = [[number] for number in range(1, 31)] + [
    list(range(first, first + 4)) for first in range(31, 63, 4)
]
"""The calls made after the capture of a connection already in use begins: one by one, then
four at a time (their streams interleave)."""


def record_h2c_midstream(path: Path) -> tuple[int, dict[int, int]]:
    """An httpx HTTP/2 connection (prior knowledge) in use before the capture starts: calls
    made then, and ``/slow/0`` answering while it starts. Returns the server's port and the
    client's view: the status of each call made after the capture began whose answer echoed
    its id."""
    import httpx

    seen: dict[int, int] = {}

    async def session(port: int) -> None:
        async with httpx.AsyncClient(
            http1=False, http2=True, base_url=f"http://127.0.0.1:{port}"
        ) as client:

            async def call(number: int, kind: str = "call") -> None:
                response = await client.get(f"/{kind}/{number}", headers={"x-call": str(number)})
                if response.headers["x-call"] == str(number):
                    seen[number] = response.status_code

            for number in range(-5, 0):  # the HPACK tables fill before the capture
                await call(number)
            CAPTURE_STARTED.clear()
            slow = asyncio.create_task(call(0, "slow"))
            await asyncio.sleep(SLOW_PAUSE)
            recording = record(path, f"tcp port {port}")
            await asyncio.to_thread(recording.__enter__)
            CAPTURE_STARTED.set()
            try:
                for batch in CALL_BATCHES:
                    await asyncio.gather(*(call(number) for number in batch))
                await slow
                await asyncio.sleep(RECORD_FLUSH)
            finally:
                await asyncio.to_thread(recording.__exit__, None, None, None)

    with hypercorn_serving() as port:
        run_client(lambda: session(port))
    return port, {number: status for number, status in seen.items() if number > 0}


# -- gRPC: grpcio server and client, messages built by hand --------------------------------------


def hello(name: str) -> bytes:
    """A protobuf message with field 1 = ``name`` (string), as protoc would encode it."""
    data = name.encode()
    length, varint = len(data), b""
    while length >= 0x80:
        varint += bytes([length & 0x7F | 0x80])
        length >>= 7
    return b"\x0a" + varint + bytes([length]) + data


BIG_GRPC_TEXT = 1_000_000
"""A 1 MB gRPC message: under the default 1 MiB body cap, above HTTP/2's 16 KiB frames."""


def grpc_server() -> tuple[Any, int]:
    from concurrent import futures

    import grpc

    def unary(request: bytes, context: Any) -> bytes:
        return hello("hi " + request[2:].decode())

    def server_stream(request: bytes, context: Any) -> Iterator[bytes]:
        for index in range(3):
            yield hello(f"part {index}")

    def bidi(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        for request in requests:
            yield hello("echo " + request[2:].decode())

    def failing(request: bytes, context: Any) -> bytes:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        return b""

    def client_stream(requests: Iterator[bytes], context: Any) -> bytes:
        return hello(",".join(request[2:].decode() for request in requests))

    def with_metadata(request: bytes, context: Any) -> bytes:
        received = dict(context.invocation_metadata())
        context.send_initial_metadata((("x-initial", "early"),))
        context.set_trailing_metadata((("x-echo", received.get("x-trace", "")),))
        return hello("meta")

    def big(request: bytes, context: Any) -> bytes:
        return hello("b" * BIG_GRPC_TEXT)

    def lookup(request: bytes, context: Any) -> bytes:
        call = request[2:].decode()
        if call_status(int(call.removeprefix("call-"))) == 404:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{call} not found")
        return hello("found " + call)

    def slow(request: bytes, context: Any) -> Iterator[bytes]:
        for part in range(SLOW_PARTS):
            if part == 1:
                CAPTURE_STARTED.wait(30)
            time.sleep(SLOW_PAUSE)
            yield hello(f"{request[2:].decode()} part {part}")

    handlers = grpc.method_handlers_generic_handler(
        "test.Greeter",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(failing),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Metadata": grpc.unary_unary_rpc_method_handler(with_metadata),
            "Big": grpc.unary_unary_rpc_method_handler(big),
            "Lookup": grpc.unary_unary_rpc_method_handler(lookup),
            "Slow": grpc.unary_stream_rpc_method_handler(slow),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def record_grpc(path: Path) -> Path:
    """Unary (plain and gzip-compressed), server streaming, bidi streaming and a failing call."""
    import grpc

    server, port = grpc_server()
    try:
        with record(path, f"tcp port {port}"):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                unary = channel.unary_unary("/test.Greeter/Unary")
                unary(hello("ada"), timeout=10)
                unary(hello("zip " * 50), timeout=10, compression=grpc.Compression.Gzip)
                list(channel.unary_stream("/test.Greeter/ServerStream")(hello("s"), timeout=10))
                bidi = channel.stream_stream("/test.Greeter/Bidi")
                list(bidi(iter([hello("one"), hello("two")]), timeout=10))
                with suppress(grpc.RpcError):
                    channel.unary_unary("/test.Greeter/Fail")(hello("x"), timeout=10)
            time.sleep(RECORD_FLUSH)
    finally:
        server.stop(None)
    return path


def record_grpc_midstream(path: Path) -> tuple[int, dict[int, int]]:
    """A grpcio channel in use before the capture starts: Lookup calls made then, and a
    server-streaming call answering while it starts. Returns the server's port and the
    client's view: the gRPC status of each Lookup whose answer named its call."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    seen: dict[int, int] = {}
    server, port = grpc_server()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            lookup = channel.unary_unary("/test.Greeter/Lookup")

            def call(number: int) -> None:
                try:
                    answer = lookup(hello(f"call-{number}"), timeout=10)
                except grpc.RpcError as error:
                    if error.details() == f"call-{number} not found":
                        seen[number] = error.code().value[0]
                else:
                    if answer[2:].decode() == f"found call-{number}":
                        seen[number] = grpc.StatusCode.OK.value[0]

            for number in range(-5, 0):  # the HPACK tables fill before the capture
                call(number)
            CAPTURE_STARTED.clear()
            slow = channel.unary_stream("/test.Greeter/Slow")(hello("call-0"), timeout=60)
            next(slow)
            with record(path, f"tcp port {port}"), ThreadPoolExecutor(4) as pool:
                CAPTURE_STARTED.set()
                for batch in CALL_BATCHES:
                    list(pool.map(call, batch))
                list(slow)
                time.sleep(RECORD_FLUSH)
    finally:
        server.stop(None)
    return port, {number: status for number, status in seen.items() if number > 0}


# -- WebSocket: aiohttp server; aiohttp client (permessage-deflate) and a raw one ------------------


def build_ws_app() -> web.Application:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True)
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo: " + message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    return app


def _masked_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    key = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + key + masked


async def ws_clients(port: int) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/ws?room=1", compress=15) as ws,
    ):
        await ws.send_str("hello " * 20)
        await ws.receive()
        await ws.send_bytes(b"\x00\x01\x02\xff")
        await ws.receive()
        await ws.ping(b"are you there")
        await ws.send_str("last")
        await ws.receive()
        await ws.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: raw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        _masked_frame(1, b"frag", fin=False)
        + _masked_frame(9, b"mid")  # a ping between the fragments
        + _masked_frame(0, b"mented", fin=False)
        + _masked_frame(0, b" message")
    )
    await reader.readexactly(2 + 3)  # the pong
    await reader.readexactly(2 + len("echo: fragmented message"))
    writer.write(_masked_frame(8, (1000).to_bytes(2, "big") + b"bye"))
    await reader.read()
    writer.close()


def record_websocket(path: Path) -> Path:
    with serving(build_ws_app()) as server, record(path, f"tcp port {server.port}"):
        run_client(lambda: ws_clients(server.port))
        time.sleep(RECORD_FLUSH)
    return path


RECORDERS = {
    "http1": record_http1,
    "h2c": record_h2c,
    "grpc": record_grpc,
    "websocket": record_websocket,
}

if __name__ == "__main__":
    # python tests/plugins/mizu_http/http_peers.py KIND OUT.pcap (re-recording tests/data/http)
    RECORDERS[sys.argv[1]](Path(sys.argv[2]))
