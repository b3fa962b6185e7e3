"""The dashboard end to end: headless Chromium against ``mizu tap --local -i lo`` watching real
HTTP traffic on loopback."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.frontend.conftest import Traffic, free_port
from tests.support.processes import Dashboard, wait_for_stderr

pytestmark = pytest.mark.live

ROWS = "#viewport .row:not([hidden])"


def open_dashboard(page: Page, hub: Dashboard, query: str) -> None:
    """The dashboard filtered by ``query``, once its history is loaded."""
    page.goto(hub.page_url(q=query))
    page.wait_for_function("() => window.mizu && !window.mizu.list.loadingHistory")


def stored(hub: Dashboard, query: str, count: int) -> int:
    """How many entries the hub holds for ``query``, once it has ``count`` (or after 15 s).

    A query the store cannot answer from an index comes back in time-budgeted partial pages:
    follow ``leftOff`` until the store says it has looked at everything."""
    deadline = time.monotonic() + 15
    while True:
        found, left_off = 0, "latest"
        while True:
            page = hub.get_json("/entries", query=query, limit=count + 10, leftOff=left_off)
            found += len(page["data"])
            meta = page["meta"]
            if not meta["partial"] or meta["exhausted"] or meta["leftOff"] is None:
                break
            left_off = meta["leftOff"]
        if found >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def summaries(page: Page) -> list[str]:
    return sorted(page.locator(f"{ROWS} .cell.summary").all_inner_texts())


def wait_rows(page: Page, count: int) -> None:
    page.wait_for_function(
        "(count) => { const list = window.mizu.list;"
        " return list.rows.length >= count && !list.dirty && !list.incoming.length; }",
        arg=count,
    )


def wait_only_rows(page: Page, count: int) -> None:
    """A new filter's list holds ``count`` rows, drawn: the rows are drawn on the next animation
    frame, so until then the page still shows the previous filter's."""
    page.wait_for_function(
        "(count) => { const list = window.mizu.list;"
        " return list.rows.length === count && !list.loadingHistory && !list.dirty; }",
        arg=count,
    )


def row_with(page: Page, summary: str):  # type: ignore[no-untyped-def]
    return page.locator(ROWS, has=page.locator(".cell.summary", has_text=summary))


def test_rows_appear_live(page: Page, hub: Dashboard, traffic: Traffic) -> None:
    open_dashboard(page, hub, f'{traffic.query} and request.path.startsWith("/live/")')
    assert summaries(page) == []
    for number in range(3):
        traffic.get(f"/live/{number}")
    wait_rows(page, 3)
    assert summaries(page) == ["/live/0", "/live/1", "/live/2"]
    row = row_with(page, "/live/1")
    expect(row.locator(".badge")).to_have_text("HTTP")
    expect(row.locator(".cell.method")).to_have_text("GET")
    expect(row.locator(".cell.status .snippet")).to_have_text("200")
    expect(row.locator(".cell.status .snippet")).to_have_class("snippet status-ok")
    expect(row.locator(".cell.peers")).to_contain_text(f"→ 127.0.0.1:{traffic.port}")
    expect(row.locator(".cell.latency")).to_contain_text("s")  # ms or µs
    expect(page.locator(".stat-tappers")).to_have_text("1 tapper")
    expect(page.locator(".stat-targets")).to_have_text("targets: lo")


