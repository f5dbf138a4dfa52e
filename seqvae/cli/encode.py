"""``seqvae encode``: posterior means of the lines of a file, as .npy."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..files import atomic_write
from .common import err, load_model, read_inputs


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("encode", parents=parents, help="posterior means of the lines of a file, as .npy")
    p.add_argument("file", type=Path, help="one sentence or SMILES per line (.gz, .csv ok)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .npy, shape (N, d_z)")
    p.add_argument("--column", default=None, help="CSV column")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip (and count) empty or invalid lines instead of stopping")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    vae = load_model(args)
    texts = read_inputs(vae, args)
    z = vae.encode(texts, progress=len(texts) > 5000, check=False)  # _read_inputs checked
    with atomic_write(args.output) as fh:
        np.save(fh, z)
    err(f"seqvae: wrote {z.shape[0]} x {z.shape[1]} posterior means to {args.output}")
    return 0
