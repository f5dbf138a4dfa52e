"""DDP with the gloo backend and 2 processes on the CPU, launched by torchrun as a user would.

Tolerance: with the same global batch and seed, the per-step training losses of 2 processes
must equal those of 1 process to a relative 1e-4 (they differ only in floating-point summation
order: each rank pads and sums its own share, and DDP averages the gradients)."""
import csv
import subprocess
import sys

import numpy as np
import pytest

from seqvae.distributed import Context

FLAGS = ["--embedding-dim", "16", "--encoder-hidden", "32", "--latent-dim", "8",
         "--decoder-hidden", "32", "--batch-size", "64", "--log-every", "1", "--threads", "1",
         "--samples", "0", "--word-dropout", "0.2", "--kl-warmup-steps", "4", "--save-every", "2"]


def _train(tmp_path, out, data, steps, processes=1, resume=False):
    args = ["train", "--data", str(data), "--out", str(tmp_path / out), "--max-steps", str(steps),
            *FLAGS, *(["--resume"] if resume else [])]
    if processes == 1:
        cmd = [sys.executable, "-m", "seqvae", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "seqvae", *args]
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
    _train(tmp_path, "ddp", smiles_file, 8, processes=2, resume=True)
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
