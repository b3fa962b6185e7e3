// Pure helpers: how values, bodies and commands are written out. No DOM here.

/** A value as a filter-language literal: strings double-quoted and escaped, the rest as is. */
export function literal(value) {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return `"${String(value).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** `current and snippet`, parenthesising a current filter that has a top-level `or`. */
export function addClause(current, snippet) {
  const text = current.trim();
  if (!text) return snippet;
  const left = /\bor\b|\|\|/.test(text) && !/^\(.*\)$/.test(text) ? `(${text})` : text;
  return `${left} and ${snippet}`;
}

export function endpoint(peer) {
  if (!peer) return "";
  const host = peer.name || (String(peer.ip || "").includes(":") ? `[${peer.ip}]` : peer.ip || "?");
  return peer.port ? `${host}:${peer.port}` : host;
}

export function clockTime(milliseconds) {
  const date = new Date(milliseconds);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function duration(ms) {
  if (typeof ms !== "number" || !isFinite(ms)) return "";
  if (ms === 0) return "–"; // one-way messages (pushes, WebSocket frames) have no round trip
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export function bytes(count) {
  if (typeof count !== "number" || count < 0) return "";
  if (count < 1024) return `${count} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = count;
  let unit = -1;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function count(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : "–";
}

/** "TLS 1.3 · TLS_AES_128_GCM_SHA256 · SNI api.example.com · ALPN h2": the lock's words. */
export function tlsSummary(tls) {
  const parts = [tls.version || "TLS", tls.cipher];
  if (tls.sni) parts.push(`SNI ${tls.sni}`);
  if (tls.alpn) parts.push(`ALPN ${tls.alpn}`);
  return `decrypted ${parts.filter(Boolean).join(" · ")}`;
}

/** The status's colour: the plugin's word on the row (`error`), never a guess from a code. */
export function statusClass(row) {
  if (row.error === true) return "status-error";
  const status = row.status;
  if (status === "" || status === null || status === undefined) return "none";
  return "status-ok";
}

/** The status with its name when the plugin gives one: "404 Not Found", "ERR". */
export function statusLabel(row) {
  const status = String(row.status ?? "");
  const name = typeof row.statusName === "string" ? row.statusName : "";
  return name && name !== status ? `${status} ${name}` : status;
}

/** The status's tooltip: its label, and whose word the error is. */
export function statusTitle(row) {
  const label = statusLabel(row);
  return row.error === true ? `${label} (an error, says the ${row.proto ? row.proto.name : ""} plugin)` : label;
}

// -- bodies --------------------------------------------------------------------------------

const MAX_PRETTY = 2 << 20;

export function isJsonType(mimeType) {
  return /[/+]json\b|^application\/json/i.test(mimeType || "");
}

export function isXmlType(mimeType) {
  return /[/+]xml\b/i.test(mimeType || "");
}

/** Body text as a person reads it: JSON indented, XML indented, form fields one per line;
 * anything else (HTML included) as text. Returns {text, language}. */
export function prettyBody(text, mimeType) {
  if (text.length > MAX_PRETTY) return { text, language: "text" };
  const trimmed = text.trim();
  if (isJsonType(mimeType) || (!mimeType && /^[[{]/.test(trimmed))) {
    try {
      return { text: JSON.stringify(JSON.parse(trimmed), null, 2), language: "json" };
    } catch {
      return { text, language: "text" };
    }
  }
  if (isXmlType(mimeType) && trimmed.startsWith("<")) return { text: prettyXml(trimmed), language: "xml" };
  if (/x-www-form-urlencoded/i.test(mimeType || "")) {
    try {
      const lines = [...new URLSearchParams(trimmed)].map(([name, value]) => `${name} = ${value}`);
      return { text: lines.join("\n"), language: "text" };
    } catch {
      return { text, language: "text" };
    }
  }
  return { text, language: "text" };
}

/** Indent XML by tag depth; text only (never parsed into a document). */
export function prettyXml(text) {
  const tokens = text.replace(/>\s+</g, "><").split(/(?=<)|(?<=>)/);
  const lines = [];
  let depth = 0;
  let after = ""; // what the last line ends with: "open" tag, "text" inside an open tag, or ""
  for (const token of tokens) {
    if (!token.trim()) continue;
    if (token.startsWith("</")) {
      depth = Math.max(0, depth - 1);
      if (after === "text") lines[lines.length - 1] += token; // <a>text</a> stays on one line
      else lines.push("  ".repeat(depth) + token);
      after = "";
    } else if (!token.startsWith("<")) {
      if (after === "open") lines[lines.length - 1] += token;
      else lines.push("  ".repeat(depth) + token);
      after = after === "open" ? "text" : "";
    } else {
      lines.push("  ".repeat(depth) + token);
      const opens = !/^<[!?]/.test(token) && !token.endsWith("/>");
      if (opens) depth += 1;
      after = opens ? "open" : "";
    }
  }
  return lines.join("\n");
}

/** JSON text split into [kind, text] tokens for colouring (kind: key|string|number|literal|punct). */
export function jsonTokens(text) {
  const pattern = /("(?:[^"\\]|\\.)*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b|([{}[\],:])|(\s+)|(.)/gs;
  const tokens = [];
  for (const match of text.matchAll(pattern)) {
    if (match[1] !== undefined) {
      tokens.push([match[2] ? "key" : "string", match[1]]);
      if (match[2]) tokens.push(["punct", match[2]]);
    } else if (match[3] !== undefined) tokens.push(["number", match[3]]);
    else if (match[4] !== undefined) tokens.push(["literal", match[4]]);
    else if (match[5] !== undefined) tokens.push(["punct", match[5]]);
    else tokens.push(["", match[0]]);
  }
  return tokens;
}

/** Base64 to bytes, or null when it is not base64. */
export function base64Bytes(text) {
  try {
    const binary = atob(text.replace(/\s+/g, ""));
    const result = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) result[i] = binary.charCodeAt(i);
    return result;
  } catch {
    return null;
  }
}

/** Bytes as UTF-8 text, or null when they are not valid UTF-8. */
export function utf8(bytesValue) {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytesValue);
  } catch {
    return null;
  }
}

