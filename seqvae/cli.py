"""The ``seqvae`` command: parses arguments and calls the package. No logic lives here.

    seqvae train --data moses --preset cpu-small --out runs/moses --max-steps 2000
    seqvae sample runs/moses/model.pt -n 10
    seqvae encode runs/moses/model.pt molecules.smi -o z.npy
    seqvae reconstruct runs/moses/model.pt molecules.smi
    seqvae evaluate runs/ptb/model.pt --split test --k 500
    seqvae interpolate runs/ptb/model.pt "the market fell" "he said it was fine"
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .config import PRESET_NOTES, PRESETS, SECTIONS, Config, preset

# Flags whose names differ from their config field (the rest are --field-name).
FLAG_NAMES = {("data", "source"): "data", ("tokenizer", "kind"): "tokenizer"}
SHORT_HELP = {"data": "corpus and splits", "tokenizer": "tokenizer", "model": "architecture",
              "objective": "objective and KL schedule", "train": "optimisation and run length"}


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _converter(type_name: str):
    """argparse type for a config field annotated like 'int', 'float | None', 'str'."""
    parts = [p.strip() for p in type_name.split("|")]
    optional = "None" in parts
    base = {"int": int, "float": float, "str": str, "bool": _parse_bool}[
        next(p for p in parts if p != "None")]

    def convert(text: str) -> Any:
        if optional and text.lower() in ("none", "null", ""):
            return None
        return base(text)
    convert.__name__ = base.__name__  # argparse names the type in its error messages
    return convert


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field; defaults are suppressed so only given flags override."""
    defaults = Config()
    for section in SECTIONS:
        group = parser.add_argument_group(f"{section} ({SHORT_HELP[section]})")
        for f in dataclasses.fields(getattr(defaults, section)):
            name = FLAG_NAMES.get((section, f.name), f.name.replace("_", "-"))
            kwargs: dict[str, Any] = dict(
                dest=f"{section}.{f.name}", default=argparse.SUPPRESS,
                type=_converter(str(f.type)), choices=f.metadata["choices"],
                metavar=None if f.metadata["choices"] else f.name.upper(),
                help=f"{f.metadata['help']} (default {f.default!r})")
            if str(f.type) == "bool":
                kwargs.update(nargs="?", const=True, metavar="BOOL")
            group.add_argument(f"--{name}", **kwargs)


