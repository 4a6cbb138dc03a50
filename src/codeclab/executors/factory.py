"""Open the executor the settings name, and check a Ray cluster can serve the campaign."""

from __future__ import annotations

from codeclab.config import Settings
from codeclab.executors import Executor, ExecutorError
from codeclab.executors.local import LOCAL


def shared_state_problem(settings: Settings, nodes: int) -> str | None:
    """Why ``settings`` cannot serve a cluster of ``nodes`` machines, or None.

    On more than one node the experiment store and the artifact store must be services every
    node and any later driver reach (PostgreSQL or DynamoDB; S3): a SQLite file or a local
    directory would split the campaign's state between machines.
    """
    if nodes <= 1:
        return None
    local = []
    if settings.db_url.startswith("sqlite:"):
        local.append(f"the experiment store is SQLite ({settings.db_url})")
    if not settings.artifacts_url:
        local.append(f"the artifact store is a local directory ({settings.artifacts_dir})")
    if not local:
        return None
    return (
        f"this Ray cluster has {nodes} nodes, but {' and '.join(local)}; a multi-node campaign "
        "needs shared stores: set database_url to PostgreSQL (or DynamoDB) and artifacts_url "
        "to S3 (CODECLAB_DATABASE_URL, CODECLAB_ARTIFACTS_URL)"
    )


def open_executor(settings: Settings) -> Executor:
    """The executor ``settings.executor`` names; for Ray, checked against the cluster."""
    if settings.executor == "local":
        return LOCAL
    from codeclab.executors.ray_cluster import RayExecutor  # ray: only when asked for

    executor = RayExecutor(settings.ray_address)
    problem = shared_state_problem(settings, executor.nodes())
    if problem:
        executor.close()
        raise ExecutorError(problem)
    return executor
