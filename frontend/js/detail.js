// The detail pane: the owning plugin's represent sections for one entry, as text.

import { entryDetail } from "./api.js";
import { clear, h, safeColor, saveBlob, toast } from "./dom.js";
import {
  IMAGE_TYPE,
  base64Bytes,
  bytes,
  clockTime,
  connectionQuery,
  curlCommand,
  duration,
  tlsSummary,
  endpoint,
  hexDump,
  jsonTokens,
  literal,
  prettyBody,
  statusClass,
  statusLabel,
  statusTitle,
  utf8,
  valueAt,
} from "./format.js";

const HIGHLIGHT_LIMIT = 200_000; // characters: beyond, bodies are shown uncoloured

export class DetailPane {
  constructor(root, { onSnippet, onClose }) {
    this.root = root;
    this.onSnippet = onSnippet;
    this.onClose = onClose;
    this.detail = null;
    this.tab = "request"; // as DevTools: what was asked first, then what came back
    this.raw = false;
    this.request = 0;
  }

  async show(row) {
    const ticket = ++this.request;
    if (!row) {
      this.detail = null;
      this.root.hidden = true;
      return;
    }
    if (this.root.hidden) this.tab = "request"; // a pane that opens opens on the request
    this.root.hidden = false;
    try {
      const detail = await entryDetail(row.id);
      if (ticket !== this.request) return;
      this.detail = detail;
      if (!(detail.representation || {})[this.tab] && this.tab !== "entry" && this.tab !== "rules") this.tab = "request";
      this.render();
    } catch (error) {
      if (ticket !== this.request) return;
      clear(this.root).append(h("div", { class: "detail-empty" }, `Cannot load this entry: ${error.message}`));
    }
  }

  render() {
    const { data, representation, base } = this.detail;
    const row = base || {};
    const proto = data.protocol || {};
    const badge = h("span", { class: "badge" }, proto.abbr || proto.name || "?");
    badge.style.backgroundColor = safeColor(proto.backgroundColor, "#666");
    badge.style.color = safeColor(proto.foregroundColor, "#fff");
    const title = h(
      "div",
      { class: "detail-title" },
      badge,
      this.snippet(h("span", { class: "method" }, String(row.method ?? "")), row.methodQuery),
      this.snippet(h("span", { class: "summary" }, String(row.summary ?? "")), row.summaryQuery),
      this.snippet(h("span", { class: `status ${statusClass(row)}`, title: statusTitle(row) }, statusLabel(row)), row.statusQuery),
      h("button", { class: "icon close", title: "Close (Esc)", on: { click: () => this.onClose() } }, "×"),
    );
    const facts = h(
      "div",
      { class: "detail-facts" },
      fact("From", endpoint(data.src), data.src && data.src.ip),
      fact("To", endpoint(data.dst), data.dst && data.dst.ip),
      fact("Time", `${clockTime(data.timestamp)}`, data.startTime),
      fact("Latency", duration(data.elapsedTime)),
      fact("Size", `${bytes(data.requestSize)} / ${bytes(data.responseSize)}`, "request / response bytes on the wire"),
    );
    if (data.tls && data.tls.decrypted && proto.name !== "tls") {
      facts.append(h("span", { class: "fact tls", title: tlsSummary(data.tls) }, h("span", { class: "label" }, "🔒 TLS"), `${data.tls.version || ""} ${data.tls.sni || ""}`.trim()));
    }
    const tabs = [["request", "Request"], ["response", "Response"]].filter(([key]) => (representation[key] || []).length);
    const rules = data.rules || {};
    if ((rules.passed || []).length || (rules.failed || []).length) tabs.push(["rules", "Rules"]);
    tabs.push(["entry", "Entry JSON"]);
    if (!tabs.some(([key]) => key === this.tab)) this.tab = tabs[0][0];
    const tabBar = h(
      "div",
      { class: "tabs", role: "tablist" },
      tabs.map(([key, label]) =>
        h(
          "button",
          {
            class: key === this.tab ? "tab active" : "tab",
            role: "tab",
            data: { tab: key },
            on: {
              click: () => {
                this.tab = key;
                this.render();
              },
            },
          },
          label,
          key === "rules" && data.rules.failed && data.rules.failed.length ? h("span", { class: "count failed" }, String(data.rules.failed.length)) : null,
        ),
      ),
      h("span", { class: "grow" }),
      this.actions(data),
    );
    const body = h("div", { class: "detail-body" });
    if (this.tab === "entry") body.append(codeBlock(JSON.stringify(data, null, 2), "json"));
    else if (this.tab === "rules") body.append(rulesView(data.rules));
    else for (const section of representation[this.tab] || []) body.append(this.section(section));
    clear(this.root).append(title, facts, tabBar, body);
  }

  /** Clicking `element` adds `query` (a row's *Query) to the filter. */
  snippet(element, query) {
    element.title = query ? `Add to the filter: ${query}` : element.textContent;
    if (query) {
      element.classList.add("snippet");
      element.dataset.query = query;
      element.addEventListener("click", () => this.onSnippet(query));
    }
    return element;
  }

    actions(data) {
    const buttons = h("span", { class: "actions" });
    const toggle = h(
      "button",
      {
        class: this.raw ? "toggle on" : "toggle",
        title: "Show bodies as captured (raw) or pretty-printed (decoded)",
        on: {
          click: () => {
            this.raw = !this.raw;
            this.render();
          },
        },
      },
      this.raw ? "Raw" : "Decoded",
    );
    buttons.append(toggle);
    if (data.protocol && data.protocol.name === "http" && data.request && data.protocol.macro !== "grpc") {
      buttons.append(h("button", { title: "Copy this request as a curl command", on: { click: () => copy(curlCommand(data), "curl command") } }, "Copy as curl"));
    }
    buttons.append(h("button", { title: "Download this connection's packets (pcap)", on: { click: () => downloadPcap(data) } }, "pcap"));
    return buttons;
  }

