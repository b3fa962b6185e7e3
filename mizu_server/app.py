"""The hub's HTTP and WebSocket API and the dashboard's static files.

``/pcap`` serves the raw packets tappers send when pcap export is enabled (off by default).

Access: every route of the browser API needs the run's access token (Jupyter's model): a
dashboard URL carrying ``?token=`` exchanges it for an HttpOnly, SameSite=Strict cookie and
drops it from the address; scripts send ``Authorization: Bearer``. ``/ws`` and any request
that says where it comes from (``Origin``) must come from the hub's own origin, so a web page
the user visits cannot read the traffic through their browser. The dashboard's files hold no
traffic and are served to anyone. Tappers present their own token, in a header, on
``/wsTapper``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import io
import json
import logging
import socket as socket_module
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from mizu_core import __version__
from mizu_core.emit import encode_json
from mizu_core.pcapfile import entry_connection_key, write_capture
from mizu_core.query import Query, QueryError
from mizu_core.views import entry_representation
from mizu_server import stats, windowed
from mizu_server.frames import MAX_FRAME_BYTES, read_tapper_frame
from mizu_server.har import har_log
from mizu_server.hub import LIVE_BACKLOG_BYTES, Hub, LiveRow, TapperState
from mizu_server.pushdown import translate
from mizu_server.rules import rules_section
from mizu_server.store import BACKWARD, FORWARD

log = logging.getLogger(__name__)

HUB_KEY = web.AppKey("hub", Hub)
SOCKETS_KEY: web.AppKey[set[Any]] = web.AppKey("sockets")
LIVE_KEY: web.AppKey[set[Any]] = web.AppKey("live")
"""The browsers' live streams (``/ws``) open now."""
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
HAR_MAX_ENTRIES = 10_000


def dashboard_dir() -> Path:
    """The dashboard (plain ES modules and CSS, no build step): the top-level ``frontend/`` of
    a source checkout (editable installs too), or the copy a wheel ships as package data."""
    package = Path(__file__).resolve().parent
    shipped = package / "frontend"
    return shipped if shipped.is_dir() else package.parent / "frontend"


DEFAULT_STATIC_DIR = dashboard_dir()

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PLACEHOLDER_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mizu</title></head>
<body><h1>Mizu hub</h1>
<p>The dashboard is not built in this installation; the API is up:
<a href="/entries">/entries</a>, <a href="/status/health">/status/health</a>,
<a href="/status/trafficStats">/status/trafficStats</a>,
<a href="/metadata/version">/metadata/version</a>.</p></body></html>
"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``data`` as a JSON response, encoded by orjson as entries are everywhere else."""
    return web.Response(
        body=encode_json(data), status=status, headers=headers, content_type="application/json"
    )


async def send_json(socket: web.WebSocketResponse, data: Any) -> None:
    """``data`` as a JSON text message, encoded by orjson."""
    await socket.send_str(encode_json(data).decode())


