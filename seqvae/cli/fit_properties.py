"""``seqvae fit-properties``: fit a property head on a trained SMILES model."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SeqVAEError
from ..molecules.property_fitting import add_property_head
from .common import HelpFormatter, beside, err
from .report import format_head_table


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fit-properties", parents=parents,
                       help="fit a property head on a trained SMILES model",
                       description="Fit an MLP from posterior means to logP, QED, SA and "
                       "penalised logP (computed with RDKit, cached) and write a new checkpoint "
                       "holding the model with that head. Prints validation MAE and R^2.",
                       formatter_class=HelpFormatter)
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="new checkpoint (default: model-properties.pt beside CHECKPOINT)")
    p.add_argument("--hidden", type=int, default=256, help="hidden units of the MLP")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-train", type=int, default=100_000,
                   help="training molecules encoded for the fit")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if min(args.hidden, args.epochs, args.max_train) < 1:
        raise SeqVAEError("--hidden, --epochs and --max-train must be at least 1")
    out = args.output or beside(args.checkpoint) / "model-properties.pt"
    metrics = add_property_head(args.checkpoint, out, hidden=args.hidden, epochs=args.epochs,
                                max_train=args.max_train, seed=args.seed, device=args.device,
                                log=err)
    print(format_head_table(metrics))
    err(f"seqvae: wrote {out}")
    return 0
