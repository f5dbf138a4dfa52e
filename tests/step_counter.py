"""Run ``python -m seqvae ARGS`` and count the optimiser steps it takes.

    python tests/step_counter.py COUNT_FILE ARGS...

writes the count to COUNT_FILE.<rank> at exit (rank from $RANK, 0 without torchrun), so a test
can tell a resumed run that continued from its checkpoint from one that started over.
"""
import atexit
import os
import runpy
import sys

from torch.optim.optimizer import register_optimizer_step_post_hook

steps = 0


def _count(optimizer, args, kwargs):
    global steps
    steps += 1


def _write(path):
    with open(path, "w") as fh:
        fh.write(str(steps))


register_optimizer_step_post_hook(_count)
atexit.register(_write, f"{sys.argv[1]}.{os.environ.get('RANK', '0')}")
sys.argv = ["seqvae", *sys.argv[2:]]
runpy.run_module("seqvae", run_name="__main__", alter_sys=True)
