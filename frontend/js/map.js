// The service map (GET /servicemap): who calls whom over the filter's entries in a window, as a
// force-directed graph (Cytoscape.js, vendored) and the same edges as a table. A node's size
// is its traffic, an edge's colour its error rate; clicking either shows its entries.

import cytoscape from "../vendor/cytoscape/cytoscape.esm.min.js";
import { clear, h, safeColor } from "./dom.js";
import { count, duration } from "./format.js";
import { WindowView, errorColour, percent, themeColour } from "./viewparts.js";

const MIN_NODE = 26;
const MAX_NODE = 70;
const MIN_EDGE = 1.5;
const MAX_EDGE = 9;

export class ServiceMap extends WindowView {
  constructor({ onQuery }) {
    super(onQuery);
    this.cy = null;
  }

  async render(root, query) {
    const answer = await this.ask(root, "/servicemap", { query }, "the service map");
    if (!answer) return;
    this.answer = answer;
    this.destroy();
    const head = this.head(root, query, "Service map", null, [
      h("span", { class: "note" }, `${count(answer.nodes.length)} nodes · ${count(answer.edges.length)} edges`),
      h("span", { class: "legend" }, h("i", { class: "swatch ok" }), "no errors", h("i", { class: "swatch bad" }), "25%+ errors", " · size: entries · click to list them"),
    ]);
    if (!answer.nodes.length) {
      this.nothing(root, head, query);
      return;
    }
    const canvas = h("div", { class: "map-canvas", "aria-label": "service map" });
    clear(root).append(h("div", { class: "map-view" }, head, canvas, this.table(answer)));
    this.draw(canvas, answer);
  }

  draw(container, answer) {
    const busiest = Math.max(1, ...answer.nodes.map((node) => node.entries));
    const heaviest = Math.max(1, ...answer.edges.map((edge) => edge.count));
    const scale = (value, most, low, high) => low + (high - low) * Math.sqrt(value / most);
    const elements = [];
    answer.nodes.forEach((node, index) => {
      // a circle to start from: the layout is then the same for the same map
      const angle = (2 * Math.PI * index) / answer.nodes.length;
      elements.push({
        group: "nodes",
        data: {
          id: node.id,
          label: node.name,
          kind: node.kind,
          size: scale(node.entries, busiest, MIN_NODE, MAX_NODE),
          colour: errorColour(node.entries ? node.errors / node.entries : 0),
          query: node.query,
        },
        position: { x: 300 * Math.cos(angle), y: 300 * Math.sin(angle) },
      });
    });
    for (const edge of answer.edges) {
      const protocol = edge.protocol || {};
      elements.push({
        group: "edges",
        data: {
          id: edge.id,
          source: edge.source,
          target: edge.destination,
          label: `${protocol.abbr || protocol.name || ""} ${count(edge.count)}${edge.errors ? ` · ${percent(edge.errorRate)} err` : ""}`,
          width: scale(edge.count, heaviest, MIN_EDGE, MAX_EDGE),
          colour: errorColour(edge.errorRate),
          query: edge.query,
        },
      });
    }
    const text = themeColour("--text", "#d8dde6");
    const background = themeColour("--bg", "#16181d");
    const accent = themeColour("--accent", "#4c8dff");
    this.cy = cytoscape({
      container,
      elements,
      wheelSensitivity: 0.3,
      minZoom: 0.2,
      maxZoom: 3,
      style: [
        {
          selector: "node",
          style: {
            width: "data(size)",
            height: "data(size)",
            "background-color": accent,
            "border-width": 4,
            "border-color": "data(colour)",
            label: "data(label)",
            color: text,
            "font-size": 13,
            "text-valign": "bottom",
            "text-margin-y": 5,
            "text-background-color": background,
            "text-background-opacity": 0.85,
            "text-background-padding": 2,
          },
        },
        { selector: "node[kind = 'client']", style: { shape: "round-rectangle", "background-color": themeColour("--text-dim", "#8b93a3") } },
        {
          selector: "edge",
          style: {
            width: "data(width)",
            "line-color": "data(colour)",
            "target-arrow-color": "data(colour)",
            "target-arrow-shape": "triangle",
            "curve-style": "bezier",
            label: "data(label)",
            "font-size": 11,
            color: text,
            "text-rotation": "autorotate",
            "text-background-color": background,
            "text-background-opacity": 0.85,
            "text-background-padding": 1,
          },
        },
        { selector: ":selected", style: { "overlay-color": accent, "overlay-opacity": 0.25 } },
      ],
      layout: { name: "preset" },
    });
    const layout = this.cy.layout({
      name: "cose",
      animate: false,
      randomize: false,
      nodeDimensionsIncludeLabels: true, // labels count as part of a node: they do not overlap
      idealEdgeLength: () => 110,
      nodeRepulsion: () => 120_000,
      nodeOverlap: 40,
      componentSpacing: 120,
      padding: 40,
      numIter: 2000,
    });
    layout.run();
    this.separateLabels();
    this.cy.fit(undefined, 40);
    this.cy.on("tap", "node, edge", (event) => this.onQuery(event.target.data("query")));
  }

