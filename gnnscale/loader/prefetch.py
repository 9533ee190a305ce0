"""Runs batch preparation ahead of the consumer on background threads.

Threads, not processes: the C++ samplers release the GIL, and CUDA state does not survive fork.
Results come back in submission order, so a loader's output does not depend on thread timing.
"""
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def prefetch(items: Iterable[Item], prepare: Callable[[Item], Result], *, num_threads: int = 1,
             depth: int = 2) -> Iterator[Result]:
    """Yields ``prepare(item)`` for each item in order, keeping up to ``depth`` items in flight
    on ``num_threads`` threads. With ``num_threads=0`` everything runs in the caller's thread."""
    if num_threads < 0 or depth < 1:
        raise ValueError(f"need num_threads >= 0 and depth >= 1, got {num_threads} and {depth}")
    if num_threads == 0:
        for item in items:
            yield prepare(item)
        return
    pending = deque()
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="gnnscale-loader") as pool:
        try:
            for item in iterator:
                pending.append(pool.submit(prepare, item))
                if len(pending) >= depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # the consumer stopped early: drop what is not yet running
                future.cancel()
