// The ledger pages: runs, one run, provider calls, chat, evals, spend.
"use strict";

(function () {
  const q = cairn.query();
  const main = document.getElementById("main");
  const status = (s) => cairn.el("span", { class: "status-" + s }, s);
  const link = (id) => cairn.el("a", { href: "/runs/" + encodeURIComponent(id), class: "hash" }, id);
  const tbody = (id) => document.querySelector(`#${id} tbody`);

  async function runs() {
    const data = await cairn.api("runs", { type: q.type, status: q.status, since: q.since, limit: q.limit });
    cairn.rows(tbody("runs"), data, (r) => [link(r.run_id), r.type, r.subtype || "", status(r.status), cairn.time(r.started_at),
      r.duration_ms === null ? "" : (r.duration_ms / 1000).toFixed(1) + " s", r.summary], "no runs recorded");
  }

  async function run() {
    const id = document.getElementById("run-id").textContent;
    const data = await cairn.api("runs/" + encodeURIComponent(id));
    const r = data.run;
    document.getElementById("run-record").replaceChildren(cairn.el("table", {}, Object.entries(r)
      .filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length) && !(typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length))
      .map(([k, v]) => cairn.el("tr", {}, cairn.el("th", {}, k), cairn.el("td", {}, k === "status" ? status(v) : typeof v === "object" ? cairn.el("pre", {}, JSON.stringify(v, null, 2)) : v)))));
    const timeline = document.getElementById("timeline");
    if (data.events.length) timeline.replaceChildren(charts.timeline(data.events));
    else timeline.replaceChildren(cairn.el("p", { class: "empty" }, "no events"));
    cairn.rows(tbody("events"), data.events, (e) => [e.seq, cairn.time(e.ts), e.type, cairn.el("code", {}, JSON.stringify(e.fields))]);
    document.getElementById("run-chat").replaceChildren(...(data.chat.length ? data.chat.map(chatMessage) : [cairn.el("p", { class: "empty" }, "no messages")]));
  }

  async function logs() {
    const data = await cairn.api("calls", { model: q.model, since: q.since, limit: q.limit });
    const tokens = (u) => (u ? `${u.estimated ? "~" : ""}${u.input_tokens}/${u.output_tokens}` : "");
    const commit = (h) => (h ? cairn.el("a", { href: "/?commit=" + h, class: "hash" }, cairn.short(h)) : "");
    cairn.rows(tbody("calls"), data, (c) => [link(c.id), cairn.time(c.time), c.provider || "", c.model || "", tokens(c.usage),
      c.outcome === "ok" ? cairn.money(c.cost) : "", c.latency_ms === null ? "" : `${Math.round(c.latency_ms)} ms`, status(c.outcome === "ok" ? "ok" : "failed"),
      commit(c.prompt_commit), commit(c.reply_commit)], "no provider calls recorded: `cairn ask` makes one");
  }

  function chatMessage(m) {
    const where = [m.thread_id, m.run_id && "run " + m.run_id].filter(Boolean).join(" ");
    return cairn.el("div", { class: "message", "data-state": m.state },
      cairn.el("div", { class: "role" }, `${cairn.time(m.ts)} ${m.user || "?"} (${where})${m.encrypted ? " 🔒" : ""}`),
      cairn.el("pre", { class: m.state === "locked" || m.state === "undecryptable" ? "locked" : null }, m.text));
  }

  async function chat() {
    const threads = await cairn.api("threads");
    cairn.rows(tbody("threads"), threads, (t) => [cairn.el("a", { href: "?thread=" + encodeURIComponent(t.thread_id) }, t.thread_id), t.title, cairn.time(t.created_at)], "no threads");
    const messages = await cairn.api("messages", { thread: q.thread, limit: 200 });
    document.getElementById("thread-title").textContent = q.thread ? `Thread ${q.thread}` : "Latest messages";
    document.getElementById("messages").replaceChildren(...(messages.length ? messages.map(chatMessage) : [cairn.el("p", { class: "empty" }, "no messages")]));
  }

  async function evals() {
    const data = await cairn.api("evals");
    const means = (aggs) => Object.entries(aggs).map(([label, a]) => `${label} ${cairn.num(a.mean)}`).join(", ");
    cairn.rows(tbody("evals"), data, (r) => [link(r.run_id), r.name || "", r.dataset || "", r.samples ?? "", cairn.time(r.started_at), means(r.aggregates)], "no eval runs: `cairn eval run` records one");
    document.getElementById("eval-runs").replaceChildren(...data.map((r) => cairn.el("option", { value: r.run_id }, r.name || "")));
    const target = document.getElementById("comparison");
    const base = q.base || (data.length > 1 ? "@prev" : ""), other = q.run || (data.length > 1 ? "@last" : "");
    if (!base || !other) {
      target.replaceChildren(cairn.el("p", { class: "empty" }, "Two eval runs are needed for a comparison."));
      return;
    }
    try {
      const c = await cairn.api("evals/compare", { base, run: other, resamples: q.resamples });
      const table = cairn.el("table", { id: "comparison-table" }, cairn.el("thead", {}, cairn.el("tr", {},
        ["evaluator", "paired", "base mean", "run mean", "difference", "95% CI", "p (bootstrap)", "p (McNemar)", "verdict"].map((h) => cairn.el("th", {}, h)))),
        cairn.el("tbody", {}, c.evaluators.map((r) => cairn.el("tr", {}, [r.label, r.paired, cairn.num(r.base_mean), cairn.num(r.run_mean), cairn.num(r.mean_difference),
          `[${cairn.num(r.ci_low)}, ${cairn.num(r.ci_high)}]`, cairn.num(r.p_value, 4), cairn.num(r.mcnemar_p_value, 4), r.verdict].map((v) => cairn.el("td", {}, v))))));
      target.replaceChildren(cairn.el("p", {}, `${c.run_name || c.run} against ${c.base_name || c.base}`), charts.comparison(c), table);
    } catch (error) {
      cairn.fail(target, error);
    }
  }

  async function spend() {
    const data = await cairn.api("spend", { since: q.since });
    const by = q.by === "provider" ? "provider" : "model";
    const chart = document.getElementById("spend-chart");
    if (data.groups.length) chart.replaceChildren(...charts.spend(data.groups, by));
    else chart.replaceChildren(cairn.el("p", { class: "empty" }, "no provider calls recorded"));
    const money = (g) => (g.cost !== null ? g.cost.toFixed(6) : g.priced_cost ? `${g.priced_cost.toFixed(6)} + unknown (${g.unpriced_calls} unpriced)` : "unknown");
    cairn.rows(tbody("spend"), data.groups, (g) => [g.day, g.provider, g.model, g.calls, g.failed, g.input_tokens, g.output_tokens, money(g)]);
  }

  const pages = { runs, run, logs, chat, evals, spend };
  const page = pages[document.body.dataset.page];
  if (page) {
    page().catch((error) => {
      const box = cairn.el("div", { id: "page-error" });
      main.prepend(box);
      cairn.fail(box, error);
    }).finally(cairn.ready);
  }
})();
