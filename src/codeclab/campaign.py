"""A campaign: the designer proposes, the runner measures, the store remembers; repeat.

The designer sees every finished experiment of the campaign (and the sources by hash) before
it proposes the next program, so each proposal can learn from all results so far.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from codeclab.config import Settings
from codeclab.design.evolve import EvolveDesigner, fitness
from codeclab.media import Clip
from codeclab.record import ExperimentRecord
from codeclab.runner import Job, evaluate
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore


@dataclass
class CampaignResult:
    campaign_id: str
    experiments: list[ExperimentRecord] = field(default_factory=list)

    @property
    def best(self) -> ExperimentRecord | None:
        """The successful experiment with the lowest BD-rate against x265, if any was scored."""
        scored = [r for r in self.experiments if fitness(r) is not None]
        return min(scored, key=lambda r: fitness(r) or 0.0) if scored else None


def run_campaign(
    settings: Settings,
    clips: list[Clip],
    store: ExperimentStore,
    artifacts: LocalArtifactStore,
    *,
    on_experiment: Callable[[int, str], None] = lambda iteration, name: None,
    on_step: Callable[[str], None] = lambda message: None,
    on_done: Callable[[ExperimentRecord], None] = lambda record: None,
) -> CampaignResult:
    designer = EvolveDesigner(seed=settings.seed)
    result = CampaignResult(campaign_id=str(uuid.uuid4()))
    store.add_campaign(
        result.campaign_id,
        designer.name,
        settings.seed,
        settings.iterations,
        settings.model_dump(mode="json"),
    )
    sources: dict[str, str] = {}
    for iteration in range(1, settings.iterations + 1):
        started = time.perf_counter()
        proposal = designer.propose(result.experiments, sources)
        design_seconds = time.perf_counter() - started
        on_experiment(iteration, proposal.name)
        record = evaluate(
            Job(
                source=proposal.source,
                name=proposal.name,
                clips=clips,
                settings=settings,
                store=store,
                artifacts=artifacts,
                designer=designer.name,
                parent_sha256=proposal.parent_sha256,
                reasoning=proposal.reasoning,
                campaign_id=result.campaign_id,
                iteration=iteration,
                design_seconds=design_seconds,
                on_step=on_step,
            )
        )
        sources[record.program_sha256] = proposal.source
        result.experiments.append(record)
        on_done(record)
    return result
