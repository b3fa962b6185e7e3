// The API view: each service's inferred OpenAPI document (GET /oas, /oas/{service}) rendered
// as API documentation: operations grouped by path, their parameters, request and response
// schemas with examples, status codes; the document itself downloadable.

import { getJSON } from "./api.js";
import { clear, h, saveBlob } from "./dom.js";
import { count } from "./format.js";
import { codeBlock } from "./detail.js";
import { unavailable } from "./viewparts.js";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const MAX_DEPTH = 12;

export class ApiDocs {
  constructor() {
    this.service = "";
    this.document = null;
  }

  async render(root) {
    let services;
    try {
      services = await getJSON("/oas");
    } catch (error) {
      unavailable(root, error, "the inferred API documents (/oas)");
      return;
    }
    const names = (services || []).filter((item) => item && typeof item.name === "string");
    if (!names.length) {
      clear(root).append(h("div", { class: "view-empty" }, "No API inferred yet: documents appear once HTTP traffic is seen."));
      return;
    }
    if (!names.some((item) => item.name === this.service)) this.service = names[0].name;
    const spec = h("div", { class: "oas-spec" });
    const list = h("nav", { class: "oas-services", "aria-label": "Services" });
    for (const item of names) {
      const button = h(
        "button",
        { class: `service${item.name === this.service ? " active" : ""}`, on: { click: () => this.open(list, button, spec, item.name) } },
        h("span", { class: "name" }, item.name),
        h("span", { class: "note" }, `${count(item.paths)} paths · ${count(item.entries)} requests`),
      );
      list.append(button);
    }
    clear(root).append(h("div", { class: "oas-view" }, h("div", { class: "oas-side" }, list), spec));
    await this.open(list, list.querySelector(".service.active"), spec, this.service);
  }

  async open(list, button, spec, name) {
    for (const other of list.children) other.classList.toggle("active", other === button);
    this.service = name;
    try {
      this.document = await getJSON(`/oas/${encodeURIComponent(name)}`);
    } catch (error) {
      unavailable(spec, error, `the API of ${name}`);
      return;
    }
    renderDocument(spec, name, this.document);
  }
}

/** What a document was inferred from, when the hub could not look at every entry. */
function sampling(info) {
  const sampled = info["x-mizu-sampled"];
  if (!sampled || !sampled.skipped) return null;
  const seen = sampled.observed || 0;
  return h(
    "span",
    { class: "note sampled", title: "Under load the hub infers from a sample of the entries it stores" },
    `sampled: ${count(seen)} of ${count(seen + sampled.skipped)} entries`,
  );
}

export function renderDocument(root, name, document_) {
  const info = document_.info || {};
  const paths = document_.paths || {};
  const operations = Object.values(paths).reduce((total, item) => total + METHODS.filter((method) => item && item[method]).length, 0);
  const download = h(
    "button",
    {
      class: "download",
      title: "The OpenAPI 3.1 document, as JSON",
      on: { click: () => saveBlob(new Blob([JSON.stringify(document_, null, 2)], { type: "application/json" }), `${name.replace(/[^\w.-]+/g, "_")}.openapi.json`) },
    },
    "⤓ OpenAPI JSON",
  );
  const head = h(
    "header",
    { class: "spec-head" },
    h("h2", {}, String(info.title || name), info.version ? h("span", { class: "version" }, ` ${info.version}`) : null),
    h("span", { class: "note" }, `OpenAPI ${document_.openapi || ""} · ${count(Object.keys(paths).length)} paths · ${count(operations)} operations`),
    sampling(info),
    download,
    info.description ? h("p", { class: "description" }, String(info.description)) : null,
    (document_.servers || []).length ? h("p", { class: "servers" }, "Servers: ", (document_.servers || []).map((server) => h("code", {}, String(server.url)))) : null,
  );
  const body = h("div", { class: "paths" });
  for (const [path, item] of Object.entries(paths)) {
    if (!item || typeof item !== "object") continue;
    const group = h("section", { class: "path-group" }, h("h3", { class: "path" }, path));
    for (const method of METHODS) {
      if (item[method]) group.append(operationView(document_, path, method, item[method], item.parameters || []));
    }
    body.append(group);
  }
  clear(root).append(head, body);
}

