"""The default executor: every task runs in the calling process, as the lab always ran them.

Tasks run lazily, one after another, as their results are asked for: an experiment that
fails at its first rung runs nothing more. Values and handles are the objects themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from typing import Any

from codeclab.executors import CPU, Resources


class LocalExecutor:
    name = "local"

    def put(self, key: str, value: Any) -> Any:
        return value

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
        return closing(_run(task, calls, threads, on_next))

    def close(self) -> None:
        pass


def _run(
    task: Callable[..., Any], calls: Sequence[tuple], threads: int, on_next: Callable[[int], None]
) -> Iterator[Any]:
    if threads <= 1:
        for index, call in enumerate(calls):
            on_next(index)
            yield task(*call)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(task, *call) for call in calls]
        try:
            for index, future in enumerate(futures):
                on_next(index)
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


LOCAL = LocalExecutor()
