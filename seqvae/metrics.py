"""Evaluation metrics, as pure functions of tensors and token lists.

Likelihood: the importance-weighted bound (Burda et al. 2016). Latent usage: the mutual
information estimator of He et al. 2019 and active units (Burda et al. 2016). Reconstruction:
corpus BLEU (Papineni et al. 2002, by sacrebleu). :mod:`seqvae.evaluation` applies them to a trained model.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from sacrebleu.metrics import BLEU
from torch import Tensor

from .gaussian import gaussian_kl, reparameterize

LOG_2PI = math.log(2 * math.pi)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last axis.

    Args:
        z, mu, logvar: broadcastable tensors (..., D).
    Returns:
        (...) nats.
    """
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I): (..., D) -> (...)."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def importance_weighted_log_likelihood(
        log_likelihood: Callable[[Tensor], Tensor], mu: Tensor, logvar: Tensor, k: int,
        chunk: int | None = None, generator: torch.Generator | None = None,
        prior_log_prob: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Estimate log p(x) by importance sampling from q(z|x) (Burda et al. 2016).

        log p(x) >= IW_k(x) = log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x).

    IW_1 is the ELBO in expectation; E[IW_k] rises with k towards log p(x), which it reaches
    as k -> infinity (and for every k when q is the exact posterior).

    Args:
        log_likelihood: maps z (B, s, D) to log p(x_b | z_bs) (B, s).
        mu, logvar: (B, D) the parameters of q(z|x).
        k: importance samples per x.
        chunk: most samples drawn per call of ``log_likelihood`` (memory), default all k.
            The k samples are split into as few calls as that allows, of nearly equal size
            (k = 100 at most 32 a call: 25 + 25 + 25 + 25, not 32 + 32 + 32 + 4, whose last
            small call would run the decoder at a fraction of its speed).
        prior_log_prob: log p(z) of rows of codes, (N, D) -> (N,); None: N(0, I). A model
            trained with a learned prior passes its own (``SeqVAE.prior_log_prob``).
    Returns:
        iw: (B,) the k-sample estimate of log p(x);
        expected_log_likelihood: (B,) the mean of log p(x|z_i) over the k samples, an
        estimate of the ELBO's reconstruction term E_q[log p(x|z)].
    """
    B, D = mu.shape
    calls = -(-k // min(chunk or k, k))
    sizes = [k // calls + (i < k % calls) for i in range(calls)]
    log_weights, log_liks = [], []
    for s in sizes:
        eps = torch.randn(B, s, D, generator=generator, device=mu.device, dtype=mu.dtype)
        z = reparameterize(mu.unsqueeze(1), logvar.unsqueeze(1), eps)     # (B, s, D)
        log_lik = log_likelihood(z)                                          # (B, s)
        log_prior = (log_standard_normal(z) if prior_log_prob is None
                     else prior_log_prob(z.reshape(B * s, D)).view(B, s))
        log_weights.append(log_lik + log_prior
                           - log_normal_diag(z, mu.unsqueeze(1), logvar.unsqueeze(1)))
        log_liks.append(log_lik)
    log_w = torch.cat(log_weights, dim=1)                                    # (B, k)
    iw = torch.logsumexp(log_w, dim=1) - math.log(k)
    return iw, torch.cat(log_liks, dim=1).mean(dim=1)


# Elements of the (rows, N, D) tensor of per-dimension log-densities that mutual_information
# holds at once (each of a few temporaries, 4 bytes an element): about 32 MB whatever N is.
MI_ELEMENTS_PER_CHUNK = 2 ** 23


def mutual_information(mu: Tensor, logvar: Tensor, z: Tensor, chunk: int = 1024) -> float:
    """I(x; z) under the encoder's joint q(x, z) = p_data(x) q(z|x) (He et al. 2019):

        I = E_x E_q(z|x)[log q(z|x)] - E_x E_q(z|x)[log q(z)],
        q(z) = (1/N) sum_n q(z|x_n), the aggregate posterior over the N evaluated x.

    The first term is the negative entropy of each Gaussian, in closed form; the second uses
    one sample z_n ~ q(z|x_n) per x. The estimate is at most log N.

    Args:
        mu, logvar: (N, D) posterior parameters of the evaluated set.
        z: (N, D) one sample from each posterior.
        chunk: most samples scored against all N posteriors at once; fewer where N x D is
            large, so that memory stays bounded (:data:`MI_ELEMENTS_PER_CHUNK`).
    Returns:
        nats.
    """
    N, D = mu.shape
    if D == 0 or N == 0:
        return 0.0
    neg_entropy = (-0.5 * D * (LOG_2PI + 1) - 0.5 * logvar.sum(-1)).mean()
    chunk = max(1, min(chunk, MI_ELEMENTS_PER_CHUNK // (N * D)))
    log_qz = []
    for start in range(0, N, chunk):
        z_part = z[start:start + chunk].unsqueeze(1)                        # (n, 1, D)
        log_q = log_normal_diag(z_part, mu.unsqueeze(0), logvar.unsqueeze(0))  # (n, N)
        log_qz.append(torch.logsumexp(log_q, dim=1) - math.log(N))
    return float(neg_entropy - torch.cat(log_qz).mean())


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Dimensions the encoder uses: Cov_x(E_q[z|x]) > threshold (Burda et al. 2016).

    Args:
        mu: (N, D) posterior means of the evaluated set.
    """
    if mu.size(0) < 2 or mu.size(1) == 0:
        return 0
    return int((mu.var(dim=0) > threshold).sum())


