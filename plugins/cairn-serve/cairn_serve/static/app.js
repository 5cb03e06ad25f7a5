// cairn serve: helpers every page uses. No framework, no build step.
"use strict";

const cairn = {
  // GET /api/<path> with the page's query parameters (or those given); rejects with {error, hint}.
  async api(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(key, value);
    }
    const url = "/api/" + path + (query.toString() ? "?" + query : "");
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const data = await response.json();
    if (!response.ok) throw data;
    return data;
  },

  // The page's own query string as an object.
  query() {
    return Object.fromEntries(new URLSearchParams(location.search));
  },

  // An element: el("td", {class: "x"}, "text", child, ...). Text is always text, never HTML.
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  // Show an API error (or anything thrown) in place of a result.
  fail(target, error) {
    const message = (error && error.error) || String(error);
    const box = cairn.el("div", { class: "error", role: "alert" }, message);
    if (error && error.hint) box.append(cairn.el("div", {}, "hint: " + error.hint));
    target.replaceChildren(box);
  },

  rows(tbody, items, cells, empty) {
    tbody.replaceChildren(...items.map((item) => cairn.el("tr", {}, cells(item).map((c) => cairn.el("td", {}, c)))));
    if (!items.length && empty) {
      tbody.append(cairn.el("tr", {}, cairn.el("td", { colspan: 20, class: "empty" }, empty)));
    }
  },

  short(hash) {
    return hash ? hash.slice(0, 12) : "";
  },
  time(value) {
    return value ? value.slice(0, 19).replace("T", " ") : "";
  },
  money(value) {
    return value === null || value === undefined ? "unknown" : value.toFixed(6);
  },
  num(value, digits) {
    return value === null || value === undefined ? "–" : value.toFixed(digits === undefined ? 3 : digits);
  },
  // One line of a content item's text.
  text(content) {
    if (!content) return "";
    const parts = [];
    for (const [key, value] of Object.entries(content)) {
      if (key !== "content_type" && typeof value === "string") parts.push(value);
    }
    return parts.join(" · ");
  },
  // Mark the page as drawn (tests and scripts wait for body[data-ready]).
  ready() {
    document.body.dataset.ready = "yes";
  },
  // Fill a <datalist> with the branch names (for revision inputs).
  async branchNames() {
    const list = document.getElementById("branch-names");
    if (!list) return;
    const branches = await cairn.api("branches");
    list.replaceChildren(...branches.map((b) => cairn.el("option", { value: b.name })));
  },
};
