// Statistics over time (GET /stats): requests per second, error rate and latency percentiles
// per protocol, service or endpoint, for the filter over a window, drawn with uPlot
// (vendored), with a table of the same numbers per group.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { clear, h } from "./dom.js";
import { count, duration } from "./format.js";
import { WindowView, errorColour, percent, themeColour } from "./viewparts.js";

const PALETTE = ["#4c8dff", "#3fb950", "#d29922", "#a371f7", "#f0883e", "#39c5cf", "#ff7b72", "#db61a2", "#8b949e"];
const GROUPINGS = [
  ["protocol", "per protocol"],
  ["service", "per service"],
  ["endpoint", "per endpoint"],
];
const CHART_HEIGHT = 170;

export class StatsView extends WindowView {
  constructor({ onQuery }) {
    super(onQuery);
    this.by = "protocol";
    this.focus = ""; // the group whose latency percentiles are drawn ("": all)
    this.charts = [];
  }

  async render(root, query) {
    const answer = await this.ask(root, "/stats", { query, by: this.by }, "the statistics");
    if (!answer) return;
    this.answer = answer;
    this.destroy();
    const by = h(
      "select",
      { class: "by", "aria-label": "Group by", on: { change: () => { this.by = by.value; this.focus = ""; this.render(root, query); } } },
      GROUPINGS.map(([value, label]) => h("option", { value }, label)),
    );
    by.value = this.by;
    const head = this.head(root, query, "Statistics", by, h("span", { class: "note" }, `buckets of ${duration(answer.bucketMs)}`));
    if (!answer.all.count) {
      this.nothing(root, head, query);
      return;
    }
    const series = answer.series;
    if (!series.some((one) => one.key === this.focus)) this.focus = "";
    const focused = series.find((one) => one.key === this.focus) || answer.all;
    const panels = h("div", { class: "charts" });
    clear(root).append(h("div", { class: "stats-view" }, head, panels, this.table(answer, root, query)));
    const x = answer.buckets.map((start) => start / 1000);
    // three side by side: the panel less two gaps (12 px), each less its padding and border
    const width = Math.max(320, Math.floor((panels.clientWidth - 2 * 12) / 3) - 14);
    const groups = series.map((one, index) => ({ label: one.label, stroke: PALETTE[index % PALETTE.length] }));
    this.chart(panels, "Requests/s", width, x, groups, series.map((one) => one.rates), (value) => `${value.toFixed(value < 10 ? 2 : 0)}/s`);
    this.chart(panels, "Error rate", width, x, groups, series.map((one) => one.errorRates.map((rate) => (rate === null ? null : 100 * rate))), (value) => `${value.toFixed(0)}%`);
    this.chart(
      panels,
      `Latency: ${focused === answer.all ? "all" : focused.label}`,
      width,
      x,
      [
        { label: "p50", stroke: "#3fb950" },
        { label: "p90", stroke: "#d29922" },
        { label: "p99", stroke: "#f85149" },
      ],
      [focused.p50, focused.p90, focused.p99],
      (value) => (value === 0 ? "0" : duration(value)), // duration(0) is a one-way message's "–"
    );
  }

  chart(parent, title, width, x, series, values, format) {
    const box = h("figure", { class: "chart" }, h("figcaption", {}, title));
    parent.append(box);
    const axis = { stroke: themeColour("--text-dim", "#8b93a3"), grid: { stroke: themeColour("--line", "#2d323c"), width: 1 }, ticks: { stroke: themeColour("--line", "#2d323c") } };
    const plot = new uPlot(
      {
        width,
        height: CHART_HEIGHT,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { y: { range: (self, low, high) => [0, Math.max(high, 1e-3) * 1.1] } },
        axes: [axis, { ...axis, size: 60, values: (self, ticks) => ticks.map(format) }],
        series: [
          {},
          ...series.map((one) => ({ label: one.label, stroke: one.stroke, width: 1.5, spanGaps: false, points: { show: true, size: 4 }, value: (self, value) => (value === null || value === undefined ? "–" : format(value)) })),
        ],
      },
      [x, ...values],
      box,
    );
    this.charts.push(plot);
  }

  table(answer, root, query) {
    const header = ["", "Group", "Entries", "Rate", "Errors", "Error rate", "p50", "p90", "p99", ""];
    const table = h("table", { class: "grid stats-table" }, h("tr", {}, header.map((name, index) => h("th", { class: index > 1 && index < 9 ? "num" : "" }, name))));
    const rows = [[answer.all, ""], ...answer.series.map((one, index) => [one, PALETTE[index % PALETTE.length]])];
    for (const [series, colour] of rows) {
      const swatch = h("i", { class: "swatch" });
      if (colour) swatch.style.backgroundColor = colour;
      const errorRate = h("td", { class: "num error-rate" }, percent(series.errorRate));
      if (series.errors) errorRate.style.color = errorColour(series.errorRate);
      const latency = series.latency || {};
      const key = series === answer.all ? "" : series.key;
      const list = series.query
        ? h("button", { class: "link", title: `List these entries: ${series.query}`, on: { click: (event) => { event.stopPropagation(); this.onQuery(series.query); } } }, "entries ↗")
        : null;
      table.append(
        h(
          "tr",
          {
            class: `clickable${key === this.focus ? " focused" : ""}`,
            title: "Draw this group's latency",
            data: { group: series.label },
            on: { click: () => { this.focus = key; this.render(root, query); } },
          },
          h("td", {}, swatch),
          h("td", { class: "label" }, series.label),
          h("td", { class: "num count" }, count(series.count)),
          h("td", { class: "num rate" }, `${series.rate.toFixed(series.rate < 10 ? 2 : 0)}/s`),
          h("td", { class: "num errors" }, count(series.errors)),
          errorRate,
          h("td", { class: "num p50" }, duration(latency.p50)),
          h("td", { class: "num p90" }, duration(latency.p90)),
          h("td", { class: "num p99" }, duration(latency.p99)),
          h("td", {}, list),
        ),
      );
    }
    return table;
  }

  destroy() {
    for (const chart of this.charts) chart.destroy();
    this.charts = [];
  }
}
