"""``seqvae sample``: decode samples from the prior."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SeqVAEError
from ..molecules.chemistry import is_valid
from .common import add_prior_option, err, load_model, write_lines


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sample", parents=parents, help="decode samples from the prior",
                       description="Decode codes drawn from the prior (N(0, I), or the mixture "
                                   "fitted by `seqvae fit-prior`) into strings. For a SMILES model the "
                                   "share of valid molecules goes to stderr; --valid-only "
                                   "prints only distinct valid molecules.")
    p.add_argument("-n", type=int, default=10, help="number of samples (with --valid-only: "
                                                    "of distinct valid molecules)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    p.add_argument("--method", choices=("sample", "greedy", "beam"), default="sample")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--valid-only", action="store_true",
                   help="SMILES models: keep drawing until N distinct valid molecules are "
                        "found (RDKit-checked, printed as canonical SMILES), and say how many "
                        "draws it took; gives up after 100 N draws")
    p.add_argument("-o", "--output", type=Path, help="write the samples here, one per line")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="arithmetic of temperature sampling (--method sample; greedy and beam "
                   "stay fp32). auto: bf16 where the CPU has AMX or AVX512-BF16 (or on a GPU "
                   "with bf16), fp32 elsewhere (docs/results/performance.md)")
    add_prior_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or not args.temperature > 0:
        raise SeqVAEError("-n must be at least 1 and --temperature above 0")
    vae = load_model(args)
    if args.valid_only:
        if vae.kind != "smiles":
            raise SeqVAEError("--valid-only is for SMILES models; every sentence a text model "
                              "samples is a string")
        molecules, draws = vae.sample_valid(args.n, temperature=args.temperature,
                                            method=args.method, seed=args.seed,
                                            progress=args.n > 5000)
        write_lines(molecules, args.output)
        err(f"seqvae: {len(molecules):,} distinct valid molecules from {draws:,} draws "
            f"({len(molecules) / draws:.1%})")
        if len(molecules) < args.n:
            err(f"seqvae: found only {len(molecules):,} of the {args.n:,} asked for within "
                f"{draws:,} draws; try a lower --temperature or a sampler-preset model")
            return 1
        return 0
    samples = vae.sample(args.n, temperature=args.temperature, method=args.method,
                         seed=args.seed, progress=args.n > 5000)
    write_lines(samples, args.output)
    if vae.kind == "smiles":
        valid = sum(map(is_valid, samples))
        err(f"seqvae: {valid:,} of {len(samples):,} samples are valid molecules "
            f"({valid / len(samples):.1%}); --valid-only keeps only those")
    return 0
