// Building DOM without HTML parsing: everything captured is attacker-controlled text, so it only
// ever reaches the page as text nodes and textContent, never as markup.

/**
 * h("div", {class: "row", title: "…", on: {click: fn}, data: {id: "1"}}, "text", childNode)
 * Strings become text nodes; null/false children are skipped.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "on") for (const [name, fn] of Object.entries(value)) element.addEventListener(name, fn);
    else if (key === "data") for (const [name, v] of Object.entries(value)) element.dataset[name] = v;
    else if (key === "text") element.textContent = value;
    else if (key in SAFE_PROPERTIES) element[key] = value;
    else element.setAttribute(key, value);
  }
  append(element, children);
  return element;
}

// Properties set as properties (not attributes) because their live value matters.
const SAFE_PROPERTIES = { value: 1, checked: 1, disabled: 1, hidden: 1, type: 1, placeholder: 1 };

export function append(parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

/** "#1a2b3c" style colours only: a plugin's colour is applied through CSSOM, never markup. */
export function safeColor(value, fallback) {
  return typeof value === "string" && /^#[0-9a-f]{3,8}$/i.test(value) ? value : fallback;
}

let toastTimer = 0;
/** A short message at the bottom right (copy done, pcap export off, …). */
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `toast ${kind} shown`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("shown"), 4000);
}

/** Save a Blob as a file the user downloads (never opened in the page). */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
