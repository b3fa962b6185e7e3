// Parts the map, statistics and API views share: the window picker, what an answer was
// computed from, a view that could not load.

import { HubError, getJSON } from "./api.js";
import { clear, h } from "./dom.js";
import { count } from "./format.js";

export const WINDOWS = [
  [60, "1 min"],
  [300, "5 min"],
  [900, "15 min"],
  [3600, "1 hour"],
  [6 * 3600, "6 hours"],
  [86400, "24 hours"],
  [7 * 86400, "7 days"],
];

export function windowPicker(seconds, onChange) {
  const select = h(
    "select",
    { class: "window", title: "The window: up to the newest stored entry", "aria-label": "Window", on: { change: () => onChange(Number(select.value)) } },
    WINDOWS.map(([value, label]) => h("option", { value: String(value) }, `last ${label}`)),
  );
  select.value = String(seconds);
  return select;
}

/** "1,204 entries", or when the hub read only part of the window, that it is a sample and of
 * how many: the numbers never pass for the whole when they are not. */
export function coverageNote(answer) {
  if (answer.complete) return h("span", { class: "note coverage" }, `${count(answer.entries)} entries`);
  let said;
  if (answer.partial) said = `partial: ${count(answer.entries)} entries, found before the filter's scan ran out of time`;
  else if (typeof answer.matched === "number") said = `sampled: the newest ${count(answer.entries)} of ${count(answer.matched)} entries`;
  else said = `sampled: the newest ${count(answer.entries)} entries of more`;
  return h("span", { class: "note coverage sampled", title: "The hub reads at most the window's newest 100,000 matching entries" }, said);
}

export function unavailable(root, error, what) {
  const message = error instanceof HubError && error.status === 404 ? `This hub does not serve ${what}.` : `Cannot load ${what}: ${error.message}`;
  clear(root).append(h("div", { class: "view-empty" }, message));
}

/** A colour of the theme (a CSS variable), for what draws on a canvas. */
export function themeColour(name, fallback) {
  const probe = h("span", { hidden: true });
  probe.style.color = `var(${name})`;
  document.body.append(probe);
  const colour = getComputedStyle(probe).color;
  probe.remove();
  return colour || fallback;
}

/** Green at no errors, through amber, to red at a quarter of the entries or more. */
export function errorColour(rate) {
  const share = Math.max(0, Math.min(1, (Number(rate) || 0) / 0.25));
  if (share === 0) return "#3fb950";
  const hue = Math.round(45 * (1 - share)); // 45: amber … 0: red
  return `hsl(${hue}, 85%, 52%)`;
}

export const percent = (rate) => `${(100 * (Number(rate) || 0)).toFixed((Number(rate) || 0) < 0.1 ? 1 : 0)}%`;

/** A view of the filter's entries over a window (the service map, the statistics): it asks
 * the hub, keeps only the latest answer, and heads itself with its window and coverage. */
export class WindowView {
  constructor(onQuery) {
    this.onQuery = onQuery; // a node's, edge's or group's filter: the list is shown with it
    this.seconds = 900;
    this.answer = null;
    this.ticket = 0;
  }

  /** The hub's answer, or null when it failed (said in ``root``) or a newer render began. */
  async ask(root, path, params, what) {
    const ticket = ++this.ticket;
    try {
      const answer = await getJSON(path, { ...params, window: this.seconds });
      return ticket === this.ticket ? answer : null;
    } catch (error) {
      if (ticket === this.ticket) unavailable(root, error, what);
      return null;
    }
  }

  head(root, query, title, controls, notes) {
    const picker = windowPicker(this.seconds, (seconds) => {
      this.seconds = seconds;
      this.render(root, query);
    });
    return h("div", { class: "view-head" }, h("b", {}, title), controls, picker, notes, coverageNote(this.answer));
  }

  /** The head alone, saying there is nothing to draw. */
  nothing(root, head, query) {
    const said = query ? "No entries match this filter in the window." : "No traffic in the window yet.";
    clear(root).append(head, h("div", { class: "view-empty" }, said));
  }
}