def config_from_args(args: argparse.Namespace, base: Config) -> Config:
    """Apply the config flags that were given on top of ``base``."""
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            base = base.override(section, **{name: value})
    return base


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqvae", description="A GRU sequence VAE for sentences and SMILES molecules.")
    parser.add_argument("--version", action="version", version=f"seqvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model on a corpus",
                       description="Train a sequence VAE. Every preset value can be overridden "
                       "by the flags below; the checkpoint is written to OUT/model.pt.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="named settings (see the README); flags override them")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT from OUT/last.pt")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--samples", type=int, default=1000,
                   help="prior samples drawn at the end to report validity/uniqueness")
    _add_config_flags(p)
    p.add_argument("--no-latent", dest="model.latent_dim", action="store_const", const=0,
                   default=argparse.SUPPRESS,
                   help="train the same decoder as a plain GRU language model, without z "
                   "(the baseline for seqvae evaluate); the same as --latent-dim 0")
    p.epilog = ("Presets: " + "; ".join(f"{name}: {PRESET_NOTES[name]}" for name in PRESETS)
                + ". The README documents every preset value.")

    p = sub.add_parser("sample", help="decode samples from the prior")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-n", type=int, default=10, help="number of samples")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    p.add_argument("--method", choices=("sample", "greedy", "beam"), default="sample")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("-o", "--output", type=Path, help="write the samples here, one per line")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("encode", help="posterior means of the lines of a file, as .npy")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("file", type=Path, help="one sentence or SMILES per line (.gz, .csv ok)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .npy, shape (N, d_z)")
    p.add_argument("--column", default=None, help="CSV column")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip (and count) empty or invalid lines instead of stopping")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("reconstruct", help="encode and decode the lines of a file")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("file", type=Path, help="one sentence or SMILES per line (.gz, .csv ok)")
    p.add_argument("--method", choices=("greedy", "beam", "sample"), default="greedy")
    p.add_argument("--column", default=None, help="CSV column")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip (and count) empty or invalid lines instead of stopping")
    p.add_argument("-o", "--output", type=Path, help="write a TSV of input and reconstruction")
    p.add_argument("--device", default="auto")
    p = sub.add_parser("evaluate", help="likelihood, latent usage and reconstruction of a model",
                       description="Importance-weighted NLL and perplexity, ELBO (reconstruction "
                       "and KL), mutual information I(x;z), active units, and greedy "
                       "reconstruction (exact match, BLEU-4) on a split of the training corpus "
                       "or on a file. Prints a table and writes JSON.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--split", default="test", help="split of the model's own corpus")
    p.add_argument("--file", type=Path, default=None,
                   help="evaluate the lines of this file instead of a split")
    p.add_argument("--column", default=None, help="CSV column of --file")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip (and count) empty or invalid lines of --file instead of stopping")
    p.add_argument("--k", type=int, default=500,
                   help="importance samples per sequence (500 for final numbers; fewer for "
                   "quick looks; a model without a latent is exact with 1)")
    p.add_argument("--metrics", choices=("auto", "likelihood", "molecules", "all"), default="auto",
                   help="likelihood: the NLL/ELBO/MI/AU/BLEU block; molecules: the MOSES metrics "
                   "of --n prior samples, reconstruction and property plots; auto: likelihood "
                   "for text models, molecules for SMILES models")
    p.add_argument("--n", type=int, default=30000,
                   help="molecules: samples from the prior (30,000 as in MOSES)")
    p.add_argument("--limit", type=int, default=None,
                   help="likelihood: evaluate only the first N sequences")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the importance samples")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="JSON results (default: next to the checkpoint, evaluate-SPLIT-kK.json)")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("interpolate", help="decode points on a latent path between two sentences",
                       description="Encode two sentences (or SMILES) to their posterior means, "
                       "walk a path between them, and decode each point (Bowman et al. 2016).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("endpoints", nargs="*", metavar="SENTENCE",
                   help="the two endpoints (quote each one)")
    p.add_argument("--random", action="store_true",
                   help="interpolate between two samples from the prior instead")
    p.add_argument("--test-pairs", type=int, default=None, metavar="N",
                   help="instead: for N random pairs of test sentences, report the share whose "
                   "two endpoints decode back to themselves, and show a few paths")
    p.add_argument("--steps", type=int, default=8, help="points on the path, endpoints included")
    p.add_argument("--path", choices=("linear", "slerp"), default="linear")
    p.add_argument("--decode", choices=("greedy", "beam", "sample"), default="greedy",
                   help="how each point is decoded")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--temperature", type=float, default=1.0, help="for --decode sample")
    p.add_argument("--seed", type=int, default=0, help="for --random, --test-pairs and sampling")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("fit-properties", help="fit a property head on a trained SMILES model",
                       description="Fit an MLP from posterior means to logP, QED, SA and "
                       "penalised logP (computed with RDKit, cached) and write a new checkpoint "
                       "holding the model with that head. Prints validation MAE and R^2.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="new checkpoint (default: model-properties.pt beside CHECKPOINT)")
    p.add_argument("--hidden", type=int, default=256, help="hidden units of the MLP")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-train", type=int, default=100_000,
                   help="training molecules encoded for the fit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")

    p = sub.add_parser("optimize", help="climb a molecular property by gradient ascent in z",
                       description="Gradient ascent on the property head's prediction in latent "
                       "space, from given molecules or prior samples. The path is decoded every "
                       "--decode-every steps (greedy plus --samples samples); every decode is "
                       "checked with RDKit and scored with its true property. Invalid decodes "
                       "are counted, never returned. Needs a model with a property head "
                       "(train with --property-head N, or run seqvae fit-properties).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", type=Path)
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
                   help="lambda of the penalty lambda ||z||^2 / 2 that keeps z where the prior "
                   "has mass (0: off)")
    p.add_argument("--decode-every", type=int, default=10)
    p.add_argument("--samples", type=int, default=3,
                   help="sampled decodes per point, besides the greedy one")
    p.add_argument("--similarity-min", type=float, nargs="+", default=None, metavar="DELTA",
                   help="only molecules with Morgan Tanimoto similarity >= DELTA to their start; "
                   "with start molecules, also the success rate, mean improvement and mean "
                   "similarity at each DELTA (several allowed: --similarity-min 0.4 0.6)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("-o", "--output", type=Path, default=None, help="CSV of every decode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")

    p = sub.add_parser("bench", help="measure training, sampling and encoding throughput",
                       description="Time training (real length-bucketed batches, warm-up "
                       "excluded), prior sampling and encoding, and compare the achieved "
                       "GFLOP/s with this machine's measured fp32 matmul peak.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="moses")
    p.add_argument("--steps", type=int, default=20, help="timed training steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    p.add_argument("--n-sample", type=int, default=1000, help="sequences sampled from the prior")
    p.add_argument("--sample-batch", type=int, default=512, help="sampling batch size")
    p.add_argument("--max-len", type=int, default=100, help="sampling length limit")
    p.add_argument("--n-encode", type=int, default=5000, help="test sequences encoded")
    p.add_argument("--peer", type=Path, default=None,
                   help="also run this baseline script (../shared/bench/peer_moses.sh) with the "
                   "same batch, steps and samples, and print both side by side")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    _add_config_flags(p)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench, run_peer
    from .devices import resolve_device
    config = config_from_args(args, preset(args.preset)).validate()
    if config.train.threads:
        import torch
        torch.set_num_threads(config.train.threads)
    result = {"seqvae": bench(config, resolve_device(args.device), steps=args.steps,
                              warmup=args.warmup, n_sample=args.n_sample,
                              sample_batch=args.sample_batch, max_len=args.max_len,
                              n_encode=args.n_encode, log=_err)}
    if args.peer:
        result["peer"] = run_peer(args.peer, batch=config.train.batch_size, steps=args.steps,
                                  n_sample=args.n_sample, log=_err)
    print(format_bench(result))
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def format_bench(result: dict) -> str:
    ours, peer = result["seqvae"], result.get("peer")
    rows = [("training tokens/s", "train_tok_per_s"), ("training molecules/s", "train_mol_per_s"),
            ("sampling molecules/s", "sample_mol_per_s"), ("encoding molecules/s", "encode_mol_per_s"),
            ("training GFLOP/s", "train_gflop_per_s"), ("fp32 matmul peak GFLOP/s", "matmul_peak_gflop_per_s"),
            ("share of peak", "fraction_of_peak"), ("peak RSS MB", "peak_rss_mb")]
    head = f"{'':26}{'seqvae':>12}" + (f"{'peer':>12}{'ratio':>8}" if peer else "")
    lines = [f"seqvae bench on {ours['device']} ({ours['threads']} threads, torch {ours['torch']}), "
             f"{ours['corpus']}, {ours['tokenizer']} tokens, batch {ours['batch_size']}", head]
    for label, key in rows:
        value = ours.get(key)
        line = f"{label:26}{value if value is not None else '-':>12}"
        if peer and peer.get(key):
            line += f"{peer[key]:>12}{value / peer[key]:>7.2f}x"
        lines.append(line)
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from .api import load
    from .checkpoint import read_checkpoint
    from .training import train

    base = preset(args.preset)
    if args.resume and (args.out / "last.pt").exists():
        base = Config.from_dict(read_checkpoint(args.out / "last.pt")["config"])
    config = config_from_args(args, base)
    summary = train(config, args.out, resume=args.resume, device=args.device, log=_err)
    if summary.get("rank", 0) != 0:  # under torchrun only rank 0 reports
        return 0
    vae = load(args.out / "model.pt", device=args.device)
    quality = vae.sample_quality(args.samples, seed=config.train.seed) if args.samples else None
    _print_summary(summary, quality, args.out)
    return 0


def _print_summary(summary: dict, quality: dict | None, out: Path) -> None:
    final = summary["final_valid"]
    print(f"\nTrained {summary['steps']} steps in {summary['train_seconds']:.0f} s on "
          f"{summary['device']} ({summary['parameters'] / 1e6:.2f}M parameters).")
    print(f"Best validation ELBO {summary['best_valid_elbo']:.3f} nats/sequence "
          f"(step {summary['best_step']}) -> {out / 'model.pt'}")
    if final:
        print(f"Final validation: rec {final['rec']:.3f}  KL {final['kl']:.3f}  "
              f"ELBO {final['elbo']:.3f}  NLL/token {final['nll_per_token']:.4f} "
              f"({final['n']} sequences)")
    if quality:
        print(f"\nSamples from the prior (temperature 1):")
        flags = quality.get("valid_flags")
        for i, text in enumerate(quality["samples"][:10]):
            mark = "" if flags is None else ("valid    " if flags[i] else "INVALID  ")
            print(f"  {mark}{text}")
        if flags is not None:
            print(f"{quality['n']} prior samples: valid {quality['valid']:.3f}, "
                  f"unique among valid {quality['unique']:.3f}")
        else:
            print(f"{quality['n']} prior samples: unique {quality['unique']:.3f}")
    print(f"Run folder: {out} (metrics.csv, training.png, config.json, summary.json)")


def cmd_sample(args: argparse.Namespace) -> int:
    from .api import load
    from .errors import SeqVAEError
    if args.n < 1 or not args.temperature > 0:
        raise SeqVAEError("-n must be at least 1 and --temperature above 0")
    vae = load(args.checkpoint, device=args.device)
    samples = vae.sample(args.n, temperature=args.temperature, method=args.method,
                         seed=args.seed, progress=args.n > 5000)
    _write_lines(samples, args.output)
    return 0


def _read_inputs(vae, args: argparse.Namespace) -> list[str]:
    """The usable lines of the input file; unusable ones stop the command, or with
    --skip-invalid are skipped and counted."""
    from .corpora import read_numbered
    from .errors import SeqVAEError
    numbered = read_numbered(args.file, column=args.column)
    texts, lines = numbered.sequences, numbered.line_numbers
    bad = vae.problems(texts)
    if bad and not args.skip_invalid:
        i, reason = next(iter(bad.items()))
        raise SeqVAEError(f"{args.file}: line {lines[i]} ({texts[i]!r}) is {reason}; fix it, or "
                          f"pass --skip-invalid to skip such lines ({len(bad)} in all)")
    if bad:
        shown = ", ".join(str(lines[i]) for i in list(bad)[:10])
        _err(f"seqvae: skipped {len(bad)} unusable lines of {args.file} (lines {shown}"
             + (", ..." if len(bad) > 10 else "") + ")")
        texts = [t for i, t in enumerate(texts) if i not in bad]
    if numbered.blank:
        _err(f"seqvae: skipped {numbered.blank} blank lines of {args.file}")
    if not texts:
        raise SeqVAEError(f"{args.file}: no usable lines left to work on")
    unknown = [i for i, n in enumerate(vae.unknown_tokens(texts)) if n]
    if unknown:
        _err(f"seqvae: note: {len(unknown)} inputs contain tokens the model never saw in "
             f"training; they are read as <unk> (e.g. {texts[unknown[0]]!r})")
    return texts


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np
    from .api import load
    vae = load(args.checkpoint, device=args.device)
    texts = _read_inputs(vae, args)
    z = vae.encode(texts, progress=len(texts) > 5000, check=False)  # _read_inputs checked
    np.save(args.output, z)
    _err(f"seqvae: wrote {z.shape[0]} x {z.shape[1]} posterior means to {args.output}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .api import load
    vae = load(args.checkpoint, device=args.device)
    texts = _read_inputs(vae, args)
    recon = vae.reconstruct(texts, method=args.method, check=False)  # _read_inputs checked
    _write_lines([f"{a}\t{b}" for a, b in zip(texts, recon)], args.output)
    exact = sum(a == b for a, b in zip(texts, recon))
    _err(f"seqvae: {exact}/{len(texts)} reconstructed exactly ({exact / len(texts):.1%})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .api import load
    from .errors import SeqVAEError
    if args.k < 1 or args.batch_size < 1 or args.n < 1 or (args.limit is not None and args.limit < 1):
        raise SeqVAEError("--k, --n, --batch-size and --limit must be at least 1")
    vae = load(args.checkpoint, device=args.device)
    what = args.metrics
    if what == "auto":
        what = "molecules" if vae.kind == "smiles" else "likelihood"
    if what in ("molecules", "all") and vae.kind != "smiles":
        raise SeqVAEError("--metrics molecules needs a model trained on SMILES")
    name = args.file.name if args.file else args.split
    results: dict[str, Any] = {"checkpoint": str(args.checkpoint), "data": name}
    if what in ("likelihood", "all"):
        results["likelihood"] = _likelihood_block(vae, args)
    if what in ("molecules", "all"):
        from .molecule_evaluation import evaluate_molecules, format_molecule_table
        plot = args.checkpoint.parent / "properties.png"
        results["molecules"] = evaluate_molecules(vae, n=args.n, seed=args.seed, plot=plot,
                                                  log=_err, progress=True)
        print(format_molecule_table(results["molecules"], f"seqvae evaluate {args.checkpoint}: "
                                    "MOSES metrics of prior samples (temperature 1)"))
    suffix = f"-k{results['likelihood']['k']}" if "likelihood" in results else f"-n{args.n}"
    output = args.output or args.checkpoint.parent / f"evaluate-{Path(name).stem}{suffix}.json"
    output.write_text(json.dumps(results, indent=2))
    _err(f"seqvae: wrote {output}")
    return 0


def _likelihood_block(vae, args: argparse.Namespace) -> dict:
    from .data import TokenizedSplit
    from .errors import SeqVAEError
    from .evaluation import evaluate_sequences, format_table, load_split
    if args.file:
        texts = _read_inputs(vae, args)
        split, name = TokenizedSplit.from_lists(vae.tokenizer.encode_batch(texts)), args.file.name
    else:
        split, name = load_split(vae, args.split, log=_err), args.split
    if args.limit:
        split = split.subset(args.limit)
    if len(split) == 0:
        raise SeqVAEError(f"nothing to evaluate in {name}")
    results = evaluate_sequences(vae, split, k=args.k, seed=args.seed,
                                 batch_size=args.batch_size, progress=True)
    print(format_table(results, f"seqvae evaluate {args.checkpoint} on {name}"))
    return results


def cmd_fit_properties(args: argparse.Namespace) -> int:
    from .errors import SeqVAEError
    from .property_fitting import add_property_head
    if min(args.hidden, args.epochs, args.max_train) < 1:
        raise SeqVAEError("--hidden, --epochs and --max-train must be at least 1")
    out = args.output or args.checkpoint.parent / "model-properties.pt"
    metrics = add_property_head(args.checkpoint, out, hidden=args.hidden, epochs=args.epochs,
                                max_train=args.max_train, seed=args.seed, device=args.device,
                                log=_err)
    print(f"{'property':<10}{'MAE':>10}{'R2':>8}{'n':>9}   (validation, from posterior means)")
    for name, m in metrics.items():
        print(f"{name:<10}{m['mae']:>10.3f}{m['r2']:>8.3f}{m['n']:>9,}")
    _err(f"seqvae: wrote {out}")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from .api import load
    from .corpora import read_sequences
    from .errors import SeqVAEError
    from .optimization import lowest_test_molecules, optimize
    if args.steps < 0 or args.decode_every < 1 or args.samples < 0 or args.top_k < 1 \
            or args.from_prior < 0 or args.start_lowest < 0:
        raise SeqVAEError("--steps, --samples, --from-prior and --start-lowest must not be "
                          "negative; --decode-every and --top-k must be at least 1")
    deltas = args.similarity_min or [None]
    if any(d is not None and not 0 <= d <= 1 for d in deltas):
        raise SeqVAEError("--similarity-min must be between 0 and 1")
    starts = list(args.start) + (read_sequences(args.start_file) if args.start_file else [])
    vae = load(args.checkpoint, device=args.device)
    if args.start_lowest:
        lowest = lowest_test_molecules(vae, args.objective, args.start_lowest, log=_err)
        _err(f"seqvae: starting from the {len(lowest):,} test molecules with the lowest "
             f"{args.objective} ({lowest[0][1]:.2f} to {lowest[-1][1]:.2f})")
        starts += [smiles for smiles, _ in lowest]
    result = optimize(vae, args.objective, starts=starts, from_prior=args.from_prior,
                      steps=args.steps, lr=args.lr, prior_weight=args.prior_weight,
                      decode_every=args.decode_every, samples_per_point=args.samples,
                      seed=args.seed, progress=True)
    for delta in deltas:
        best = result.best(args.top_k, delta)
        sim = f", similarity to start >= {delta}" if delta is not None else ""
        print(f"top {len(best)} valid molecules by true {args.objective} (RDKit){sim}:")
        print(f"  {'true':>8} {'predicted':>9} {'sim':>5} {'step':>5}  smiles")
        for r in best:
            shown_sim = f"{r['similarity']:.2f}" if r["similarity"] is not None else "-"
            print(f"  {r['true_property']:>8.3f} {r['predicted_property']:>9.3f} {shown_sim:>5} "
                  f"{r['step']:>5}  {r['smiles']}")
        if delta is not None and result.start_values:
            c = result.constrained(delta)
            print(f"constrained (delta {delta}): {c['success']:.1%} of {c['starts']:,} start "
                  f"molecules improved by a different molecule this similar; among them mean "
                  f"improvement {c['improvement']:.2f} (sd {c['improvement_std']:.2f}), mean "
                  f"similarity {c['similarity']:.2f}; over all starts {c['improvement_all']:.2f}")
    print(f"decodes: {result.decodes:,}, valid {result.valid_decodes:,} ({result.validity:.1%}); "
          "invalid ones are counted here and never returned")
    if args.output:
        result.write_csv(args.output)
        _err(f"seqvae: wrote {len(result.rows):,} decodes to {args.output}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from .api import load
    from .errors import SeqVAEError
    if args.steps < 2:
        raise SeqVAEError("--steps must be at least 2 (the two endpoints)")
    modes = bool(args.endpoints) + args.random + (args.test_pairs is not None)
    if modes != 1 or (args.endpoints and len(args.endpoints) != 2):
        raise SeqVAEError('give two sentences ("a" "b"), or --random, or --test-pairs N')
    vae = load(args.checkpoint, device=args.device)
    vae.require_latent("interpolate")
    options = dict(steps=args.steps, path=args.path, method=args.decode, seed=args.seed,
                   beam_size=args.beam_size, temperature=args.temperature)
    if args.test_pairs is not None:
        return _interpolate_test_pairs(vae, args, options)
    if args.random:
        start, end = vae.prior_codes(2, seed=args.seed)
        shown = ["(prior sample)", "(prior sample)"]
    else:
        start, end = args.endpoints
        bad = vae.problems([start, end])
        if bad:
            i, reason = next(iter(bad.items()))
            raise SeqVAEError(f"endpoint {i + 1} ({args.endpoints[i]!r}) is {reason}")
        _note_unknown(vae, [start, end])
        shown = [start, end]
    decoded = vae.interpolate(start, end, **options)
    if args.json:
        print(json.dumps({"start": shown[0], "end": shown[1], "path": args.path,
                          "decode": args.decode, "points": decoded}))
    else:
        print(f"{args.path} path, {args.steps} points, {args.decode} decoding")
        print(f"  from: {shown[0]}")
        for i, text in enumerate(decoded):
            print(f"  {i:>3}  {text}")
        print(f"    to: {shown[1]}")
    return 0


def _interpolate_test_pairs(vae, args: argparse.Namespace, options: dict) -> int:
    from .errors import SeqVAEError
    from .evaluation import endpoint_recovery, load_split
    if args.test_pairs < 1:
        raise SeqVAEError("--test-pairs must be at least 1")
    split = load_split(vae, "test", log=_err)
    texts = [vae.tokenizer.decode(split[i].tolist()) for i in range(len(split))]
    result = endpoint_recovery(vae, texts, pairs=args.test_pairs, seed=args.seed)
    examples = [{"start": texts[a], "end": texts[b],
                 "points": vae.interpolate(texts[a], texts[b], **options)}
                for a, b in result["chosen"][:3]]
    if args.json:
        print(json.dumps({**result, "examples": examples}))
        return 0
    for example in examples:
        print(f"from: {example['start']}")
        for i, text in enumerate(example["points"]):
            print(f"  {i:>3}  {text}")
        print(f"  to: {example['end']}\n")
    print(f"{result['recovered_pairs']} of {result['pairs']} random test pairs "
          f"({result['share']:.0%}) decode back to both of their own endpoints "
          f"(greedy decoding of the posterior mean; {result['sentences_recovered']:.0%} of the "
          "sentences involved come back exactly)")
    return 0


def _note_unknown(vae, texts: Sequence[str]) -> None:
    """Say which inputs have tokens outside the vocabulary (they are read as <unk>)."""
    for text, count in zip(texts, vae.unknown_tokens(texts)):
        if count:
            _err(f"seqvae: note: {count} token(s) of {text!r} are outside the model's vocabulary "
                 "and are read as <unk>" + (" (the vocabulary is lower-case)"
                                            if text != text.lower() and _lowercase_vocab(vae) else ""))


def _lowercase_vocab(vae) -> bool:
    tokens = getattr(vae.tokenizer, "tokens", None) or []
    return bool(tokens) and all(t == t.lower() for t in tokens if not t.startswith("<"))


def _write_lines(lines: Sequence[str], path: Path | None) -> None:
    if path is None:
        for line in lines:
            print(line)
    else:
        path.write_text("".join(f"{line}\n" for line in lines))
        _err(f"seqvae: wrote {len(lines)} lines to {path}")


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "encode": cmd_encode,
            "reconstruct": cmd_reconstruct, "evaluate": cmd_evaluate,
            "interpolate": cmd_interpolate, "fit-properties": cmd_fit_properties,
            "optimize": cmd_optimize,
            "bench": cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import SeqVAEError
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SeqVAEError as exc:
        _err(f"seqvae: error: {exc}")
        return 2
    except OSError as exc:  # disk full, permissions, ...: the system's words, with the file
        _err(f"seqvae: error: {exc.filename or ''}: {exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        _err("seqvae: interrupted" + ("; continue with the same command and --resume"
                                      if args.command == "train" else ""))
        return 130


if __name__ == "__main__":
    sys.exit(main())