function operationView(document_, path, method, operation, shared) {
  const responses = Object.entries(operation.responses || {});
  const summary = h(
    "summary",
    {},
    h("span", { class: `verb method-${method}` }, method.toUpperCase()),
    h("span", { class: "path" }, path),
    h("span", { class: "codes" }, responses.map(([code]) => h("span", { class: `code ${statusKind(code)}` }, code))),
    typeof operation["x-mizu-count"] === "number" ? h("span", { class: "note" }, `seen ${count(operation["x-mizu-count"])}×`) : null,
  );
  const parameters = [...shared, ...(operation.parameters || [])].map((parameter) => resolve(document_, parameter));
  const parts = [];
  if (operation.description) parts.push(h("p", { class: "description" }, String(operation.description)));
  if (parameters.length) parts.push(h("h4", {}, "Parameters"), parametersTable(document_, parameters));
  const requestBody = operation.requestBody && resolve(document_, operation.requestBody);
  if (requestBody) {
    parts.push(h("h4", {}, "Request body", requestBody.required ? h("span", { class: "required" }, " required") : null));
    parts.push(...contentViews(document_, requestBody.content));
  }
  parts.push(h("h4", {}, "Responses"));
  for (const [code, response] of responses) {
    const described = resolve(document_, response) || {};
    parts.push(
      h(
        "div",
        { class: "response" },
        h("div", { class: "response-head" }, h("span", { class: `code ${statusKind(code)}` }, code), ` ${described.description || ""}`, typeof described["x-mizu-count"] === "number" ? h("span", { class: "note" }, ` seen ${count(described["x-mizu-count"])}×`) : null),
        ...contentViews(document_, described.content),
      ),
    );
  }
  return h("details", { class: "operation", data: { operation: `${method.toUpperCase()} ${path}` } }, summary, h("div", { class: "operation-body" }, parts));
}

function statusKind(code) {
  const first = String(code)[0];
  return { 2: "ok", 3: "redirect", 4: "client-error", 5: "server-error" }[first] || "other";
}

function parametersTable(document_, parameters) {
  return h(
    "table",
    { class: "grid parameters" },
    h("tr", {}, ["Name", "In", "Type", "Example"].map((name) => h("th", {}, name))),
    parameters.map((parameter) =>
      h(
        "tr",
        {},
        h("td", {}, h("code", {}, String(parameter.name)), parameter.required ? h("span", { class: "required", title: "required" }, " *") : null),
        h("td", {}, String(parameter.in || "")),
        h("td", {}, typeText(resolve(document_, parameter.schema) || {})),
        h("td", {}, parameter.example === undefined ? "" : h("code", {}, JSON.stringify(parameter.example))),
      ),
    ),
  );
}

function contentViews(document_, content) {
  return Object.entries(content || {}).map(([media, object]) =>
    h(
      "div",
      { class: "media" },
      h("div", { class: "media-type" }, h("code", {}, media)),
      h(
        "div",
        { class: "media-body" },
        h("div", { class: "schema-box" }, h("div", { class: "caption" }, "Schema"), schemaView(document_, object && object.schema, 0)),
        object && object.example !== undefined ? h("div", { class: "example-box" }, h("div", { class: "caption" }, "Example"), codeBlock(JSON.stringify(object.example, null, 2), "json")) : null,
      ),
    ),
  );
}

/** A schema as a tree: each property with its type, format, whether it is required, its
 * enum; objects and arrays unfolded. */
export function schemaView(document_, schema, depth) {
  schema = resolve(document_, schema);
  if (!schema || typeof schema !== "object") return h("span", { class: "type" }, "any");
  if (depth > MAX_DEPTH) return h("span", { class: "type" }, "…");
  const alternatives = schema.oneOf || schema.anyOf;
  if (Array.isArray(alternatives)) {
    return h("ul", { class: "schema" }, alternatives.map((one, index) => h("li", {}, h("span", { class: "note" }, index ? "or " : "one of "), schemaView(document_, one, depth + 1))));
  }
  const properties = schema.properties && typeof schema.properties === "object" ? schema.properties : null;
  if (properties) {
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    return h(
      "ul",
      { class: "schema" },
      Object.entries(properties).map(([name, property]) =>
        h(
          "li",
          { class: "property", data: { property: name } },
          h("code", { class: "name" }, name),
          required.has(name) ? h("span", { class: "required", title: "required" }, "*") : null,
          " ",
          typeText(resolve(document_, property) || {}),
          nested(document_, property, depth),
        ),
      ),
    );
  }
  return typeText(schema);
}

function nested(document_, property, depth) {
  const schema = resolve(document_, property) || {};
  const items = schema.items && resolve(document_, schema.items);
  if (schema.properties || schema.oneOf || schema.anyOf) return schemaView(document_, schema, depth + 1);
  if (items && (items.properties || items.oneOf || items.anyOf)) return schemaView(document_, items, depth + 1);
  return null;
}

function typeText(schema) {
  let type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || (schema.properties ? "object" : "");
  if (type === "array" && schema.items) {
    const items = schema.items;
    type = `array of ${Array.isArray(items.type) ? items.type.join(" | ") : items.type || (items.properties ? "object" : "any")}`;
  }
  return h(
    "span",
    { class: "type" },
    type || "any",
    schema.format ? h("span", { class: "format" }, ` (${schema.format})`) : null,
    Array.isArray(schema.enum) ? h("span", { class: "enum" }, ` one of ${schema.enum.map((value) => JSON.stringify(value)).join(", ")}`) : null,
    schema.contentMediaType ? h("span", { class: "format" }, ` ${schema.contentMediaType}`) : null,
  );
}

/** A `$ref` within the document, followed; anything else as it is. */
function resolve(document_, value) {
  let current = value;
  for (let hops = 0; current && typeof current === "object" && typeof current.$ref === "string" && hops < 16; hops += 1) {
    if (!current.$ref.startsWith("#/")) return null;
    current = current.$ref
      .slice(2)
      .split("/")
      .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
      .reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), document_);
  }
  return current;
}