def test_filter_narrows_clicks_add_snippets_and_errors_show(
    page: Page, hub: Dashboard, traffic: Traffic
) -> None:
    base = f'{traffic.query} and request.path.startsWith("/narrow/")'
    traffic.get("/narrow/a")
    traffic.post("/narrow/b", b'{"n": 1}', "application/json")
    open_dashboard(page, hub, base)
    wait_rows(page, 2)
    assert summaries(page) == ["/narrow/a", "/narrow/b"]

    page.fill("#filter", f'{base} and request.method == "POST"')
    expect(page.locator(".filter-box")).to_have_class("filter-box valid")
    page.press("#filter", "Enter")
    wait_only_rows(page, 1)
    assert summaries(page) == ["/narrow/b"]

    # clicking a row's status adds its statusQuery to the filter
    page.fill("#filter", base)
    page.press("#filter", "Enter")
    wait_rows(page, 2)
    row_with(page, "/narrow/a").locator(".cell.method .snippet").click()
    expect(page.locator("#filter")).to_have_value(f'{base} and http and request.method == "GET"')
    wait_only_rows(page, 1)
    assert summaries(page) == ["/narrow/a"]

    page.fill("#filter", "http and request.method ==")
    expect(page.locator(".filter-box")).to_have_class("filter-box invalid")
    error = page.locator("#filter-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("at position")
    expect(error.locator("mark")).to_have_count(1)
    page.press("#filter", "Enter")  # an invalid filter is not applied
    assert summaries(page) == ["/narrow/a"]
    page.fill("#filter", base)
    expect(error).to_be_hidden()


def test_detail_shows_headers_and_pretty_json(page: Page, hub: Dashboard, traffic: Traffic) -> None:
    traffic.get("/detail/x?color=blue", **{"X-Trace": "abc-123"})
    open_dashboard(page, hub, f'{traffic.query} and request.path == "/detail/x"')
    wait_rows(page, 1)
    page.locator(ROWS).first.locator(".cell.time").click()
    detail = page.locator("#detail")
    expect(detail.locator(".tab.active")).to_have_text("Request")  # what was asked, first
    header = detail.locator("tr", has=page.locator("td.name", has_text="X-Trace"))
    expect(header.locator("td.value")).to_have_text("abc-123")
    expect(detail.locator(".section-title", has_text="Query String")).to_be_visible()

    detail.locator(".tab", has_text="Response").click()
    expect(detail.locator("td.name", has_text="Content-Type")).to_be_visible()
    body = detail.locator("pre.code.json")
    expect(body).to_contain_text('"user": {\n    "id": 7,\n    "name": "Ann"\n  }')
    assert detail.locator("pre.code.json .j-key").count() >= 4

    # a header's name adds `selector == value` to the filter
    detail.locator(".tab", has_text="Request").click()
    header.locator("td.name").click()
    expect(page.locator("#filter")).to_have_value(
        f'{traffic.query} and request.path == "/detail/x" and '
        'request.headers["X-Trace"] == "abc-123"'
    )

    detail.locator("button", has_text="Copy as curl").click()
    expect(page.locator("#toast")).to_have_text("Copied the curl command")
    curl = page.evaluate("navigator.clipboard.readText()")
    assert curl.startswith(f"curl 'http://127.0.0.1:{traffic.port}/detail/x?color=blue'")
    assert "-H 'X-Trace: abc-123'" in curl


def test_raw_toggle_and_images(page: Page, hub: Dashboard, traffic: Traffic) -> None:
    traffic.get("/pixel.png")
    traffic.get("/raw/1")
    open_dashboard(
        page, hub, f'{traffic.query} and (request.path == "/pixel.png" or request.path == "/raw/1")'
    )
    wait_rows(page, 2)
    row_with(page, "/pixel.png").locator(".cell.time").click()
    page.locator("#detail .tab", has_text="Response").click()  # stays chosen from row to row
    image = page.locator("#detail .image img")
    expect(image).to_be_visible()
    assert page.evaluate("document.querySelector('#detail .image img').naturalWidth") == 1

    row_with(page, "/raw/1").locator(".cell.time").click()
    expect(page.locator("#detail pre.code.json")).to_contain_text('"tags": [\n    "a",')
    page.locator("#detail button.toggle").click()
    expect(page.locator("#detail pre.code.text")).to_contain_text('"tags": ["a", "b"]}')


def test_har_download(page: Page, hub: Dashboard, traffic: Traffic, tmp_path: Path) -> None:
    traffic.get("/har/1")
    traffic.get("/har/2")
    open_dashboard(page, hub, f'{traffic.query} and request.path.startsWith("/har/")')
    wait_rows(page, 2)
    with page.expect_download() as download:
        page.click("#har")
    saved = tmp_path / "mizu.har"
    download.value.save_as(saved)
    har = json.loads(saved.read_text())
    expect(page.locator("#toast")).to_have_text("HAR: 2 HTTP entries")
    urls = sorted(entry["request"]["url"] for entry in har["log"]["entries"])
    assert [url.rsplit("/", 2)[-2:] for url in urls] == [["har", "1"], ["har", "2"]]


def test_pause_and_resume(page: Page, hub: Dashboard, traffic: Traffic) -> None:
    open_dashboard(page, hub, f'{traffic.query} and request.path.startsWith("/pause/")')
    traffic.get("/pause/0")
    wait_rows(page, 1)
    page.click("#pause")
    expect(page.locator("#pause")).to_have_text("▶ Resume")
    expect(page.locator(".stat-live")).to_have_text("❚❚ Paused")
    traffic.get("/pause/1")
    traffic.get("/pause/2")
    page.wait_for_function("() => window.mizu.list.missed >= 2")
    assert summaries(page) == ["/pause/0"]
    expect(page.locator("#jump")).to_contain_text("2 new")
    page.click("#pause")
    wait_rows(page, 3)
    assert summaries(page) == ["/pause/0", "/pause/1", "/pause/2"]
    expect(page.locator(".stat-live")).to_have_text("● Live")
    traffic.get("/pause/3")
    wait_rows(page, 4)


def test_scrolling_back_pages_older_entries_from_the_hub(
    page: Page, hub: Dashboard, traffic: Traffic
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", traffic.port, timeout=5)
    for number in range(260):
        connection.request("GET", f"/page/{number}")
        connection.getresponse().read()
    connection.close()
    query = f'{traffic.query} and request.path.startsWith("/page/")'
    # a loaded machine may drop a few packets: what counts is more than one page stored
    total = stored(hub, query, 260)
    assert total > 200
    open_dashboard(page, hub, query)
    assert page.evaluate("window.mizu.list.rows.length") == 200  # one page from the hub
    oldest_loaded = page.evaluate("window.mizu.list.rows[0].summary")
    page.locator("#viewport").evaluate("(viewport) => { viewport.scrollTop = 0; }")
    wait_rows(page, total)
    assert not page.evaluate("window.mizu.list.hasOlder")
    viewport = page.locator("#viewport")
    # the rows in view stayed where they were; the older ones are above them
    expect(viewport.get_by_text(oldest_loaded, exact=True)).to_be_visible()
    viewport.evaluate("(viewport) => { viewport.scrollTop = 0; }")
    oldest = page.evaluate("window.mizu.list.rows[0].summary")
    expect(viewport.get_by_text(oldest, exact=True)).to_be_visible()


def test_the_selected_row_stays_in_place_while_rows_arrive(
    page: Page, hub: Dashboard, traffic: Traffic
) -> None:
    open_dashboard(page, hub, f'{traffic.query} and request.path.startsWith("/steady/")')
    for number in range(60):
        traffic.get(f"/steady/{number}")
    wait_rows(page, 60)
    selected = row_with(page, "/steady/50")
    selected.locator(".cell.time").click()
    expect(page.locator("#detail .tab.active")).to_have_text("Request")
    where = selected.bounding_box()
    for number in range(60, 120):
        traffic.get(f"/steady/{number}")
    wait_rows(page, 120)
    expect(selected).to_have_class("row selected")
    assert selected.bounding_box() == where  # not one pixel up
    expect(page.locator("#jump")).to_be_visible()  # the newer rows are a click away
    page.keyboard.press("Escape")  # closing the selection follows the live edge again
    traffic.get("/steady/120")
    wait_rows(page, 121)
    expect(row_with(page, "/steady/120")).to_be_in_viewport()


def test_pcap_export_off_is_said(page: Page, hub: Dashboard, traffic: Traffic) -> None:
    traffic.get("/pcap/1")
    open_dashboard(page, hub, f'{traffic.query} and request.path == "/pcap/1"')
    wait_rows(page, 1)
    page.locator(ROWS).first.locator(".cell.time").click()
    page.locator("#detail button", has_text="pcap").click()
    expect(page.locator("#toast")).to_contain_text("pcap export is off")


XSS_SCRIPT = "<script>window.__pwned='script'</script>"
XSS_IMAGE = "<img src=x onerror=\"window.__pwned='img'\">"
XSS_LINK = "<a href=\"javascript:window.__pwned='link'\">click</a>"


def test_captured_markup_is_text_and_runs_nothing(
    page: Page, hub: Dashboard, traffic: Traffic
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    traffic.raw(
        f"GET /xss/{XSS_SCRIPT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Evil: {XSS_IMAGE}\r\nConnection: close\r\n\r\n".encode()
    )
    body = f"{XSS_SCRIPT}{XSS_IMAGE}{XSS_LINK}<svg onload=\"alert('svg')\"></svg>"
    traffic.raw(
        f"POST /xss/body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/html\r\n"
        f"X-Evil: {XSS_IMAGE}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        f"{body}".encode()
    )
    traffic.post(
        "/xss/json",
        json.dumps({"url": "javascript:alert('json')", "html": body}).encode(),
        "application/json",
    )
    open_dashboard(page, hub, f'{traffic.query} and request.path.startsWith("/xss/")')
    wait_rows(page, 3)
    expect(page.get_by_text(f"/xss/{XSS_SCRIPT}", exact=True)).to_be_visible()
    for index in range(3):
        page.locator(ROWS).nth(index).locator(".cell.time").click()
        for tab in ("Request", "Response", "Entry JSON"):
            tab_button = page.locator("#detail .tab", has_text=tab)
            if tab_button.count():
                tab_button.click()
                page.locator("#detail .detail-body").wait_for()
        page.locator("#detail button.toggle").click()  # raw bodies too
    row_with(page, "/xss/body").locator(".cell.time").click()
    page.locator("#detail .tab", has_text="Request").click()
    expect(page.locator("#detail td.value", has_text=XSS_IMAGE).first).to_be_visible()
    expect(page.locator("#detail pre.code", has_text=XSS_LINK)).to_be_visible()
    page.wait_for_timeout(300)  # time for an injected handler to run, if one existed
    assert dialogs == []
    assert page.evaluate("window.__pwned") is None
    injected = page.evaluate(
        'document.querySelectorAll(\'img[src="x"], script:not([src]), svg[onload], '
        'a[href^="javascript"], [onerror], [onload]\').length'
    )
    assert injected == 0
    assert page.url.startswith(hub.base)


def test_formatting_helpers(page: Page, hub: Dashboard) -> None:
    """The pure helpers of js/format.js, run in the page as the dashboard runs them."""
    page.goto(hub.page_url())
    results = page.evaluate(
        """async () => {
          const f = await import("/js/format.js");
          return {
            xml: f.prettyXml('<?xml version="1.0"?><a><b x="1">text</b><c/><d><e>1</e></d></a>'),
            literal: f.literal('say "hi" \\\\ bye'),
            clause: f.addClause("http or amqp", 'request.method == "GET"'),
            value: f.valueAt({request: {headers: {"X-A": ["1", "2"]}}},
                             'request.headers["X-A"][1]'),
            statuses: [[200, false], [503, false], ["ERR", true], [404, true], ["", false]]
              .map(([status, error]) => f.statusClass({status, error})),
            titles: [f.statusTitle({status: 404, statusName: "Not Found", error: true,
                                    proto: {name: "http"}}),
                     f.statusTitle({status: "OK", statusName: "OK", error: false})],
            quoted: f.shellQuote("it's"),
            form: f.prettyBody("a=1&b=x%20y", "application/x-www-form-urlencoded").text,
            hex: f.hexDump(new Uint8Array([0, 65, 255])),
          };
        }"""
    )
    assert results["xml"] == (
        '<?xml version="1.0"?>\n<a>\n  <b x="1">text</b>\n  <c/>\n  <d>\n    <e>1</e>\n  </d>\n</a>'
    )
    assert results["literal"] == '"say \\"hi\\" \\\\ bye"'
    assert results["clause"] == '(http or amqp) and request.method == "GET"'
    assert results["value"] == "2"
    # the colour is the plugin's word (a 503 it calls fine is fine), never the code's
    assert results["statuses"] == ["status-ok", "status-ok", "status-error", "status-error", "none"]
    assert results["titles"] == ["404 Not Found (an error, says the http plugin)", "OK"]
    assert results["quoted"] == "'it'\\''s'"
    assert results["form"] == "a = 1\nb = x y"
    assert results["hex"] == "00000000  00 41 ff" + " " * 39 + "  .A."


def test_rules_marks_and_section(page: Page, hub: Dashboard, traffic: Traffic) -> None:
    traffic.get("/rules/1")
    traffic.get("/norules/1")
    open_dashboard(page, hub, f'{traffic.query} and request.path.contains("rules/1")')
    wait_rows(page, 2)
    checked = row_with(page, "/rules/1").locator(".cell.rules")
    expect(checked).to_have_text("✗")
    expect(checked).to_have_attribute("title", "rules: 1 passed, 1 failed")
    expect(row_with(page, "/norules/1").locator(".cell.rules")).to_have_text("")

    row_with(page, "/rules/1").locator(".cell.time").click()
    rules_tab = page.locator("#detail .tab", has_text="Rules")
    expect(rules_tab.locator(".count")).to_have_text("1")
    rules_tab.click()
    expect(page.locator("#detail .rule.failed")).to_contain_text("user-is-bob")
    expect(page.locator("#detail .rule.passed")).to_contain_text("user-is-seven")


def test_detail_title_adds_the_rows_filters(page: Page, hub: Dashboard, traffic: Traffic) -> None:
    traffic.get("/title/1")
    open_dashboard(page, hub, traffic.query)
    row_with(page, "/title/1").locator(".cell.summary").click()  # the path opens the row
    expect(page.locator("#detail .detail-title .summary")).to_have_text("/title/1")
    page.locator("#detail .detail-title .summary").click()
    expect(page.locator("#filter")).to_have_value(
        f'{traffic.query} and http and request.path == "/title/1"'
    )
    wait_only_rows(page, 1)


def test_without_the_token_the_page_asks_for_it(page: Page, hub: Dashboard) -> None:
    """Opened without the URL mizu printed: no traffic, a form for the token; the token
    pasted there opens the dashboard (and the cookie keeps it open)."""
    page.on("pageerror", lambda error: None)  # the refused calls' rejections are expected
    page.goto(f"{hub.base}/")
    form = page.locator("#token-form")
    expect(form).to_be_visible()
    assert page.evaluate("window.mizu.list.rows.length") == 0
    form.locator("input").fill(hub.token)
    form.locator("button").click()
    page.wait_for_function("() => window.mizu && !window.mizu.list.loadingHistory")
    assert "token" not in page.url  # the hub dropped it from the address
    expect(page.locator("#token-form")).to_have_count(0)
    page.reload()
    page.wait_for_function("() => window.mizu && !window.mizu.list.loadingHistory")
    expect(page.locator("#token-form")).to_have_count(0)


def test_entries_the_insertion_filter_left_out_are_counted_beside_stored(
    page: Page, traffic: Traffic, tmp_path: Path
) -> None:
    kept = f'dst.port == {traffic.port} and request.path.startsWith("/kept/")'
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "tap", "--local", "-i", "lo", "--no-browser"),
            *("--db", str(tmp_path / "entries.db"), "--gui-port", str(free_port())),
            *("--insertion-filter", kept, "-f", f"tcp port {traffic.port}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        filtered = Dashboard.parse(wait_for_stderr(process, "dashboard at"))
        threading.Thread(target=process.stderr.read, daemon=True).start()  # type: ignore[union-attr]
        traffic.get("/dropped/1")
        deadline = time.monotonic() + 15
        while filtered.get_json("/status/health")["filteredOut"] < 1:
            assert time.monotonic() < deadline, "the insertion filter dropped nothing"
            time.sleep(0.2)
        open_dashboard(page, filtered, "")
        expect(page.locator(".list-empty")).to_have_text(
            "Waiting for traffic… (1 filtered out by the insertion filter)"
        )
        expect(page.locator(".stat-filteredOut")).to_have_text("1 filtered out")
        traffic.get("/kept/1")
        traffic.get("/dropped/2")
        wait_rows(page, 1)
        expect(page.locator(".stat-stored")).to_have_text("1 stored")
        expect(page.locator(".stat-filteredOut")).to_have_text("2 filtered out")
    finally:
        process.terminate()
        process.wait(15)
