"""``seqvae train``: train a model on a corpus and report on it."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..api import load
from ..checkpoint import read_checkpoint
from ..config import PRESET_NOTES, PRESETS, Config, preset
from ..training import train
from .common import HelpFormatter, add_config_flags, config_from_args, err
from .report import print_train_summary


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", parents=parents, help="train a model on a corpus",
                       description="Train a sequence VAE. Every preset value can be overridden "
                       "by the flags below; the checkpoint is written to OUT/model.pt.",
                       formatter_class=HelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="named settings (docs/guide/own-data.md#presets); flags override them")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT from OUT/last.pt")
    p.add_argument("--samples", type=int, default=1000,
                   help="prior samples drawn at the end to report validity/uniqueness")
    add_config_flags(p)
    p.add_argument("--no-latent", dest="model.latent_dim", action="store_const", const=0,
                   default=argparse.SUPPRESS,
                   help="train the same decoder as a plain GRU language model, without z "
                   "(the baseline for seqvae evaluate); the same as --latent-dim 0")
    p.epilog = ("Presets: " + "; ".join(f"{name}: {PRESET_NOTES[name]}" for name in PRESETS)
                + ". docs/guide/own-data.md#presets lists every preset value.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    base = preset(args.preset)
    if args.resume and (args.out / "last.pt").exists():
        base = Config.from_dict(read_checkpoint(args.out / "last.pt")["config"])
    config = config_from_args(args, base)
    summary = train(config, args.out, resume=args.resume, device=args.device, log=err)
    if summary.get("rank", 0) != 0:  # under torchrun only rank 0 reports
        return 0
    vae = load(args.out / "model.pt", device=args.device)
    quality = vae.sample_quality(args.samples, seed=config.train.seed) if args.samples else None
    print_train_summary(summary, quality, args.out)
    return 0
