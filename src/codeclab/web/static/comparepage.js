// Draws the compare page's charts from the figures embedded in it (the /api/compare JSON):
// per clip, A's and B's RD curves and the baselines with B's BD-rate range shaded, and the
// per-frame PSNR-Y of both.
"use strict";

(() => {
  const data = document.getElementById("compare-data");
  if (!data || !window.Plotly || !window.codeclab) return;
  const { config, layout, rdTraces, rdLayout, escape } = window.codeclab;
  const figures = JSON.parse(data.textContent);
  const colours = ["#1f5fbf", "#d9480f"]; // A blue, B orange, baselines Plotly's greys
  const style = (series) => {
    const n = series.name.startsWith("A: ") ? 0 : series.name.startsWith("B: ") ? 1 : null;
    if (n === null) return series.kind === "baseline" ? { line: { dash: "dot", color: "#98a2b3" } } : {};
    return { line: { color: colours[n], width: 3, dash: "solid" }, marker: { color: colours[n], size: 8 } };
  };
  const name = (s, n) => (n === 0 && figures.a.kind === "baseline" ? { ...s, name: `A: ${s.name}` } : s);

  for (const chart of document.querySelectorAll("[data-compare-clip]")) {
    const clip = figures.clips[Number(chart.dataset.compareClip)];
    const metric = chart.dataset.metric;
    const ranges = clip.bd_rate
      .filter((bd) => bd.metric === metric && bd.clipped)
      .map((bd) => ({ low: bd.clipped[0], high: bd.clipped[1], label: "BD-rate range" }));
    const traces = rdTraces(clip.series.map(name), metric, style);
    Plotly.newPlot(chart, traces, rdLayout(metric, ranges), config);
  }

  for (const chart of document.querySelectorAll("[data-compare-frames]")) {
    const clip = figures.clips[Number(chart.dataset.compareFrames)];
    const traces = clip.frames.map((line) => ({
      name: escape(`${line.role.toUpperCase()} quality ${line.quality} (${line.kbps.toFixed(1)} kbps)`),
      x: line.psnr_y.map((_, n) => n + 1),
      y: line.psnr_y,
      mode: "lines+markers",
      line: { color: colours[line.role === "a" ? 0 : 1], dash: line.role === "a" ? "solid" : "dash" },
    }));
    Plotly.newPlot(chart, traces, layout("frame (1 = first)", "PSNR-Y (dB)"), config);
  }
})();
