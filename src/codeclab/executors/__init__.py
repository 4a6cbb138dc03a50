"""Where an experiment's heavy work runs: in this process, or as tasks on a Ray cluster.

The runner keeps the phases, the honesty checks and the record; an executor only runs the
functions of :mod:`codeclab.executors.tasks` (the smoke run, one rung's encode and two
decodes, the second by the published decoder file, one rung's scores, one baseline curve,
the reconstructed video) and hands back their results in the order they were asked for. The
designer, the experiment store and the artifact store stay with the driver: a task returns
plain data and writes nothing the driver has to trust.

- ``local`` (the default): each task runs in the calling process, one after another, or
  in threads where the caller asks (the runner's rungs, each a sandboxed process).
- ``ray``: each task is a Ray task with a resource request (one CPU per rung; a GPU for a
  program that imports a GPU library, where the cluster has one), retried on another worker
  when its worker dies; a clip's frames go to the object store once per content hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

GPU_MODULES = frozenset({"torch", "cupy", "jax", "tensorflow"})
"""Imports that make a program ask its executor for a GPU (the policy decides whether any
of them is allowed at all; torch only when the lab is configured to allow it)."""

INSTALL_RAY = "pip install 'codeclab[ray]'"


class ExecutorError(RuntimeError):
    """The executor cannot run here: Ray is missing, the cluster is unusable, or unshared."""


class WorkerLost(ExecutorError):
    """A task's worker (or its node) died more often than the task may be retried."""


@dataclass(frozen=True)
class Resources:
    """What one task asks the cluster for; the local executor ignores it."""

    cpus: float = 1.0
    gpus: float = 0.0


CPU = Resources()


def resources_for(imports: Sequence[str]) -> Resources:
    """A program's rung tasks ask for a GPU when it imports a GPU library (the hook for GPU
    codecs: the sandbox must then also expose the device, see docs/scaling.md)."""
    roots = {name.split(".")[0] for name in imports}
    return Resources(cpus=1.0, gpus=1.0 if roots & GPU_MODULES else 0.0)


class Executor(Protocol):
    """Runs lab tasks somewhere and returns their results in order."""

    name: str

    def put(self, key: str, value: T) -> Any:
        """``value`` as tasks receive it, stored once under ``key`` (a content hash)."""

    def map(
        self,
        task: Callable[..., Any],
        calls: Sequence[tuple],
        *,
        resources: Resources = CPU,
        keep_second: bool = False,
        threads: int = 1,
        on_next: Callable[[int], None] = lambda index: None,
    ) -> AbstractContextManager[Iterator[Any]]:
        """``task(*call)`` for every call; the results in the calls' order.

        Leaving the ``with`` block early drops the other results (the local executor then
        runs nothing more). ``keep_second``: the task returns a pair whose second item stays
        where it was made (decoded frames); a handle to it comes back instead, which later
        tasks take as an argument (Ray runs them where the value is). ``threads``: how
        many calls the local executor runs at once. ``on_next(i)`` is called before result
        ``i`` is produced or awaited, for progress. Raises :class:`WorkerLost` for a task
        whose worker died once too often.
        """

    def close(self) -> None:
        """Release what the executor started (a local Ray cluster)."""
