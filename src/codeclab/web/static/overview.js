// The overview's charts (Plotly, with plots.js): the search's progress per campaign (best-so-far
// holdout BD-rate against iteration and wall time, every experiment a point coloured by status
// and cascade stage) and, per clip, the RD frontier of all experiments against the baselines.
"use strict";

window.addEventListener("DOMContentLoaded", async () => {
  if (!window.Plotly || !window.codeclab) return;
  const { json, config, layout, rdTraces, rdLayout, escape } = window.codeclab;
  const colours = {
    "ok, evaluated in full": "#0a7a3b",
    "ok, stopped at the screen": "#e8a33d",
    "ok, stopped after the train set": "#b8860b",
    ok: "#5b8def",
    failed: "#b42318",
    rejected: "#7a2e8e",
  };
  const category = (p) => {
    if (p.status !== "ok") return p.status;
    if (p.stage === "full") return "ok, evaluated in full";
    if (p.stage === "screen") return "ok, stopped at the screen";
    if (p.stage === "train") return "ok, stopped after the train set";
    return "ok";
  };
  const short = (id) => (id.length > 12 ? id.slice(0, 8) : id);

  const progress = document.getElementById("progress");
  if (progress) {
    const campaigns = await json(progress.dataset.src);
    for (const chart of progress.querySelectorAll("[data-axis]")) {
      const axis = chart.dataset.axis;
      const lines = [];
      const points = {};
      for (const campaign of campaigns) {
        const start = Date.parse(campaign.started_at || campaign.points[0]?.created_at);
        const x = (p) => (axis === "iteration" ? p.iteration : (Date.parse(p.created_at) - start) / 60000);
        let best = null;
        const steps = [];
        for (const p of campaign.points) {
          const own = p.leaderboard_bd_rate;
          if (own !== null && (best === null || own < best)) best = own;
          steps.push([x(p), best]);
          if (own === null && best === null) continue; // nothing to sit on yet
          const kind = category(p);
          points[kind] ??= { x: [], y: [], text: [], symbol: [], ids: [] };
          points[kind].x.push(x(p));
          points[kind].y.push(own ?? best);
          points[kind].symbol.push(own === null ? "x" : "circle");
          points[kind].ids.push(p.experiment_id);
          const figure = own === null ? "no holdout BD-rate" : `${own.toFixed(2)}% vs ${p.leaderboard_anchor}`;
          points[kind].text.push(escape(`${p.program_name} (iteration ${p.iteration}): ${figure}`));
        }
        const anchor = campaign.points.find((p) => p.leaderboard_anchor)?.leaderboard_anchor;
        lines.push({
          name: escape(`campaign ${short(campaign.campaign_id)}${anchor ? ` vs ${anchor}` : ""}: best so far`),
          x: steps.map((s) => s[0]),
          y: steps.map((s) => s[1]),
          mode: "lines",
          line: { shape: "hv", width: 2 },
          hoverinfo: "skip",
        });
      }
      const dots = Object.entries(points).map(([kind, p]) => ({
        name: escape(kind),
        x: p.x,
        y: p.y,
        text: p.text,
        customdata: p.ids,
        mode: "markers",
        marker: { color: colours[kind] || "#667085", symbol: p.symbol, size: 7 },
        hovertemplate: "%{text}<extra>%{fullData.name}</extra>",
      }));
      const xTitle = axis === "iteration" ? "iteration" : "minutes since the campaign started";
      const extra = {
        shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { dash: "dot", color: "#98a2b3" } }],
      };
      Plotly.newPlot(chart, [...lines, ...dots], layout(xTitle, "holdout BD-rate (%)", extra), config);
      chart.on("plotly_click", (event) => {
        const id = event.points[0]?.customdata;
        if (id) window.location.href = `/experiments/${encodeURIComponent(id)}`;
      });
    }
  }

  const frontier = document.getElementById("frontier");
  if (frontier) {
    const clips = await json(frontier.dataset.src);
    if (!clips.length) frontier.textContent = "No experiment on the leaderboard yet: no frontier.";
    for (const clip of clips) {
      const figure = document.createElement("figure");
      figure.className = "plot";
      const caption = document.createElement("figcaption");
      caption.textContent = `${clip.clip}: the frontier of ${clip.experiments} experiments against the baselines`;
      const chart = document.createElement("div");
      chart.className = "chart";
      chart.dataset.frontierClip = clip.clip;
      figure.append(caption, chart);
      frontier.append(figure);
      const hull = {
        name: "frontier (all experiments)",
        x: clip.frontier.map((p) => p.kbps),
        y: clip.frontier.map((p) => p.psnr_y),
        text: clip.frontier.map((p) => escape(`${p.program_name}, quality ${p.quality}`)),
        customdata: clip.frontier.map((p) => p.experiment_id),
        hovertemplate: "%{text}<br>%{x:.1f} kbps<br>%{y:.2f} dB<extra>frontier</extra>",
        mode: "lines+markers",
        line: { color: "#0a7a3b", width: 3 },
      };
      Plotly.newPlot(chart, [hull, ...rdTraces(clip.baselines, "psnr_y")], rdLayout("psnr_y"), config);
      chart.on("plotly_click", (event) => {
        const id = event.points[0]?.customdata;
        if (id) window.location.href = `/experiments/${encodeURIComponent(id)}`;
      });
    }
  }
});
