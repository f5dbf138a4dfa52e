"""``seqvae reconstruct``: encode and decode the lines of a file."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..decoding import METHODS
from .common import (
    add_beam_size_option,
    check_beam_size,
    err,
    load_model,
    read_inputs,
    write_lines,
)


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reconstruct", parents=parents, help="encode and decode the lines of a file")
    p.add_argument("file", type=Path, help="one sentence or SMILES per line (.gz, .csv ok)")
    p.add_argument("--method", choices=METHODS, default="greedy",
                   help="greedy; beam search; rerank: beam search, then the candidate whose own "
                   "code lies nearest to the input's (the most faithful, about --beam-size "
                   "times slower); or temperature sampling")
    add_beam_size_option(p, "--method")
    p.add_argument("--column", default=None, help="CSV column")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip (and count) empty or invalid lines instead of stopping")
    p.add_argument("-o", "--output", type=Path, help="write a TSV of input and reconstruction")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_beam_size(args)
    vae = load_model(args)
    texts = read_inputs(vae, args)
    recon = vae.reconstruct(texts, method=args.method, check=False,  # read_inputs checked
                            beam_size=args.beam_size)
    write_lines([f"{a}\t{b}" for a, b in zip(texts, recon)], args.output)
    exact = sum(a == b for a, b in zip(texts, recon))
    err(f"seqvae: {exact}/{len(texts)} reconstructed exactly ({exact / len(texts):.1%})")
    return 0
