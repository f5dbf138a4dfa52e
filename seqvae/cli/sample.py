"""``seqvae sample``: decode samples from the prior."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..api import load
from ..errors import SeqVAEError
from .common import write_lines


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sample", parents=parents, help="decode samples from the prior")
    p.add_argument("-n", type=int, default=10, help="number of samples")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    p.add_argument("--method", choices=("sample", "greedy", "beam"), default="sample")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("-o", "--output", type=Path, help="write the samples here, one per line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or not args.temperature > 0:
        raise SeqVAEError("-n must be at least 1 and --temperature above 0")
    vae = load(args.checkpoint, device=args.device)
    samples = vae.sample(args.n, temperature=args.temperature, method=args.method,
                         seed=args.seed, progress=args.n > 5000)
    write_lines(samples, args.output)
    return 0
