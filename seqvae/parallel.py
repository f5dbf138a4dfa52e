"""One function over many items on every core: RDKit and SELFIES work is pure Python/C++
per molecule and does not share a process's threads, so large batches go to worker processes.
"""
from __future__ import annotations

import os
from multiprocessing import Pool
from typing import Callable, Iterable, TypeVar

Item, Result = TypeVar("Item"), TypeVar("Result")


def parallel_map(fn: Callable[[Item], Result], items: Iterable[Item], chunksize: int = 1000,
                 min_items: int = 2, workers: int | None = None) -> list[Result]:
    """``[fn(x) for x in items]``, in order, computed by worker processes.

    Serially (no processes to start) when there are fewer than ``min_items`` items or only one
    worker. ``fn`` must be a module-level function, as worker processes receive it by name.

    Args:
        chunksize: items sent to a worker at a time.
        workers: processes to use (None: one per core).
    """
    items = list(items)
    workers = workers or os.cpu_count() or 1
    if workers < 2 or len(items) < min_items:
        return [fn(x) for x in items]
    with Pool(min(workers, len(items))) as pool:
        return pool.map(fn, items, chunksize=chunksize)
