"""Multi-process training with PyTorch's own engine: torch.distributed and
DistributedDataParallel, launched by ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK).

    torchrun --nproc_per_node 4 -m seqvae train --data moses --preset moses --out runs/ddp

``--batch-size`` is the global batch: every rank takes an equal contiguous share of each
length-bucketed batch, so the batches, their order and the learning rate are those of a single
process with the same flags, and results agree with one up to floating-point summation order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, batch: np.ndarray) -> np.ndarray:
        """This rank's contiguous share of a global batch. A batch smaller than the world
        (a tiny last batch) is wrapped around so that every rank has something to compute."""
        if len(batch) < self.world:
            batch = np.resize(batch, self.world)
        return np.array_split(batch, self.world)[self.rank]

    def rows(self, n: int) -> slice:
        """The rows of a global batch of n sequences that :meth:`share` gives this rank."""
        n = max(n, self.world)
        sizes = [len(part) for part in np.array_split(np.arange(n), self.world)]
        start = sum(sizes[:self.rank])
        return slice(start, start + sizes[self.rank])

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of one number over the ranks (itself in a single process)."""
        return self.sum([value])[0] / self.world

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the ranks (identity in a single process)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()


def init(device: torch.device) -> Context:
    """Join the process group torchrun set up (gloo on CPUs, NCCL on GPUs); a plain run is a
    world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown(ctx: Context) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()
