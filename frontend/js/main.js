// Wiring: filter bar → live socket → list → detail pane; toolbar, views, keyboard.

import { LiveSocket } from "./api.js";
import { DetailPane } from "./detail.js";
import { FilterBar } from "./filter.js";
import { EntryList } from "./list.js";
import { StatusBar } from "./status.js";
import { renderOpenApi, renderServiceMap, renderStats } from "./views.js";

const $ = (id) => document.getElementById(id);

const THEME_KEY = "mizu.theme";
const savedTheme = localStorage.getItem(THEME_KEY);
if (savedTheme === "light" || savedTheme === "dark") document.documentElement.dataset.theme = savedTheme;

const detail = new DetailPane($("detail"), {
  onSnippet: (snippet) => filter.add(snippet),
  onClose: () => list.select(null),
});

const list = new EntryList($("viewport"), {
  onSelect: (row) => detail.show(row),
  onSnippet: (snippet) => filter.add(snippet),
  onChange: () => refreshControls(),
});

const status = new StatusBar($("statusbar"), list);

const socket = new LiveSocket(
  (message) => {
    if (message.type === "error") filter.show({ valid: false, ...message.data }, message.data.query || "");
    else list.onMessage(message);
  },
  (state, reason) => {
    document.body.classList.toggle("disconnected", state === "disconnected");
    if (reason) status.hubSaid = reason; // e.g. this browser fell too far behind
  },
);

const filter = new FilterBar($("filter-bar"), {
  onApply: (query) => {
    const url = new URL(location.href);
    if (query) url.searchParams.set("q", query);
    else url.searchParams.delete("q");
    history.replaceState(null, "", url);
    $("har").href = `/har?${new URLSearchParams({ query })}`;
    list.reset(query, socket);
  },
});

function refreshControls() {
  const pause = $("pause");
  pause.textContent = list.live ? "❚❚ Pause" : "▶ Resume";
  pause.classList.toggle("on", !list.live);
  pause.setAttribute("aria-pressed", String(!list.live));
  const jump = $("jump");
  jump.hidden = !(list.hasNewer || (!list.stick && list.rows.length));
  jump.textContent = list.missed ? `↓ ${list.missed.toLocaleString("en-US")} new · Jump to latest` : "↓ Jump to latest";
  status.update();
}

function jumpToLatest() {
  list.setLive(true);
  list.stick = true;
  if (list.hasNewer) list.reset(filter.applied, socket);
  else list.scrollToBottom();
}

$("pause").addEventListener("click", () => {
  if (list.live) list.setLive(false);
  else jumpToLatest();
});
$("jump").addEventListener("click", jumpToLatest);
$("theme").addEventListener("click", () => {
  const current = document.documentElement.dataset.theme;
  const dark = current ? current === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  const theme = dark ? "light" : "dark";
  document.documentElement.dataset.theme = theme;
  localStorage.setItem(THEME_KEY, theme);
});

// -- views ----------------------------------------------------------------------------------

const VIEWS = { traffic: null, map: renderServiceMap, api: renderOpenApi, stats: renderStats };
for (const button of document.querySelectorAll("[data-view]")) {
  button.addEventListener("click", () => showView(button.dataset.view));
}

function showView(name) {
  for (const button of document.querySelectorAll("[data-view]")) button.classList.toggle("active", button.dataset.view === name);
  $("traffic").hidden = name !== "traffic";
  $("other-view").hidden = name === "traffic";
  if (VIEWS[name]) VIEWS[name]($("other-view"));
}

// -- keyboard --------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  const typing = event.target instanceof HTMLInputElement;
  if (event.key === "/" && !typing) {
    event.preventDefault();
    filter.input.focus();
    filter.input.select();
  } else if (!typing && (event.key === "ArrowDown" || event.key === "j")) {
    event.preventDefault();
    list.move(1);
  } else if (!typing && (event.key === "ArrowUp" || event.key === "k")) {
    event.preventDefault();
    list.move(-1);
  } else if (event.key === "Escape" && !typing) {
    list.select(null);
  }
});

// -- start -----------------------------------------------------------------------------------

const initial = new URL(location.href).searchParams.get("q") || "";
filter.set(initial, true);
status.start();
refreshControls();
window.mizu = { list, filter, detail }; // for the browser tests and the console
