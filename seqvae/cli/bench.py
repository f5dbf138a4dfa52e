"""``seqvae bench``: training, sampling and encoding throughput on this machine."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..bench import bench, median_of_runs, run_peer
from ..config import PRESETS, preset
from ..devices import resolve_device
from ..errors import SeqVAEError
from ..files import atomic_write
from .common import HelpFormatter, add_config_flags, config_from_args, err
from .report import format_bench


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", parents=parents, help="measure training, sampling and encoding throughput",
                       description="Time training (real length-bucketed batches, warm-up "
                       "excluded), prior sampling and encoding, and compare the achieved "
                       "GFLOP/s with this machine's measured fp32 matmul peak.",
                       formatter_class=HelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="moses")
    p.add_argument("--steps", type=int, default=20, help="timed training steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    p.add_argument("--n-sample", type=int, default=1000,
                   help="sequences sampled from the prior (0: skip sampling)")
    p.add_argument("--sample-batch", type=int, default=512, help="sampling batch size")
    p.add_argument("--max-len", type=int, default=100, help="sampling length limit")
    p.add_argument("--n-encode", type=int, default=5000, help="test sequences encoded (0: skip)")
    p.add_argument("--peer", type=Path, default=None,
                   help="also run this baseline script (../shared/bench/peer_moses.sh) with the "
                   "same batch, steps and samples, and print both side by side")
    p.add_argument("--both-precisions", action="store_true",
                   help="time the same configuration in fp32 and in bf16, one after the other, "
                   "and print them side by side (what --precision auto would gain here)")
    p.add_argument("--repeats", type=int, default=1,
                   help="run everything (seqvae, then the peer) this many times in turn and "
                   "report the medians: a shared machine's speed drifts by a third from minute "
                   "to minute, so one pair of runs can be far off")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    add_config_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for flag, value, least in (("--steps", args.steps, 1), ("--warmup", args.warmup, 0),
                               ("--n-sample", args.n_sample, 0), ("--n-encode", args.n_encode, 0),
                               ("--sample-batch", args.sample_batch, 1), ("--max-len", args.max_len, 1),
                               ("--repeats", args.repeats, 1)):
        if value < least:
            raise SeqVAEError(f"{flag} must be at least {least} (got {value})")
    config = config_from_args(args, preset(args.preset)).validate()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    device = resolve_device(args.device)

    def timed(config):
        return bench(config, device, steps=args.steps, warmup=args.warmup, n_sample=args.n_sample,
                     sample_batch=args.sample_batch, max_len=args.max_len,
                     n_encode=args.n_encode, log=err)
    runs = []
    for repeat in range(args.repeats):
        if args.repeats > 1:
            err(f"seqvae bench: run {repeat + 1} of {args.repeats}")
        if args.both_precisions:
            result = {"seqvae": timed(config.override("train", precision="fp32")),
                      "seqvae_bf16": timed(config.override("train", precision="bf16"))}
        else:
            result = {"seqvae": timed(config)}
        if args.peer:
            result["peer"] = run_peer(args.peer, batch=config.train.batch_size,
                                      steps=args.steps, n_sample=args.n_sample, log=err)
        runs.append(result)
    result = median_of_runs(runs) if args.repeats > 1 else runs[0]
    print(format_bench(result))
    print(json.dumps(result))
    if args.json:
        with atomic_write(args.json, "w") as fh:
            fh.write(json.dumps(result, indent=2))
    return 0