export function hexDump(bytesValue, limit = 65536) {
  const lines = [];
  const end = Math.min(bytesValue.length, limit);
  for (let offset = 0; offset < end; offset += 16) {
    const chunk = bytesValue.slice(offset, Math.min(offset + 16, end));
    const hex = [...chunk].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...chunk].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytesValue.length > limit) lines.push(`… ${bytesValue.length - limit} more bytes`);
  return lines.join("\n");
}

export const IMAGE_TYPE = /^image\/(png|jpeg|gif|webp|bmp|x-icon|vnd\.microsoft\.icon|avif)$/i;

// -- curl ----------------------------------------------------------------------------------

export function shellQuote(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

const CURL_SKIPPED_HEADERS = new Set(["content-length", "transfer-encoding", "connection", "host"]);

/** An HTTP entry's request as a curl command line (shell-quoted, so pasting it is safe). */
export function curlCommand(entry) {
  const request = entry.request || {};
  const headers = request.headers || {};
  const authority = headers[":authority"] || headerValue(headers, "host") || `${entry.dst.ip}:${entry.dst.port}`;
  let url = request.url || "";
  if (!/^https?:\/\//i.test(url)) url = `http://${authority}${request.path || "/"}`;
  const parts = [`curl ${shellQuote(url)}`]; // one option per line
  const method = request.method || "GET";
  const body = request.postData && request.postData.text;
  if (method !== "GET" || body) parts.push(`-X ${shellQuote(method)}`);
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(":") || CURL_SKIPPED_HEADERS.has(name.toLowerCase())) continue;
    for (const one of Array.isArray(value) ? value : [value]) parts.push(`-H ${shellQuote(`${name}: ${one}`)}`);
  }
  if (body) {
    if (request.postData.encoding === "base64") parts.push("--data-binary @body.bin");
    else parts.push(`--data-raw ${shellQuote(body)}`);
  }
  if (String(request.httpVersion || "").includes("2")) parts.push("--http2-prior-knowledge");
  return parts.join(" \\\n  ");
}

function headerValue(headers, wanted) {
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === wanted) return Array.isArray(value) ? value[0] : value;
  }
  return "";
}

/** The value at a filter-language path (`response.content.text`, `request.headers["X"]`,
 * `payload.topics[0].name`) in an entry, or undefined. */
export function valueAt(entry, selector) {
  let value = entry;
  for (const match of String(selector).matchAll(/\.?([A-Za-z_$][\w$]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g)) {
    if (value === null || typeof value !== "object") return undefined;
    const key = match[1] ?? (match[2] !== undefined ? Number(match[2]) : match[3].replace(/\\(.)/g, "$1"));
    value = value[key];
  }
  return value;
}

/** The filter that selects one TCP connection's entries (for pcap export). */
export function connectionQuery(row) {
  return [
    `src.ip == ${literal(row.src.ip)}`,
    `src.port == ${Number(row.src.port)}`,
    `dst.ip == ${literal(row.dst.ip)}`,
    `dst.port == ${Number(row.dst.port)}`,
  ].join(" and ");
}
