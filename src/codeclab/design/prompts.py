"""What the LLM designer says to the model, and how it reads the reasoning in the answer.

The system prompt carries the contract (DESIGN.md section 2, condensed; the allowed imports
come from :mod:`codeclab.contract`, so the two cannot drift apart) and the reply format. The
user prompt carries the campaign so far, as the caller passes it: the latest experiments in
order with their hypotheses and outcomes, the best programs with their RD figures, recent
failures with their errors, the reference encoders' curves, and the parent program in full.
Designers see train-clip scores only: every figure here comes from the records handed in
(``ExperimentRecord.bd_rate`` and ``results``, never the leaderboard's holdout figures), and
programs are ranked by the evolve designer's :func:`~codeclab.design.evolve.fitness`.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from codeclab.contract import allowed_roots
from codeclab.design.evolve import fitness
from codeclab.record import ExperimentRecord, Reasoning, Rung
from codeclab.sandbox.policy import MAX_SOURCE_BYTES

FIELDS = {
    "HYPOTHESIS": "hypothesis",
    "ROOT CAUSE": "root_cause",
    "INSIGHTS": "insights",
    "NEXT STEP": "next_step",
    "EXPECTED KBPS": "expected_kbps",
    "EXPECTED PSNR": "expected_psnr",
    "CONFIDENCE": "confidence",
}
ERROR_CHARS = 4000
DIFF_CHARS = 6000

REPLY_FORMAT = """\
Reply in this format. First the reasoning, one field per line, each label exactly as written:

HYPOTHESIS: <the change you make and why it should code the same pictures in fewer bits, \
or better pictures in the same bits>
ROOT CAUSE: <what in the parent's results or code holds it back now>
INSIGHTS: <what the experiments so far teach>
NEXT STEP: <the concrete change in this reply>
EXPECTED KBPS: <a number: the mean bitrate over the quality ladder you expect>
EXPECTED PSNR: <a number: the mean PSNR-Y in dB over the ladder you expect>
CONFIDENCE: <a number from 0 to 1>

