"""Where do the bits go? Each seed program's bitstream broken down by what it carries, next
to x264's rate at the same PSNR-Y::

    .venv/bin/python benchmarks/bench_bits.py [--clips PATH ...] [--frames N]
        [--programs composed,inter_mc,intra_dct] [--quality Q] [--json]

Programs run in-process here: they are the lab's own trusted seeds, never a designer's
proposal. A composed program's range coder calls ``BIT_LOG(key, bits)`` (a switch that is
``None`` in every program run) with the ideal bits (-log2 p under its adaptive model) of
every symbol it codes; the hand-written seeds' coders are wrapped in their namespace the same
way. Neither changes a byte of the stream (the test checks the sha256). Bits are booked by
picture type (I, P, B), category (header, modes, motion vectors, coefficients of Y, U, V) and
part (skip flags, intra modes, ends of blocks, levels, escapes, signs, ...); ``header`` is the
bitstream's size minus every accounted symbol: the header, the CRC, the range coder's flush
and its rounding. Without ``--quality`` each program runs at the quality whose PSNR-Y is
nearest x264's at CRF 27 on the clip; x264's rate at the program's PSNR-Y comes from PCHIP of
log-rate over x264's PSNR-Y at CRF 22..37 (the lab's settings, cached by clip hash).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator

from codeclab.config import SAMPLE_CLIP
from codeclab.design.compose import INTRA_DEFAULT, compose
from codeclab.evaluate.baselines import cached_rung
from codeclab.evaluate.metrics import score
from codeclab.media import Clip, MediaError, load_clip

PROGRAMS = Path(__file__).resolve().parents[1] / "src" / "codeclab" / "programs"
NATURAL = Path(__file__).resolve().parents[1] / "src" / "codeclab" / "data" / "natural"
TRAIN_PREFIXES = ("cars_", "carphone_", "bikes_")
"""The natural set's train clips by name; its holdout clips are never measured here."""
X264_CRFS = (22, 27, 32, 37)
MATCH_CRF = 27
PICTURES = {0: "I", 1: "P", 2: "B", 3: "B"}


def seed_sources() -> dict[str, str]:
    """The seed programs by name: the default composition and the two hand-written ones."""
    return {
        "composed": compose(),
        "composed_intra": compose(INTRA_DEFAULT),
        "inter_mc": (PROGRAMS / "inter_mc.py").read_text(),
        "intra_dct": (PROGRAMS / "intra_dct.py").read_text(),
    }


@dataclass
class Ledger:
    """Bits by (picture type, category, part), and what the program is coding right now."""

    bits: dict[tuple[str, str, str], float] = field(default_factory=lambda: defaultdict(float))
    picture: str = "I"
    plane: str = "Y"
    chroma_seen: int = 0
    chroma_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, category: str, part: str, bits: float) -> None:
        self.bits[(self.picture, category, part)] += float(bits)

    def start_picture(self, picture: str) -> None:
        self.picture, self.plane, self.chroma_seen = picture, "Y", 0
        self.chroma_kinds.clear()

    def total(self) -> float:
        return float(sum(self.bits.values()))


# ---------------------------------------------------------------- composed programs

MODE_PARTS = {
    "skip": "skip flags",
    "split": "split flags",
    "intra_mb": "intra flags",
    "b_mode": "B modes",
    "scene": "scene cuts",
}


def composed_part(ledger: Ledger, key: tuple) -> tuple[str, str]:
    """Category and part of a composed program's model key (kind, ..., role)."""
    kind, role = str(key[0]), str(key[-1] if not isinstance(key[-1], int) else key[-2])
    if kind in MODE_PARTS:
        return "modes", MODE_PARTS[kind]
    if kind.endswith("_mode"):
        return "modes", "intra modes"
    if kind.endswith("_tx"):
        return "modes", "transform size"
    parts = {"eob": "ends", "mag": "levels", "exp": "escapes", "escape": "escapes"}
    parts.update(sign="signs", int="vectors")
    if kind.startswith(("mv", "b_mv")):
        return "vectors", parts[role]
    return f"coef {ledger.plane}", parts.get(role, role)


