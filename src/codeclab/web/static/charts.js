// Draws the experiment page's charts (Plotly) from its JSON twins: RD curves per clip against
// the baselines, and per-frame PSNR-Y / SSIM-Y with a line per quality.
"use strict";

(async () => {
  const root = document.getElementById("charts");
  if (!root || !window.Plotly) return;
  const json = (url) => fetch(url).then((answer) => answer.json());
  const [rd, frames] = await Promise.all([json(root.dataset.rd), json(root.dataset.frames)]);
  const label = { psnr_y: "PSNR-Y (dB)", ssim_y: "SSIM-Y" };
  const config = { responsive: true, displaylogo: false };
  const layout = (x, y) => ({
    height: 320,
    margin: { t: 10, r: 10, b: 80, l: 60 },
    xaxis: { title: { text: x } },
    yaxis: { title: { text: y } },
    legend: { orientation: "h", y: -0.3 },
  });

  for (const chart of root.querySelectorAll("[data-rd-clip]")) {
    const clip = rd.clips.find((c) => c.clip === chart.dataset.rdClip);
    if (!clip) continue;
    const metric = chart.dataset.metric;
    const traces = clip.series.map((series) => ({
      name: series.name,
      x: series.points.map((p) => p.kbps),
      y: series.points.map((p) => p[metric]),
      text: series.points.map((p) => (p.crf === null ? `quality ${p.quality}` : `CRF ${p.crf}`)),
      mode: "lines+markers",
      line: { dash: series.kind === "baseline" ? "dot" : "solid" },
    }));
    Plotly.newPlot(chart, traces, layout("rate (kbps)", `${label[metric]}, mean over frames`), config);
  }

  for (const chart of root.querySelectorAll("[data-frames-clip]")) {
    const metric = chart.dataset.metric;
    const traces = frames.rungs
      .filter((rung) => rung.clip === chart.dataset.framesClip)
      .map((rung) => ({
        name: `quality ${rung.quality}`,
        x: rung.frames.map((f) => f.index + 1),
        y: rung.frames.map((f) => f[metric]),
        mode: "lines+markers",
      }));
    Plotly.newPlot(chart, traces, layout("frame (1 = first)", label[metric]), config);
  }
})();