Then the code, in ONE of two forms:
1. the whole program in one ```python fenced block; or
2. SEARCH/REPLACE edits against the program you were given, as many blocks as needed:

<<<<<<< SEARCH
exact lines copied from the program
=======
the lines that replace them
>>>>>>> REPLACE

A SEARCH part must match whole lines of the program exactly once, indentation included: \
quote enough lines to make it unique. Blocks apply in order. Prefer edits for a change to a \
long program; the reply has an output limit."""

CONTRACT = """\
A codec program is one Python source file (at most {max_bytes} bytes) that defines:

    def encode(frames, fps, quality):  # -> bytes
    def decode(bitstream):             # -> list of frames

- frames: a list of (Y, U, V) tuples, one per picture, 8-bit 4:2:0: numpy uint8 arrays of
  shapes (H, W), (H/2, W/2), (H/2, W/2); H and W are even.
- fps: float. quality: int 1..100, higher means better pictures and more bits. The lab sweeps
  a ladder of qualities to draw a rate-distortion curve; keep the curve monotonic.
- decode receives nothing but the bytes: the sizes, the frame count and every setting it
  needs must travel in the bitstream. It returns frames in the same form encode received.
- encode and decode run in separate, sandboxed processes: no state passes between them
  except the bitstream (module globals set by encode are gone when decode runs).
- Deterministic: the same input gives the same bytes, and decode reproduces exactly the
  reconstruction encode predicted from (encoder and decoder must stay in sync, bit for bit).
- Allowed imports: {imports}. Nothing else: no os, sys, subprocess, socket, ctypes,
  importlib, pickle, no open/eval/exec/compile, no dunder attributes (use type(x)), no
  private attributes of modules, no file reading or writing (np.load, np.save, ...).
- Time and memory are limited; vectorise with numpy rather than looping per pixel.

The lab measures honestly: bitrate = bitstream bytes x 8 x fps / frames; PSNR and SSIM are
computed by the lab on the decoded frames against the source; rate-distortion is summarised
as BD-rate (PSNR-Y) against x264 and x265 encoding the same clips, over the standard range
(each anchor's PSNR-Y span at CRF 22..37; the lab adds qualities until your ladder spans it;
rungs at 60 dB or more are near-lossless and count for nothing), negative = fewer bits for
the same quality: better. A failed or wrong-sized decode fails the experiment."""

SYSTEM = """\
You are a video-coding researcher designing codecs as Python programs in an automated lab.
Each experiment you propose is validated, run on real video, decoded in isolation and scored
against x264 and x265. Your goal: the lowest BD-rate (PSNR-Y) against them, by ideas a codec
engineer would try (prediction, motion compensation, transforms, quantisation and
rate-distortion optimisation, entropy coding and context modelling, loop filters). Make one
coherent change per proposal so its effect can be measured, and keep the program working.

# The contract
{contract}

# The reply
{reply_format}"""


def system_prompt(*, allow_torch: bool = False, max_source_bytes: int = MAX_SOURCE_BYTES) -> str:
    imports = ", ".join(sorted(allowed_roots(allow_torch=allow_torch) - {"__future__"}))
    contract = CONTRACT.format(max_bytes=max_source_bytes, imports=imports)
    return SYSTEM.format(contract=contract, reply_format=REPLY_FORMAT)


# ----------------------------------------------------------------------------- formatting


def fenced(text: str, lang: str = "") -> str:
    """``text`` in a fence longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def clip_text(text: str, limit: int = ERROR_CHARS) -> str:
    """At most ``limit`` characters: the start and, mostly, the end (where tracebacks end)."""
    if len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-(limit - head) :]}"


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


def _rungs(rungs: Iterable[Rung], key: str) -> str:
    """Mean kbps and PSNR-Y over clips, per quality (or CRF), lowest first."""
    groups: dict[int, list[Rung]] = defaultdict(list)
    for rung in rungs:
        groups[getattr(rung, key)].append(rung)
    return ", ".join(
        f"{key[0]}{point} {_mean(r.kbps for r in group):.1f} kbps "
        f"{_mean(r.psnr_y for r in group):.2f} dB"
        for point, group in sorted(groups.items())
    )


def _bd_rates(record: ExperimentRecord) -> str:
    parts = []
    for encoder, metrics in sorted(record.bd_rate.items()):
        bd = metrics.get("psnr_y")
        if bd is None:
            continue
        value = (
            f"{bd.value:+.1f}%" if bd.value is not None else f"n/a ({bd.reason or 'no overlap'})"
        )
        parts.append(f"{encoder} {value}")
    return ", ".join(parts) if parts else "not measured"


def outcome(record: ExperimentRecord) -> str:
    """One line: the figures of a successful experiment, or where and why it failed."""
    if record.status != "ok":
        first = (record.error or "no error text").strip().splitlines() or ["no error text"]
        return f"{record.status} at {record.phase or '?'}: {first[0][:300]}"
    if not record.results:
        return "ok, no results"
    return (
        f"mean {_mean(r.kbps for r in record.results):.1f} kbps, PSNR-Y "
        f"{_mean(r.psnr_y for r in record.results):.2f} dB; BD-rate (PSNR-Y) {_bd_rates(record)}"
    )


def rd_figures(record: ExperimentRecord) -> str:
    """The RD figures of a successful experiment, several lines."""
    lines = [
        f"- rungs (mean over clips): {_rungs(record.results, 'quality') or 'none'}",
        f"- BD-rate (PSNR-Y): {_bd_rates(record)}",
    ]
    if record.results:
        encode_s = sum(r.encode_s for r in record.results)
        decode_s = sum(r.decode_s for r in record.results)
        lines.append(f"- time over all rungs: encode {encode_s:.1f} s, decode {decode_s:.1f} s")
    if record.target is not None:
        t = record.target
        if not t.achieved:
            lines.append(f"- target {t.target_kbps:g} kbps: not achieved ({t.reason or ''})")
        elif None in (t.kbps, t.psnr_y, t.x265_psnr_y_at_kbps):
            lines.append(f"- target {t.target_kbps:g} kbps: achieved")
        else:
            lines.append(
                f"- target {t.target_kbps:g} kbps: achieved ({t.kbps:.1f} kbps, PSNR-Y "
                f"{t.psnr_y:.2f} dB >= x265's {t.x265_psnr_y_at_kbps:.2f} dB there)"
            )
    lines.append(f"- source: {record.source_bytes} bytes")
    return "\n".join(lines)


def _label(record: ExperimentRecord) -> str:
    iteration = f"#{record.iteration} " if record.iteration is not None else ""
    return f"{iteration}{record.program_name} (sha256 {record.program_sha256[:12]})"


def _diff(parent: str, other: str) -> str:
    diff = "".join(
        difflib.unified_diff(
            parent.splitlines(keepends=True),
            other.splitlines(keepends=True),
            "parent",
            "this program",
            n=2,
        )
    )
    if not diff:
        return "(same code as the parent)"
    if len(diff) > DIFF_CHARS:
        changed = sum(1 for line in diff.splitlines() if line[:1] in "+-")
        return f"(differs from the parent in about {changed} lines; diff too long to show)"
    return fenced(diff, "diff")


def _references(history: list[ExperimentRecord]) -> list[str]:
    """The clips and the baseline curves, from the latest experiment that has them."""
    lines = []
    with_clips = [r for r in history if r.clips]
    if with_clips:
        clips = ", ".join(
            f"{c.name} ({c.width}x{c.height}, {c.frames} frames, {c.fps:g} fps)"
            for c in with_clips[-1].clips
        )
        lines += [f"Train clips: {clips}. Quality ladder: {with_clips[-1].qualities}.", ""]
    with_baselines = [r for r in history if r.baselines]
    if with_baselines:
        lines.append("Reference encoders on the same clips (mean over clips, per CRF):")
        for encoder, curves in sorted(with_baselines[-1].baselines.items()):
            if not curves:
                continue
            settings = ", ".join(f"{k}={v}" for k, v in sorted(curves[0].settings.items()))
            rungs = _rungs((r for c in curves for r in c.rungs), "crf")
            lines.append(f"- {encoder} {curves[0].version} ({settings}): {rungs}")
        lines.append("")
    return lines


@dataclass(frozen=True)
class Parent:
    """The program the model is asked to improve; ``record`` is None if never evaluated."""

    name: str
    source: str
    record: ExperimentRecord | None = None


def propose_prompt(
    parent: Parent,
    history: list[ExperimentRecord],
    sources: dict[str, str],
    *,
    history_size: int = 8,
    best_count: int = 3,
    failure_count: int = 3,
) -> str:
    """The user message asking for the next program."""
    out = [
        "Propose the next codec program: improve the parent program below so that it needs "
        "fewer bits for the same PSNR-Y (a lower BD-rate against x264 and x265), keeping the "
        "contract.",
        "",
    ]
    out += _references(history)

    recent = history[-history_size:] if history_size > 0 else []
    if recent:
        out.append(
            f"## The latest {len(recent)} of {len(history)} experiments, oldest first "
            "(hypothesis -> outcome)"
        )
        for record in recent:
            hypothesis = record.reasoning.hypothesis or "(no hypothesis recorded)"
            out.append(
                f"- {_label(record)} by {record.designer}: {hypothesis} -> {outcome(record)}"
            )
        out.append("")
    else:
        out += ["No experiment has run yet in this campaign.", ""]

    scored = sorted((r for r in history if fitness(r) is not None), key=lambda r: fitness(r) or 0.0)
    if scored:
        out.append("## The best programs so far (lowest BD-rate first)")
        for record in scored[:best_count]:
            is_parent = parent.record is not None and (
                record.program_sha256 == parent.record.program_sha256
            )
            out.append(f"### {_label(record)}{' = the parent' if is_parent else ''}")
            if record.reasoning.hypothesis:
                out.append(f"Hypothesis: {record.reasoning.hypothesis}")
            out.append(rd_figures(record))
            source = sources.get(record.program_sha256)
            if not is_parent and source:
                out.append(_diff(parent.source, source))
            out.append("")

    failures = [r for r in history if r.status != "ok"][-failure_count:]
    if failures:
        out.append("## Recent failures (learn from them; do not repeat them)")
        for record in failures:
            out.append(f"### {_label(record)}: {record.status} at {record.phase or '?'}")
            if record.reasoning.hypothesis:
                out.append(f"Hypothesis: {record.reasoning.hypothesis}")
            out.append(fenced(clip_text(record.error or "no error text"), "text"))
            out.append("")

    figures = (
        rd_figures(parent.record)
        if parent.record is not None and parent.record.status == "ok"
        else "- not evaluated yet in this campaign"
    )
    sha = parent.record.program_sha256[:12] if parent.record is not None else "seed"
    out += [
        f"## The parent program: {parent.name} ({sha})",
        figures,
        "",
        fenced(parent.source, "python"),
        "",
        "Answer with the reasoning fields, then the whole new program in a ```python block or "
        "SEARCH/REPLACE edits against the parent program above.",
    ]
    return "\n".join(out)


