"""``seqvae optimize``: climb a molecular property by gradient ascent in z."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..corpus_files import read_sequences
from ..errors import SeqVAEError
from ..molecules.optimization import lowest_test_molecules, optimize
from .common import HelpFormatter, add_prior_option, err, load_model
from .report import format_optimization


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("optimize", parents=parents, help="climb a molecular property by gradient ascent in z",
                       description="Gradient ascent on the property head's prediction in latent "
                       "space, from given molecules or prior samples. The path is decoded every "
                       "--decode-every steps (greedy plus --samples samples); every decode is "
                       "checked with RDKit and scored with its true property. Invalid decodes "
                       "are counted, never returned. Needs a model with a property head "
                       "(train with --property-head N, or run seqvae fit-properties).",
                       formatter_class=HelpFormatter)
    p.add_argument("--objective", choices=("qed", "logp", "plogp"), required=True,
                   help="plogp: penalised logP = logP - SA - max(0, largest ring - 6)")
    p.add_argument("--start", action="append", default=[], metavar="SMILES",
                   help="a start molecule (repeat the flag for more)")
    p.add_argument("--start-file", type=Path, default=None, help="start molecules, one per line")
    p.add_argument("--from-prior", type=int, default=0, metavar="N",
                   help="also start from N samples of the prior")
    p.add_argument("--start-lowest", type=int, default=0, metavar="N",
                   help="also start from the N test molecules of the model's corpus with the "
                   "lowest objective (the constrained benchmark of Jin et al. 2018 uses 800)")
    p.add_argument("--steps", type=int, default=100, help="gradient steps on z")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate on z")
    p.add_argument("--prior-weight", type=float, default=0.1,
                   help="lambda of the penalty -lambda log p(z) that keeps z where the prior "
                   "has mass (N(0, I): lambda ||z||^2 / 2 + const; 0: off)")
    p.add_argument("--decode-every", type=int, default=10)
    p.add_argument("--samples", type=int, default=3,
                   help="sampled decodes per point, besides the greedy one")
    p.add_argument("--restarts", type=int, default=1, metavar="R",
                   help="paths per start molecule: one from its posterior mean and R - 1 from "
                   "draws z ~ q(z|x), each climbing on its own; the decodes of a start's paths "
                   "are pooled")
    p.add_argument("--similarity-min", type=float, nargs="+", default=None, metavar="DELTA",
                   help="only molecules with Morgan Tanimoto similarity >= DELTA to their start; "
                   "with start molecules, also the success rate, mean improvement and mean "
                   "similarity at each DELTA (several allowed: --similarity-min 0.4 0.6)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--max-heavy-atoms", type=int, default=None, metavar="N",
                   help="also list the best molecules with at most N heavy atoms (GCPN and "
                        "MolDQN cap at 38, so that long alkyl chains cannot inflate penalised "
                        "logP)")
    p.add_argument("-o", "--output", type=Path, default=None, help="CSV of every decode")
    p.add_argument("--seed", type=int, default=0)
    add_prior_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.steps < 0 or args.decode_every < 1 or args.samples < 0 or args.top_k < 1 \
            or args.from_prior < 0 or args.start_lowest < 0 or args.restarts < 1 \
            or (args.max_heavy_atoms is not None and args.max_heavy_atoms < 1):
        raise SeqVAEError("--steps, --samples, --from-prior and --start-lowest must not be "
                          "negative; --decode-every, --top-k, --restarts and --max-heavy-atoms "
                          "must be at least 1")
    deltas = args.similarity_min or [None]
    if any(d is not None and not 0 <= d <= 1 for d in deltas):
        raise SeqVAEError("--similarity-min must be between 0 and 1")
    starts = list(args.start) + (read_sequences(args.start_file) if args.start_file else [])
    vae = load_model(args)
    if warning := vae.low_rate_warning("latent optimisation"):
        err(f"seqvae: warning: {warning}")
    if args.start_lowest:
        lowest = lowest_test_molecules(vae, args.objective, args.start_lowest, log=err)
        err(f"seqvae: starting from the {len(lowest):,} test molecules with the lowest "
             f"{args.objective} ({lowest[0][1]:.2f} to {lowest[-1][1]:.2f})")
        starts += [smiles for smiles, _ in lowest]
    result = optimize(vae, args.objective, starts=starts, from_prior=args.from_prior,
                      steps=args.steps, lr=args.lr, prior_weight=args.prior_weight,
                      decode_every=args.decode_every, samples_per_point=args.samples,
                      seed=args.seed, restarts=args.restarts, progress=True)
    print(format_optimization(result, args.objective, deltas, args.top_k, args.max_heavy_atoms))
    if args.output:
        result.write_csv(args.output)
        err(f"seqvae: wrote {len(result.rows):,} decodes to {args.output}")
    return 0
