"""``seqvae bench``: throughput of training, sampling and encoding on this machine.

Training is timed on real length-bucketed batches of the corpus through the trainer's own step
(:func:`seqvae.training.step.train_step`: the same loss, KL weight, learning rate and random
draws at each step as ``seqvae train``, plus the Adam update), after warm-up steps that are
not counted. Tokens are counted as the MOSES VAE counts them (every position of the sequence,
<bos> and <eos> included), so that its figures and ours compare directly.

Achieved GFLOP/s counts the matrix products of the model (GRU gates, output projection) per
token, times 3 for the forward and backward passes, and is set against the fp32 matmul peak
measured here and now.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import time
from typing import Any, Callable

import torch

from .api import TrainedVAE
from .config import Config
from .data import Batch, bucketed_batches, collate, prepare_data
from .decoding import decode
from .errors import SeqVAEError
from .logs import to_stderr
from .model import SeqVAE
from .training.rate_control import make_probe, update_rate_control
from .training.run import check_data, log_data, with_precision_resolved
from .training.step import (
    TrainState,
    end_pretraining,
    make_optimizer,
    pretraining_ends,
    set_learning_rate,
    step_draws,
    train_step,
)

KIB_PER_MB = 1024   # Linux reports the peak resident set size in KiB
ENCODE_BATCH = 512  # test sequences per encoder call


def matmul_peak_gflops(n: int = 2048, seconds: float = 2.0) -> float:
    """Measured fp32 matmul throughput of this machine (GFLOP/s), square n x n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


def _gru_flops(inputs: int, hidden: int, layers: int, directions: int = 1) -> int:
    """Multiply-add FLOPs of one GRU time step: 3 gates, input and hidden projections."""
    total = 0
    for _ in range(layers):
        total += directions * 6 * hidden * (inputs + hidden)
        inputs = hidden * directions
    return total


def flops_per_token(config: Config, vocab_size: int) -> tuple[int, int]:
    """Forward FLOPs per encoder token and per decoder token of the model."""
    m = config.model
    emb = m.embedding_dim or vocab_size
    encoder = (_gru_flops(emb, m.encoder_hidden, m.encoder_layers, 2 if m.bidirectional else 1)
               if m.latent_dim else 0)   # a language model (latent_dim 0) has no encoder
    decoder = _gru_flops(emb + m.latent_dim, m.decoder_hidden, m.decoder_layers)
    if m.tie_weights:
        decoder += 2 * m.decoder_hidden * emb + 2 * emb * vocab_size
    else:
        decoder += 2 * m.decoder_hidden * vocab_size
    return encoder, decoder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB


def _time_sampling(model: SeqVAE, tok, n: int, batch: int, max_len: int,
                   sync: Callable[[], None], precision: str = "fp32") -> tuple[float, float]:
    """Sequences per second of temperature-1 sampling from the prior, and their mean length."""
    device = model.device
    generator = torch.Generator(device=device).manual_seed(0)
    sync()
    start = time.perf_counter()
    lengths = []
    for first in range(0, n, batch):
        z = torch.randn(min(batch, n - first), model.config.latent_dim, device=device,
                        generator=generator)
        ids = decode(model, z, tok.bos_id, tok.eos_id, tok.pad_id, "sample", max_len,
                     generator=generator, precision=precision)
        lengths.append((ids != tok.pad_id).sum(1).cpu())
    sync()
    rate = round(n / (time.perf_counter() - start), 1)
    return rate, round(float(torch.cat(lengths).float().mean()), 1)


