// The hub's API, same origin. The hub answers 401 until this browser holds its token (the URL
// mizu prints carries it; the hub turns it into a cookie): then the page asks for it.

import { h } from "./dom.js";

export class HubError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** GET a JSON document; a route the hub does not serve (it answers with the dashboard's HTML)
 * is a HubError with status 404. */
export async function getJSON(path, params = {}, signal) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(query ? `${path}?${query}` : path, { signal, headers: { Accept: "application/json" } });
  return readJSON(response, path);
}

export async function postJSON(path, body, signal) {
  const response = await fetch(path, {
    method: "POST",
    signal,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  return readJSON(response, path);
}

async function readJSON(response, path) {
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("json")) {
    // a path the hub has no route for is answered with the dashboard's own page
    const missing = response.ok && type.includes("html");
    const message = missing ? `the hub does not serve ${path}` : `${path} answered ${response.status} ${response.statusText}`;
    throw new HubError(message, missing ? 404 : response.status, null);
  }
  const body = await response.json();
  if (response.status === 401) askForToken();
  if (!response.ok) throw new HubError(body.error || body.message || response.statusText, response.status, body);
  return body;
}

export const validateQuery = (query, signal) =>
  postJSON("/query/validate", { query }, signal).catch((error) => {
    if (error instanceof HubError && error.status === 400 && error.body) return error.body;
    throw error;
  });

export const entryPage = (query, leftOff, direction, limit) =>
  getJSON("/entries", { query, leftOff, direction, limit });

/** The HAR of a /har URL, with how many entries it holds and how many the filter matched
 * (a number, or "more" when the hub could not count them quickly). */
export async function getHar(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) await readJSON(response, "/har");
  return {
    blob: await response.blob(),
    entries: Number(response.headers.get("X-Mizu-Entries")) || 0,
    matched: response.headers.get("X-Mizu-Matched") || "",
  };
}

export const entryDetail = (id) => getJSON(`/entries/${encodeURIComponent(id)}`);

/**
 * The live stream (WS /ws): sends {query, limit}, then receives the newest `limit` matching rows,
 * a meta message and new rows live. Reconnects with a growing delay when the hub goes away.
 * Rows name their protocol by a key: the protocol itself comes once per connection, in a
 * `protocols` message, and is put back into each row here.
 */
export class LiveSocket {
  constructor(onMessage, onState) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.request = null;
    this.socket = null;
    this.delay = 500;
    this.closed = false;
    this.protocols = {};
  }

  subscribe(request) {
    this.request = request;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(request));
    else if (!this.socket) this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    this.socket = socket;
    this.protocols = {};
    socket.addEventListener("open", () => {
      this.delay = 500;
      this.onState("connected");
      if (this.request) socket.send(JSON.stringify(this.request));
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "protocols") {
        Object.assign(this.protocols, message.data);
        return;
      }
      if (message.type === "entry" && typeof message.data.proto === "string") {
        message.data.proto = this.protocols[message.data.proto] || { name: message.data.proto };
      }
      this.onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      this.socket = null;
      if (this.closed) return;
      this.onState("disconnected", event.reason);
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    });
  }
}

/** A form over the page that opens the dashboard with the token the user pastes. */
function askForToken() {
  if (document.getElementById("token-form")) return;
  const input = h("input", { name: "token", type: "password", placeholder: "token", autocomplete: "off", required: "" });
  const form = h(
    "form",
    { id: "token-form", class: "token-form", method: "get", action: "/" },
    h("p", {}, "This hub needs its token. Open the URL mizu printed (http://…/?token=…), or paste the token:"),
    input,
    h("button", { type: "submit" }, "Open"),
  );
  document.body.append(form);
  input.focus();
}
