"""Fixtures of the dashboard's browser tests: a real hub capturing loopback (``mizu tap --local
-i lo``), a real aiohttp server that the tests call, and headless Chromium (Debian's) driven by
Playwright."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.support.processes import Dashboard, wait_for_stderr
from tests.support.web import threaded_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A one-pixel PNG, for the image body view.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
# API rules for the paths under /rules/: the JSON replies pass the first and fail the second.
API_RULES = """
rules:
  - name: user-is-seven
    type: json
    key: "$.user.id"
    value: "^7$"
    path: "^/rules/"
  - name: user-is-bob
    type: json
    key: "$.user.name"
    value: "^Bob$"
    path: "^/rules/"
"""
# Records Content-Security-Policy violations, so a test can tell none happened.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
    (event) => window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI));
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Traffic:
    """The aiohttp server the tests send requests to; ``query`` selects its entries only."""

    port: int

    @property
    def query(self) -> str:
        return f"dst.port == {self.port}"

    def get(self, path: str, **headers: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            return bytes(response.read())

    def post(self, path: str, body: bytes, content_type: str) -> bytes:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            headers={"Content-Type": content_type},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return bytes(response.read())

    def raw(self, request: bytes) -> bytes:
        """Send bytes as they are (paths and headers no client library would send)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(request)
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
            return received


async def json_reply(request: web.Request) -> web.Response:
    if request.path.startswith("/missing"):
        return web.json_response({"error": "not found"}, status=404)
    if request.method == "DELETE":
        return web.Response(status=204)
    return web.json_response(
        {"path": request.path, "user": {"id": 7, "name": "Ann"}, "tags": ["a", "b"]}
    )


async def echo(request: web.Request) -> web.Response:
    """Send back what was posted, with its content type: payloads return in the response.
    ``/api/v1/orders`` creates (201); ``/api/v1/login`` refuses (401)."""
    status = {"/api/v1/orders": 201, "/api/v1/login": 401}.get(request.path, 200)
    return web.Response(
        status=status,
        body=await request.read(),
        content_type=request.content_type,
        headers={"X-Echo": request.headers.get("X-Evil", "")},
    )


async def chat(request: web.Request) -> web.WebSocketResponse:
    """A WebSocket that answers each message with an acknowledgement."""
    socket_ = web.WebSocketResponse()
    await socket_.prepare(request)
    async for message in socket_:
        await socket_.send_str(json.dumps({"ack": message.data}))
    return socket_


async def pixel(request: web.Request) -> web.Response:
    return web.Response(body=PIXEL_PNG, content_type="image/png")


@pytest.fixture(scope="session")
def traffic() -> Iterator[Traffic]:
    def routes(app: web.Application) -> None:
        app.router.add_get("/pixel.png", pixel)
        app.router.add_get("/chat", chat)
        app.router.add_post("/{tail:.*}", echo)
        app.router.add_route("*", "/{tail:.*}", json_reply)

    with threaded_server(routes, free_port()) as port:
        yield Traffic(port)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``mizu tap --local -i lo``: where its dashboard is, and its token."""
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    port = free_port()
    directory = tmp_path_factory.mktemp("hub")
    database = directory / "entries.db"
    rules = directory / "rules.yaml"
    rules.write_text(API_RULES)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "tap", "--local", "-i", "lo", "--no-browser"),
            *("--db", str(database), "--gui-port", str(port)),
            *("--traffic-validation-file", str(rules)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    dashboard = Dashboard.parse(wait_for_stderr(process, "dashboard at"))
    # keep reading stderr so that the hub never blocks on a full pipe
    threading.Thread(target=process.stderr.read, daemon=True).start()
    yield dashboard
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright runs an event loop on this thread while it is up, which would
    break the asyncio.run of tests collected after these."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(
        viewport={"width": 1600, "height": 860},
        color_scheme="dark",
        accept_downloads=True,
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.add_init_script(CSP_WATCH)
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert page.evaluate("window.__cspViolations") == [], "the page broke its own CSP"
    assert errors == [], errors
