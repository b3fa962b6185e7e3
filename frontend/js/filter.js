// The filter bar: Mizu's filter language, validated by the hub as you type.

import { validateQuery } from "./api.js";
import { clear, h } from "./dom.js";
import { addClause } from "./format.js";

const HISTORY_KEY = "mizu.filterHistory";
const HISTORY_SIZE = 30;

export const CHEAT_SHEET = [
  ["error == true", "failed exchanges of any protocol, as its plugin says"],
  ["http and response.status >= 400", "HTTP errors"],
  ['request.method == "POST"', "by method"],
  ['request.path.startsWith("/api")', "path prefix (also endsWith, contains)"],
  ['response.status == r"5.*"', "regular expression"],
  ['request.headers["User-Agent"].contains("curl")', "a header (names case-insensitive)"],
  ["response.content.text.json().user.id == 7", "a field of a JSON body"],
  ['dst.name == "carts.sock-shop"', "resolved service or pod name"],
  ["src.port == 8080 or dst.port == 8080", "either side"],
  ["timestamp >= minutes(-5)", "last five minutes (seconds, hours, days)"],
  ['amqp and not (request.method == "basic.deliver")', "negation"],
  ['kafka and request.payload.topics[0].name == "t"', "Kafka topics"],
  ["elapsedTime > 500", "slower than 500 ms"],
  ["rules.failed.length > 0", "entries that failed a rule"],
  ['redact("request.headers.Authorization")', "hide a field"],
  ["limit(100)", "at most 100 entries"],
];

export class FilterBar {
  constructor(root, { onApply }) {
    this.onApply = onApply;
    this.applied = "";
    this.validation = 0;
    this.timer = 0;
    this.input = h("input", {
      id: "filter",
      class: "filter-input",
      type: "text",
      placeholder: 'Filter  e.g.  http and response.status >= 400   (press / to focus, Enter to apply)',
      spellcheck: "false",
      autocomplete: "off",
      list: "filter-history",
      "aria-label": "Filter",
    });
    this.history = h("datalist", { id: "filter-history" });
    this.state = h("span", { class: "filter-state", title: "" });
    this.error = h("div", { class: "filter-error", id: "filter-error", role: "alert", hidden: true });
    this.sheet = this.cheatSheet();
    const apply = h("button", { class: "primary", title: "Apply the filter (Enter)", on: { click: () => this.apply() } }, "Apply");
    const help = h("button", { class: "icon", title: "Filter syntax", "aria-expanded": "false", on: { click: () => this.toggleSheet() } }, "?");
    this.helpButton = help;
    root.append(h("div", { class: "filter-box" }, this.state, this.input, this.history), apply, help);
    document.getElementById("filter-drop").append(this.error, this.sheet);
    this.input.addEventListener("input", () => this.changed());
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") this.apply();
      if (event.key === "Escape") this.input.blur();
    });
    this.loadHistory();
  }

  get value() {
    return this.input.value;
  }

  set(text, apply) {
    this.input.value = text;
    this.changed(0);
    if (apply) this.apply();
  }

  /** A UI click's `*Query` snippet joined to the current filter, applied at once. */
  add(snippet) {
    this.set(addClause(this.input.value, snippet), true);
  }

  changed(delay = 120) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.validate(), delay);
  }

  async validate() {
    const text = this.input.value;
    const ticket = ++this.validation;
    if (!text.trim()) {
      this.show({ valid: true });
      return true;
    }
    try {
      const result = await validateQuery(text);
      if (ticket !== this.validation) return result.valid;
      this.show(result, text);
      return result.valid;
    } catch {
      return true; // the hub is unreachable: let the live socket report it
    }
  }

  /** Green or red, and for an error the query with its position marked. */
  show(result, text = "") {
    const box = this.input.parentElement;
    box.classList.toggle("invalid", !result.valid);
    box.classList.toggle("valid", Boolean(result.valid && text.trim()));
    this.state.textContent = result.valid ? (text.trim() ? "✓" : "") : "✗";
    this.state.title = result.valid && result.pushedDown === false ? "valid (evaluated entry by entry)" : "";
    if (result.valid) {
      this.error.hidden = true;
      return;
    }
    const position = Math.max(0, Math.min(Number(result.position) || 0, text.length));
    clear(this.error).append(
      h("span", { class: "error-message" }, `${result.message || "invalid filter"} at position ${position}`),
      result.hint ? h("span", { class: "error-hint" }, ` — ${result.hint}`) : null,
      h(
        "code",
        { class: "error-where" },
        text.slice(0, position),
        h("mark", {}, text.slice(position, position + 1) || " "),
        text.slice(position + 1),
      ),
    );
    this.error.hidden = false;
  }

  async apply() {
    clearTimeout(this.timer);
    const text = this.input.value.trim();
    if (!(await this.validate())) return;
    this.applied = text;
    if (text) this.remember(text);
    this.onApply(text);
  }

  loadHistory() {
    let items = [];
    try {
      items = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    } catch {
      items = [];
    }
    this.items = Array.isArray(items) ? items.filter((item) => typeof item === "string") : [];
    clear(this.history).append(...this.items.map((item) => h("option", { value: item })));
  }

  remember(text) {
    this.items = [text, ...this.items.filter((item) => item !== text)].slice(0, HISTORY_SIZE);
    localStorage.setItem(HISTORY_KEY, JSON.stringify(this.items));
    this.loadHistory();
  }

  cheatSheet() {
    const rows = CHEAT_SHEET.map(([example, meaning]) =>
      h(
        "tr",
        {},
        h("td", {}, h("code", { class: "snippet", title: "Use this filter", on: { click: () => { this.set(example, true); this.toggleSheet(false); } } }, example)),
        h("td", { class: "meaning" }, meaning),
      ),
    );
    return h(
      "div",
      { class: "cheat-sheet", hidden: true },
      h("div", { class: "sheet-head" }, "Filter language",
        h("span", { class: "sheet-note" }, "Operators == != < <= > >=, and or not, ( ); strings, numbers, true false nil, r\"regex\". Macros: http http2 grpc amqp kafka redis tcp. Click a row's method, path or status, or a header name, to add it.")),
      h("table", {}, rows),
    );
  }

  toggleSheet(force) {
    const show = force === undefined ? this.sheet.hidden : force;
    this.sheet.hidden = !show;
    this.helpButton.setAttribute("aria-expanded", String(show));
  }
}
