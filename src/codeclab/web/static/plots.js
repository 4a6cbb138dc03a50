// What every chart of the dashboard shares (Plotly): the layout (the title is the HTML caption
// above the chart, so the toolbar, inside the chart's top margin, covers nothing), RD traces on a
// logarithmic rate axis with hover text naming quality or CRF, kbps and the score, and the
// shaded band a BD-rate was integrated over.
"use strict";

window.codeclab = (() => {
  const label = {
    psnr_y: "PSNR-Y (dB)", psnr_yuv: "PSNR-YUV (dB)", ssim_y: "SSIM-Y", ms_ssim_y: "MS-SSIM-Y", vmaf: "VMAF",
  };
  const digits = { psnr_y: 2, psnr_yuv: 2, ssim_y: 4, ms_ssim_y: 4, vmaf: 2 };
  const unit = { psnr_y: " dB", psnr_yuv: " dB" };
  const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const config = { responsive: true, displaylogo: false };

  const layout = (x, y, extra = {}) => ({
    height: 340,
    margin: { t: 32, r: 10, b: 80, l: 64 }, // the top margin is the toolbar's row
    xaxis: { title: { text: x } },
    yaxis: { title: { text: y } },
    legend: { orientation: "h", y: -0.3 },
    hovermode: "closest",
    ...extra,
  });

  const setting = (p) => (p.crf === null || p.crf === undefined ? `quality ${p.quality}` : `CRF ${p.crf}`);

  // One trace per series: experiments solid, baselines dotted; points sorted by rate.
  const rdTraces = (series, metric, style = () => ({})) =>
    series.map((s) => ({
      name: escape(s.name),
      x: s.points.map((p) => p.kbps),
      y: s.points.map((p) => p[metric]),
      text: s.points.map(setting),
      hovertemplate: `%{text}<br>%{x:.1f} kbps<br>%{y:.${digits[metric]}f}${unit[metric] || ""}<extra>%{fullData.name}</extra>`,
      mode: "lines+markers",
      line: { dash: s.kind === "baseline" ? "dot" : "solid" },
      ...style(s),
    }));

  // Horizontal bands over the metric range each BD-rate integrated over.
  const bands = (ranges) => ({
    shapes: ranges.map((r) => ({
      type: "rect", xref: "paper", x0: 0, x1: 1, yref: "y", y0: r.low, y1: r.high,
      fillcolor: "#1f5fbf", opacity: 0.08, line: { width: 0 }, layer: "below",
    })),
    annotations: ranges.map((r) => ({
      xref: "paper", x: 0.01, xanchor: "left", yref: "y", y: r.high, yanchor: "top", showarrow: false,
      text: escape(r.label), font: { size: 10, color: "#667085" },
    })),
  });

  const rdLayout = (metric, ranges = []) =>
    layout("rate (kbps, logarithmic)", `${label[metric]}, mean over frames`, {
      xaxis: { title: { text: "rate (kbps, logarithmic)" }, type: "log" },
      ...bands(ranges),
    });

  const json = (url) => fetch(url).then((answer) => answer.json());
  return { label, digits, escape, config, layout, rdTraces, rdLayout, json };
})();
