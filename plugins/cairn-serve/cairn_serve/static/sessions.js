// The sessions pages: every session, one session (totals, runs, checkpoints), and every checkpoint.
"use strict";

(function () {
  const tbody = (id) => document.querySelector(`#${id} tbody`);
  const sessionLink = (id) => (id ? cairn.el("a", { href: "/sessions/" + encodeURIComponent(id), class: "hash" }, id) : "");
  const commitLink = (h) => (h ? cairn.el("a", { href: "/?commit=" + h, class: "hash" }, cairn.short(h)) : "");
  const status = (s) => cairn.el("span", { class: "status-" + s }, s);
  const cost = (t) => cairn.money(t.cost) + (t.unpriced ? ` (+${t.unpriced} unpriced)` : "");

  async function sessions() {
    const data = await cairn.api("sessions");
    cairn.rows(tbody("sessions"), data, (s) => [sessionLink(s.id), s.title, status(s.status), s.provider || "", s.model || "",
      cairn.time(s.created), cairn.time(s.last_active), s.totals.turns, `${s.totals.input_tokens}/${s.totals.output_tokens}`,
      cost(s.totals), s.branch], "no sessions yet: `cairn session new --title TITLE` starts one");
  }

  async function session() {
    const id = document.getElementById("session-id").textContent;
    const s = await cairn.api("sessions/" + encodeURIComponent(id));
    const rev = encodeURIComponent(s.branch);
    document.getElementById("session-links").replaceChildren(
      cairn.el("a", { id: "materialize-link", href: "/materialize?rev=" + rev }, "materialized view of " + s.branch),
      " · ",
      s.head ? cairn.el("a", { id: "log-link", href: "/?commit=" + s.head }, "its log in the history graph") : "no commits yet");
    const shown = { title: s.title, status: s.status, branch: s.branch, provider: s.provider, model: s.model,
      tools: s.tools.join(", "), created: cairn.time(s.created), "last active": cairn.time(s.last_active), head: s.head, start: s.start };
    document.getElementById("session-record").replaceChildren(cairn.el("table", {}, Object.entries(shown)
      .filter(([, v]) => v !== null && v !== "")
      .map(([k, v]) => cairn.el("tr", {}, cairn.el("th", {}, k), cairn.el("td", {}, k === "status" ? status(v) : v)))));
    const t = s.totals;
    cairn.rows(tbody("totals"), [t], () => [t.turns, t.partial, t.input_tokens, t.output_tokens, cairn.money(t.cost), t.unpriced, t.runs]);
    const runLink = (r) => (r.missing ? `${r.run_id} (not in the ledger)` : cairn.el("a", { href: "/runs/" + encodeURIComponent(r.run_id), class: "hash" }, r.run_id));
    cairn.rows(tbody("session-runs"), s.runs, (r) => [runLink(r), r.status ? status(r.status) : "", cairn.time(r.started_at), r.summary || ""],
      "no runs: `cairn ask` on the session's branch makes one");
    cairn.rows(tbody("session-checkpoints"), s.checkpoints, (c) => [c.name, commitLink(c.commit), c.tokens, cairn.time(c.created), c.message || ""],
      "no checkpoints of this session");
  }

  async function checkpoints() {
    const data = await cairn.api("checkpoints");
    cairn.rows(tbody("checkpoints"), data, (c) => [c.name + (c.auto ? " (auto)" : ""), commitLink(c.commit), c.branch || "",
      sessionLink(c.session), c.tokens, cairn.time(c.created), c.message || ""],
      "no checkpoints yet: `cairn checkpoint create NAME` makes one");
  }

  const pages = { sessions, session, checkpoints };
  const page = pages[document.body.dataset.page];
  if (page) {
    page().catch((error) => {
      const box = cairn.el("div", { id: "page-error" });
      document.getElementById("main").prepend(box);
      cairn.fail(box, error);
    }).finally(cairn.ready);
  }
})();
