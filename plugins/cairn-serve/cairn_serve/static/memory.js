// The memory page: current facts, recent episodes, and search through /api/memory/search.
"use strict";

(function () {
  const q = cairn.query();
  const tbody = (id) => document.querySelector(`#${id} tbody`);
  const id = (m) => cairn.el("span", { class: "hash", title: m.id }, cairn.short(m.id));

  async function overview() {
    const data = await cairn.api("memory", { subject: q.subject });
    cairn.rows(tbody("facts"), data.facts, (f) => [id(f), f.subject || "", f.text, cairn.time(f.created),
      f.revised ? "revised (supersedes an older version)" : "original"], "no facts: `cairn memory remember` keeps one");
    cairn.rows(tbody("episodes"), data.episodes, (e) => [id(e), e.branch || "", e.text, cairn.time(e.created)],
      "no episodes: `cairn memory consolidate` makes them");
    const counts = Object.entries(data.documents).map(([name, n]) => `${name} ${n}`).join(", ");
    document.getElementById("note").textContent = `Searchable documents: ${counts || "none yet (run cairn memory index)"}; ` +
      (data.has_vectors ? "vectors stored, so hybrid and semantic search work." : "no vectors stored, so search is lexical.");
  }

  async function search() {
    const target = document.getElementById("results");
    if (!q.q) return;
    try {
      const results = await cairn.api("memory/search", { q: q.q, mode: q.mode || "lexical", kind: q.kind });
      const table = cairn.el("table", { id: "search-results" }, cairn.el("thead", {}, cairn.el("tr", {},
        ["score", "kind", "id", "snippet"].map((h) => cairn.el("th", {}, h)))), cairn.el("tbody"));
      cairn.rows(table.querySelector("tbody"), results, (r) => [cairn.num(r.score, 4), r.kind === "collection" ? r.collection : r.kind,
        cairn.el("span", { class: "hash", title: r.id }, cairn.short(r.id)), r.snippet], "no results");
      target.replaceChildren(cairn.el("h2", {}, `Results for “${q.q}”`), table);
    } catch (error) {
      cairn.fail(target, error);
    }
  }

  Promise.all([overview(), search()]).catch((error) => {
    const box = cairn.el("div", { id: "page-error" });
    document.getElementById("main").prepend(box);
    cairn.fail(box, error);
  }).finally(cairn.ready);
})();
