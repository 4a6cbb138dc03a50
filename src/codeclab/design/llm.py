"""The LLM designer (``--designer llm``): a model reads the campaign and writes the next program.

Each proposal is one conversation: the prompt (:mod:`codeclab.design.prompts`) carries the
contract, the campaign's latest experiments, the best programs and recent failures, and the
parent program; the answer carries the reasoning and the code, whole or as SEARCH/REPLACE
edits (:mod:`codeclab.design.edits`). Before a proposal leaves the designer its code has
passed the lab's static policy and is not a duplicate of a program already tried; when it
fails either, or the answer has no usable code, the model is told why and answers again.
Those repairs, and the ones the campaign asks for with :meth:`LLMDesigner.repair` after a
failed smoke run, share one budget per proposal (``repairs``); when it is spent the designer
raises :class:`DesignRejected`, so the campaign records a rejected experiment and goes on.

Every call's tokens and cost are counted (per proposal, and in :attr:`LLMDesigner.usage`);
with ``budget_usd`` the designer raises :class:`BudgetExhausted` before a call once the
campaign has spent the budget. The providers talk plain HTTP (see
:mod:`codeclab.design.providers`); API keys come from the environment only and never appear
in prompts, proposals, reasoning or errors.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from codeclab.design.edits import EditError, program_from_reply
from codeclab.design.evolve import (
    Proposal,
    fitness,
    normalised_sha256,
    program_sha256,
    seed_programs,
)
from codeclab.design.prompts import (
    LLMReasoning,
    Parent,
    clip_text,
    parse_reasoning,
    propose_prompt,
    repair_prompt,
    retry_prompt,
    system_prompt,
)
from codeclab.design.providers import (
    Completion,
    LLMError,
    Provider,
    Usage,
    make_provider,
    price_of,
)
from codeclab.record import ExperimentRecord
from codeclab.sandbox.policy import MAX_SOURCE_BYTES, PolicyViolation, check_program

__all__ = [
    "BudgetExhausted",
    "DesignRejected",
    "LLMDesigner",
    "LLMError",
    "LLMProposal",
    "LLMReasoning",
    "Usage",
]

log = logging.getLogger(__name__)

# The seed a campaign's first proposal improves when nothing has been measured yet: the
# motion-compensated one, which DESIGN.md section 4 expects to beat the intra-only one.
PREFERRED_SEED = "inter_mc"
_STOP_WORDS = frozenset(
    {"a", "an", "the", "to", "of", "and", "or", "in", "on", "for", "with", "by", "that", "this"}
    | {"is", "are", "be", "will", "should", "would", "can", "it", "its", "more", "less"}
    | {"fewer", "use", "using", "than", "from", "into", "per"}
)


class DuplicateProgram(ValueError):
    """The proposed program was tried already (comments and spacing aside)."""


class DesignRejected(RuntimeError):
    """No usable program after the repair budget: record a rejected experiment and go on.

    ``source`` is the last program the model produced, if any (it failed ``reason``).
    """

    def __init__(
        self,
        reason: str,
        reasoning: LLMReasoning | None,
        usage: Usage,
        *,
        source: str | None = None,
        name: str | None = None,
        parent_sha256: str | None = None,
        repairs_used: int = 0,
    ) -> None:
        self.reason = reason
        self.reasoning = reasoning
        self.usage = usage
        self.source = source
        self.name = name
        self.parent_sha256 = parent_sha256
        self.repairs_used = repairs_used
        super().__init__(reason)


class BudgetExhausted(RuntimeError):
    """The campaign has spent ``budget_usd``: stop cleanly. ``usage`` is what the interrupted
    proposal had spent; ``spent`` the designer's total."""

    def __init__(self, spent: Usage, budget_usd: float, usage: Usage) -> None:
        self.spent = spent
        self.budget_usd = budget_usd
        self.usage = usage
        super().__init__(
            f"LLM budget exhausted: spent ${spent.cost_usd:.4f} of ${budget_usd:.4f} "
            f"in {spent.calls} calls"
        )


@dataclass(frozen=True)
class LLMProposal(Proposal):
    """A :class:`Proposal` with what it cost and how it came about.

    ``usage`` counts every call that led to this program, its repairs included;
    ``repairs_used`` how much of the repair budget it has spent; ``prompt`` the request that
    started it (lineage, DESIGN.md section 1, phase 3).
    """

    usage: Usage = field(default_factory=Usage)
    llm_reasoning: LLMReasoning = field(default_factory=LLMReasoning)
    repairs_used: int = 0
    model: str = ""
    prompt: str = ""


def _first_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else "(no error text)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _slug(text: str | None, words: int = 4) -> str:
    kept = [w for w in re.findall(r"[a-z0-9]+", (text or "").lower()) if w not in _STOP_WORDS]
    return "-".join(kept[:words])[:40].strip("-")


