"""``seqvae interpolate``: decode points on a latent path between two sentences."""
from __future__ import annotations

import argparse
import json

from ..decoding import METHODS
from ..errors import SeqVAEError
from ..evaluation import load_split
from ..text.evaluation import endpoint_recovery, short_texts
from .common import (
    HelpFormatter,
    add_beam_size_option,
    add_prior_option,
    check_beam_size,
    err,
    load_model,
    note_unknown,
)
from .report import format_path, format_test_pairs


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("interpolate", parents=parents,
                       help="decode points on a latent path between two sentences",
                       description="Encode two sentences (or SMILES) to their posterior means, "
                       "walk a path between them, and decode each point (Bowman et al. 2016).",
                       formatter_class=HelpFormatter)
    p.add_argument("endpoints", nargs="*", metavar="SENTENCE",
                   help="the two endpoints (quote each one)")
    p.add_argument("--random", action="store_true",
                   help="interpolate between two samples from the prior instead")
    p.add_argument("--test-pairs", type=int, default=None, metavar="N",
                   help="instead: for N random pairs of test sentences, report the share whose "
                   "two endpoints decode back to themselves, and show a few paths")
    p.add_argument("--max-words", type=int, default=15, metavar="N",
                   help="with --test-pairs: only test sentences of at most N words, as `seqvae "
                   "evaluate` measures endpoint recovery (0: any length)")
    p.add_argument("--show", type=int, default=3, metavar="N",
                   help="with --test-pairs: how many of the paths to print")
    p.add_argument("--steps", type=int, default=8, help="points on the path, endpoints included")
    p.add_argument("--path", choices=("linear", "slerp"), default="linear")
    p.add_argument("--decode", choices=METHODS, default="rerank",
                   help="how each point is decoded: rerank (beam search, then the candidate "
                   "whose own code lies nearest to the point: the most faithful endpoints), "
                   "greedy (fastest), beam search or sample (with --test-pairs, also how the "
                   "endpoints must come back; greedy for sample)")
    add_beam_size_option(p, "--decode")
    p.add_argument("--temperature", type=float, default=1.0, help="for --decode sample")
    p.add_argument("--seed", type=int, default=0, help="for --random, --test-pairs and sampling")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_prior_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.steps < 2:
        raise SeqVAEError("--steps must be at least 2 (the two endpoints)")
    check_beam_size(args)
    modes = bool(args.endpoints) + args.random + (args.test_pairs is not None)
    if modes != 1 or (args.endpoints and len(args.endpoints) != 2):
        raise SeqVAEError('give two sentences ("a" "b"), or --random, or --test-pairs N')
    vae = load_model(args)
    if warning := vae.low_rate_warning("interpolation"):
        err(f"seqvae: warning: {warning}")
    vae.require_latent("interpolate")
    options = dict(steps=args.steps, path=args.path, method=args.decode, seed=args.seed,
                   beam_size=args.beam_size, temperature=args.temperature)
    if args.test_pairs is not None:
        return interpolate_test_pairs(vae, args, options)
    if args.random:
        start, end = vae.prior_codes(2, seed=args.seed)
        shown = ["(prior sample)", "(prior sample)"]
    else:
        start, end = args.endpoints
        bad = vae.problems([start, end])
        if bad:
            i, reason = next(iter(bad.items()))
            raise SeqVAEError(f"endpoint {i + 1} ({args.endpoints[i]!r}) is {reason}")
        note_unknown(vae, [start, end])
        shown = [start, end]
    decoded = vae.interpolate(start, end, **options)
    if args.json:
        print(json.dumps({"start": shown[0], "end": shown[1], "path": args.path,
                          "decode": args.decode, "points": decoded}))
    else:
        print(format_path(args.path, args.steps, args.decode, shown, decoded))
    return 0


def interpolate_test_pairs(vae, args: argparse.Namespace, options: dict) -> int:
    if args.test_pairs < 1:
        raise SeqVAEError("--test-pairs must be at least 1")
    split = load_split(vae, "test", log=err)
    if args.max_words < 0 or args.show < 0:
        raise SeqVAEError("--max-words and --show cannot be negative")
    texts = short_texts([vae.tokenizer.decode(split[i].tolist()) for i in range(len(split))],
                        args.max_words or None)
    if len(texts) < 2:
        raise SeqVAEError(f"fewer than two test sentences of at most {args.max_words} words; "
                          "raise --max-words, or 0 for any length")
    # the endpoints come back under the decoding asked for (greedy for --decode sample, which
    # gives a different sentence each time)
    method = "greedy" if args.decode == "sample" else args.decode
    result = endpoint_recovery(vae, texts, pairs=args.test_pairs, seed=args.seed, method=method,
                               beam_size=args.beam_size)
    examples = [{"start": texts[a], "end": texts[b],
                 "points": vae.interpolate(texts[a], texts[b], **options)}
                for a, b in result["chosen"][:args.show]]
    if args.json:
        print(json.dumps({**result, "max_words": args.max_words, "examples": examples}))
        return 0
    print(format_test_pairs(result, examples, args.max_words))
    return 0