  /** The force layout keeps nodes (labels included) apart, but a long label on a small node
   * can still touch a neighbour's: such nodes are pushed apart until no two labels meet. */
  separateLabels() {
    const nodes = this.cy.nodes();
    for (let round = 0; round < 50; round += 1) {
      let moved = false;
      nodes.forEach((one, i) => {
        nodes.forEach((other, j) => {
          if (j <= i) return;
          const a = one.boundingBox({ includeLabels: true });
          const b = other.boundingBox({ includeLabels: true });
          const overlapX = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
          const overlapY = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
          if (overlapX <= 0 || overlapY <= 0) return;
          moved = true;
          const horizontal = overlapX < overlapY;
          const push = (horizontal ? overlapX : overlapY) / 2 + 4;
          const sign = horizontal ? Math.sign(b.x1 + b.x2 - a.x1 - a.x2) || 1 : Math.sign(b.y1 + b.y2 - a.y1 - a.y2) || 1;
          const shift = horizontal ? { x: sign * push, y: 0 } : { x: 0, y: sign * push };
          other.shift(shift);
          one.shift({ x: -shift.x, y: -shift.y });
        });
      });
      if (!moved) return;
    }
  }

  table(answer) {
    const table = h(
      "table",
      { class: "grid map-edges" },
      h("tr", {}, ...["Client", "Server", "Protocol", "Entries", "Pushed", "Errors", "p50", "p90", "p99"].map((name, index) => h("th", { class: index > 2 ? "num" : "" }, name))),
    );
    for (const edge of answer.edges) {
      const protocol = edge.protocol || {};
      const badge = h("span", { class: "badge" }, String(protocol.abbr || protocol.name || ""));
      badge.style.backgroundColor = safeColor(protocol.backgroundColor, "#666");
      badge.style.color = safeColor(protocol.foregroundColor, "#fff");
      const errors = h("td", { class: "num" }, edge.errors ? `${count(edge.errors)} (${percent(edge.errorRate)})` : "0");
      if (edge.errors) errors.style.color = errorColour(edge.errorRate);
      const latency = edge.latency || {};
      table.append(
        h(
          "tr",
          { class: "clickable", title: `List these entries: ${edge.query}`, data: { edge: edge.id }, on: { click: () => this.onQuery(edge.query) } },
          h("td", {}, edge.source),
          h("td", {}, edge.destination),
          h("td", {}, badge),
          h("td", { class: "num" }, count(edge.count)),
          h("td", { class: "num" }, count(edge.pushed)),
          errors,
          h("td", { class: "num" }, duration(latency.p50)),
          h("td", { class: "num" }, duration(latency.p90)),
          h("td", { class: "num" }, duration(latency.p99)),
        ),
      );
    }
    return table;
  }

  destroy() {
    if (this.cy) this.cy.destroy();
    this.cy = null;
  }
}
