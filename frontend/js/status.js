// The status bar: tappers, targets, packets, drops, stored entries, live rate.

import { getJSON } from "./api.js";
import { clear, h } from "./dom.js";
import { bytes, count } from "./format.js";

const POLL_MS = 2000;
// Per-protocol counts cost the hub a scan of its whole store (seconds at a million entries,
// with its store thread busy meanwhile): asked for less often, and beyond TRAFFIC_POLL_MAX
// stored entries no more (the last counts stay, saying when they were counted; the Stats view
// counts per protocol over a window).
const TRAFFIC_POLL_MS = 15000;
const TRAFFIC_POLL_MAX = 200_000;

/** Sum what every tapper reports (local capture or cluster tappers) into one summary. The
 * local tapper process is one of the tappers; `tap.local` is the same report. */
export function tapSummary(tap) {
  const tappers = tap.tappers || [];
  const summary = { tappers: tappers.filter((t) => t.connected).length, targets: [], packets: 0, drops: 0 };
  const pods = (tap.targets && tap.targets.pods) || [];
  for (const pod of pods) summary.targets.push(String(pod.name || ""));
  for (const tapper of tappers) {
    const reported = tapper.reported || {};
    const capture = reported.capture || {};
    // without pods to name (local mode), what is tapped is what is captured: interfaces, files
    if (!tap.targets) for (const source of capture.sources || []) summary.targets.push(String(source));
    summary.packets += Number(capture.packets) || 0;
    summary.drops += (Number(capture.kernelDropped) || 0) + (Number(capture.interfaceDropped) || 0);
    summary.drops += Number(reported.shed) || 0;
  }
  return summary;
}

export class StatusBar {
  constructor(root, list) {
    this.root = root;
    this.list = list;
    this.lastReceived = 0;
    this.lastTime = performance.now();
    this.rate = 0;
    this.fields = {};
    for (const name of ["live", "window", "stored", "filteredOut", "rate", "tappers", "targets", "packets", "drops", "hubDrops"]) {
      this.fields[name] = h("span", { class: `stat stat-${name}` });
    }
    this.protocols = h("span", { class: "stat-protocols" });
    root.append(...Object.values(this.fields), h("span", { class: "grow" }), this.protocols);
    this.hubSaid = "";
    this.trafficPolled = -Infinity;
    this.stored = 0;
    this.storeAtCap = false;
    this.receivedAtPoll = 0; // the live rows received when the stored count was read
  }

  start() {
    setTimeout(() => this.poll(), 300); // after the list's first page
    setInterval(() => this.poll(), POLL_MS);
  }

  async poll() {
    if (this.polling) return; // a slow hub: never stack requests
    this.polling = true;
    const now = performance.now();
    this.rate = ((this.list.received - this.lastReceived) * 1000) / Math.max(1, now - this.lastTime);
    this.lastReceived = this.list.received;
    this.lastTime = now;
    try {
      const trafficDue = now - this.trafficPolled >= TRAFFIC_POLL_MS && this.stored < TRAFFIC_POLL_MAX;
      const [tap, health, traffic] = await Promise.all([
        getJSON("/status/tap"),
        getJSON("/status/health"),
        trafficDue ? getJSON("/status/trafficStats") : null,
      ]);
      if (trafficDue) this.trafficPolled = now;
      this.stored = (health.store && health.store.entries) || 0;
      this.storeAtCap = Boolean(health.store && health.store.evicted);
      this.receivedAtPoll = this.list.received;
      const filteredOut = Number(health.filteredOut) || 0;
      if (filteredOut !== this.list.filteredOut) {
        this.list.filteredOut = filteredOut;
        this.list.schedule(); // an empty list says it too
      }
      this.render(tapSummary(tap), health);
      if (traffic) this.renderTraffic(traffic);
    } catch {
      this.fields.tappers.textContent = "hub unreachable";
    } finally {
      this.polling = false;
    }
    this.update();
  }

  render(summary, health) {
    const f = this.fields;
    f.stored.title = health.store ? `${bytes(health.store.usedBytes)} of ${bytes(health.store.maxBytes)}; ${count(health.store.evicted)} evicted` : "";
    const filteredOut = Number(health.filteredOut) || 0;
    f.filteredOut.textContent = filteredOut ? `${count(filteredOut)} filtered out` : "";
    f.filteredOut.title = filteredOut ? "entries the insertion filter (--insertion-filter) did not store" : "";
    f.tappers.textContent = `${summary.tappers} tapper${summary.tappers === 1 ? "" : "s"}`;
    const targets = [...new Set(summary.targets.filter(Boolean))];
    f.targets.textContent = `targets: ${targets.length ? targets.join(", ") : "–"}`;
    f.packets.textContent = `${count(summary.packets)} packets`;
    f.drops.textContent = `${count(summary.drops)} dropped`;
    f.drops.classList.toggle("warn", summary.drops > 0);
  }

  renderTraffic(traffic) {
    const protocols = new Map();
    for (const row of traffic.protocols || []) {
      const entry = protocols.get(row.protocol) || { entries: 0, bytes: 0 };
      entry.entries += row.entries;
      entry.bytes += row.bytes || 0;
      protocols.set(row.protocol, entry);
    }
    const at = new Date().toLocaleTimeString();
    clear(this.protocols).append(
      ...[...protocols].map(([name, value]) =>
        h("span", { class: "proto-stat", title: `${count(value.entries)} entries, ${bytes(value.bytes)}` }, h("b", {}, name), ` ${count(value.entries)}`),
      ),
      // the parts add up to this total, counted together at one time (not the live count)
      h("span", { class: "proto-total", title: `stored entries per protocol, counted at ${at}` }, `= ${count(traffic.entries)} at ${at}`),
    );
  }

  /** The parts that change with every row: called on each list change, cheaply. */
  update() {
    const list = this.list;
    const f = this.fields;
    const live = list.live && !list.hasNewer;
    f.live.textContent = list.live ? (live ? "● Live" : "● Live (scrolled back)") : "❚❚ Paused";
    f.live.className = `stat stat-live ${list.live ? "on" : "off"}`;
    f.window.textContent = `${count(list.rows.length)} in view`;
    // every live row is an entry stored since the count was read: the count keeps up with
    // the list between polls (a store at its cap evicts as many as it takes: it stays put)
    const since = this.storeAtCap ? 0 : list.received - this.receivedAtPoll;
    f.stored.textContent = `${count(this.stored + since)} stored`;
    f.rate.textContent = `${Math.round(this.rate)}/s`;
    f.hubDrops.textContent = this.hubSaid ? "reconnected" : "";
    f.hubDrops.title = this.hubSaid ? `The hub closed the live stream: ${this.hubSaid}` : "";
  }
}
