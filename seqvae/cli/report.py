"""Every report the commands print, as strings: the commands only decide what to show."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

from ..molecules.optimization import OptimizationResult
from ..prior_fitting import score_name


def format_bench(result: dict) -> str:
    ours, peer, bf16 = result["seqvae"], result.get("peer"), result.get("seqvae_bf16")
    rows = [("training tokens/s", "train_tok_per_s"), ("training molecules/s", "train_mol_per_s"),
            ("sampling molecules/s", "sample_mol_per_s"), ("encoding molecules/s", "encode_mol_per_s"),
            ("training GFLOP/s", "train_gflop_per_s"),
            ("fp32 matmul peak GFLOP/s", "matmul_peak_gflop_per_s"),
            ("share of peak", "fraction_of_peak"), ("peak RSS MB", "peak_rss_mb")]
    name = f"seqvae {ours.get('precision', '')}".strip()
    head = (f"{'':26}{name:>12}" + (f"{'seqvae bf16':>12}{'bf16/fp32':>10}" if bf16 else "")
            + (f"{'peer':>12}{'ratio':>8}" if peer else ""))
    lines = [f"seqvae bench on {ours['device']} ({ours['threads']} threads, torch {ours['torch']}), "
             f"{ours['corpus']}, {ours['tokenizer']} tokens, batch {ours['batch_size']}", head]
    for label, key in rows:
        value = ours.get(key)
        line = f"{label:26}{value if value is not None else '-':>12}"
        if bf16:
            other = bf16.get(key)
            line += f"{other if other is not None else '-':>12}"
            line += f"{other / value:>9.2f}x" if value and other else f"{'':>10}"
        if peer and peer.get(key) and value is not None:
            line += f"{peer[key]:>12}{value / peer[key]:>7.2f}x"
        lines.append(line)
    if "runs" in result:
        lines.append(f"medians of {len(result['runs'])} runs in turn")
        if result.get("pair_ratios"):
            ratios = " ".join(f"{r:.2f}x" for r in result["pair_ratios"])
            lines.append(f"training tokens/s against the peer, run by run: {ratios} (median "
                         f"{statistics.median(result['pair_ratios']):.2f}x)")
    return "\n".join(lines)


def print_train_summary(summary: dict, quality: dict | None, out: Path) -> None:
    final = summary["final_valid"]
    print(f"\nTrained {summary['steps']} steps in {summary['train_seconds']:.0f} s on "
          f"{summary['device']} ({summary['parameters'] / 1e6:.2f}M parameters).")
    target = summary.get("target_kl")
    what = (f"ELBO with the KL charged at least --target-kl {target:g}" if target
            else "ELBO")
    print(f"Best validation {what} {summary['best_valid_elbo']:.3f} nats/sequence "
          f"(step {summary['best_step']}) -> {out / 'model.pt'}")
    if final:
        print(f"Final validation: rec {final['rec']:.3f}  KL {final['kl']:.3f}  "
              f"ELBO {final['elbo']:.3f}  NLL/token {final['nll_per_token']:.4f} "
              f"({final['n']} sequences)")
    if quality:
        print("\nSamples from the prior (temperature 1):")
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


def format_head_table(metrics: dict[str, dict[str, float]]) -> str:
    """Validation MAE and R^2 of a property head, one row a property."""
    lines = [f"{'property':<10}{'MAE':>10}{'R2':>8}{'n':>9}   (validation, from posterior means)"]
    lines += [f"{name:<10}{m['mae']:>10.3f}{m['r2']:>8.3f}{m['n']:>9,}" for name, m in metrics.items()]
    return "\n".join(lines)


def format_prior_table(record: dict) -> str:
    """Held-out log-likelihood of the validation codes under N(0, I) and each fitted density,
    the one kept marked."""
    kept = score_name(record["kind"], record.get("prior_components", 0),
                      record.get("prior_layers", 0), record.get("prior_hidden", 0))
    scores = record["held_out_log_likelihood"]
    width = max(len(name) for name in [*scores, kept]) + 2
    lines = [f"{'prior':<{width}}{'log-likelihood':>16}   (nats per validation code, "
             f"{record['valid_codes']:,} codes; fitted to {record['train_codes']:,})"]
    for name, value in scores.items():
        lines.append(f"{name:<{width}}{value:>16.2f}" + ("   <- kept" if name == kept else ""))
    if record["kind"] == "diffusion":
        lines.append(f"{kept:<{width}}{'(none)':>16}   <- kept; held-out denoising loss "
                     f"{record['held_out_denoising_loss']:.4f} (no likelihood to compare)")
        if record.get("density_prior", "none") != "none":
            density = score_name(record["density_prior"], record["density_components"],
                                 record["density_layers"], record["density_hidden"])
            lines.append(f"log p(z) (optimisation's penalty): the {density} fitted before, "
                         "kept beside it")
    return "\n".join(lines)


def format_optimization(result: OptimizationResult, objective: str,
                        deltas: Sequence[float | None], top_k: int,
                        max_heavy_atoms: int | None = None) -> str:
    """The best molecules found (per similarity floor, and again within ``max_heavy_atoms``
    when given), the constrained-benchmark figures where there were start molecules, and the
    validity of all decodes."""
    lines = []
    # JT-VAE's table reports normalised penalised logP: the same decodes, scored its way too
    normalized = (result.normalized() if objective == "plogp" and result.start_values
                  and any(d is not None for d in deltas) else None)
    for delta in deltas:
        caps = [None] if max_heavy_atoms is None else [None, max_heavy_atoms]
        for cap in caps:
            best = result.best(top_k, delta, cap)
            sim = f", similarity to start >= {delta}" if delta is not None else ""
            size = f", at most {cap} heavy atoms" if cap is not None else ""
            lines.append(f"top {len(best)} valid molecules by true {objective} (RDKit){sim}{size}:")
            lines.append(f"  {'true':>8} {'predicted':>9} {'sim':>5} {'step':>5}  smiles")
            for r in best:
                shown_sim = f"{r['similarity']:.2f}" if r["similarity"] is not None else "-"
                lines.append(f"  {r['true_property']:>8.3f} {r['predicted_property']:>9.3f} "
                             f"{shown_sim:>5} {r['step']:>5}  {r['smiles']}")
        if delta is not None and result.start_values:
            c = result.constrained(delta)
            lines.append(
                f"constrained (delta {delta}): {c['success']:.1%} of {c['starts']:,} start "
                f"molecules improved by a different molecule this similar; among them mean "
                f"improvement {c['improvement']:.2f} (sd {c['improvement_std']:.2f}), mean "
                f"similarity {c['similarity']:.2f}; over all starts {c['improvement_all']:.2f}")
            if normalized is not None:
                n = normalized.constrained(delta)
                lines.append(
                    f"  the same, penalised logP normalised as JT-VAE (Jin et al. 2018): "
                    f"{n['success']:.1%}; mean improvement {n['improvement']:.2f} "
                    f"(sd {n['improvement_std']:.2f}), mean similarity {n['similarity']:.2f}")
    lines.append(f"decodes: {result.decodes:,}, valid {result.valid_decodes:,} "
                 f"({result.validity:.1%}); invalid ones are counted here and never returned")
    return "\n".join(lines)


def format_path(path: str, steps: int, method: str, ends: Sequence[str],
                decoded: Sequence[str]) -> str:
    """One interpolation: its two ends and the decoded points between them."""
    lines = [f"{path} path, {steps} points, {method} decoding", f"  from: {ends[0]}"]
    lines += [f"  {i:>3}  {text}" for i, text in enumerate(decoded)]
    return "\n".join(lines + [f"    to: {ends[1]}"])


def format_test_pairs(result: dict[str, Any], examples: Sequence[dict[str, Any]],
                      max_words: int = 0) -> str:
    """A few example paths between test sentences, and the endpoint-recovery share (of
    sentences of at most ``max_words`` words; 0: any length)."""
    lines = []
    for example in examples:
        lines.append(f"from: {example['start']}")
        lines += [f"  {i:>3}  {text}" for i, text in enumerate(example["points"])]
        lines.append(f"  to: {example['end']}\n")
    which = f"test pairs of at most {max_words} words" if max_words else "test pairs"
    decoding = {"beam": f"beam-search decoding, {result.get('beam_size')} beams,",
                "rerank": f"beam-search decoding, {result.get('beam_size')} beams reranked by "
                          "re-encoding,"
                }.get(result.get("method"), "greedy decoding")
    lines.append(f"{result['recovered_pairs']} of {result['pairs']} random {which} "
                 f"({result['share']:.0%}) decode back to both of their own endpoints "
                 f"({decoding} of the posterior mean; {result['sentences_recovered']:.0%} "
                 "of the sentences involved come back exactly)")
    return "\n".join(lines)


def format_models(shipped: dict) -> str:
    """The table of ``seqvae models``: name, what it is for, headline test metrics."""
    if not shipped:
        return "No pretrained models are installed."
    width = max(len(name) for name in shipped)
    lines = []
    for name, entry in shipped.items():
        lines.append(f"{name:<{width}}  {entry.description}")
        if entry.headline:
            lines.append(f"{'':<{width}}  {entry.headline}")
    lines.append("\nUse a name wherever a MODEL is asked for (seqvae sample moses -n 5); "
                 "seqvae models --card NAME prints how it was trained and measured.")
    return "\n".join(lines)
