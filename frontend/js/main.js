// Wiring: filter bar → live socket → list → detail pane; toolbar, views, keyboard.

import { DetailPane } from "./detail.js";
import { ApiDocs } from "./apidocs.js";
import { LiveSocket, getHar } from "./api.js";
import { saveBlob, toast } from "./dom.js";
import { FilterBar } from "./filter.js";
import { EntryList } from "./list.js";
import { ServiceMap } from "./map.js";
import { StatsView } from "./stats.js";
import { StatusBar } from "./status.js";

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
    if (current !== "traffic") showView(current); // the map and the statistics follow the filter
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

/** A map node's, an edge's or a statistics group's filter: the list of its entries. */
function showEntries(query) {
  showView("traffic");
  filter.set(query, true);
}

const views = {
  traffic: null,
  map: new ServiceMap({ onQuery: showEntries }),
  api: new ApiDocs(),
  stats: new StatsView({ onQuery: showEntries }),
};
let current = "traffic";
for (const button of document.querySelectorAll("[data-view]")) {
  button.addEventListener("click", () => showView(button.dataset.view));
}

function showView(name) {
  current = name;
  for (const button of document.querySelectorAll("[data-view]")) button.classList.toggle("active", button.dataset.view === name);
  $("traffic").hidden = name !== "traffic";
  $("other-view").hidden = name === "traffic";
  if (name !== "map") views.map.destroy();
  if (name !== "stats") views.stats.destroy();
  if (views[name]) views[name].render($("other-view"), filter.applied);
}

// The HAR download says when it holds only the newest of what the filter matches.
$("har").addEventListener("click", async (event) => {
  event.preventDefault();
  try {
    const { blob, entries, matched } = await getHar($("har").href);
    saveBlob(blob, "mizu.har");
    const cut = matched !== String(entries);
    const of = matched === "more" ? "more" : Number(matched).toLocaleString("en-US");
    toast(cut ? `HAR: the newest ${entries.toLocaleString("en-US")} of ${of} HTTP entries the filter matches` : `HAR: ${entries.toLocaleString("en-US")} HTTP entries`, cut ? "warn" : "info");
  } catch (error) {
    toast(`HAR: ${error.message}`, "error");
  }
});

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
window.mizu = { list, filter, detail, views, status }; // for the browser tests and the console