  section(section) {
    const title = h("div", { class: "section-title" }, String(section.title ?? ""));
    if (section.type === "table") {
      return h("section", { class: "section" }, title, this.table(section.data || []));
    }
    return h("section", { class: "section" }, title, this.bodyView(section));
  }

  table(rows) {
    if (!Array.isArray(rows) || !rows.length) return h("div", { class: "kv-empty" }, "(none)");
    const table = h("table", { class: "kv" });
    for (const item of Array.isArray(rows) ? rows : []) {
      const values = Array.isArray(item.value) ? item.value : [item.value];
      values.forEach((value, index) => {
        const text = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value ?? "");
        const name = h("td", { class: "name" }, index === 0 ? String(item.name ?? "") : "");
        const selector = typeof item.selector === "string" && item.selector ? item.selector : "";
        const queryable = selector && (value === null || typeof value !== "object");
        if (queryable) {
          // a selector is a path (`request.headers["X"]`), or already a whole filter clause
          const whole = /\s(==|!=|<=|>=|<|>)\s/.test(selector);
          const snippet = whole ? selector : `${selector} == ${literal(value)}`;
          name.classList.add("snippet");
          name.title = `Add to the filter: ${snippet}`;
          name.addEventListener("click", () => this.onSnippet(snippet));
        }
        table.append(h("tr", {}, name, h("td", { class: "value" }, text)));
      });
    }
    return table;
  }

  bodyView(section) {
    const data = String(section.data ?? "");
    const mimeType = String(section.mimeType || "");
    const head = h(
      "div",
      { class: "body-head" },
      h("span", { class: "mime" }, mimeType || "no content type"),
      section.encoding ? h("span", { class: "mime" }, section.encoding) : null,
      h("span", { class: "grow" }),
      h("button", { class: "small", on: { click: () => copy(data, "body") } }, "Copy"),
    );
    if (section.selector) {
      head.insertBefore(h("span", { class: "selector", title: "Filter-language path of this body" }, section.selector), head.children[1]);
    }
    return h("div", { class: "body" }, head, this.bodyContent(data, mimeType, section.encoding, section.selector));
  }

  bodyContent(data, mimeType, encoding, selector) {
    if (this.raw) {
      // the body as captured, where the section says which field of the entry it shows
      const captured = selector ? valueAt(this.detail.data, selector) : undefined;
      return codeBlock(typeof captured === "string" ? captured : data, "text");
    }
    if (encoding === "base64") {
      if (IMAGE_TYPE.test(mimeType) && /^[A-Za-z0-9+/=\s]*$/.test(data)) {
        // a data: URL in <img> renders pixels only; the CSP allows img-src data:
        return h("div", { class: "image" }, h("img", { src: `data:${mimeType.toLowerCase()};base64,${data.replace(/\s+/g, "")}`, alt: "captured image" }));
      }
      const decoded = base64Bytes(data);
      if (!decoded) return codeBlock(data, "text");
      const text = utf8(decoded);
      if (text === null) return codeBlock(hexDump(decoded), "text");
      const pretty = prettyBody(text, mimeType);
      return codeBlock(pretty.text, pretty.language);
    }
    const pretty = prettyBody(data, mimeType);
    return codeBlock(pretty.text, pretty.language);
  }
}

function fact(label, value, title) {
  return h("span", { class: "fact", title: title || value }, h("span", { class: "label" }, label), String(value));
}

/** A <pre> of text; JSON coloured token by token (text nodes in spans, never markup). */
export function codeBlock(text, language) {
  const pre = h("pre", { class: `code ${language}` });
  if (language === "json" && text.length <= HIGHLIGHT_LIMIT) {
    const fragment = document.createDocumentFragment();
    for (const [kind, token] of jsonTokens(text)) {
      fragment.append(kind ? h("span", { class: `j-${kind}` }, token) : document.createTextNode(token));
    }
    pre.append(fragment);
  } else {
    pre.textContent = text;
  }
  return pre;
}

function rulesView(rules) {
  const list = h("div", { class: "rules-view" });
  for (const failed of rules.failed || []) {
    list.append(h("div", { class: "rule failed" }, h("span", { class: "mark" }, "✗"), h("b", {}, String(failed.name ?? failed)), failed.reason ? ` — ${failed.reason}` : ""));
  }
  for (const passed of rules.passed || []) {
    const name = typeof passed === "object" && passed ? passed.name : passed;
    list.append(h("div", { class: "rule passed" }, h("span", { class: "mark" }, "✓"), h("b", {}, String(name ?? ""))));
  }
  if (!list.children.length) list.append(h("div", { class: "detail-empty" }, "No rules apply to this entry."));
  return list;
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    toast(`Copied the ${what}`);
  } catch {
    toast(`Could not copy the ${what} (clipboard not allowed)`, "error");
  }
}

async function downloadPcap(entry) {
  const query = connectionQuery(entry);
  try {
    const response = await fetch(`/pcap?${new URLSearchParams({ query })}`);
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || type.includes("json") || type.includes("html")) {
      let message = "This hub does not export pcap.";
      if (type.includes("json")) message = (await response.json()).error || message;
      toast(message, "error");
      return;
    }
    saveBlob(await response.blob(), `mizu-${entry.src.port}-${entry.dst.port}.pcap`);
  } catch (error) {
    toast(`pcap download failed: ${error.message}`, "error");
  }
}