def composed_namespace(source: str, ledger: Ledger) -> dict:
    """The composed program run in a namespace whose coder books every symbol in ``ledger``:
    ``BIT_LOG`` set, the picture functions wrapped to say the picture type, the coder's
    ``levels`` wrapped to say the plane (chroma planes code U then V, one call each)."""
    ns = run_source(source)
    if "BIT_LOG" not in ns:
        raise ValueError("this composed program's entropy coder has no bit accounting")
    ns["BIT_LOG"] = lambda key, bits: ledger.add(*composed_part(ledger, key), bits)
    for name, picture in (("code_intra", "I"), ("code_inter", "P"), ("code_bipred", "B")):
        ns[name] = on_call(ns[name], lambda p=picture: ledger.start_picture(p))
    coder = ns["EntropyCoder"]
    coder.levels = chroma_tracking(coder.levels, ledger)
    return ns


def chroma_tracking(levels: Callable, ledger: Ledger) -> Callable:
    """``levels`` that first sets the ledger's plane: Y for a luma kind, else U for the first
    call of that chroma kind in the picture and V for the second (a chroma plane's residual
    is one ``levels`` call per kind: its inter blocks', then its intra macroblocks')."""

    def tracked(self, kind, *args, **kwargs):
        chroma = kind.split("_")[1].startswith("c")
        if chroma:
            ledger.plane = "UV"[min(ledger.chroma_kinds[kind], 1)]
            ledger.chroma_kinds[kind] += 1
        else:
            ledger.plane = "Y"
        return levels(self, kind, *args, **kwargs)

    return tracked


def on_call(function: Callable, before: Callable[[], None]) -> Callable:
    def wrapped(*args, **kwargs):
        before()
        return function(*args, **kwargs)

    return wrapped


def run_source(source: str) -> dict:
    """Execute a trusted seed's source in a fresh namespace (lab code, never a proposal)."""
    ns: dict = {"__name__": "seed"}
    exec(compile(source, "<seed>", "exec"), ns)  # noqa: S102 - the lab's own seed programs
    return ns


# ---------------------------------------------------------------- hand-written seeds


def handwritten_namespace(source: str, ledger: Ledger) -> dict:
    """A hand-written seed (``_Coder``, ``_Model``, ``_code_plane``, ``_code_tail``) with its
    coder wrapped: models named by the attribute that holds them, planes counted per
    picture (each picture codes Y, U, V through ``_code_plane`` in that order), the picture
    type from which ``_Codec`` method is running."""
    ns = run_source(source)
    names: dict[int, str] = {}
    state = {"coef": False, "escape": False}
    codec = ns["_Codec"]
    init = codec.__init__

    def named_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        for attr, value in vars(self).items():
            holders = value.values() if isinstance(value, dict) else value
            holders = holders if isinstance(holders, (tuple, list)) else [holders]
            for holder in holders:
                if isinstance(holder, ns["_Model"]):
                    names[id(holder)] = attr
                for sub, model in getattr(holder, "__dict__", {}).items():
                    if isinstance(model, ns["_Model"]):
                        names[id(model)] = sub

    codec.__init__ = named_init
    for name, picture in (("intra_picture", "I"), ("inter_picture", "P")):
        if hasattr(codec, name):
            method = getattr(codec, name)
            setattr(codec, name, on_call(method, lambda p=picture: ledger.start_picture(p)))

    code_plane = ns["_code_plane"]

    def counted_plane(*args, **kwargs):
        ledger.plane = "YUV"[ledger.chroma_seen % 3]
        ledger.chroma_seen += 1
        state["coef"] = True
        try:
            return code_plane(*args, **kwargs)
        finally:
            state["coef"] = False

    ns["_code_plane"] = counted_plane
    coder = ns["_Coder"]
    sym, bits = coder.sym, coder.bits

    def counted_sym(self, model, ctx, values):
        probs = model.counts[ctx]  # a copy, taken before the model learns these symbols
        out = sym(self, model, ctx, values)
        if len(out):
            name = names.get(id(model), "other")
            p = probs[np.arange(len(out)), out] / probs.sum(axis=1)
            ledger.add(*handwritten_part(name, state, ledger), -np.log2(p).sum())
            state["escape"] = name in ("exp", "mv_exp")
        return out

    def counted_bits(self, values, n):
        category = f"coef {ledger.plane}" if state["coef"] else "vectors"
        if not state["coef"] and n == 1 and not state["escape"]:
            category = "modes"
        part = (
            "escapes" if state["escape"] else ("signs" if category != "modes" else "picture type")
        )
        ledger.add(category, part, n)
        state["escape"] = False
        return bits(self, values, n)

    coder.sym, coder.bits = counted_sym, counted_bits
    return ns


