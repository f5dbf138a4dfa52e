"""The ``seqvae`` command: one module per subcommand, each of which parses its arguments and
calls the package; no logic lives here. Shared options are in :mod:`.common`, and every
printed report is formatted in :mod:`.report`.

    seqvae train --data moses --preset cpu-small --out runs/moses --max-steps 2000
    seqvae sample runs/moses/model.pt -n 10
    seqvae encode runs/moses/model.pt molecules.smi -o z.npy
    seqvae reconstruct runs/moses/model.pt molecules.smi
    seqvae evaluate runs/ptb/model.pt --split test --k 500
    seqvae interpolate runs/ptb/model.pt "the market fell" "he said it was fine"
    seqvae models                      # the pretrained models; their names work as MODEL
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .. import __version__
from ..errors import SeqVAEError
from . import (
    bench,
    encode,
    evaluate,
    fit_prior,
    fit_properties,
    interpolate,
    models,
    optimize,
    reconstruct,
    sample,
    sweep,
    train,
)
from .common import checkpoint_options, config_from_args, decoding_options, device_options, err
from .report import format_bench

__all__ = ["main", "build_parser", "config_from_args", "format_bench"]

# Each command's shared options: --device only, a MODEL and --device, those and
# --no-constraints (the commands that decode), or none.
PARENTS = {train: device_options, bench: device_options,
           encode: checkpoint_options, fit_properties: checkpoint_options,
           fit_prior: checkpoint_options,
           sample: decoding_options, reconstruct: decoding_options, evaluate: decoding_options,
           interpolate: decoding_options, optimize: decoding_options}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqvae", description="A GRU sequence VAE for sentences and SMILES molecules.")
    parser.add_argument("--version", action="version", version=f"seqvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (train, sample, encode, reconstruct, evaluate, interpolate, fit_properties,
                    fit_prior, optimize, bench, models, sweep):
        command.add_parser(sub, [PARENTS[command]()] if command in PARENTS else [])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SeqVAEError as exc:
        err(f"seqvae: error: {exc}")
        return 2
    except OSError as exc:  # disk full, permissions, ...: the system's words, with the file
        err(f"seqvae: error: {exc.filename or ''}: {exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        err("seqvae: interrupted" + ("; continue with the same command and --resume"
                                     if args.command == "train" else ""))
        return 130


if __name__ == "__main__":
    sys.exit(main())