class BadRequestsInOneLine(logging.Filter):
    """A request aiohttp cannot parse (an over-long URL or header, bytes that are not HTTP)
    is the client's fault, answered 400: one warning line, not a traceback for each."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = f"{record.msg}: %s"
            record.args = (*(record.args if isinstance(record.args, tuple) else ()), error.message)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


server_log = logging.getLogger("mizu_server.http")
"""Where the HTTP server logs the requests it could not handle."""
server_log.addFilter(BadRequestsInOneLine())


def create_app(hub: Hub) -> web.Application:
    app = web.Application(
        middlewares=[port_guard, host_guard, access_guard],
        client_max_size=1 << 20,
        handler_args={"logger": server_log},
    )
    app[HUB_KEY] = hub
    app[SOCKETS_KEY] = set()
    app[LIVE_KEY] = set()
    app.on_response_prepare.append(add_security_headers)
    app.cleanup_ctx.append(_hub_lifetime)
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/entries", list_entries)
    app.router.add_get("/entries/{entry_id}", get_entry)
    app.router.add_post("/query/validate", validate_query)
    app.router.add_get("/har", get_har)
    app.router.add_get("/oas", list_oas)
    app.router.add_get("/oas/{service}", get_oas)
    app.router.add_get("/servicemap", service_map)
    app.router.add_get("/stats", traffic_over_time)
    app.router.add_get("/pcap", get_pcap)
    app.router.add_get("/ws", live_socket)
    app.router.add_get("/wsTapper", tapper_socket)
    app.router.add_get("/status/health", health)
    app.router.add_get("/status/tap", tap_status)
    app.router.add_get("/status/trafficStats", traffic_stats)
    app.router.add_get("/metadata/version", version)
    app.router.add_get("/{path:.*}", static_file)
    return app


async def _hub_lifetime(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB_KEY]
    await hub.start()
    yield
    await hub.stop()


async def _close_sockets(app: web.Application) -> None:
    """Tell tappers and browsers the hub is going away, so shutdown need not wait for them."""
    sockets: set[Any] = app[SOCKETS_KEY]
    for socket in list(sockets):
        await socket.close(code=WSCloseCode.GOING_AWAY, message=b"hub shutting down")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def port_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With an ingest port of its own, tappers' ``/wsTapper`` is served there and nothing else
    is: the browser API's port and the tappers' are told apart by the socket."""
    ingest_port = request.app[HUB_KEY].settings.ingest_port
    if ingest_port is not None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        on_ingest = isinstance(sockname, tuple) and sockname[1] == ingest_port
        if on_ingest != (request.match_info.handler is tapper_socket):
            where = "only /wsTapper" if on_ingest else f"/wsTapper on port {ingest_port} only"
            return json_response({"error": f"this port serves {where}"}, status=404)
    return await handler(request)


@web.middleware
async def host_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    allowed = request.app[HUB_KEY].settings.allowed_hosts
    if allowed is not None and request.path != "/wsTapper":
        host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
        if host not in allowed:
            return json_response(
                {"error": f"host {request.host!r} is not served; open http://127.0.0.1"},
                status=421,
            )
    return await handler(request)


# -- access ----------------------------------------------------------------------------------

UNAUTHORIZED = (
    "this hub needs its access token: open the dashboard URL that mizu printed "
    "(http://…/?token=…), or send the header 'Authorization: Bearer <token>'"
)


@web.middleware
async def access_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The browser API for those who hold the access token, from the hub's own origin."""
    route_handler = request.match_info.handler
    if route_handler is tapper_socket:
        return await handler(request)  # tappers have a token of their own
    origin = request.headers.get("Origin")
    if origin is not None and not same_origin(origin, request.host):
        return json_response(
            {"error": f"requests from {origin} are refused: open the dashboard itself"},
            status=403,
        )
    if route_handler is static_file:
        return await handler(request)  # the dashboard's files: no traffic in them
    if not holds_access_token(request):
        return json_response(
            {"error": UNAUTHORIZED}, status=401, headers={"WWW-Authenticate": 'Bearer realm="mizu"'}
        )
    return await handler(request)


def same_origin(origin: str, host: str) -> bool:
    """Whether ``Origin`` names the host the request was sent to (``null``, sent by sandboxed
    and file pages, names none)."""
    scheme, separator, rest = origin.partition("://")
    return bool(separator) and scheme in ("http", "https") and rest.lower() == host.lower()


def access_cookie(request: web.Request) -> str:
    """The cookie holding the token. Cookies do not tell ports apart: each port's hub has its
    own, so that two hubs on one machine do not log each other out."""
    _, colon, port = (request.host or "").rpartition(":")
    return f"mizu-token-{port}" if colon and port.isdigit() else "mizu-token"


def holds_access_token(request: web.Request) -> bool:
    expected = request.app[HUB_KEY].settings.access_token.encode()
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(credentials.strip().encode(), expected)
    cookie = request.cookies.get(access_cookie(request))
    return cookie is not None and hmac.compare_digest(cookie.encode(), expected)


