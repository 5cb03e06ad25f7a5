// The Materialize and Diff pages.
"use strict";

(function () {
  const result = document.getElementById("result");
  const page = document.body.dataset.page;

  function message(m) {
    const text = typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2);
    return cairn.el("div", { class: `message ${m.role}` }, cairn.el("div", { class: "role" }, m.role), cairn.el("pre", {}, text || ""));
  }

  async function materialize() {
    const q = cairn.query();
    const data = await cairn.api("materialize", { rev: q.rev, as_of: q.as_of, budget: q.budget, format: q.format });
    const summary = cairn.el("p", { id: "summary" },
      `${data.commit_count} items, ${data.token_count} tokens (${data.token_source})` + (data.budget ? ` of a budget of ${data.budget}` : "") +
      ` at ${data.rev}` + (data.as_of ? ` as of ${data.as_of}` : "") + `; ${data.dropped.length}${data.dropped_truncated ? "+" : ""} dropped` +
      (data.dropped_truncated ? ` (the newest ${data.dropped.length} listed)` : "") + ".");
    const messages = data.format === "text"
      ? [cairn.el("pre", { class: "message" }, data.messages)]
      : (data.format === "anthropic" && data.messages.system !== undefined
        ? [message({ role: "system", content: data.messages.system }), ...data.messages.messages.map(message)]
        : data.messages.map(message));
    const items = cairn.el("table", { id: "items" }, cairn.el("thead", {}, cairn.el("tr", {}, ["item", "type", "priority", "tokens", "text"].map((h) => cairn.el("th", {}, h)))),
      cairn.el("tbody", {}, data.items.map((i) => cairn.el("tr", {},
        cairn.el("td", {}, cairn.el("a", { href: "/?commit=" + i.item, class: "hash" }, cairn.short(i.item))),
        cairn.el("td", {}, i.content_type), cairn.el("td", {}, i.priority), cairn.el("td", {}, i.tokens), cairn.el("td", {}, cairn.text(i.content))))));
    const reasons = Object.entries(data.dropped_by_reason).map(([r, n]) => `${n} ${r}`).join(", ") || "nothing";
    const dropped = cairn.el("table", { id: "dropped" }, cairn.el("thead", {}, cairn.el("tr", {}, ["commit", "why", "tokens"].map((h) => cairn.el("th", {}, h)))),
      cairn.el("tbody", {}, data.dropped.map((d) => cairn.el("tr", {},
        cairn.el("td", {}, cairn.el("a", { href: "/?commit=" + d.commit, class: "hash" }, cairn.short(d.commit))),
        cairn.el("td", {}, d.reason), cairn.el("td", {}, d.tokens ?? "")))));
    result.replaceChildren(summary, cairn.el("h2", {}, "Messages"), cairn.el("div", { id: "messages" }, messages),
      cairn.el("h2", {}, "Items"), items, cairn.el("h2", {}, `Dropped: ${reasons}`), dropped);
  }

  async function diff() {
    const q = cairn.query();
    if (!q.a) {
      result.replaceChildren(cairn.el("p", { class: "empty" }, "Give two revisions (a branch, a commit, HEAD~2) to compare what is materialized at each."));
      return;
    }
    const data = await cairn.api("diff", { a: q.a, b: q.b });
    const marks = { added: "+", removed: "−", changed: "~" };
    const rows = data.entries.map((e) => cairn.el("tr", { class: e.status },
      cairn.el("td", {}, `${marks[e.status]} ${e.status}`),
      cairn.el("td", {}, cairn.el("a", { href: "/?commit=" + e.item, class: "hash" }, cairn.short(e.item))),
      cairn.el("td", {}, cairn.text(e.before)), cairn.el("td", {}, cairn.text(e.after))));
    result.replaceChildren(cairn.el("p", { id: "summary" }, `${data.entries.length} differences from ${data.a} to ${data.b}`),
      cairn.el("table", { id: "diff" }, cairn.el("thead", {}, cairn.el("tr", {}, ["change", "item", "before", "after"].map((h) => cairn.el("th", {}, h)))),
        cairn.el("tbody", {}, rows)));
  }

  cairn.branchNames().catch(() => {});
  (page === "diff" ? diff() : materialize()).catch((error) => cairn.fail(result, error)).finally(cairn.ready);
})();