def _train_view(record: ExperimentRecord) -> ExperimentRecord:
    """The record without holdout scores, where records know how to say so: the campaign is
    meant to hand designers train views already; this keeps the prompt honest if it does not.
    """
    view = getattr(record, "train_view", None)
    return view() if callable(view) else record


def _name(parent_name: str, reasoning: LLMReasoning) -> str:
    """``parent~a-few-words-of-the-hypothesis``, like the evolve designer's names."""
    return f"{parent_name.split('~')[0]}~{_slug(reasoning.hypothesis) or 'llm'}"


class LLMDesigner:
    """Proposes programs by asking a model; see the module docstring.

    ``provider`` is ``"anthropic"`` or ``"openai"`` (any OpenAI-compatible server by
    ``base_url``), or a ready :class:`Provider`, whose own model, URL, prices and HTTP
    options then apply. ``prices``: USD per million (input, output) tokens by model name.
    """

    name = "llm"

    def __init__(
        self,
        provider: str | Provider,
        model: str = "",
        *,
        base_url: str | None = None,
        repairs: int = 3,
        budget_usd: float | None = None,
        history_size: int = 8,
        prices: Mapping[str, tuple[float, float]] | None = None,
        seeds: dict[str, str] | None = None,
        parent_seed: str | None = None,
        best_count: int = 3,
        failure_count: int = 3,
        allow_torch: bool = False,
        max_source_bytes: int = MAX_SOURCE_BYTES,
        timeout_s: float = 120.0,
        attempts: int = 4,
        backoff_s: float = 1.0,
        max_tokens: int = 16000,
        temperature: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if repairs < 0:
            raise ValueError("repairs must be >= 0")
        if isinstance(provider, Provider):
            self.provider = provider
        else:
            if not model:
                raise ValueError("a model name is needed")
            self.provider = make_provider(
                provider,
                model,
                base_url=base_url,
                prices=prices,
                timeout_s=timeout_s,
                attempts=attempts,
                backoff_s=backoff_s,
                max_tokens=max_tokens,
                temperature=temperature,
                sleep=sleep,
            )
        self.model = self.provider.model
        if budget_usd is not None and price_of(self.model, self.provider.prices) is None:
            raise ValueError(
                f"budget_usd needs a price for model {self.model!r}: add it to the prices "
                "(USD per million input and output tokens)"
            )
        self.repairs = repairs
        self.budget_usd = budget_usd
        self.history_size = history_size
        self.best_count = best_count
        self.failure_count = failure_count
        self.allow_torch = allow_torch
        self.max_source_bytes = max_source_bytes
        self.seeds = seeds if seeds is not None else seed_programs()
        if not self.seeds:
            raise ValueError("the LLM designer needs at least one seed program")
        if parent_seed is None:
            parent_seed = PREFERRED_SEED if PREFERRED_SEED in self.seeds else next(iter(self.seeds))
        if parent_seed not in self.seeds:
            raise ValueError(f"no seed program named {parent_seed!r}")
        self.parent_seed = parent_seed
        self.system = system_prompt(allow_torch=allow_torch, max_source_bytes=max_source_bytes)
        self._total = Usage()
        self._tried: set[str] = set()

    def __repr__(self) -> str:
        return f"LLMDesigner({self.provider!r})"

    @property
    def usage(self) -> dict[str, float | int | bool]:
        """Every call so far: ``calls``, ``input_tokens``, ``output_tokens``, ``cost_usd``,
        ``cost_known`` (False when some call's model had no price)."""
        return self._total.as_dict()

    def close(self) -> None:
        self.provider.close()

    def propose(
        self, history: list[ExperimentRecord], sources: dict[str, str], iteration: int = 0
    ) -> LLMProposal:
        """The next program, improving the best program so far (a seed at first).

        ``iteration`` is accepted for the campaign's interface; a model is not replayable,
        so a resumed campaign asks it afresh.
        """
        history = [_train_view(r) for r in history]
        self._tried = {normalised_sha256(s) for s in sources.values() if s}
        parent = self._parent(history, sources)
        self._tried.add(normalised_sha256(parent.source))
        prompt = propose_prompt(
            parent,
            history,
            sources,
            history_size=self.history_size,
            best_count=self.best_count,
            failure_count=self.failure_count,
        )
        log.info("llm: proposing from %s (iteration %d)", parent.name, iteration)
        return self._design(
            [{"role": "user", "content": prompt}],
            base=parent.source,
            parent_name=parent.name,
            parent_sha256=program_sha256(parent.source),
            repairs_used=0,
            reasoning=None,
            note="",
            usage=Usage(),
            prompt=prompt,
        )

    def repair(self, proposal: Proposal, error: str) -> LLMProposal:
        """A fixed version of ``proposal``, which failed validation or its smoke run with
        ``error``; :class:`DesignRejected` once the proposal's repair budget is spent."""
        used = getattr(proposal, "repairs_used", 0)
        usage = getattr(proposal, "usage", Usage())
        reasoning = getattr(proposal, "llm_reasoning", None) or LLMReasoning(
            text=proposal.reasoning.text, hypothesis=proposal.reasoning.hypothesis
        )
        if used >= self.repairs:
            raise DesignRejected(
                f"{clip_text(error.strip())}\n(repair budget of {self.repairs} spent)",
                reasoning,
                usage,
                source=proposal.source,
                name=proposal.name,
                parent_sha256=proposal.parent_sha256,
                repairs_used=used,
            )
        self._tried.add(normalised_sha256(proposal.source))
        prompt = repair_prompt(proposal.source, error, reasoning)
        return self._design(
            [{"role": "user", "content": prompt}],
            base=proposal.source,
            parent_name=proposal.name,
            parent_sha256=proposal.parent_sha256,
            repairs_used=used + 1,
            reasoning=reasoning,
            note=f"repair {used + 1} after: {_first_line(error)}",
            usage=usage,
            prompt=getattr(proposal, "prompt", "") or prompt,
        )

    # ------------------------------------------------------------------------- internals

    def _parent(self, history: list[ExperimentRecord], sources: dict[str, str]) -> Parent:
        """The best scored program whose source we have; else the latest successful one;
        else the preferred seed (with its record, if it was evaluated as it is)."""
        usable = [r for r in history if r.status == "ok" and sources.get(r.program_sha256)]
        scored = [r for r in usable if fitness(r) is not None]
        if scored:
            best = min(scored, key=lambda r: fitness(r) or 0.0)
        elif usable:
            best = usable[-1]
        else:
            source = self.seeds[self.parent_seed]
            sha = program_sha256(source)
            record = next((r for r in reversed(history) if r.program_sha256 == sha), None)
            return Parent(self.parent_seed, source, record)
        return Parent(best.program_name, sources[best.program_sha256], best)

    def _call(self, messages: list[dict[str, str]], usage: Usage) -> Completion:
        if self.budget_usd is not None and self._total.cost_usd >= self.budget_usd:
            raise BudgetExhausted(self._total, self.budget_usd, usage)
        try:
            completion = self.provider.complete(self.system, messages)
        except LLMError as exc:
            exc.usage = usage
            raise
        self._total += completion.usage
        log.info(
            "llm: %s answered (%d in, %d out tokens, $%.4f; total $%.4f)",
            self.model,
            completion.usage.input_tokens,
            completion.usage.output_tokens,
            completion.usage.cost_usd,
            self._total.cost_usd,
        )
        return completion

    def _check(self, source: str) -> None:
        check_program(source, allow_torch=self.allow_torch, max_source_bytes=self.max_source_bytes)
        if normalised_sha256(source) in self._tried:
            raise DuplicateProgram(
                "this program is the same (comments and spacing aside) as one already tried "
                "or as the program you were given; make a real change"
            )

    def _problem(self, exc: Exception, completion: Completion) -> str:
        if isinstance(exc, PolicyViolation):
            text = "the lab's static check refused the program:\n" + str(exc)
        else:
            text = str(exc)
        if completion.truncated:
            text = (
                f"the reply was cut off at the output limit ({self.provider.max_tokens} tokens)"
                "; send SEARCH/REPLACE edits instead of the whole program\n" + text
            )
        return text

    def _design(
        self,
        messages: list[dict[str, str]],
        *,
        base: str,
        parent_name: str,
        parent_sha256: str | None,
        repairs_used: int,
        reasoning: LLMReasoning | None,
        note: str,
        usage: Usage,
        prompt: str,
    ) -> LLMProposal:
        """Ask, check, and ask again with the problem until a program passes or the repair
        budget is spent."""
        while True:
            completion = self._call(messages, usage)
            usage += completion.usage
            answer = parse_reasoning(completion.text)
            reasoning = answer if reasoning is None else reasoning.followed_by(answer, note)
            candidate: str | None = None
            try:
                candidate = program_from_reply(base, completion.text)
                self._check(candidate)
            except (EditError, PolicyViolation, DuplicateProgram) as exc:
                problem = self._problem(exc, completion)
            else:
                return LLMProposal(
                    candidate,
                    _name(parent_name, reasoning),
                    parent_sha256,
                    reasoning.to_record(),
                    usage=usage,
                    llm_reasoning=reasoning,
                    repairs_used=repairs_used,
                    model=self.model,
                    prompt=prompt,
                )
            log.info("llm: answer not usable (%s)", _first_line(problem))
            if repairs_used >= self.repairs:
                raise DesignRejected(
                    f"{problem}\n(no usable program after {repairs_used} repairs)",
                    reasoning,
                    usage,
                    source=candidate,
                    name=_name(parent_name, reasoning),
                    parent_sha256=parent_sha256,
                    repairs_used=repairs_used,
                )
            repairs_used += 1
            note = f"repair {repairs_used} after: {_first_line(problem)}"
            messages = [
                *messages,
                {"role": "assistant", "content": completion.text or "(empty reply)"},
                {"role": "user", "content": retry_prompt(problem, candidate)},
            ]
            if candidate is not None:
                base = candidate