def dimension_usage(mu: Tensor, logvar: Tensor) -> dict[str, Tensor]:
    """How much each latent dimension is used, over an evaluated set.

    Args:
        mu, logvar: (N, D) posterior parameters.
    Returns:
        ``variance``: (D,) Cov_x(E_q[z|x]), the quantity :func:`active_units` thresholds;
        ``kl``: (D,) the mean KL(q(z_d|x) || N(0, 1)) in nats (summed over d: the mean KL).
    """
    mu, logvar = torch.as_tensor(mu).float(), torch.as_tensor(logvar).float()
    variance = mu.var(dim=0) if mu.size(0) > 1 else torch.zeros(mu.size(1))
    return {"variance": variance, "kl": gaussian_kl(mu, logvar).mean(dim=0)}


def corpus_bleu(references: Sequence[Sequence], hypotheses: Sequence[Sequence],
                          max_n: int = 4) -> float:
    """Corpus BLEU with one reference per hypothesis (Papineni et al. 2002), in [0, 1],
    computed by ``sacrebleu`` (Post 2018), the implementation the MT literature reports with.

    Clipped n-gram precisions p_1..p_max_n are pooled over the corpus; BLEU is
    BP * exp(mean_n log p_n) with the brevity penalty BP = min(1, exp(1 - r / c)) for total
    reference length r and hypothesis length c. No smoothing: a corpus without a single
    matching max_n-gram scores 0. Tokens are passed through unchanged (``tokenize="none"``):
    each distinct token becomes one space-free word.

    Args:
        references, hypotheses: aligned token sequences (any hashable tokens).
    """
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses must align")
    names: dict = {}

    def words(tokens: Sequence) -> str:
        return " ".join(names.setdefault(t, f"w{len(names)}") for t in tokens)
    bleu = BLEU(tokenize="none", smooth_method="none", max_ngram_order=max_n)
    score = bleu.corpus_score([words(h) for h in hypotheses], [[words(r) for r in references]])
    return score.score / 100.0


def unigram_f1(reference: Sequence, hypothesis: Sequence) -> float:
    """Bag-of-tokens overlap of two token sequences: the F1 of clipped unigram matches, in
    [0, 1] (1: the same tokens, in any order; 0: none in common or an empty sequence)."""
    counts: dict = {}
    for token in reference:
        counts[token] = counts.get(token, 0) + 1
    matches = 0
    for token in hypothesis:
        if counts.get(token, 0) > 0:
            counts[token] -= 1
            matches += 1
    if not matches:
        return 0.0
    return 2 * matches / (len(reference) + len(hypothesis))


def perplexity(total_nll: float, total_tokens: int) -> float:
    """exp(total NLL / total predicted tokens); <eos> counts as a token, <bos> does not."""
    return math.exp(total_nll / max(total_tokens, 1))
