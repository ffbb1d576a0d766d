// Building the page from data without ever parsing it as markup: every value becomes a text
// node (textContent), so a dossier field holding "<img onerror=…>" is shown, never run.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setAttributes(node, attributes) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, String(value));
  }
  return node;
}

/** An HTML element with attributes and children (strings become text). */
export function el(tag, attributes, ...children) {
  return append(setAttributes(document.createElement(tag), attributes), children);
}

/** An SVG element, likewise. */
export function svg(tag, attributes, ...children) {
  return append(setAttributes(document.createElementNS(SVG_NS, tag), attributes), children);
}

/** Replace a node's content. */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** A table with a header row and body rows (arrays of cells or of {text, ...attributes}). */
export function table(headers, rows, attributes) {
  const cell = (tag, value) =>
    value instanceof Node || typeof value !== "object" || value === null
      ? el(tag, null, value ?? "—")
      : el(tag, value.attributes, value.content ?? "—");
  return el(
    "table",
    attributes,
    el("thead", null, el("tr", null, headers.map((h) => cell("th", h)))),
    el(
      "tbody",
      null,
      rows.map((row) => el("tr", row.attributes, row.cells.map((c) => cell("td", c)))),
    ),
  );
}
