"""``seqvae sweep``: one model per target rate, each evaluated on test data, with a table and
the rate-distortion plot."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SeqVAEError
from ..sweep import format_table, run_sweep
from .common import HelpFormatter, err


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sweep", help="train and evaluate one model per --target-kl (the rate-distortion trade-off)",
        description="Train one model per target rate with `seqvae train ... --target-kl R "
                    "--threads 1` (--parallel at a time), evaluate each on the test split with "
                    "`seqvae evaluate`, and write OUT/sweep.md, OUT/sweep.csv and "
                    "OUT/rate_distortion.png. Run it again to resume a stopped sweep. Flags "
                    "after -- go to seqvae train, e.g.: seqvae sweep --out runs/sweep-ptb "
                    "--rates 5 10 20 40 80 -- --data ptb --preset ptb-interpolate --max-steps 4000",
        formatter_class=HelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="sweep folder (one run folder per rate)")
    p.add_argument("--rates", type=float, nargs="+", required=True,
                   help="target KLs in nats per sequence")
    p.add_argument("--parallel", type=int, default=2, help="runs at once (1 thread each)")
    p.add_argument("--evaluate", default="", metavar="FLAGS",
                   help="flags for seqvae evaluate, in one quoted string (e.g. '--n 3000' for "
                        "molecules, '--k 500 --lm runs/ptb-lm' for text)")
    p.add_argument("--compare", type=Path, nargs="+", default=[], metavar="SWEEP",
                   help="finished sweep folders to draw beside this one in rate_distortion.png "
                        "(e.g. the same sweep with --tokenizer selfies)")
    p.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="-- then the seqvae train flags shared by every point")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    train_args = [a for a in args.train_args if a != "--"] if args.train_args else []
    if not train_args:
        raise SeqVAEError("give the seqvae train flags after --, e.g. -- --data ptb --preset "
                          "ptb-interpolate --max-steps 4000")
    if args.parallel < 1 or any(r < 0 for r in args.rates):
        raise SeqVAEError("--parallel must be at least 1 and --rates not negative")
    rows = run_sweep(args.out, args.rates, train_args, args.evaluate.split(), args.parallel,
                     log=err, compare=args.compare)
    print(format_table(rows))
    err(f"seqvae: wrote {args.out / 'sweep.md'}, {args.out / 'sweep.csv'} and "
        f"{args.out / 'rate_distortion.png'}")
    return 0
