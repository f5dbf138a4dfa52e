"""``seqvae evaluate``: likelihood, latent usage and reconstruction (text), or the MOSES
metrics (SMILES), of a trained model."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from ..data import TokenizedSplit
from ..devices import resolve_precision
from ..errors import SeqVAEError
from ..evaluation import by_words, evaluate_sequences, format_table, load_split
from ..files import atomic_write
from ..molecules.evaluation import evaluate_molecules, format_molecule_table
from ..text.evaluation import (
    RECONSTRUCTION_METHODS,
    endpoint_recovery,
    exact_reconstruction,
    reader_measures,
    short_texts,
    vocabulary,
)
from .common import (
    HelpFormatter,
    add_beam_size_option,
    add_prior_option,
    beside,
    err,
    load_model,
    model_file,
    read_inputs,
)


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", parents=parents,
                       help="likelihood, latent usage and reconstruction of a model",
                       description="Importance-weighted NLL and perplexity, ELBO (reconstruction "
                       "and KL), mutual information I(x;z), active units, and greedy "
                       "reconstruction (exact match, BLEU-4) on a split of the training corpus "
                       "or on a file. Prints a table and writes JSON.",
                       formatter_class=HelpFormatter)
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
    p.add_argument("--endpoint-pairs", type=int, default=100,
                   help="text: random pairs of test sentences whose endpoints must decode back "
                   "to themselves (interpolation endpoint recovery; 0: skip)")
    p.add_argument("--endpoint-max-words", type=int, default=15,
                   help="text: draw those pairs from sentences of at most this many words")
    p.add_argument("--decode", choices=RECONSTRUCTION_METHODS, default="greedy",
                   help="text: how the posterior means are decoded for exact match, BLEU, "
                   "endpoint recovery and the midpoints: greedy, beam search, or rerank (beam "
                   "search, then the candidate whose own code lies nearest; the most faithful, "
                   "about --beam-size times slower)")
    add_beam_size_option(p, "--decode")
    p.add_argument("--lm", type=model_file, default=None, metavar="MODEL",
                   help="text: a language model (trained with --latent-dim 0) that scores the "
                   "fluency (NLL per token, and its ratio to the same LM's on the real short "
                   "sentences) of the sentences between those endpoints and of --lm-samples "
                   "prior samples, with the share of them that are distinct")
    p.add_argument("--lm-samples", type=int, default=500,
                   help="text, with --lm: prior samples (temperature 1, as seqvae sample) to score")
    p.add_argument("--reconstruct", type=int, default=1000,
                   help="molecules: test molecules reconstructed greedily from their means")
    p.add_argument("--stochastic", type=int, default=100,
                   help="molecules: of those, how many are also reconstructed by the protocol "
                   "of Kusner et al. 2017 / Jin et al. 2018 (10 codes from q(z|x) x 10 sampled "
                   "decodes each; 0: skip)")
    p.add_argument("--own-reference-statistics", action="store_true",
                   help="molecules, MOSES: compute the test sets' reference statistics (FCD, "
                   "SNN, fragments, scaffolds, properties) here instead of reading those the "
                   "molsets wheel ships (~20 CPU-minutes a split the first time, then cached)")
    p.add_argument("--limit", type=int, default=None,
                   help="likelihood: evaluate only the first N sequences")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the importance samples")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="arithmetic of the importance-sampling decoder passes (nearly all of "
                   "the likelihood's work) and of sampling from the prior (greedy "
                   "reconstructions stay fp32). auto: bf16 where the CPU has AMX or "
                   "AVX512-BF16 (or on a GPU with bf16), fp32 elsewhere; bf16 moves the NLL by "
                   "a few hundredths of a nat (docs/results/performance.md)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's, one per core)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="JSON results (default: next to the checkpoint, evaluate-SPLIT-kK.json)")
    add_prior_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (args.k < 1 or args.batch_size < 1 or args.n < 1 or args.lm_samples < 1
            or (args.limit is not None and args.limit < 1)
            or (args.beam_size is not None and args.beam_size < 1)):
        raise SeqVAEError("--k, --n, --batch-size, --lm-samples, --limit and --beam-size must "
                          "be at least 1")
    if args.reconstruct < 0 or not 0 <= args.stochastic <= args.reconstruct:
        raise SeqVAEError("--reconstruct must not be negative, and --stochastic must be between "
                          "0 and --reconstruct")
    if args.threads is not None:
        if args.threads < 1:
            raise SeqVAEError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    vae = load_model(args)   # with --precision resolved: vae.precision
    if args.precision == "auto" and vae.model.has_latent:
        err(f"seqvae: precision auto: {vae.precision} "
            f"({resolve_precision('auto', vae.model.device)[1]})")
    what = args.metrics
    if what == "auto":
        what = "molecules" if vae.kind == "smiles" else "likelihood"
    if what in ("molecules", "all") and vae.kind != "smiles":
        raise SeqVAEError("--metrics molecules needs a model trained on SMILES")
    name = args.file.name if args.file else args.split
    suffix = f"-k{args.k if vae.latent_dim else 1}" if what in ("likelihood", "all") else f"-n{args.n}"
    output = args.output or beside(args.checkpoint) / f"evaluate-{Path(name).stem}{suffix}.json"
    # The folder of -o is made (or refused) now, not after minutes of evaluation.
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeqVAEError(f"cannot write the results to {output}: {exc}; choose another -o") from exc
    results: dict[str, Any] = {"checkpoint": str(args.checkpoint), "data": name,
                               "prior": vae.prior_description if vae.latent_dim else None}
    if what in ("likelihood", "all"):
        results["likelihood"] = likelihood_block(vae, args)
    if what in ("molecules", "all"):
        plot = output.parent / "properties.png"  # beside the JSON, wherever -o puts it
        results["molecules"] = evaluate_molecules(vae, n=args.n, seed=args.seed, plot=plot,
                                                  n_reconstruct=args.reconstruct,
                                                  n_stochastic=args.stochastic,
                                                  log=err, progress=True,
                                                  own_reference_statistics=args.own_reference_statistics)
        print(format_molecule_table(results["molecules"], f"seqvae evaluate {args.checkpoint}: "
                                    f"MOSES metrics of prior samples (temperature 1; prior "
                                    f"{vae.prior_description})"))
    with atomic_write(output, "w") as fh:
        fh.write(json.dumps(results, indent=2))
    err(f"seqvae: wrote {output}")
    return 0


def likelihood_block(vae, args: argparse.Namespace) -> dict:
    if args.file:
        texts = read_inputs(vae, args)
        split, name = TokenizedSplit.from_lists(vae.tokenizer.encode_batch(texts)), args.file.name
    else:
        split, name = load_split(vae, args.split, log=err), args.split
        texts = vae.corpus(log=err).texts[args.split]
    if args.limit:
        split, texts = split.subset(args.limit), texts[:args.limit]
    if len(split) == 0:
        raise SeqVAEError(f"nothing to evaluate in {name}")
    results = evaluate_sequences(vae, split, k=args.k, seed=args.seed,
                                 batch_size=args.batch_size, progress=True,
                                 precision=vae.precision, method=args.decode,
                                 beam_size=args.beam_size)
    short = short_texts(texts, args.endpoint_max_words)
    if vae.latent_dim and short:
        results.update(short_max_words=args.endpoint_max_words, short_sentences=len(short),
                       short_exact_match=exact_reconstruction(vae, short, args.decode,
                                                              args.beam_size))
    if vae.latent_dim and args.endpoint_pairs and len(short) >= 2:
        recovery = endpoint_recovery(vae, short, pairs=args.endpoint_pairs, seed=args.seed,
                                     method=args.decode, beam_size=args.beam_size)
        results.update(endpoint_recovery=recovery["share"], endpoint_pairs=recovery["pairs"],
                       endpoint_max_words=args.endpoint_max_words)
        if args.lm is not None:
            # a subword model can spell words that exist nowhere: count them against the
            # words of its training sentences (a word-level model cannot invent any)
            known = vocabulary(vae.corpus(log=err).texts["train"]) if by_words(vae) else None
            results.update(reader_measures(vae, load_model(args, args.lm), short,
                                           pairs=args.endpoint_pairs, samples=args.lm_samples,
                                           seed=args.seed, known_words=known,
                                           method=args.decode))
    print(format_table(results, f"seqvae evaluate {args.checkpoint} on {name}"))
    return results
