"""DDP with the gloo backend and 2 processes on the CPU, launched by torchrun as a user would.

Tolerance: with the same global batch and seed, the per-step training losses of 2 processes
must equal those of 1 process to a relative 1e-4 (they differ only in floating-point summation
order: each rank pads and sums its own share, and DDP averages the gradients)."""
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from seqvae.distributed import Context

FLAGS = ["--embedding-dim", "16", "--encoder-hidden", "32", "--latent-dim", "8",
         "--decoder-hidden", "32", "--batch-size", "64", "--log-every", "1", "--threads", "1",
         "--samples", "0", "--word-dropout", "0.2", "--kl-warmup-steps", "4", "--save-every", "2"]


STEP_COUNTER = Path(__file__).with_name("step_counter.py")


def _train(tmp_path, out, data, steps, processes=1, resume=False, count_steps=None):
    """With ``count_steps`` (a path), each rank's optimiser steps go to count_steps.<rank>."""
    args = ["train", "--data", str(data), "--out", str(tmp_path / out), "--max-steps", str(steps),
            *FLAGS, *(["--resume"] if resume else [])]
    run = ["-m", "seqvae"] if count_steps is None else [str(STEP_COUNTER), str(count_steps)]
    if processes == 1:
        cmd = [sys.executable, *run, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", *run, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _losses(folder):
    rows = csv.DictReader(open(folder / "metrics.csv"))
    return {int(r["step"]): float(r["loss"]) for r in rows if r["split"] == "train"}


def test_two_processes_follow_the_single_process_trajectory(tmp_path, smiles_file):
    _train(tmp_path, "one", smiles_file, 8)
    ddp = _train(tmp_path, "two", smiles_file, 8, processes=2)
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 9))
    assert np.allclose([two[s] for s in one], [one[s] for s in one], rtol=1e-4)
    assert "2 processes (DDP), global batch 64" in ddp.stderr
    # only rank 0 wrote: one header, one row per step and validation
    assert sum(1 for _ in open(tmp_path / "two" / "metrics.csv")) == \
        sum(1 for _ in open(tmp_path / "one" / "metrics.csv"))


def test_resume_under_ddp(tmp_path, smiles_file):
    _train(tmp_path, "one", smiles_file, 8)
    _train(tmp_path, "ddp", smiles_file, 4, processes=2)
    metrics = tmp_path / "ddp" / "metrics.csv"
    before = list(csv.DictReader(open(metrics)))
    _train(tmp_path, "ddp", smiles_file, 8, processes=2, resume=True,
           count_steps=tmp_path / "steps")
    # each rank took only the 4 remaining steps, and the rows of steps 1-4 are the first run's
    assert [int((tmp_path / f"steps.{rank}").read_text()) for rank in (0, 1)] == [4, 4]
    rows = list(csv.DictReader(open(metrics)))
    assert rows[:len(before)] == before
    assert [int(r["step"]) for r in rows[len(before):] if r["split"] == "train"] == [5, 6, 7, 8]
    one, resumed = _losses(tmp_path / "one"), _losses(tmp_path / "ddp")
    assert np.allclose([resumed[s] for s in range(1, 9)], [one[s] for s in range(1, 9)], rtol=1e-4)


def test_every_rank_gets_an_equal_share_of_each_batch():
    batch = np.arange(10)
    shares = [Context(rank, 3).share(batch) for rank in range(3)]
    assert np.array_equal(np.concatenate(shares), batch)
    assert [len(s) for s in shares] == [4, 3, 3]
    assert [Context(rank, 3).rows(10) for rank in range(3)] == [slice(0, 4), slice(4, 7), slice(7, 10)]
    tiny = [Context(rank, 4).share(np.array([5, 6])) for rank in range(4)]
    assert all(len(s) == 1 for s in tiny)                 # wrapped: nobody is left empty
