// The other views: service map (GET /servicemap), API (GET /oas, /oas/{service}) and traffic
// statistics (GET /status/trafficStats). Everything drawn from text and SVG elements.

import { HubError, getJSON } from "./api.js";
import { clear, h, safeColor, svg } from "./dom.js";
import { bytes, count, duration } from "./format.js";
import { codeBlock } from "./detail.js";

function unavailable(root, error, what) {
  const message = error instanceof HubError && error.status === 404
    ? `This hub does not serve ${what} yet.`
    : `Cannot load ${what}: ${error.message}`;
  clear(root).append(h("div", { class: "view-empty" }, message));
}

const nodeKey = (node) => (node && typeof node === "object" ? String(node.id ?? node.name ?? "") : String(node ?? ""));
const nodeName = (node) => (node && typeof node === "object" ? String(node.name || node.id || "") : String(node ?? ""));

/** {nodes: [{id, name, …}], edges: [{source, destination|target, count, protocol}]} as a
 * circle of services with arrows weighted by traffic, and the same as a table. */
export async function renderServiceMap(root) {
  let map;
  try {
    map = await getJSON("/servicemap");
  } catch (error) {
    unavailable(root, error, "the service map (/servicemap)");
    return;
  }
  const nodes = new Map();
  for (const node of map.nodes || []) nodes.set(nodeKey(node), nodeName(node));
  const edges = (map.edges || []).map((edge) => {
    const from = nodeKey(edge.source);
    const to = nodeKey(edge.destination ?? edge.target);
    for (const [key, end] of [[from, edge.source], [to, edge.destination ?? edge.target]]) if (!nodes.has(key)) nodes.set(key, nodeName(end));
    const protocol = edge.protocol && typeof edge.protocol === "object" ? edge.protocol : { name: edge.protocol };
    const latency = edge.latency && typeof edge.latency === "object" ? edge.latency.p50 : undefined;
    return { from, to, count: Number(edge.count) || 0, errors: Number(edge.errors) || 0, latency, protocol };
  });
  if (!nodes.size) {
    clear(root).append(h("div", { class: "view-empty" }, "No services seen yet."));
    return;
  }
  const size = 560;
  const radius = size / 2 - 90;
  const keys = [...nodes.keys()];
  const place = new Map(keys.map((key, i) => {
    const angle = (2 * Math.PI * i) / keys.length - Math.PI / 2;
    return [key, [size / 2 + radius * Math.cos(angle), size / 2 + radius * Math.sin(angle)]];
  }));
  const heaviest = Math.max(1, ...edges.map((edge) => edge.count));
  const drawing = svg("svg", { viewBox: `0 0 ${size} ${size}`, class: "map", role: "img", "aria-label": "service map" });
  drawing.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "22", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))));
  for (const edge of edges) {
    const [x1, y1] = place.get(edge.from);
    const [x2, y2] = place.get(edge.to);
    const line = svg("line", { x1, y1, x2, y2, class: "edge", "marker-end": "url(#arrow)", "stroke-width": String(1 + 4 * Math.sqrt(edge.count / heaviest)) });
    line.style.stroke = safeColor(edge.protocol.backgroundColor, "");
    line.append(svg("title", {}, `${nodes.get(edge.from)} → ${nodes.get(edge.to)}: ${count(edge.count)} ${edge.protocol.abbr || edge.protocol.name || ""}`));
    drawing.append(line);
  }
  for (const key of keys) {
    const [x, y] = place.get(key);
    drawing.append(svg("g", { class: "node" }, svg("circle", { cx: x, cy: y, r: 12 }), svg("text", { x, y: y + 26, "text-anchor": "middle" }, nodes.get(key))));
  }
  const table = h("table", { class: "grid" }, h("tr", {}, h("th", {}, "From"), h("th", {}, "To"), h("th", {}, "Protocol"), h("th", { class: "num" }, "Entries"), h("th", { class: "num" }, "Errors"), h("th", { class: "num" }, "p50")));
  for (const edge of [...edges].sort((a, b) => b.count - a.count)) {
    table.append(h("tr", {}, h("td", {}, nodes.get(edge.from)), h("td", {}, nodes.get(edge.to)), h("td", {}, String(edge.protocol.abbr || edge.protocol.name || "")), h("td", { class: "num" }, count(edge.count)), h("td", { class: "num" }, count(edge.errors)), h("td", { class: "num" }, duration(edge.latency))));
  }
  clear(root).append(h("div", { class: "map-view" }, drawing, table));
}

