// The History page: the commit graph as SVG, the commit panel, the branches table.
"use strict";

(function () {
  const ROW = 26, LANE = 18, LEFT = 14, COLORS = ["#2f6fde", "#1a7f37", "#7a5af8", "#c0362c", "#b7791f", "#0e7490"];
  const graphBox = document.getElementById("graph");
  const panel = document.getElementById("commit-panel");

  function y(row) { return 16 + row * ROW; }
  function x(lane) { return LEFT + lane * LANE; }

  function draw(graph) {
    const byHash = new Map(graph.nodes.map((n) => [n.hash, n]));
    const textX = x(Math.max(graph.lanes, 1)) + 12;
    const width = textX + 760, height = y(graph.nodes.length) + 4;
    const root = cairn.svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${graph.nodes.length} commits` });
    const edges = cairn.svg("g", { class: "edges" });
    for (const edge of graph.edges) {
      const a = byHash.get(edge.from), b = byHash.get(edge.to);
      let d;
      if (edge.kind === "edit" || edge.kind === "delete") {
        // A change points back at the item it changes: an arc on the right of the lanes.
        const bend = textX - 6;
        d = `M ${x(a.lane)} ${y(a.row)} C ${bend} ${y(a.row)}, ${bend} ${y(b.row)}, ${x(b.lane)} ${y(b.row)}`;
      } else if (a.lane === b.lane) {
        d = `M ${x(a.lane)} ${y(a.row)} L ${x(b.lane)} ${y(b.row)}`;
      } else {
        d = `M ${x(a.lane)} ${y(a.row)} C ${x(a.lane)} ${y(a.row) + ROW}, ${x(b.lane)} ${y(b.row) - ROW}, ${x(b.lane)} ${y(b.row)}`;
      }
      edges.append(cairn.svg("path", { class: `edge ${edge.kind}`, d, "data-kind": edge.kind }));
    }
    root.append(edges);
    for (const node of graph.nodes) {
      const color = COLORS[node.lane % COLORS.length];
      const group = cairn.svg("g", { class: "commit", tabindex: 0, "data-hash": node.hash, "data-operation": node.operation,
        onclick: () => open(node.hash), onkeydown: (e) => { if (e.key === "Enter") open(node.hash); } });
      group.append(cairn.svg("circle", { cx: x(node.lane), cy: y(node.row), r: node.operation === "append" ? 6 : 5,
        fill: node.operation === "append" ? color : "#fff", stroke: color, "stroke-width": 2 }));
      let tx = textX;
      const line = cairn.svg("text", { x: tx, y: y(node.row) + 4 });
      line.append(cairn.svg("tspan", { class: "hash" }, node.short.slice(0, 8) + " "));
      for (const name of node.branches) line.append(cairn.svg("tspan", { class: "label" }, `(${name}) `));
      if (node.head) line.append(cairn.svg("tspan", { class: "label" }, "HEAD "));
      const what = node.operation === "append" ? (node.content_type || "") : `${node.operation} → ${(node.target || "").slice(0, 8)}`;
      line.append(cairn.svg("tspan", { class: "muted" }, what + " "));
      line.append(cairn.svg("tspan", {}, node.summary || node.message || ""));
      group.append(line);
      group.append(cairn.svg("title", {}, `${node.hash}\n${node.created_at}`));
      root.append(group);
    }
    graphBox.replaceChildren(root);
    const note = document.getElementById("graph-note");
    note.textContent = graph.nodes.length ? `${graph.nodes.length} commits on ${Object.keys(graph.branches).length} branches` +
      (graph.truncated ? ` (the newest ${graph.limit}; raise "commits shown" for more)` : "") : "No commits yet: `cairn commit` makes one.";
  }

  async function open(hash) {
    for (const node of graphBox.querySelectorAll(".commit.selected")) node.classList.remove("selected");
    const selected = graphBox.querySelector(`.commit[data-hash="${hash}"]`);
    if (selected) selected.classList.add("selected");
    try {
      const c = await cairn.api("commits/" + encodeURIComponent(hash));
      const fields = cairn.el("table", {}, [
        ["commit", c.hash], ["operation", c.operation], ["item", c.item], ["parent", c.parent], ["reply to", c.reply_to],
        ["created", c.created_at], ["type", c.content_type], ["tokens", `${c.token_count} (total ${c.cumulative_tokens})`],
        ["message", c.message], ["branches", c.branches.join(", ")],
      ].filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) =>
        cairn.el("tr", {}, cairn.el("th", {}, k), cairn.el("td", { class: k === "commit" || k === "item" || k === "parent" ? "hash" : null }, v))));
      const parts = [cairn.el("h2", { id: "commit-title" }, "Commit " + c.hash.slice(0, 12)), fields];
      if (c.content) parts.push(cairn.el("h2", {}, "Item"), cairn.el("pre", { id: "commit-content" }, JSON.stringify(c.content, null, 2)));
      if (Object.keys(c.metadata || {}).length) parts.push(cairn.el("h2", {}, "Metadata"), cairn.el("pre", {}, JSON.stringify(c.metadata, null, 2)));
      parts.push(cairn.el("h2", {}, "Annotations"));
      parts.push(c.annotations.length ? cairn.el("ul", { id: "commit-annotations" }, c.annotations.map((a) =>
        cairn.el("li", {}, `${cairn.time(a.created_at)} ${a.priority}` + (a.reason ? ` — ${a.reason}` : "")))) : cairn.el("p", { class: "empty" }, "none"));
      parts.push(cairn.el("h2", {}, "Edit history"));
      parts.push(c.history.length ? cairn.el("ol", { id: "commit-history" }, c.history.map((h) =>
        cairn.el("li", {}, cairn.el("code", {}, h.hash.slice(0, 12)), ` ${h.operation} ${cairn.time(h.created_at)} `, cairn.text(h.content)))) :
        cairn.el("p", { class: "empty" }, "never edited or deleted"));
      panel.replaceChildren(...parts);
    } catch (error) {
      cairn.fail(panel, error);
    }
  }

  async function load() {
    const q = cairn.query();
    try {
      const [graph, branches] = await Promise.all([cairn.api("graph", { limit: q.limit }), cairn.api("branches")]);
      draw(graph);
      cairn.rows(document.querySelector("#branches tbody"), branches, (b) => [
        b.current ? `* ${b.name}` : b.name, cairn.el("code", {}, cairn.short(b.head)), b.commits, b.tokens, cairn.time(b.updated_at)], "no branches yet");
      if (q.commit) await open(q.commit);
    } catch (error) {
      cairn.fail(graphBox, error);
    }
    cairn.ready();
  }
  load();
})();