def handwritten_part(name: str, state: dict, ledger: Ledger) -> tuple[str, str]:
    if state["coef"]:
        parts = {"eob": "ends", "coef": "levels", "exp": "escapes"}
        return f"coef {ledger.plane}", parts.get(name, name)
    if name.startswith("mv"):
        return "vectors", "vectors" if name == "mv_model" else "escapes"
    return "modes", {"skip_model": "skip flags", "res_model": "residual flags"}.get(name, name)


# ---------------------------------------------------------------- measuring


@dataclass
class Run:
    program: str
    quality: int
    bytes: int
    kbps: float
    psnr_y: float
    sha256: str
    bits: dict[tuple[str, str, str], float]


def instrumented(name: str, source: str, ledger: Ledger) -> dict:
    if name.startswith("composed"):
        return composed_namespace(source, ledger)
    return handwritten_namespace(source, ledger)


def measure(name: str, source: str, clip: Clip, quality: int, *, account: bool = True) -> Run:
    """Encode ``clip`` at ``quality`` (with the accounting on), decode it with a plain copy
    of the program, score it."""
    ledger = Ledger()
    plain = run_source(source)
    ns = instrumented(name, source, ledger) if account else plain
    data = bytes(ns["encode"](clip.frames, clip.fps, quality))
    decoded = plain["decode"](data)
    psnr_y = score(clip.frames, decoded).psnr_y
    bits = dict(ledger.bits)
    if account:
        bits[("all", "header", "header, CRC, coder flush")] = len(data) * 8 - ledger.total()
    kbps = len(data) * 8 * clip.fps / len(clip.frames) / 1000
    sha = hashlib.sha256(data).hexdigest()
    return Run(name, quality, len(data), kbps, psnr_y, sha, bits)


def x264_curve(clip: Clip, cache: Path) -> list[tuple[float, float]]:
    """x264's (kbps, PSNR-Y) at CRF 22..37 with the lab's settings, cached by clip hash."""
    rungs = [cached_rung(clip.frames, clip.fps, clip.sha256, "x264", c, cache) for c in X264_CRFS]
    return [(r.kbps, r.psnr_y) for r in rungs]


def x264_rate_at(curve: list[tuple[float, float]], psnr_y: float) -> float | None:
    """x264's kbps at ``psnr_y`` (PCHIP of log-rate over PSNR-Y), None outside its range."""
    points = sorted(curve, key=lambda p: p[1])
    psnrs = np.array([p[1] for p in points])
    if not psnrs[0] <= psnr_y <= psnrs[-1]:
        return None
    log_rate = PchipInterpolator(psnrs, np.log([p[0] for p in points]))
    return float(math.exp(log_rate(psnr_y)))


def matched_quality(name: str, source: str, clip: Clip, target: float) -> int:
    """The quality whose PSNR-Y is nearest ``target``: secant steps on the quality scale."""
    tried: dict[int, float] = {}

    def psnr_at(q: int) -> float:
        if q not in tried:
            tried[q] = measure(name, source, clip, q, account=False).psnr_y
        return tried[q]

    low, high = 30, 70
    for _ in range(4):
        p_low, p_high = psnr_at(low), psnr_at(high)
        slope = (p_high - p_low) / (high - low) if high != low else 0.15
        guess = round(high + (target - p_high) / (slope if slope > 0.01 else 0.15))
        guess = min(100, max(1, guess))
        if guess in tried:
            break
        low, high = high, guess
    psnr_at(high)
    return min(tried, key=lambda q: abs(tried[q] - target))


