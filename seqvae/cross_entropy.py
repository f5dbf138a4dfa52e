"""The reconstruction term's kernel: token cross-entropy summed per sequence, and the fused,
sliced linear cross-entropy that computes it without ever holding every vocabulary score.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .devices import compute_dtype

# Most vocabulary scores (rows x V) held at once by the sliced cross-entropy: 2^23 fp32
# scores are 32 MiB, small enough to stay near the cache and to let importance sampling
# score hundreds of z per sequence, large enough that each slice is one big matrix product.
MAX_SCORES = 2 ** 23
# Without gradients (importance sampling, evaluation) a slice's scores are only read by the
# log-softmax, which runs faster while they stay in cache.
NO_GRAD_MAX_SCORES = 2 ** 20


def reconstruction_nll(logits: Tensor, targets: Tensor, pad_id: int) -> Tensor:
    """Negative log-likelihood of each sequence, summed over its tokens, padding masked.

    The definition, from scores one already has. Training computes the same numbers without
    the (B, T, V) scores: ``SeqVAE.sequence_nll`` with :func:`linear_cross_entropy`.

    Args:
        logits: (B, T, V) unnormalised next-token scores.
        targets: (B, T) token ids; positions equal to ``pad_id`` do not count.
    Returns:
        (B,) nats per sequence.
    """
    token_nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
        ignore_index=pad_id, reduction="none")
    return token_nll.view(targets.shape).sum(dim=1)


def linear_cross_entropy(features: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                         ignore_index: int | None = None, max_scores: int | None = None) -> Tensor:
    """Cross-entropy of ``targets`` under ``softmax(features @ weight.T + bias)``, per row,
    without ever holding all N x V scores.

    The same numbers as ``F.cross_entropy(F.linear(features, weight, bias), targets,
    ignore_index=ignore_index, reduction="none")``, computed a slice of rows at a time (at
    most ``max_scores`` scores exist at once). When gradients are needed, each slice's
    gradient (softmax - one-hot) is turned into the gradients of the inputs while the slice is
    still in cache, so the N x V log-softmax is never written out, read back and
    differentiated: with a 10k-word vocabulary that pass costs about as much as the output
    projection's matrix products. This is the
    chunked "fused linear cross-entropy" of Liger Kernel (Hsu et al. 2024). Under autocast the
    products run in the autocast dtype; the softmax and the loss are always fp32.

    Args:
        features: (N, F); weight: (V, F); bias: (V,) or None; targets: (N,) ids in [0, V).
        ignore_index: rows whose target is this id (padding) cost 0 and get no gradient.
        max_scores: scores held at once; default :data:`MAX_SCORES` when gradients are
            needed, :data:`NO_GRAD_MAX_SCORES` when not.
    Returns:
        (N,) fp32 nats.
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                       for t in (features, weight, bias)):
        return _LinearCrossEntropy.apply(features, weight, bias, targets, ignore_index,
                                         max_scores or MAX_SCORES)
    return _linear_cross_entropy_slices(features, weight, bias, targets, ignore_index,
                                        max_scores or NO_GRAD_MAX_SCORES,
                                        compute_dtype(features))[0]


def _linear_cross_entropy_slices(features: Tensor, weight: Tensor, bias: Tensor | None,
                                 targets: Tensor, ignore_index: int | None, max_scores: int,
                                 dtype: torch.dtype,
                                 row_grads: Tensor | None = None, gradients: bool = False,
                                 ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """The loss (N,) and, with ``gradients``, the gradients of features, weight and bias of
    ``sum_i row_grads_i * loss_i`` (``row_grads`` None: all ones)."""
    n = features.size(0)
    with torch.autocast(features.device.type, enabled=False):
        w = weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        x = features.to(dtype)
        loss = torch.empty(n, device=features.device)
        grad_x = torch.empty(features.shape, device=features.device) if gradients else None
        grad_w = torch.zeros(weight.shape, device=features.device) if gradients else None
        grad_b = torch.zeros(weight.size(0), device=features.device) if gradients else None
        rows = max(1, max_scores // max(weight.size(0), 1))
        for start in range(0, n, rows):
            part = slice(start, start + rows)
            scores = x[part] @ w.t() if b is None else torch.addmm(b, x[part], w.t())
            # the same numbers as log_softmax(scores, dtype=float32), but that path converts
            # inside the softmax kernel and ran 1.6x slower on bf16 scores (AMD EPYC, 1 thread)
            log_p = torch.log_softmax(scores.float(), dim=1)                     # (n, V)
            picked = targets[part].unsqueeze(1)
            loss[part] = -log_p.gather(1, picked).squeeze(1)
            weights = row_grads[part] if row_grads is not None else None
            if ignore_index is not None:
                real = targets[part] != ignore_index
                loss[part] *= real
                weights = real.float() if weights is None else weights * real
            if not gradients:
                continue
            grad_scores = log_p.exp_()                      # d loss_i / d scores_i = p_i - onehot
            grad_scores.scatter_add_(1, picked, torch.full_like(picked, -1, dtype=torch.float32))
            if weights is not None:
                grad_scores.mul_(weights.unsqueeze(1))
            grad_b += grad_scores.sum(0)
            grad_scores = grad_scores.to(dtype)
            grad_x[part] = grad_scores @ w
            grad_w += grad_scores.t() @ x[part]
    return loss, grad_x, grad_w, grad_b


class _LinearCrossEntropy(torch.autograd.Function):
    """Autograd of :func:`linear_cross_entropy`: gradients are computed in the forward pass
    for unit upstream gradients and scaled in the backward pass when the upstream gradient
    is the same for every row (a sum or mean of the losses: training); any other upstream
    gradient recomputes them slice by slice."""

    @staticmethod
    def forward(ctx, features, weight, bias, targets, ignore_index, max_scores):
        dtype = compute_dtype(features)
        loss, grad_x, grad_w, grad_b = _linear_cross_entropy_slices(
            features, weight, bias, targets, ignore_index, max_scores, dtype, gradients=True)
        ctx.save_for_backward(features, weight, bias, targets, grad_x, grad_w, grad_b)
        ctx.ignore_index, ctx.max_scores, ctx.dtype = ignore_index, max_scores, dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        features, weight, bias, targets, grad_x, grad_w, grad_b = ctx.saved_tensors
        if grad_loss.numel() and bool((grad_loss == grad_loss[0]).all()):
            scale = grad_loss[0]
            grad_x, grad_w, grad_b = grad_x * scale, grad_w * scale, grad_b * scale
        else:
            _, grad_x, grad_w, grad_b = _linear_cross_entropy_slices(
                features, weight, bias, targets, ctx.ignore_index, ctx.max_scores, ctx.dtype,
                row_grads=grad_loss.float(), gradients=True)
        return (grad_x.to(features.dtype), grad_w.to(weight.dtype),
                None if bias is None else grad_b.to(bias.dtype), None, None, None)