def exchange_token(request: web.Request) -> web.Response:
    """A dashboard URL with ``?token=``: the token becomes the cookie, and the browser is sent
    to the same URL without it (out of its history and of what the page sees)."""
    given = request.query["token"].encode()
    if not hmac.compare_digest(given, request.app[HUB_KEY].settings.access_token.encode()):
        return web.Response(
            status=401,
            text="<!doctype html><title>Mizu</title><p>This token is not the hub's: open the "
            "URL that mizu printed when it started (or that <code>mizu view</code> prints).</p>",
            content_type="text/html",
        )
    location = str(request.rel_url.without_query_params("token"))
    response = web.Response(status=303, headers={"Location": location})
    response.set_cookie(
        access_cookie(request),
        request.query["token"],
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    return response


# -- queries ---------------------------------------------------------------------------------


def query_error_json(error: QueryError, text: str) -> dict[str, Any]:
    return {"valid": False, "query": text, **error.as_json()}


def query_error(error: QueryError, text: str) -> web.Response:
    return json_response(query_error_json(error, text), status=400)


def request_query(request: web.Request) -> Query:
    """The request's ``query`` parameter, compiled; a bad one answers 400 with where and why."""
    text = request.query.get("query", "")
    try:
        return request.app[HUB_KEY].compile(text)
    except QueryError as error:
        raise web.HTTPBadRequest(
            body=encode_json(query_error_json(error, text)),
            content_type="application/json",
        ) from None


def paging_numbers(limit: object, left_off: object) -> tuple[int, int | None]:
    """``limit`` and ``leftOff`` as a listing takes them (from a URL or a WebSocket message);
    ValueError saying what is wrong. Above MAX_LIMIT a limit is lowered to it."""
    number = _whole_number(limit)
    if number is None:
        raise ValueError("limit must be a whole number (0: no history, only what comes next)")
    if left_off in (None, "", "latest"):
        return min(number, MAX_LIMIT), None
    position = _whole_number(left_off)
    if position is None or position >= 1 << 63:
        raise ValueError("leftOff must be 'latest' or an entry's seq (a whole number from 0)")
    return min(number, MAX_LIMIT), position


def _whole_number(value: object) -> int | None:
    if type(value) is int:
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        return int(value)
    return None


def parse_paging(request: web.Request) -> tuple[int, int | None, int]:
    params = request.query
    try:
        limit, left_off = paging_numbers(
            params.get("limit", str(DEFAULT_LIMIT)), params.get("leftOff")
        )
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    direction_text = params.get("direction", "-1")
    if direction_text in ("-1", "backward"):
        direction = BACKWARD
    elif direction_text in ("1", "forward"):
        direction = FORWARD
    else:
        raise web.HTTPBadRequest(text="direction is -1 (older) or 1 (newer)")
    return limit, left_off, direction


async def list_entries(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    query = request_query(request)
    limit, left_off, direction = parse_paging(request)
    loop = asyncio.get_running_loop()
    started = loop.time()
    page = await hub.run(hub.db.page, query, limit, left_off, direction, hub.settings.scan_budget)
    status = await hub.run(hub.db.status)
    rows = [{**hub.row(query, item.entry), "seq": item.seq} for item in page.entries]
    return json_response(
        {
            "data": rows,
            "meta": {
                "query": request.query.get("query", ""),
                "current": len(rows),
                "total": status["entries"],
                "scanned": page.scanned,
                "leftOff": page.left_off,
                "direction": direction,
                "exhausted": page.exhausted,
                "partial": page.partial,
                "pushedDown": page.exact,
                "truncatedTimestamp": status["truncatedTimestamp"],
                "elapsedMs": round((loop.time() - started) * 1000, 2),
            },
        }
    )


async def get_entry(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    entry = await hub.run(hub.db.get, request.match_info["entry_id"])
    if entry is None:
        return json_response({"error": "no such entry"}, status=404)
    representation = entry_representation(hub.plugins, entry)
    if isinstance(entry.get("rules"), dict):
        representation.setdefault("response", []).append(rules_section(entry["rules"]))
    return json_response(
        {
            "protocol": entry["protocol"],
            "representation": representation,
            "data": entry,
            "base": hub.row(hub.compile(""), entry),
        }
    )


async def validate_query(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        body = dict(await request.post())
    text = body.get("query") if isinstance(body, dict) else None
    if not isinstance(text, str):
        return json_response(
            {"error": 'send the query as JSON, {"query": "..."}, or as a form field query=...'},
            status=400,
        )
    try:
        query = hub.compile(text)
    except QueryError as error:
        return query_error(error, text)
    return json_response(
        {
            "valid": True,
            "query": text,
            "limit": query.limit,
            "pushedDown": translate(query).exact,
        }
    )


async def get_har(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    query = request_query(request)
    http = hub.compile('protocol.name == "http"') & query
    limit = min(query.limit or HAR_MAX_ENTRIES, HAR_MAX_ENTRIES)
    page = await hub.run(hub.db.page, http, limit, None, BACKWARD)
    document = har_log(query.redact(item.entry) for item in page.entries)
    kept = len(page.entries)
    matched: int | None = kept
    if kept == limit and not page.exhausted:
        matched = await hub.run(hub.db.count_matching, http, hub.settings.scan_budget)
    if matched != kept:
        counted = "more" if matched is None else f"{matched:,}"
        document["log"]["comment"] = (
            f"The newest {kept:,} of {counted} HTTP entries the filter matches."
        )
    headers = {
        "Content-Disposition": 'attachment; filename="mizu.har"',
        "X-Mizu-Entries": str(kept),
        "X-Mizu-Matched": "more" if matched is None else str(matched),
    }
    return json_response(document, headers=headers)


async def get_pcap(request: web.Request) -> web.StreamResponse:
    """A capture file of the connections of the entries ``query`` matches (the newest
    ``HAR_MAX_ENTRIES``), for Wireshark (see :func:`write_capture` for mixed link types)."""
    hub = request.app[HUB_KEY]
    if not hub.settings.pcap_export:
        return json_response(
            {
                "error": "pcap export is off: tappers keep no raw packets (they carry the "
                "secrets redaction removes); enable it with --pcap-export or tap.pcap-export"
            },
            status=409,
        )
    query = request_query(request)
    page = await hub.run(
        hub.db.page, query, min(query.limit or HAR_MAX_ENTRIES, HAR_MAX_ENTRIES), None, BACKWARD
    )
    keys = {key for item in page.entries if (key := entry_connection_key(item.entry))}
    packets = await hub.run(hub.db.packets, keys)
    if not packets:
        return json_response(
            {"error": "no packets kept for the matching entries", "entries": len(page.entries)},
            status=404,
        )
    body = io.BytesIO()
    write_capture(body, packets)
    return web.Response(
        body=body.getvalue(),
        content_type="application/vnd.tcpdump.pcap",
        headers={"Content-Disposition": 'attachment; filename="mizu.pcap"'},
    )


async def list_oas(request: web.Request) -> web.Response:
    """The services an OpenAPI document was inferred for: ``[{name, entries, paths}]``."""
    hub = request.app[HUB_KEY]
    return json_response(await hub.run_observers(hub.oas.listing))


async def get_oas(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    name = request.match_info["service"]
    document = await hub.run_observers(hub.oas.document, name)
    if document is None:
        return json_response({"error": f"no HTTP traffic seen to {name!r}"}, status=404)
    sampled = hub.observers.as_json()
    if sampled["skipped"]:  # under load the inference saw a sample of the stored entries
        document["info"]["x-mizu-sampled"] = sampled
    return json_response(document)


async def service_map(request: web.Request) -> web.Response:
    """Who calls whom over the filter's entries in a window (``query``, ``window`` seconds):
    :mod:`mizu_server.servicemap`."""
    hub = request.app[HUB_KEY]
    query = request_query(request)
    try:
        seconds = windowed.window_seconds(request.query.get("window"))
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    return json_response(
        await hub.run_view(
            windowed.service_map,
            query,
            seconds,
            hub.protocols_by_macro,
            hub.settings.scan_budget,
        )
    )


async def traffic_over_time(request: web.Request) -> web.Response:
    """Rates, errors and latencies over the filter's entries in a window, as time series
    (``query``, ``window`` seconds, ``by`` protocol|service|endpoint, ``buckets``):
    :mod:`mizu_server.stats`."""
    hub = request.app[HUB_KEY]
    query = request_query(request)
    by = request.query.get("by", "protocol")
    try:
        seconds = windowed.window_seconds(request.query.get("window"))
        buckets = windowed.bucket_count(request.query.get("buckets"))
        if by not in stats.GROUPINGS:
            raise ValueError(f"by is one of {', '.join(stats.GROUPINGS)}")
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    return json_response(
        await hub.run_view(
            windowed.statistics,
            query,
            seconds,
            by,
            buckets,
            hub.protocols_by_macro,
            hub.settings.scan_budget,
        )
    )


# -- live stream -----------------------------------------------------------------------------


async def live_socket(request: web.Request) -> web.StreamResponse:
    """``{query, leftOff?, limit?}`` in; ``{type: "entry"|"protocols"|"meta"|"error"|"dropped",
    data}`` out: the matching history (newest ``limit`` before ``leftOff``), a meta message,
    then new entries live. A new query message replaces the previous one. Rows name their
    protocol by a key of the ``protocols`` messages (:func:`send_row`)."""
    hub = request.app[HUB_KEY]
    live = request.app[LIVE_KEY]
    if len(live) >= hub.settings.max_live_clients:
        return json_response(
            {
                "error": f"{hub.settings.max_live_clients} live streams are open already: "
                "close a dashboard and try again"
            },
            status=503,
        )
    socket = web.WebSocketResponse(heartbeat=30)
    await socket.prepare(request)
    bound_send_buffer(request)
    sockets = request.app[SOCKETS_KEY]
    sockets.add(socket)
    live.add(socket)
    protocols: set[str] = set()
    """The keys of the protocols this browser was sent."""
    streaming: asyncio.Task[None] | None = None
    try:
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            if streaming is not None:
                streaming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await streaming
                streaming = None
            try:
                request_body = json.loads(message.data)
                if not isinstance(request_body, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError):  # RecursionError: nested too deep to read
                request_body = {"query": message.data}
            text = request_body.get("query", "")
            if not isinstance(text, str):
                await send_json(
                    socket, {"type": "error", "data": {"message": "query must be a string"}}
                )
                continue
            try:
                query = hub.compile(text)
            except QueryError as error:
                await send_json(
                    socket, {"type": "error", "data": {"query": text, **error.as_json()}}
                )
                continue
            streaming = asyncio.create_task(
                stream(hub, socket, request, protocols, query, request_body)
            )
    finally:
        sockets.discard(socket)
        live.discard(socket)
        if streaming is not None:
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming
    return socket


async def stream(
    hub: Hub,
    socket: web.WebSocketResponse,
    request: web.Request,
    protocols: set[str],
    query: Query,
    request_body: dict[str, Any],
) -> None:
    after_seq = await hub.run(hub.db.last_seq)
    subscription = hub.subscribe(query, after_seq)
    streaming = asyncio.current_task()
    assert streaming is not None
    subscription.on_overflow = lambda: drop_slow_reader(socket, request, streaming)
    try:
        try:
            limit, left_off = paging_numbers(
                request_body.get("limit", DEFAULT_LIMIT), request_body.get("leftOff")
            )
        except ValueError as error:
            await send_json(socket, {"type": "error", "data": {"message": str(error)}})
            return
        before = after_seq + 1 if left_off is None else min(left_off, after_seq + 1)
        page = await hub.run(hub.db.page, query, limit, before, BACKWARD)
        for item in page.entries:
            await send_row(
                socket, protocols, hub.row_message({**hub.row(query, item.entry), "seq": item.seq})
            )
        await send_json(
            socket,
            {
                "type": "meta",
                "data": {
                    "query": query.text,
                    "current": len(page.entries),
                    "leftOff": page.left_off,
                    "exhausted": page.exhausted,
                    "historyDone": True,
                },
            },
        )
        async for live in subscription.rows():
            await send_row(socket, protocols, live)
    except ConnectionResetError:
        return
    finally:
        hub.unsubscribe(subscription)


LIVE_SEND_BUFFER = 64 << 10
"""Bytes the system may hold for one browser's socket (Linux grows it to 4 MiB otherwise): a
browser that does not read then blocks its stream after a few hundred rows, not thousands."""


def bound_send_buffer(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_SNDBUF, LIVE_SEND_BUFFER)


SLOW_READER = (
    f"too slow: over {LIVE_BACKLOG_BYTES >> 20} MiB of entries waiting for this browser; "
    "reconnect to go on"
).encode()


def drop_slow_reader(
    socket: web.WebSocketResponse, request: web.Request, streaming: asyncio.Task[None]
) -> None:
    """Disconnect a browser that does not read what it is sent, saying why (if it ever reads
    again): its stream stops, and its connection goes within a second whatever it does."""
    streaming.cancel()

    async def close() -> None:
        try:
            await asyncio.wait_for(
                socket.close(code=WSCloseCode.POLICY_VIOLATION, message=SLOW_READER), 1.0
            )
        except (TimeoutError, ConnectionError):
            if request.transport is not None:
                request.transport.abort()

    task = asyncio.ensure_future(close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


_CLOSING: set[asyncio.Future[None]] = set()
"""Closings under way (a task's only reference would let it be collected)."""


async def send_row(socket: web.WebSocketResponse, protocols: set[str], row: LiveRow) -> None:
    """A live row, its ``proto`` a key of the hub's protocol table: each protocol's object
    (names, colours) goes once per connection, in a ``{type: "protocols", data: {key:
    protocol}}`` message before the first row that names it."""
    if row.protocol is not None and row.protocol_key not in protocols:
        await send_json(socket, {"type": "protocols", "data": {row.protocol_key: row.protocol}})
        protocols.add(row.protocol_key)  # once sent: a stream cancelled meanwhile sends it again
    await socket.send_str(row.message)


# -- tappers ---------------------------------------------------------------------------------


def bearer_token(request: web.Request) -> str:
    """The token of an ``Authorization: Bearer`` header; never one from the URL, which ends
    up in proxies' and servers' logs."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


async def tapper_socket(request: web.Request) -> web.WebSocketResponse:
    """Binary frames (:mod:`mizu_server.frames`): batches of entries, acknowledged in order
    with ``{"ack": n}`` (n frames of this connection committed), or raw packets. Text frames:
    JSON ``{"type": "stats", ...}`` reports from the tapper (entries it had to shed, its
    buffer), shown by ``/status/tap``."""
    hub = request.app[HUB_KEY]
    if not hmac.compare_digest(bearer_token(request).encode(), hub.settings.token.encode()):
        raise web.HTTPUnauthorized(
            text="a valid tapper token is required, as 'Authorization: Bearer <token>'"
        )
    socket = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME_BYTES)
    await socket.prepare(request)
    sockets = request.app[SOCKETS_KEY]
    sockets.add(socket)
    state = hub.connect_tapper(request.query.get("tapper", "") or "tapper", request.remote or "")
    commits: asyncio.Queue[asyncio.Future[int] | None] = asyncio.Queue()
    acker = asyncio.create_task(acknowledge(socket, commits, state))
    send = functools.partial(send_json, socket)
    detach_names = await hub.attach_names(send)
    # in a cluster the tapper id is its node's name: send it the target IPs on that node
    detach_targets = (
        await hub.targets.attach(state.tapper_id, hub.names_first(send)) if hub.targets else None
    )
    try:
        async for message in socket:
            if message.type == WSMsgType.BINARY:
                try:
                    # decoded on a thread of its own: a large frame does not stop the loop
                    kind, items = await hub.decode(read_tapper_frame, message.data)
                except ValueError as error:
                    log.warning(
                        "tapper %s (%s) sent a bad frame, disconnecting it: %s",
                        state.tapper_id,
                        state.remote,
                        error,
                    )
                    await socket.close(code=1003, message=f"bad frame: {error}"[:120].encode())
                    break
                if kind == "packets":
                    hub.submit_packets(items)  # best effort, not acknowledged
                    continue
                state.frames += 1
                if kind == "encoded":
                    commits.put_nowait(hub.submit_encoded(items))
                else:
                    commits.put_nowait(hub.submit(items))
            elif message.type == WSMsgType.ERROR:
                log.warning(
                    "tapper %s (%s) disconnected: %s (frames are %d MiB at most)",
                    state.tapper_id,
                    state.remote,
                    message.data,
                    MAX_FRAME_BYTES >> 20,
                )
            elif message.type == WSMsgType.TEXT:
                with contextlib.suppress(ValueError, RecursionError):
                    report = json.loads(message.data)
                    if isinstance(report, dict) and report.get("type") == "stats":
                        state.reported = {k: v for k, v in report.items() if k != "type"}
    finally:
        sockets.discard(socket)
        commits.put_nowait(None)
        with contextlib.suppress(Exception):
            await acker
        state.connected = False
        detach_names()
        if detach_targets is not None:
            detach_targets()
    return socket


async def acknowledge(
    socket: web.WebSocketResponse,
    commits: asyncio.Queue[asyncio.Future[int] | None],
    state: TapperState,
) -> None:
    acked = 0
    while (future := await commits.get()) is not None:
        try:
            state.entries += await future
        except asyncio.CancelledError:
            if not future.cancelled():
                raise
            # the hub stopped with its store failing: this frame and those after it are not
            # stored, so they are not acknowledged; the tapper sends them to the next hub
            await socket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"entries not stored")
            return
        acked += 1
        if not socket.closed:
            await send_json(socket, {"ack": acked})


# -- status ----------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return json_response(await request.app[HUB_KEY].status())


async def tap_status(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return json_response(
        {
            "tappers": [tapper.as_json() for tapper in hub.tappers],
            **{name: provider() for name, provider in hub.status_providers.items()},
        }
    )


async def traffic_stats(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    rows = await hub.run(hub.db.traffic)
    return json_response(
        {
            "protocols": rows,
            "entries": sum(row["entries"] for row in rows),
            "bytes": sum(row["bytes"] or 0 for row in rows),
        }
    )


async def version(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return json_response(
        {
            "ver": __version__,
            "plugins": {plugin.name: plugin.version for plugin in hub.plugins.plugins},
        }
    )


# -- dashboard -------------------------------------------------------------------------------


async def static_file(request: web.Request) -> web.StreamResponse:
    """A file of the dashboard, or its index for any other path (client-side routes)."""
    if "token" in request.query:
        return exchange_token(request)
    root = request.app[HUB_KEY].settings.static_dir or DEFAULT_STATIC_DIR
    root = root.resolve()
    relative = request.match_info["path"]
    if "\0" in relative:  # no file has such a name, and paths refuse to resolve it
        return json_response({"error": "a path cannot hold a NUL character"}, status=400)
    candidate = (root / relative).resolve() if relative else root / "index.html"
    if candidate.is_relative_to(root) and candidate.is_file():
        return web.FileResponse(candidate)
    index = root / "index.html"
    if index.is_file():
        return web.FileResponse(index)
    return web.Response(text=PLACEHOLDER_INDEX, content_type="text/html")
