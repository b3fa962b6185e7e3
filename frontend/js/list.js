// The live list: a bounded window of rows paged from the hub, drawn virtually.
//
// The window holds at most WINDOW_CAP rows in seq order. At the live edge new rows are appended
// (and the oldest dropped while the view follows the bottom); scrolling to its top loads older
// pages from /entries, scrolling to its bottom loads newer ones, dropping rows at the far end so
// memory stays bounded however many entries the hub stores. Only the visible rows have DOM nodes.

import { entryPage } from "./api.js";
import { h, safeColor } from "./dom.js";
import { clockTime, duration, endpoint, statusClass, statusTitle, tlsSummary } from "./format.js";

export const ROW_HEIGHT = 22;
const PAGE = 200;
const WINDOW_CAP = 5000;
const OVERSCAN = 8;
const EDGE_ROWS = 30; // load the next page when this close to the window's end
const LIVE_BUFFER = 2000; // rows kept while away from the live edge, to rejoin it without a gap
// Live rows are drawn in batches at most this often: at a thousand rows a second every visible
// row changes each time, and DevTools too refreshes its log a few times a second, not per frame.
const LIVE_FLUSH_MS = 100;

export class EntryList {
  constructor(viewport, { onSelect, onSnippet, onChange }) {
    this.viewport = viewport;
    this.onSelect = onSelect;
    this.onSnippet = onSnippet;
    this.onChange = onChange;
    this.spacer = h("div", { class: "spacer" });
    this.empty = h("div", { class: "list-empty", hidden: true });
    viewport.append(this.spacer, this.empty);
    this.pool = [];
    this.rows = [];
    this.ids = new Set();
    this.incoming = [];
    this.away = []; // live rows not shown because the window is not at the live edge
    this.query = "";
    this.generation = 0;
    this.hasOlder = false;
    this.hasNewer = false; // the window's newest row is not the newest matching entry
    this.live = true; // false: paused
    this.stick = true; // the view follows the bottom
    this.loading = false;
    this.loadingHistory = true;
    this.historyRows = [];
    this.selectedId = null;
    this.followed = false; // the view followed the live edge when a row was selected
    this.missed = 0; // new rows not shown since leaving the live edge
    this.received = 0;
    this.filteredOut = 0; // entries the hub's insertion filter did not store
    this.dirty = false;
    this.lastScrollTop = 0;
    this.flushTimer = 0;
    viewport.addEventListener("scroll", () => this.onScroll(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  // -- the stream ----------------------------------------------------------------------------

  /** A new query (or "jump to latest"): the newest page, then live rows. */
  reset(query, socket) {
    this.query = query;
    this.generation += 1;
    this.loadingHistory = true;
    this.historyRows = [];
    this.incoming = [];
    this.away = [];
    this.missed = 0;
    socket.subscribe({ query, limit: PAGE });
    this.changed();
  }

  onMessage(message) {
    if (message.type === "entry") {
      if (this.loadingHistory) this.historyRows.push(message.data);
      else this.liveRow(message.data);
    } else if (message.type === "meta" && message.data.historyDone) {
      this.setWindow(this.historyRows, !message.data.exhausted, false);
      this.historyRows = [];
      this.loadingHistory = false;
      this.stick = true;
      this.scrollToBottom();
    }
  }

  liveRow(row) {
    this.received += 1;
    if (this.live && !this.hasNewer && (this.stick || this.rows.length + this.incoming.length < WINDOW_CAP)) {
      this.incoming.push(row);
      if (!this.flushTimer) {
        this.flushTimer = setTimeout(() => {
          this.flushTimer = 0;
          this.schedule();
        }, LIVE_FLUSH_MS);
      }
      return;
    }
    this.hasNewer = true;
    this.missed += 1;
    this.away.push(row);
    if (this.away.length > LIVE_BUFFER * 1.5) this.away = this.away.slice(-LIVE_BUFFER);
    this.changed();
  }

  setWindow(rows, hasOlder, hasNewer) {
    this.rows = rows;
    this.ids = new Set(rows.map((row) => row.id));
    this.hasOlder = hasOlder;
    this.hasNewer = hasNewer;
    this.spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
    this.schedule();
    this.changed();
  }

  setLive(live) {
    this.live = live;
    this.changed();
  }

  // -- paging --------------------------------------------------------------------------------

  async loadOlder() {
    if (this.loading || !this.hasOlder || !this.rows.length) return;
    this.loading = true;
    const generation = this.generation;
    try {
      const page = await entryPage(this.query, this.rows[0].seq, -1, PAGE);
      if (generation !== this.generation) return;
      const fresh = page.data.filter((row) => !this.ids.has(row.id));
      this.hasOlder = !page.meta.exhausted;
      if (!fresh.length) return;
      for (const row of fresh) this.ids.add(row.id);
      this.rows = fresh.concat(this.rows);
      this.viewport.scrollTop += fresh.length * ROW_HEIGHT; // keep the rows in view where they were
      const over = this.rows.length - WINDOW_CAP;
      if (over > 0) {
        for (const row of this.rows.splice(WINDOW_CAP, over)) this.ids.delete(row.id);
        this.hasNewer = true;
        this.stick = false;
      }
    } catch (error) {
      this.hasOlder = false;
    } finally {
      this.loading = false;
      this.resize();
    }
  }

  async loadNewer() {
    if (this.loading || !this.hasNewer || !this.rows.length) return;
    this.loading = true;
    const generation = this.generation;
    try {
      const last = this.rows[this.rows.length - 1].seq;
      const page = await entryPage(this.query, last, 1, PAGE);
      if (generation !== this.generation) return;
      let fresh = page.data.filter((row) => !this.ids.has(row.id));
      if (page.meta.exhausted && this.live) {
        // at the live edge again: the rows that arrived meanwhile follow without a gap
        const newest = fresh.length ? fresh[fresh.length - 1].seq : last;
        fresh = fresh.concat(this.away.filter((row) => row.seq > newest && !this.ids.has(row.id)));
        this.hasNewer = false;
        this.away = [];
        this.missed = 0;
      }
      this.append(fresh, true);
    } catch (error) {
      this.hasNewer = false;
    } finally {
      this.loading = false;
      this.resize();
    }
  }

  /** Append rows; beyond the cap drop the oldest, keeping the visible rows still. */
  append(rows, keepView) {
    for (const row of rows) {
      if (this.ids.has(row.id)) continue;
      this.ids.add(row.id);
      this.rows.push(row);
    }
    const over = this.rows.length - WINDOW_CAP;
    if (over > 0) {
      for (const row of this.rows.splice(0, over)) this.ids.delete(row.id);
      this.hasOlder = true;
      if (keepView || !this.stick) this.viewport.scrollTop -= over * ROW_HEIGHT;
    }
  }

  // -- drawing -------------------------------------------------------------------------------

  schedule() {
    if (this.dirty) return;
    this.dirty = true;
    requestAnimationFrame(() => this.draw());
  }

  resize() {
    this.spacer.style.height = `${this.rows.length * ROW_HEIGHT}px`;
    this.schedule();
    this.changed();
  }

  draw() {
    this.dirty = false;
    if (this.incoming.length) {
      const rows = this.incoming;
      this.incoming = [];
      this.append(rows, false);
      this.spacer.style.height = `${this.rows.length * ROW_HEIGHT}px`;
      if (this.stick) this.viewport.scrollTop = this.viewport.scrollHeight;
      this.changed();
    }
    const top = this.viewport.scrollTop;
    const height = this.viewport.clientHeight;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const needed = last - first;
    while (this.pool.length < needed) this.pool.push(this.makeRow());
    for (let slot = 0; slot < this.pool.length; slot += 1) {
      const element = this.pool[slot];
      const index = first + slot;
      if (slot >= needed) {
        element.hidden = true;
        continue;
      }
      element.hidden = false;
      const row = this.rows[index];
      element.style.transform = `translateY(${index * ROW_HEIGHT}px)`;
      if (element.rowId !== row.id) this.fill(element, row);
      element.classList.toggle("selected", row.id === this.selectedId);
    }
    this.empty.hidden = this.rows.length > 0 || this.loadingHistory;
    const dropped = this.filteredOut ? ` (${this.filteredOut.toLocaleString("en-US")} filtered out by the insertion filter)` : "";
    this.empty.textContent = (this.query ? "No entries match this filter yet." : "Waiting for traffic…") + dropped;
  }

  makeRow() {
    const cell = (name) => h("span", { class: `cell ${name}` });
    const element = h("div", { class: "row", role: "row" });
    element.cells = {
      proto: h("span", { class: "badge" }),
      lock: h("span", { class: "lock", hidden: true }, "🔒"),
      method: h("span", { class: "snippet" }),
      summary: h("span"), // clicking the path opens the row; its filter is in the pane's title
      status: h("span", { class: "snippet" }),
      peers: cell("peers"),
      latency: cell("latency"),
      time: cell("time"),
      rules: cell("rules"),
    };
    const c = element.cells;
    element.append(
      h("span", { class: "cell proto" }, c.proto, c.lock),
      h("span", { class: "cell method" }, c.method),
      h("span", { class: "cell summary" }, c.summary),
      h("span", { class: "cell status" }, c.status),
      c.peers,
      c.latency,
      c.time,
      c.rules,
    );
    element.addEventListener("click", (event) => {
      const row = element.row;
      if (!row) return;
      const snippet = event.target.dataset && event.target.dataset.query;
      if (snippet && event.target.classList.contains("snippet")) {
        event.stopPropagation();
        this.onSnippet(snippet);
        return;
      }
      this.select(row);
    });
    this.spacer.append(element);
    return element;
  }

  fill(element, row) {
    element.rowId = row.id;
    element.row = row;
    const c = element.cells;
    const proto = row.proto || {};
    c.proto.textContent = proto.abbr || proto.name || "?";
    c.proto.title = `${proto.longName || proto.name || ""} ${proto.version || ""}`.trim();
    c.proto.style.backgroundColor = safeColor(proto.backgroundColor, "#666");
    c.proto.style.color = safeColor(proto.foregroundColor, "#fff");
    const tls = row.tls && row.tls.decrypted && proto.name !== "tls" ? row.tls : null;
    c.lock.hidden = !tls;
    c.lock.title = tls ? tlsSummary(tls) : "";
    setSnippet(c.method, String(row.method ?? ""), row.methodQuery);
    c.summary.textContent = String(row.summary ?? "");
    c.summary.title = c.summary.textContent;
    setSnippet(c.status, String(row.status ?? ""), row.statusQuery);
    c.status.title = row.statusQuery ? `${statusTitle(row)}\nAdd to the filter: ${row.statusQuery}` : statusTitle(row);
    c.status.className = `snippet ${statusClass(row)}`;
    element.classList.toggle("error", row.error === true);
    c.method.className = `snippet method-${String(row.method || "").toLowerCase().replace(/[^a-z]/g, "")}`;
    const from = endpoint(row.src);
    const to = endpoint(row.dst);
    c.peers.textContent = `${from} → ${to}`;
    c.peers.title = `${from} → ${to}`;
    c.latency.textContent = duration(row.latency);
    c.time.textContent = clockTime(row.timestamp);
    c.time.title = new Date(row.timestamp).toISOString();
    const rules = row.rules;
    if (rules && (rules.failed || rules.passed)) {
      c.rules.textContent = rules.failed ? "✗" : "✓";
      c.rules.className = `cell rules ${rules.failed ? "failed" : "passed"}`;
      c.rules.title = `rules: ${rules.passed || 0} passed, ${rules.failed || 0} failed`;
    } else {
      c.rules.textContent = "";
      c.rules.className = "cell rules";
      c.rules.title = "";
    }
  }

  // -- interaction ---------------------------------------------------------------------------

  onScroll() {
    const { scrollTop, clientHeight, scrollHeight } = this.viewport;
    const atBottom = scrollTop + clientHeight >= scrollHeight - ROW_HEIGHT;
    if (scrollTop < this.lastScrollTop && !atBottom) this.stick = false;
    else if (atBottom && !this.hasNewer && !this.selectedId) this.stick = true;
    this.lastScrollTop = scrollTop;
    if (scrollTop < EDGE_ROWS * ROW_HEIGHT) this.loadOlder();
    if (scrollTop + clientHeight > scrollHeight - EDGE_ROWS * ROW_HEIGHT) this.loadNewer();
    this.schedule();
    this.changed();
  }

  scrollToBottom() {
    this.viewport.scrollTop = this.viewport.scrollHeight;
    this.schedule();
  }

  /** A selected row stays where it is while new rows arrive below it (the view stops
   * following the live edge); closing the selection follows it again if it did before. */
  select(row) {
    if (row && !this.selectedId) {
      this.followed = this.stick;
      this.stick = false;
    } else if (!row && this.selectedId && this.followed) {
      this.followed = false;
      if (!this.hasNewer) {
        this.stick = true;
        this.scrollToBottom();
      }
    }
    this.selectedId = row ? row.id : null;
    this.schedule();
    this.changed();
    this.onSelect(row);
  }

  /** Up/down arrows move the selection through the window. */
  move(step) {
    if (!this.rows.length) return;
    let index = this.rows.findIndex((row) => row.id === this.selectedId);
    index = index < 0 ? (step > 0 ? 0 : this.rows.length - 1) : Math.max(0, Math.min(this.rows.length - 1, index + step));
    const top = index * ROW_HEIGHT;
    if (top < this.viewport.scrollTop) this.viewport.scrollTop = top;
    else if (top + ROW_HEIGHT > this.viewport.scrollTop + this.viewport.clientHeight) {
      this.viewport.scrollTop = top + ROW_HEIGHT - this.viewport.clientHeight;
    }
    this.select(this.rows[index]);
  }

  changed() {
    this.onChange(this);
  }
}

function setSnippet(element, text, query) {
  element.textContent = text;
  if (query) {
    element.dataset.query = query;
    element.title = `Add to the filter: ${query}`;
  } else {
    delete element.dataset.query;
    element.title = text;
  }
}
