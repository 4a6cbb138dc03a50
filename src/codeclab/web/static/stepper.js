// The frame stepper: previous/next and the rung menu swap the three pictures (source, decode,
// error heatmap) and the frame's metrics, from the page's per-frame JSON twin.
"use strict";

(async () => {
  const root = document.getElementById("stepper");
  if (!root) return;
  const data = await fetch(root.dataset.frames).then((answer) => answer.json());
  const menu = document.getElementById("stepper-rung");
  const previous = document.getElementById("stepper-prev");
  const next = document.getElementById("stepper-next");
  const position = document.getElementById("stepper-position");
  const pictures = ["source", "decoded", "heatmap"].map((kind) => ({
    kind,
    img: document.getElementById(`stepper-${kind}`),
  }));
  const cells = root.querySelectorAll("[data-metric]");
  let rung = data.rungs[Number(menu.value)];
  let index = 0;

  const show = () => {
    for (const { kind, img } of pictures) {
      img.src = rung.images.replace("{index}", index).replace("{kind}", kind);
      img.width = rung.width;
      img.height = rung.height;
    }
    position.textContent = `Frame ${index + 1} of ${rung.count}`;
    const metrics = rung.frames[index] || {};
    for (const cell of cells) {
      const value = metrics[cell.dataset.metric];
      cell.textContent = value === null || value === undefined ? "–" : value.toFixed(Number(cell.dataset.digits));
    }
    previous.disabled = index === 0;
    next.disabled = index >= rung.count - 1;
  };

  // A picture the lab refuses to show says why, under it.
  for (const { img } of pictures) {
    const reason = img.parentElement.querySelector(".reason");
    img.addEventListener("load", () => {
      reason.textContent = "";
    });
    const explain = async () => {
      const answer = await fetch(img.src).catch(() => null);
      const body = answer ? await answer.json().catch(() => ({})) : {};
      reason.textContent = body.detail || "This picture cannot be shown.";
    };
    img.addEventListener("error", explain);
    if (img.complete && !img.naturalWidth) explain();
  }

  menu.addEventListener("change", () => {
    rung = data.rungs[Number(menu.value)];
    index = Math.min(index, rung.count - 1);
    show();
  });
  previous.addEventListener("click", () => {
    index = Math.max(0, index - 1);
    show();
  });
  next.addEventListener("click", () => {
    index = Math.min(rung.count - 1, index + 1);
    show();
  });
})();
