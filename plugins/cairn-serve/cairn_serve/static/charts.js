// SVG charts: a run's event timeline, an eval comparison, spend by day.
"use strict";

const charts = {
  PALETTE: ["#2f6fde", "#1a7f37", "#7a5af8", "#c0362c", "#b7791f", "#0e7490", "#be185d", "#4d7c0f"],

  // Events on a time axis, one row per event type.
  timeline(events) {
    const types = [...new Set(events.map((e) => e.type))];
    const times = events.map((e) => Date.parse(e.ts));
    const start = Math.min(...times), end = Math.max(...times), span = Math.max(end - start, 1);
    const left = 130, width = 820, rowH = 24, height = 30 + types.length * rowH;
    const root = cairn.svg("svg", { class: "chart", id: "timeline-chart", width: left + width + 20, height, role: "img", "aria-label": "run timeline" });
    types.forEach((type, i) => {
      root.append(cairn.svg("text", { x: 6, y: 24 + i * rowH }, type));
      root.append(cairn.svg("line", { x1: left, x2: left + width, y1: 20 + i * rowH, y2: 20 + i * rowH, stroke: "#eaecf0" }));
    });
    events.forEach((e, n) => {
      const cx = left + ((times[n] - start) / span) * width, cy = 20 + types.indexOf(e.type) * rowH;
      root.append(cairn.svg("circle", { class: "event", cx, cy, r: 5, fill: charts.PALETTE[types.indexOf(e.type) % charts.PALETTE.length] },
        cairn.svg("title", {}, `#${e.seq} ${e.type} ${e.ts}`)));
    });
    root.append(cairn.svg("text", { x: left, y: height - 2, class: "muted" }, cairn.time(events[0].ts)));
    root.append(cairn.svg("text", { x: left + width, y: height - 2, class: "muted", "text-anchor": "end" }, `+${((end - start) / 1000).toFixed(3)} s`));
    return root;
  },

  // Per evaluator: the mean difference (run − base) with its confidence interval, and the p-values.
  comparison(data) {
    const rows = data.evaluators;
    const left = 170, width = 480, rowH = 34, right = 260, height = 50 + rows.length * rowH;
    let lo = -0.05, hi = 0.05;
    for (const r of rows) {
      for (const v of [r.ci_low, r.ci_high, r.mean_difference]) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    const pad = (hi - lo) * 0.1; lo -= pad; hi += pad;
    const sx = (v) => left + ((v - lo) / (hi - lo)) * width;
    const root = cairn.svg("svg", { class: "chart", id: "comparison-chart", width: left + width + right, height, role: "img", "aria-label": "evaluator differences with confidence intervals" });
    root.append(cairn.svg("line", { x1: sx(0), x2: sx(0), y1: 20, y2: height - 20, stroke: "#98a2b3", "stroke-dasharray": "3 3" }));
    root.append(cairn.svg("text", { x: sx(0), y: 14, "text-anchor": "middle", class: "muted" }, "0"));
    root.append(cairn.svg("text", { x: left + width + 10, y: 14, class: "muted" }, "diff [95% CI]   p (bootstrap / McNemar)"));
    rows.forEach((r, i) => {
      const cy = 36 + i * rowH;
      const color = r.verdict === "better" ? "#1a7f37" : r.verdict === "worse" ? "#c0362c" : "#667085";
      root.append(cairn.svg("text", { x: 6, y: cy + 4 }, r.label));
      const group = cairn.svg("g", { class: "evaluator", "data-label": r.label, "data-verdict": r.verdict });
      if (r.ci_low !== null && r.ci_high !== null) {
        group.append(cairn.svg("line", { class: "interval", x1: sx(r.ci_low), x2: sx(r.ci_high), y1: cy, y2: cy, stroke: color, "stroke-width": 3 }));
        for (const v of [r.ci_low, r.ci_high]) group.append(cairn.svg("line", { x1: sx(v), x2: sx(v), y1: cy - 6, y2: cy + 6, stroke: color, "stroke-width": 2 }));
      }
      if (r.mean_difference !== null) group.append(cairn.svg("circle", { class: "difference", cx: sx(r.mean_difference), cy, r: 5, fill: color }));
      group.append(cairn.svg("title", {}, `${r.label}: ${r.verdict}, ${r.paired} paired samples`));
      root.append(group);
      const p = (v) => (v === null ? "–" : v < 0.0001 ? "<0.0001" : v.toFixed(4));
      root.append(cairn.svg("text", { x: left + width + 10, y: cy + 4 },
        `${cairn.num(r.mean_difference)} [${cairn.num(r.ci_low)}, ${cairn.num(r.ci_high)}]   ${p(r.p_value)} / ${p(r.mcnemar_p_value)}`));
    });
    return root;
  },

  // Stacked bars: cost per day, one colour per model (or provider); unpriced calls are hatched grey.
  spend(groups, by) {
    const days = [...new Set(groups.map((g) => g.day))].sort();
    const keys = [...new Set(groups.map((g) => g[by]))].sort();
    const totals = days.map((d) => groups.filter((g) => g.day === d).reduce((s, g) => s + (g.priced_cost || 0), 0));
    const max = Math.max(...totals, 1e-9);
    const left = 70, barW = Math.max(14, Math.min(60, 700 / Math.max(days.length, 1))), chartH = 220, height = chartH + 70;
    const width = left + days.length * (barW + 8) + 20;
    const root = cairn.svg("svg", { class: "chart", id: "spend-svg", width: Math.max(width, 420), height, role: "img", "aria-label": "spend by day" });
    root.append(cairn.svg("text", { x: 6, y: 16, class: "muted" }, `max ${max.toFixed(6)}`));
    root.append(cairn.svg("line", { x1: left - 4, x2: width, y1: chartH + 20, y2: chartH + 20, stroke: "#98a2b3" }));
    days.forEach((day, i) => {
      let top = chartH + 20;
      const x = left + i * (barW + 8);
      for (const key of keys) {
        const cost = groups.filter((g) => g.day === day && g[by] === key).reduce((s, g) => s + (g.priced_cost || 0), 0);
        if (!cost) continue;
        const h = (cost / max) * chartH;
        top -= h;
        root.append(cairn.svg("rect", { class: "bar", x, y: top, width: barW, height: h, fill: charts.PALETTE[keys.indexOf(key) % charts.PALETTE.length], "data-day": day, "data-key": key },
          cairn.svg("title", {}, `${day} ${key}: ${cost.toFixed(6)}`)));
      }
      const unpriced = groups.filter((g) => g.day === day && g.unpriced_calls).reduce((s, g) => s + g.unpriced_calls, 0);
      if (unpriced) root.append(cairn.svg("text", { x: x + barW / 2, y: top - 4, "text-anchor": "middle", class: "muted" }, `+${unpriced}?`));
      root.append(cairn.svg("text", { x: x + barW / 2, y: chartH + 36, "text-anchor": "middle", class: "muted" }, day.slice(5)));
    });
    const legend = cairn.el("div", { class: "legend" }, keys.map((k, i) => cairn.el("span", {}, cairn.el("i", { style: null, "data-color": charts.PALETTE[i % charts.PALETTE.length] }), k)));
    for (const i of legend.querySelectorAll("i")) i.style.background = i.dataset.color;  // CSSOM, allowed by the CSP
    return [root, legend];
  },
};