def repair_prompt(source: str, error: str, reasoning: LLMReasoning | None = None) -> str:
    """A fresh request to fix a program that failed validation or its smoke run."""
    idea = (
        f"Keep the idea of the proposal (hypothesis: {reasoning.hypothesis}) if you can; "
        if reasoning is not None and reasoning.hypothesis
        else ""
    )
    return "\n".join(
        [
            "The lab could not use this codec program: it failed with the error below.",
            "",
            fenced(clip_text(error), "text"),
            "",
            "The program:",
            "",
            fenced(source, "python"),
            "",
            f"Fix it. {idea}say in ROOT CAUSE what went wrong. Answer with the reasoning "
            "fields, then the whole fixed program in a ```python block or SEARCH/REPLACE edits "
            "against the program above.",
        ]
    )


def retry_prompt(error: str, program: str | None = None) -> str:
    """A follow-up in the same conversation when a reply could not be used."""
    out = ["Your reply could not be used:", "", fenced(clip_text(error), "text"), ""]
    if program is not None:
        out += [
            "This is the program your reply produced; SEARCH/REPLACE edits in your next reply "
            "apply to it:",
            "",
            fenced(program, "python"),
            "",
        ]
    out.append(
        "Answer again in the required format: the reasoning fields, then the whole program in "
        "a ```python block or SEARCH/REPLACE edits."
    )
    return "\n".join(out)


