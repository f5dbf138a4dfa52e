"""Decoding z into token sequences: greedy, temperature sampling, beam search, and beam search
reranked by re-encoding.

All four are batched, stop as soon as every sequence has produced <eos> (or at ``max_len``),
and return a (B, T) id tensor padded with <pad> after each <eos>; tokenizers turn it into text.

A ``constraint`` (e.g. :class:`seqvae.molecules.smiles_syntax.SmilesSyntax`) masks, at every
step, the tokens after which no well-formed string could be finished; the decoder's
distribution is renormalised over the rest. Any object with ``start(B, device)``,
``allowed(state, remaining) -> (B, V) bool``, ``advance(state, tokens)`` and a state with
``select(rows)`` will do.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from .model import SeqVAE


class DecodingConstraint(Protocol):
    """What :func:`decode` needs of a grammar (see the module docstring)."""

    def start(self, batch: int, device: torch.device) -> Any: ...
    def allowed(self, state: Any, remaining: int) -> Tensor: ...
    def advance(self, state: Any, tokens: Tensor) -> Any: ...

METHODS = ("greedy", "sample", "beam", "rerank")
# Beam widths chosen on validation data (docs/results/ptb.md, "Decoding by re-encoding"): a
# wider beam does not help plain beam search, but gives the reranking more candidates.
DEFAULT_BEAM_SIZE = {"beam": 5, "rerank": 20}


@torch.inference_mode()
def decode(model: SeqVAE, z: Tensor, bos_id: int, eos_id: int, pad_id: int,
           method: str = "greedy", max_len: int = 100, temperature: float = 1.0,
           beam_size: int | None = None, generator: torch.Generator | None = None,
           constraint: DecodingConstraint | None = None, precision: str = "fp32") -> Tensor:
    """Decode a batch of latent codes.

    Args:
        z: (B, D) latent codes.
        method: ``greedy`` (argmax), ``sample`` (from softmax(logits / temperature)) or
            ``beam`` (beam search of width ``beam_size``, best total log-probability) or
            ``rerank`` (the same beam search, then the finished candidate whose own posterior
            mean lies nearest to z: see :func:`rerank_by_reencoding`).
        beam_size: for ``beam`` and ``rerank``; None for :data:`DEFAULT_BEAM_SIZE`.
        max_len: most tokens generated per sequence, <eos> included.
        constraint: a grammar whose disallowed tokens are masked at every step, or None.
        precision: ``fp32``, or ``bf16`` for the decoder's products in bfloat16 (under
            autocast; the softmax, the choice and the grammar stay fp32). Each step is one
            small product per layer, so bf16 pays only where the CPU has a fast path for it.
    Returns:
        (B, T) ids with T <= max_len; rows that end early are padded with ``pad_id``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown decoding method {method!r}; choose one of {', '.join(METHODS)}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, not {precision!r}")
    # one autocast region for the whole loop, so each weight is cast to bf16 once, not per step
    with torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        if method in DEFAULT_BEAM_SIZE:
            width = beam_size or DEFAULT_BEAM_SIZE[method]
            candidates, scores = beam_candidates(model, z, bos_id, eos_id, pad_id, max_len,
                                                 width, constraint)
            if method == "rerank":
                return rerank_by_reencoding(model, z, candidates, scores, bos_id, eos_id, pad_id)
            return candidates[torch.arange(z.size(0), device=z.device), scores.argmax(dim=-1)]
        return _step_by_step(model, z, bos_id, eos_id, pad_id, method, max_len, temperature,
                             generator, constraint)


