"""Decrypted TLS traffic wears a lock in the list and the detail pane, naming the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.frontend.test_dashboard import ROWS, open_dashboard, wait_rows
from tests.server.local_tap import local_tap
from tests.support.processes import Dashboard

TLS_DATA = Path(__file__).resolve().parents[1] / "data" / "tls"


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``mizu tap --pcap`` of the TLS capture with its key log: where its dashboard is."""
    source = ("--pcap", str(TLS_DATA / "mizu-tls.pcap"))
    keylog = ("--tls-keylog", str(TLS_DATA / "mizu-tls.keys"))
    with local_tap(tmp_path_factory.mktemp("tls-hub"), *source, *keylog) as dashboard:
        yield dashboard


def test_decrypted_entries_show_a_lock_with_the_session(page: Page, tls_hub: Dashboard) -> None:
    open_dashboard(page, tls_hub, 'tls.decrypted == true and request.path == "/created"')
    wait_rows(page, 1)
    lock = page.locator(f"{ROWS} .cell.proto .lock")
    expect(lock).to_be_visible()
    expect(lock).to_have_attribute(
        "title", "decrypted TLS 1.3 · TLS_AES_256_GCM_SHA384 · SNI localhost · ALPN h2"
    )
    page.locator(f"{ROWS} .cell.time").first.click()
    expect(page.locator("#detail .fact.tls")).to_contain_text("TLS 1.3 localhost")


def test_tls_entries_themselves_wear_no_lock(page: Page, tls_hub: Dashboard) -> None:
    open_dashboard(page, tls_hub, 'tls and tls.sni == "api.example.com"')
    wait_rows(page, 5)
    expect(page.locator(f"{ROWS} .cell.summary").first).to_have_text("api.example.com")
    expect(page.locator(f"{ROWS} .cell.proto .lock:not([hidden])")).to_have_count(0)
