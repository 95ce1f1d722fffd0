"""The book's long computations as independent tasks of a real scheduler: Dask distributed.

Why Dask: it runs the same code on a laptop (a local cluster of one-thread worker processes,
the default) and on a cluster (``--scheduler ADDRESS`` of a running ``dask scheduler``, with
workers started by hand, by SLURM or by Kubernetes), retries nothing silently, and shows
progress; the tasks here are whole networks, each resumable (its runs are saved atomically and
resume where they stopped) and computed on one thread, so the results are bit for bit what one
process gives wherever a task runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
from distributed import Client, LocalCluster, as_completed
from tqdm.auto import tqdm


def run(task: Callable[[Any], Any], items: Sequence[Any], jobs: int = 2, scheduler: str | None = None,
        what: str = "tasks") -> list[Any]:
    """``task(item)`` for every item, as independent tasks: on a local cluster of ``jobs``
    one-thread worker processes, or on the Dask scheduler at ``scheduler`` (an address such as
    ``tcp://host:8786``). Returns the results in the order of ``items``; a task that fails stops
    the run with its error (what finished is saved and resumes)."""
    if not items:
        return []
    cluster = None
    if not scheduler:
        # Dask starts its workers with MALLOC_TRIM_THRESHOLD_ set, which fixes glibc's mmap threshold:
        # every tensor of more than 128 KiB is then mapped and unmapped anew, and a network's
        # precompute spent more time in the kernel than in PyTorch (3 min against 1.5 in one process)
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=max(1, min(jobs, len(items))), threads_per_worker=1,
                                   processes=True, dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            futures = client.map(task, list(items), pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            out: list[Any] = [None] * len(items)
            for done in tqdm(as_completed(futures), total=len(futures), desc=what, unit="task"):
                out[index[done.key]] = done.result()
            return out
    finally:
        if cluster is not None:
            cluster.close()
