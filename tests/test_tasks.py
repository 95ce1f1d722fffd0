"""``nadbook.tasks``: the book's long computations as tasks of Dask distributed (what `make
reproduce` and the tests' precompute use), on a local cluster of one-thread worker processes."""

import operator
import os

import pytest

from nadbook import tasks


@pytest.mark.slow
def test_tasks_run_on_worker_processes_and_come_back_in_order():
    assert tasks.run(operator.neg, [3, 1, 2], jobs=2) == [-3, -1, -2]
    assert tasks.run(operator.neg, []) == []


@pytest.mark.slow
def test_a_failing_task_stops_the_run_with_its_error():
    with pytest.raises(TypeError):
        tasks.run(operator.neg, [1, "a"], jobs=2)


@pytest.mark.slow
def test_workers_keep_glibcs_own_malloc_thresholds():
    """Dask's default MALLOC_TRIM_THRESHOLD_ fixes glibc's mmap threshold, and PyTorch then maps
    and unmaps every large tensor anew (half a precompute's time in the kernel): not set here."""
    assert tasks.run(os.environ.get, ["MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS"], jobs=1) == [None, "1"]