def _step_by_step(model: SeqVAE, z: Tensor, bos_id: int, eos_id: int, pad_id: int, method: str,
                  max_len: int, temperature: float, generator: torch.Generator | None,
                  constraint: DecodingConstraint | None) -> Tensor:
    """Greedy or temperature sampling, one token per step for every live row."""
    B = z.size(0)
    out = torch.full((B, max_len), pad_id, dtype=torch.long, device=z.device)
    active = torch.arange(B, device=z.device)    # rows still generating
    hidden = model.initial_hidden(z)              # the cell's state, B_active rows
    token = torch.full((B, 1), bos_id, dtype=torch.long, device=z.device)
    state = constraint.start(B, z.device) if constraint is not None else None
    steps = 0
    for t in range(max_len):
        logits, hidden = model.forward_decoder(token, z, hidden)
        logits = _forbid_specials(logits[:, -1].float(), bos_id, pad_id)
        if state is not None:
            logits = _mask(logits, constraint.allowed(state, max_len - t), eos_id)
        if method == "greedy":
            nxt = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(logits / max(temperature, 1e-6), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        out[active, t] = nxt
        steps = t + 1
        if state is not None:
            state = constraint.advance(state, nxt)
        going = nxt != eos_id
        if not bool(going.all()):
            # Finished rows leave the batch, so later steps only compute live sequences.
            if not bool(going.any()):
                break
            active, z, nxt = active[going], z[going], nxt[going]
            hidden = model.decoder.select_rows(hidden, going)
            if state is not None:
                state = state.select(going)
        token = nxt.unsqueeze(1)
    return out[:, :steps]


def _forbid_specials(logits: Tensor, bos_id: int, pad_id: int) -> Tensor:
    """A model never has to emit <bos> or <pad>; an undertrained one might, so rule them out."""
    logits[:, [bos_id, pad_id]] = float("-inf")
    return logits


def _mask(logits: Tensor, allowed: Tensor, eos_id: int) -> Tensor:
    """Rule out disallowed tokens; a row with nothing allowed (max_len too short for any
    finished string) may still end."""
    allowed = allowed.clone()
    allowed[~allowed.any(dim=1), eos_id] = True
    return logits.masked_fill(~allowed, float("-inf"))


def beam_candidates(model: SeqVAE, z: Tensor, bos_id: int, eos_id: int, pad_id: int,
                    max_len: int, beam_size: int,
                    constraint: DecodingConstraint | None = None) -> tuple[Tensor, Tensor]:
    """Batched beam search: B * K hypotheses advance together; finished ones are frozen.

    Returns:
        candidates (B, K, T) ids padded after <eos>, and their total log-probabilities
        log p(x|z) (B, K), -inf for a slot that never held a hypothesis (K > V).
    """
    B, K, device = z.size(0), beam_size, z.device
    z_k = z.repeat_interleave(K, dim=0)                                  # (B*K, D)
    hidden = model.initial_hidden(z_k)                                   # B*K rows
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0                        # start from a single live hypothesis per example
    tokens = torch.full((B * K, 1), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(B * K, dtype=torch.bool, device=device)
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)
    state = constraint.start(B * K, device) if constraint is not None else None
    for t in range(max_len):
        logits, hidden = model.forward_decoder(tokens, z_k, hidden)
        logits = _forbid_specials(logits[:, -1].float(), bos_id, pad_id)
        if state is not None:
            logits = _mask(logits, constraint.allowed(state, max_len - t), eos_id)
        logp = torch.log_softmax(logits, dim=-1)
        V = logp.size(-1)
        # A finished hypothesis may only continue with <pad>, at no cost.
        frozen = torch.full_like(logp, float("-inf"))
        frozen[:, pad_id] = 0.0
        logp = torch.where(finished.unsqueeze(1), frozen, logp)
        total = (scores.view(-1, 1) + logp).view(B, K * V)
        scores, flat = total.topk(K, dim=-1)                             # (B, K)
        parent = (flat // V + torch.arange(B, device=device).unsqueeze(1) * K).view(-1)
        nxt = (flat % V).view(-1)
        history = torch.cat([history[parent], nxt.unsqueeze(1)], dim=1)
        hidden = model.decoder.select_rows(hidden, parent)
        finished = finished[parent] | (nxt == eos_id)
        if state is not None:
            state = constraint.advance(state.select(parent), nxt)
        tokens = nxt.unsqueeze(1)
        if bool(finished.all()):
            break
    return history.view(B, K, -1), scores


def rerank_by_reencoding(model: SeqVAE, z: Tensor, candidates: Tensor, scores: Tensor,
                         bos_id: int, eos_id: int, pad_id: int) -> Tensor:
    """Of each code's K candidates, the one the encoder maps nearest to the code.

    Beam search keeps the sequences the decoder finds likely given z; the sequence that z was
    encoded from is often among them but not first (on PTB validation sentences of at most 15
    words, in the top 20 of the shipped model's beam 71% of the time, first 52%). Encoding
    each candidate and keeping the one whose posterior mean lies nearest to z (Euclidean
    distance) chooses the sequence that the code stands for, as reranking translations by
    how well they reconstruct the source does (Tu et al. 2017, "Neural machine translation
    with reconstruction"). Chosen on validation over log p(x|z) + lambda * log q(z|x) for
    lambda from 0.05 to 1e6, which it matched or beat.

    Args:
        z: (B, D) codes; candidates: (B, K, T) ids from :func:`beam_candidates`, padded after
            <eos>; scores: (B, K) their log-probabilities, -inf for an empty slot.
    Returns:
        (B, T) the chosen candidate of each code.
    """
    B, K, T = candidates.shape
    flat = candidates.reshape(B * K, T)
    # the encoder reads [<bos>, tokens..., <eos>]; a candidate cut off at max_len gets its <eos>
    ended = (flat == eos_id) | (flat == pad_id)
    content = torch.where(ended.any(dim=1), ended.int().argmax(dim=1),
                          torch.full((B * K,), T, device=z.device))
    positions = torch.arange(T, device=z.device)
    tokens = torch.full((B * K, T + 2), pad_id, dtype=torch.long, device=z.device)
    tokens[:, 0] = bos_id
    tokens[:, 1:T + 1] = torch.where(positions < content.unsqueeze(1), flat, pad_id)
    tokens[torch.arange(B * K, device=z.device), content + 1] = eos_id
    means, _ = model.forward_encoder(tokens, content + 2)
    distance = (means.float().view(B, K, -1) - z.float().unsqueeze(1)).pow(2).sum(dim=-1)
    distance = distance.masked_fill(torch.isinf(scores), float("inf"))
    return candidates[torch.arange(B, device=z.device), distance.argmin(dim=-1)]