def default_clips() -> list[Path]:
    """The natural set's train clips where the set exists, else the bundled sample."""
    if NATURAL.is_dir():
        found = sorted(
            p for p in NATURAL.iterdir() if p.suffix in (".mkv", ".y4m", ".mp4")
            and p.name.startswith(TRAIN_PREFIXES)
        )  # fmt: skip
        if found:
            return found
    return [Path(SAMPLE_CLIP)]


# ---------------------------------------------------------------- report


def table(run: Run) -> list[dict]:
    """Rows (picture, category, part, bits, % of the stream), largest first per category."""
    total = run.bytes * 8
    return [
        {"picture": p, "category": c, "part": part, "bits": round(b), "percent": 100 * b / total}
        for (p, c, part), b in sorted(run.bits.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[1]))
    ]


def summary(run: Run) -> dict[str, float]:
    """Percent of the stream per category (all picture types together)."""
    out: dict[str, float] = defaultdict(float)
    for (_, category, _), b in run.bits.items():
        out[category] += 100 * b / (run.bytes * 8)
    return dict(sorted(out.items()))


def print_report(clip: Clip, curve, runs: list[tuple[Run, float | None]]) -> None:
    print(f"\n== {clip.name}: {clip.width}x{clip.height}, {len(clip.frames)} frames")
    print("x264 medium: " + ", ".join(f"CRF {c} {k:.0f} kbps {p:.2f} dB" for c, (k, p) in
                                      zip(X264_CRFS, curve, strict=True)))  # fmt: skip
    for run, x264_kbps in runs:
        ratio = f"{run.kbps / x264_kbps:.2f}x x264 ({x264_kbps:.0f} kbps)" if x264_kbps else "n/a"
        print(f"\n{run.program} q{run.quality}: {run.kbps:.0f} kbps, PSNR-Y {run.psnr_y:.2f} dB,"
              f" {ratio}")  # fmt: skip
        print("  " + ", ".join(f"{c} {v:.1f} %" for c, v in summary(run).items()))
        print(f"  {'pic':4}{'category':10}{'part':28}{'kbits':>9}{'%':>7}")
        for row in table(run):
            print(f"  {row['picture']:4}{row['category']:10}{row['part']:28}"
                  f"{row['bits'] / 1000:9.1f}{row['percent']:7.1f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="+", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--programs", default="composed,inter_mc,intra_dct")
    parser.add_argument("--quality", type=int, default=None, help="default: x264-matched")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench_bits")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sources = seed_sources()
    names = [n.strip() for n in args.programs.split(",") if n.strip()]
    unknown = [n for n in names if n not in sources]
    if unknown or args.frames < 1 or (args.quality is not None and not 1 <= args.quality <= 100):
        print(f"error: unknown program {unknown} (choose from {sorted(sources)}), or bad "
              "--frames/--quality", file=sys.stderr)  # fmt: skip
        return 2
    report = []
    for path in args.clips or default_clips():
        try:
            clip = load_clip(path, max_frames=args.frames)
        except MediaError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        curve = x264_curve(clip, args.cache)
        target = curve[X264_CRFS.index(MATCH_CRF)][1]
        runs = []
        for name in names:
            quality = args.quality or matched_quality(name, sources[name], clip, target)
            run = measure(name, sources[name], clip, quality)
            runs.append((run, x264_rate_at(curve, run.psnr_y)))
        report.append({"clip": str(path), "x264": curve, "runs": [
            {"program": r.program, "quality": r.quality, "kbps": r.kbps, "psnr_y": r.psnr_y,
             "x264_kbps": x, "bytes": r.bytes, "sha256": r.sha256, "summary": summary(r),
             "rows": table(r)} for r, x in runs]})  # fmt: skip
        if not args.json:
            print_report(clip, curve, runs)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