def bench(config: Config, device: torch.device, steps: int = 20, warmup: int = 3,
          n_sample: int = 1000, sample_batch: int = 512, max_len: int = 100,
          n_encode: int = 5000, log: Callable[[str], None] = to_stderr) -> dict[str, Any]:
    """Time training, sampling and encoding for ``config``; returns the figures as a dict."""
    torch.manual_seed(config.train.seed)
    config = with_precision_resolved(config, device, log)
    data = prepare_data(config.data, config.tokenizer, log=log)
    log_data(data, log)
    check_data(config, data)
    tok, split = data.tokenizer, data.splits["train"]
    model = SeqVAE(config.model, tok.vocab_size, tok.pad_id).to(device).train()
    optimizer = make_optimizer(model, config.train.lr)
    batches = bucketed_batches(split.lengths, config.train.batch_size, config.train.seed, 0)
    if len(batches) < warmup + steps:
        batches = batches * ((warmup + steps) // len(batches) + 1)
    enc_flops, dec_flops = flops_per_token(config, tok.vocab_size)
    total, decoder_reset = warmup + steps, False
    # The --target-kl controller steps as in training, on the same held-out probe.
    state = TrainState()
    probe = make_probe(data.splits["valid"], device, config.train.seed) \
        if config.objective.target_kl > 0 else None

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    molecules = tokens = flops = 0
    log(f"seqvae bench: {steps} training steps after {warmup} warm-up steps, batch "
        f"{config.train.batch_size}")
    for i, index in enumerate(batches[:warmup + steps]):
        if i == warmup:
            sync()
            start = time.perf_counter()
        ids, lengths = collate(split, index)
        draws = step_draws(len(index), config.data.max_length + 1, config.model.latent_dim,
                           config.train.seed, i)
        batch = Batch(ids.to(device), lengths.to(device), noise=draws["noise"].to(device),
                      uniforms=draws["uniforms"][:, :ids.size(1) - 1],
                      encoder_uniforms=draws["encoder_uniforms"][:, :ids.size(1)])
        if pretraining_ends(i, config, decoder_reset):
            end_pretraining(model, optimizer, config)
            decoder_reset = True
        set_learning_rate(optimizer, i, config.train, total)
        terms, _ = train_step(model, model, batch, i, config, total, state.rate_weight)
        optimizer.step()
        state.step = i
        update_rate_control(state, terms, config, model, probe)
        if i >= warmup:
            n = int(lengths.sum())
            molecules += len(index)
            tokens += n
            flops += 3 * (enc_flops * n + dec_flops * (n - len(index)))
    sync()
    train_seconds = time.perf_counter() - start

    model.eval()
    sample_rate = sample_length = encode_rate = None   # None: that part was skipped (n = 0)
    if n_sample:
        log(f"seqvae bench: sampling {n_sample} sequences from the prior (temperature 1, "
            f"max length {max_len}, {config.train.precision})")
        sample_rate, sample_length = _time_sampling(model, tok, n_sample, sample_batch, max_len,
                                                    sync, config.train.precision)
    if n_encode:
        test = data.splits.get("test", split).subset(n_encode)
        log(f"seqvae bench: encoding {len(test)} test sequences")
        sync()
        start = time.perf_counter()
        TrainedVAE(config, tok, model).encode_means(test, ENCODE_BATCH)
        sync()
        encode_rate = round(len(test) / (time.perf_counter() - start), 1)

    peak = matmul_peak_gflops() if device.type == "cpu" else None
    achieved = flops / train_seconds / 1e9
    return {
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "corpus": data.corpus_name, "tokenizer": tok.kind, "vocab_size": tok.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": config.train.batch_size, "steps": steps,
        "precision": config.train.precision,
        "train_tok_per_s": round(tokens / train_seconds, 1),
        "train_mol_per_s": round(molecules / train_seconds, 1),
        "sample_mol_per_s": sample_rate, "sample_mean_length": sample_length,
        "encode_mol_per_s": encode_rate,
        "train_gflop_per_s": round(achieved, 1),
        "matmul_peak_gflop_per_s": round(peak, 1) if peak else None,
        "fraction_of_peak": round(achieved / peak, 3) if peak else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_peer(script, batch: int, steps: int, n_sample: int,
             log: Callable[[str], None] = to_stderr) -> dict[str, Any]:
    """Run a baseline script that prints one JSON line (``../shared/bench/peer_moses.sh``)."""
    cmd = ["bash", str(script), "--batch", str(batch), "--steps", str(steps),
           "--n-sample", str(n_sample)]
    log(f"seqvae bench: running the peer: {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SeqVAEError(f"the peer script {script} failed ({tail})")
    return json.loads(lines[-1])


def median_of_runs(runs: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Figures of repeated side-by-side runs, each ``{"seqvae": {...}, "peer": {...}, ...}``,
    reduced to their medians.

    Every numeric figure becomes its median over the runs (other values are the first run's);
    ``"runs"`` keeps each run's figures, and ``"pair_ratios"`` the ratio of each run's
    training tokens/s to the peer's (when there is a peer), whose median is the ratio to
    quote: on a shared machine, speed drifts by a third from one minute to the next, and a
    pair of runs close in time drifts together.
    """
    merged: dict[str, Any] = {}
    for part in runs[0]:
        figures = {}
        for key, first in runs[0][part].items():
            values = [run[part].get(key) for run in runs]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            figures[key] = round(statistics.median(values), 3) if numeric else first
        merged[part] = figures
    merged["runs"] = runs
    if all("peer" in run and run["peer"].get("train_tok_per_s") for run in runs):
        merged["pair_ratios"] = [round(run["seqvae"]["train_tok_per_s"]
                                       / run["peer"]["train_tok_per_s"], 3) for run in runs]
    return merged