# ----------------------------------------------------------------------------- reasoning

_LABEL = re.compile(
    r"^[\s>*_#\-]*(?P<label>HYPOTHESIS|ROOT[ _]CAUSE|INSIGHTS?|NEXT[ _]STEPS?|EXPECTED[ _]KBPS|"
    r"EXPECTED[ _]PSNR|CONFIDENCE)[*_\s]*:[*_]*[ \t]*(?P<rest>.*)$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")
_FENCE_LINE = re.compile(r"^\s*(`{3,})")
_SEARCH = re.compile(r"^<{5,9} ?SEARCH\s*$")
_REPLACE = re.compile(r"^>{5,9} ?REPLACE\s*$")


@dataclass(frozen=True)
class LLMReasoning:
    """The reasoning of an LLM's answer: ``text`` verbatim (the reply without its code), and
    the fields of the reply format; ``None`` where the model did not give one."""

    text: str = ""
    hypothesis: str | None = None
    root_cause: str | None = None
    insights: str | None = None
    next_step: str | None = None
    expected_kbps: float | None = None
    expected_psnr: float | None = None
    confidence: float | None = None

    def to_record(self) -> Reasoning:
        """The record's :class:`Reasoning`; fields it does not (yet) have are left out."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Reasoning(**{k: v for k, v in values.items() if k in Reasoning.model_fields})

    def followed_by(self, later: LLMReasoning, note: str) -> LLMReasoning:
        """This reasoning, with a repair's reasoning appended under ``note`` and its fields
        filling the ones this one lacks."""
        merged = {
            f.name: getattr(self, f.name)
            if getattr(self, f.name) is not None
            else getattr(later, f.name)
            for f in fields(self)
            if f.name != "text"
        }
        text = f"{self.text}\n\n[{note}]\n{later.text}".strip()
        return replace(self, text=text, **merged)


def prose(reply_text: str) -> str:
    """The reply without its fenced blocks and SEARCH/REPLACE blocks."""
    kept: list[str] = []
    fence: str | None = None
    in_edit = False
    for line in reply_text.replace("\r\n", "\n").split("\n"):
        if fence is not None:
            if line.strip() == fence:
                fence = None
            continue
        if in_edit:
            in_edit = not _REPLACE.match(line)
            continue
        opening = _FENCE_LINE.match(line)
        if opening:
            fence = opening.group(1)
            continue
        if _SEARCH.match(line):
            in_edit = True
            continue
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _first_number(text: str | None) -> float | None:
    if not text:
        return None
    match = _NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match.group().replace(",", ""))
    except ValueError:
        return None


def _kbps(text: str | None) -> float | None:
    value = _first_number(text)
    if value is not None and text and re.search(r"\bmbps\b|\bmbit", text, re.IGNORECASE):
        return value * 1000
    return value


def _confidence(text: str | None) -> float | None:
    value = _first_number(text)
    if value is None or text is None:
        return None
    ratio = re.search(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)", text)
    if ratio and float(ratio[2]) > 0:
        value = float(ratio[1]) / float(ratio[2])
    elif "%" in text or value > 1:
        value /= 100
    return value if 0 <= value <= 1 else None


def parse_reasoning(reply_text: str) -> LLMReasoning:
    """The reasoning fields of a reply; a field may run over several lines up to the next."""
    text = prose(reply_text)
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        match = _LABEL.match(line)
        if match:
            label = re.sub(r"[ _]+", " ", match["label"].upper())
            label = {"INSIGHT": "INSIGHTS", "NEXT STEPS": "NEXT STEP"}.get(label, label)
            current = found.setdefault(FIELDS[label], [])
            if not current:
                current.append(match["rest"])
            else:
                current = None  # a repeated label: keep the first
        elif current is not None:
            current.append(line)
    values = {
        name: (cleaned if (cleaned := "\n".join(lines).strip().strip("*_ ").strip()) else None)
        for name, lines in found.items()
    }
    return LLMReasoning(
        text=text,
        hypothesis=values.get("hypothesis"),
        root_cause=values.get("root_cause"),
        insights=values.get("insights"),
        next_step=values.get("next_step"),
        expected_kbps=_kbps(values.get("expected_kbps")),
        expected_psnr=_first_number(values.get("expected_psnr")),
        confidence=_confidence(values.get("confidence")),
    )
