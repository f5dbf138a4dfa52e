"""``seqvae models``: the pretrained models shipped with seqvae, their cards, and (for
maintainers) adding one."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoint import export_half_precision
from ..errors import SeqVAEError
from ..pretrained import HERE, models, register
from .common import err
from .report import format_models


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models", help="list the pretrained models shipped with seqvae",
        description="List the pretrained models that ship inside the package. Every command "
                    "that takes a MODEL accepts their names: seqvae sample moses -n 10.")
    p.add_argument("--card", metavar="NAME", help="print the model card of one model")
    p.add_argument("--export", nargs=2, metavar=("CHECKPOINT", "NAME"),
                   help="maintainers: write CHECKPOINT in half precision into the package as "
                        "NAME.pt and record its SHA-256 (write NAME.md, its card, beside it)")
    p.add_argument("--description", default="", help="with --export: one line on what it is for")
    p.add_argument("--headline", default="", help="with --export: its headline test metrics")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    shipped = models()
    if args.export:
        source, name = args.export
        target = export_half_precision(Path(source), HERE / f"{name}.pt")
        entry = register(name, target, args.description, args.headline)
        err(f"seqvae: wrote {target} ({target.stat().st_size / 1e6:.1f} MB, sha256 "
            f"{entry.sha256[:12]}...)" + ("" if entry.card_path.exists() else
                                         f"; now write its card, {entry.card_path}"))
        return 0
    if args.card:
        if args.card not in shipped:
            raise SeqVAEError(f"no shipped model {args.card!r}; the shipped models are: "
                              f"{', '.join(shipped) or 'none'}")
        print(shipped[args.card].card())
        return 0
    print(format_models(shipped))
    return 0
