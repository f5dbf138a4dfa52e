import os

import pytest

from seqvae.parallel import parallel_map


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_small_inputs_stay_in_this_process():
    results = parallel_map(_square_and_pid, range(5), min_items=10)
    assert [r for r, _ in results] == [0, 1, 4, 9, 16]
    assert {pid for _, pid in results} == {os.getpid()}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_large_inputs_go_to_workers_and_keep_their_order():
    results = parallel_map(_square_and_pid, range(100), chunksize=10, workers=2)
    assert [r for r, _ in results] == [x * x for x in range(100)]
    assert os.getpid() not in {pid for _, pid in results}
