"""``seqvae fit-prior``: fit a prior to a trained model's codes."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..prior_fitting import add_fitted_prior
from .common import HelpFormatter, beside, err
from .report import format_prior_table


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fit-prior", parents=parents,
                       help="fit a prior to a trained model's codes",
                       description="Encode training sequences, fit a density to draws z ~ "
                       "q(z|x) of them (a sample of the aggregate posterior), and write a new "
                       "checkpoint that samples from it instead of N(0, I) (an ex-post density, "
                       "Ghosh et al. 2020). The density is a RealNVP flow (Dinh et al. 2017), "
                       "a denoising diffusion model (Ho et al. 2020; sampling only, no "
                       "density) or a Gaussian mixture whose number of components is chosen on "
                       "validation codes. Prints the mean log-likelihood of validation codes "
                       "under N(0, I) and under the fitted density (for a diffusion model, its "
                       "validation denoising loss). A diffusion model fitted to a checkpoint "
                       "that has a flow or a mixture keeps that density for log p(z) (the "
                       "penalty of seqvae optimize).",
                       formatter_class=HelpFormatter)
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="new checkpoint (default: model-prior.pt beside MODEL)")
    p.add_argument("--kind", choices=("flow", "diffusion", "mixture"), default="flow",
                   help="flow: a RealNVP (has a density; the default); diffusion: a denoising "
                   "diffusion model (Ho et al. 2020), only for sampling, closer to codes that "
                   "lie on a thin part of the space (docs/results/moses.md), keeping a flow or "
                   "mixture the checkpoint has for log p(z); mixture: Gaussians")
    # per-kind defaults (prior_fitting.SIZES), so none is shown as the flag's default
    p.add_argument("--layers", type=int, default=argparse.SUPPRESS,
                   help="flow: coupling layers (8); diffusion: residual blocks (4)")
    p.add_argument("--hidden", type=int, default=argparse.SUPPRESS,
                   help="flow: hidden units of each coupling's two layers (256); diffusion: "
                   "width of its blocks (256)")
    p.add_argument("--epochs", type=int, default=argparse.SUPPRESS,
                   help="passes over the training codes, fresh draws each pass (flow 10, "
                   "diffusion 30)")
    p.add_argument("--components", type=int, nargs="+", default=[1, 4, 16],
                   help="mixture: numbers of components to try")
    p.add_argument("--train-codes", type=int, default=200_000,
                   help="training sequences encoded for the fit (chosen at random)")
    p.add_argument("--valid-codes", type=int, default=10_000,
                   help="validation sequences encoded to judge the fit")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = args.output or beside(args.checkpoint) / "model-prior.pt"
    record = add_fitted_prior(args.checkpoint, out, kind=args.kind, components=args.components,
                              layers=getattr(args, "layers", None),
                              hidden=getattr(args, "hidden", None),
                              epochs=getattr(args, "epochs", None),
                              n_train=args.train_codes, n_valid=args.valid_codes,
                              seed=args.seed, device=args.device, log=err)
    print(format_prior_table(record))
    err(f"seqvae: wrote {out}")
    return 0
