// Draws the experiment page's charts (Plotly, with plots.js) from its JSON twins: RD curves per
// clip against the baselines on a logarithmic rate axis, the BD-rate ranges shaded, and
// per-frame PSNR-Y / SSIM-Y with a line per quality.
"use strict";

(async () => {
  const root = document.getElementById("charts");
  if (!root || !window.Plotly || !window.codeclab) return;
  const { json, config, layout, rdTraces, rdLayout, label, escape } = window.codeclab;
  const [rd, frames] = await Promise.all([json(root.dataset.rd), json(root.dataset.frames)]);

  for (const chart of root.querySelectorAll("[data-rd-clip]")) {
    const clip = rd.clips.find((c) => c.clip === chart.dataset.rdClip);
    if (!clip) continue;
    const metric = chart.dataset.metric;
    const ranges = clip.ranges
      .filter((r) => r.metric === metric)
      .map((r) => ({ ...r, label: `BD-rate range vs ${r.encoder}` }));
    Plotly.newPlot(chart, rdTraces(clip.series, metric), rdLayout(metric, ranges), config);
  }

  for (const chart of root.querySelectorAll("[data-frames-clip]")) {
    const metric = chart.dataset.metric;
    const traces = frames.rungs
      .filter((rung) => rung.clip === chart.dataset.framesClip)
      .map((rung) => ({
        name: escape(`quality ${rung.quality}`),
        x: rung.frames.map((f) => f.index + 1),
        y: rung.frames.map((f) => f[metric]),
        mode: "lines+markers",
      }));
    Plotly.newPlot(chart, traces, layout("frame (1 = first)", label[metric]), config);
  }
})();
