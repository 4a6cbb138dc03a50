"""The Ray executor: the lab's tasks as Ray tasks, on a local cluster or one joined by address.

- A task asks for what it uses (``num_cpus`` per rung, ``num_gpus`` for a GPU program where
  the cluster has GPUs) and is re-run on another worker when its worker or node dies
  (``max_retries``; an error the task itself raises is a lab bug and is never retried).
  Re-running is safe: a task writes nothing, and the driver takes one result per call.
- A clip's frames go to the object store once per content hash and are reused by every
  task of every experiment; decoded frames stay in the object store (``num_returns=2``)
  until a score task on the same node, or the publish step, needs them.
- Every node must run the versions the driver records (codeclab, Python, PyAV, encoders):
  checked once per node when the executor starts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing
from typing import Any

from codeclab.executors import CPU, INSTALL_RAY, ExecutorError, Resources, WorkerLost, tasks

TASK_RETRIES = 3  # re-runs of a task whose worker died (Ray's own default)
PROBE_TIMEOUT_S = 300.0  # a node that cannot start a worker in this time is unusable
CONNECT_TIMEOUT_S = 10.0  # Ray itself waits minutes for an address where nothing listens


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError(
            f"executor 'ray' needs Ray, which is not installed ({exc}): {INSTALL_RAY}"
        ) from None
    return ray


class RayExecutor:
    """Starts a local Ray cluster (``address`` None) or joins one; reuses a connection this
    process already has (a notebook, a test), which it then leaves open."""

    name = "ray"

    def __init__(self, address: str | None = None, *, retries: int = TASK_RETRIES) -> None:
        self.ray = import_ray()
        self.retries = retries
        self.started = not self.ray.is_initialized()
        if self.started:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            where = f"join the Ray cluster at {address}" if address else "start a local Ray"
            if address:
                _check_listening(address)
            try:
                self.ray.init(
                    address=address or "local",  # "local": never a cluster found by chance
                    include_dashboard=False,
                    log_to_driver=False,  # workers' output must not mix into --json output
                    logging_level=logging.WARNING,
                )
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
                raise ExecutorError(f"cannot {where}: {exc}") from exc
        self.objects: dict[str, Any] = {}  # content hash -> ObjectRef, shared by all tasks
        self._remote: dict[Callable[..., Any], Any] = {}
        self._lock = threading.Lock()
        try:
            self.gpus = float(self.ray.cluster_resources().get("GPU", 0.0))
            self._check_versions()
        except BaseException:
            self.close()
            raise

    def nodes(self) -> int:
        """How many nodes of the cluster are alive."""
        return sum(1 for node in self.ray.nodes() if node["Alive"])

    def put(self, key: str, value: Any) -> Any:
        with self._lock:
            if key not in self.objects:
                self.objects[key] = self.ray.put(value)
            return self.objects[key]

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
        options = {
            "num_cpus": resources.cpus,
            "num_gpus": resources.gpus if self.gpus else 0.0,  # a CPU-only cluster: run anyway
            "num_returns": 2 if keep_second else 1,
            "max_retries": self.retries,
            "retry_exceptions": False,
        }
        return closing(self._results(self._remote_of(task).options(**options), calls, on_next))

    def _get(self, handle: Any) -> Any:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayTaskError:
            raise  # the task's own exception: a lab bug, as it would be locally
        except self.ray.exceptions.RayError as exc:
            raise WorkerLost(
                f"lost on the Ray cluster after {self.retries} retries "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc

    def close(self) -> None:
        self.objects.clear()
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()

    def _results(
        self, remote: Any, calls: Sequence[tuple], on_next: Callable[[int], None]
    ) -> Iterator[Any]:
        """Submit every call at once, then hand the results back in order.

        When the caller stops early (a failed rung ends its experiment) the other tasks run
        to their end and their results are dropped: cancelling a task as it completes can
        crash the driver (ray-project/ray#54846), a worse loss than a few idle rungs.
        """
        refs = [remote.remote(*call) for call in calls]
        for index, ref in enumerate(refs):
            on_next(index)
            if isinstance(ref, list):  # num_returns=2: the second stays in the store
                yield self._get(ref[0]), ref[1]
            else:
                yield self._get(ref)

    def _remote_of(self, task: Callable[..., Any]) -> Any:
        """One Ray remote function per task, exported to the cluster once."""
        with self._lock:
            if task not in self._remote:
                self._remote[task] = self.ray.remote(task)
            return self._remote[task]

    def _check_versions(self) -> None:
        """Refuse a cluster whose nodes would record other versions than this driver."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        mine = tasks.versions()
        probe = self.ray.remote(tasks.versions)
        alive = [node for node in self.ray.nodes() if node["Alive"]]
        refs = {
            node["NodeManagerAddress"]: probe.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
            ).remote()
            for node in alive
        }
        for address, ref in refs.items():
            try:
                theirs = self.ray.get(ref, timeout=PROBE_TIMEOUT_S)
            except self.ray.exceptions.RayError as exc:
                raise ExecutorError(
                    f"Ray node {address} cannot run codeclab tasks ({str(exc).splitlines()[0]}); "
                    f"install codeclab on every node: {INSTALL_RAY}"
                ) from exc
            differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            if differ:
                shown = ", ".join(f"{k} {theirs.get(k)} (driver: {mine.get(k)})" for k in differ)
                raise ExecutorError(
                    f"Ray node {address} runs other versions than this driver: {shown}; every "
                    "node must run the versions that experiments record"
                )


def _check_listening(address: str) -> None:
    """Fail in seconds, not minutes, when nothing answers at a ``HOST:PORT`` address."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ExecutorError(f"no Ray cluster answers at {address}: {exc}") from None