/** GET /oas lists services (strings or {name|service}); /oas/{service} is an OpenAPI 3 document. */
export async function renderOpenApi(root) {
  let services;
  try {
    services = await getJSON("/oas");
  } catch (error) {
    unavailable(root, error, "OpenAPI specs (/oas)");
    return;
  }
  const names = (Array.isArray(services) ? services : Object.keys(services || {}))
    .map((item) => (item && typeof item === "object" ? item.name || item.service : item))
    .filter((name) => typeof name === "string" && name);
  if (!names.length) {
    clear(root).append(h("div", { class: "view-empty" }, "No API specs inferred yet: they appear once HTTP traffic is seen."));
    return;
  }
  const spec = h("div", { class: "oas-spec" });
  const list = h("div", { class: "oas-services" });
  const open = async (name, button) => {
    for (const other of list.children) other.classList.toggle("active", other === button);
    try {
      renderSpec(spec, name, await getJSON(`/oas/${encodeURIComponent(name)}`));
    } catch (error) {
      unavailable(spec, error, `the spec of ${name}`);
    }
  };
  for (const name of names) {
    const button = h("button", { class: "service", on: { click: () => open(name, button) } }, name);
    list.append(button);
  }
  clear(root).append(h("div", { class: "oas-view" }, list, spec));
  open(names[0], list.children[0]);
}

function renderSpec(root, name, document_) {
  const info = document_.info || {};
  const paths = document_.paths || {};
  const operations = h("div", { class: "operations" });
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item || {})) {
      if (!operation || typeof operation !== "object" || method.startsWith("x-") || method === "parameters") continue;
      const responses = Object.keys(operation.responses || {});
      operations.append(
        h(
          "details",
          { class: "operation" },
          h("summary", {}, h("span", { class: `verb method-${method.toLowerCase()}` }, method.toUpperCase()), h("span", { class: "path" }, path), h("span", { class: "responses" }, responses.join(" ")), operation.summary ? h("span", { class: "op-summary" }, String(operation.summary)) : null),
          codeBlock(JSON.stringify(operation, null, 2), "json"),
        ),
      );
    }
  }
  clear(root).append(
    h("div", { class: "spec-head" }, h("b", {}, String(info.title || name)), info.version ? ` ${info.version}` : "", ` · ${Object.keys(paths).length} paths`),
    operations,
    h("details", { class: "operation" }, h("summary", {}, "Whole document (JSON)"), codeBlock(JSON.stringify(document_, null, 2), "json")),
  );
}

/** Entries and bytes per protocol and method, with bars. */
export async function renderStats(root) {
  let traffic;
  try {
    traffic = await getJSON("/status/trafficStats");
  } catch (error) {
    unavailable(root, error, "traffic statistics");
    return;
  }
  const rows = traffic.protocols || [];
  const most = Math.max(1, ...rows.map((row) => row.entries));
  const table = h("table", { class: "grid stats" }, h("tr", {}, h("th", {}, "Protocol"), h("th", {}, "Method"), h("th", { class: "num" }, "Entries"), h("th", { class: "num" }, "Bytes"), h("th", {}, "")));
  for (const row of rows) {
    const bar = h("span", { class: "bar" });
    bar.style.width = `${(100 * row.entries) / most}%`;
    table.append(h("tr", {}, h("td", {}, String(row.protocol)), h("td", {}, String(row.method ?? "")), h("td", { class: "num" }, count(row.entries)), h("td", { class: "num" }, bytes(row.bytes || 0)), h("td", { class: "bar-cell" }, bar)));
  }
  clear(root).append(
    h("div", { class: "spec-head" }, h("b", {}, `${count(traffic.entries)} entries`), ` · ${bytes(traffic.bytes || 0)} stored`),
    rows.length ? table : h("div", { class: "view-empty" }, "No traffic yet."),
  );
}
