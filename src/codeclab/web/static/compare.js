// The comparison player: the source video (or the play button) drives the decoded one (play,
// pause, seek, rate); the range input moves the wipe line (CSS clips the decode at it).
"use strict";

(() => {
  const source = document.getElementById("compare-source");
  const decoded = document.getElementById("compare-decoded");
  const stage = document.getElementById("compare-stage");
  const wipe = document.getElementById("wipe");
  if (!source || !decoded) return;

  const follow = () => {
    if (Math.abs(decoded.currentTime - source.currentTime) > 0.05) {
      decoded.currentTime = source.currentTime;
    }
  };
  source.addEventListener("play", () => {
    follow();
    decoded.play().catch(() => {});
  });
  source.addEventListener("pause", () => {
    decoded.pause();
    follow();
  });
  source.addEventListener("seeked", follow);
  source.addEventListener("timeupdate", follow);
  source.addEventListener("ratechange", () => {
    decoded.playbackRate = source.playbackRate;
  });

  document.getElementById("compare-play").addEventListener("click", () => {
    if (source.paused) source.play();
    else source.pause();
  });

  const cut = () => stage.style.setProperty("--wipe", `${wipe.value}%`);
  wipe.addEventListener("input", cut);
  cut();
})();
