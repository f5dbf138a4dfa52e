"""Decoding z into token sequences: greedy, temperature sampling and beam search.

All three are batched, stop as soon as every sequence has produced <eos> (or at ``max_len``),
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

METHODS = ("greedy", "sample", "beam")


@torch.inference_mode()
def decode(model: SeqVAE, z: Tensor, bos_id: int, eos_id: int, pad_id: int,
           method: str = "greedy", max_len: int = 100, temperature: float = 1.0,
           beam_size: int = 5, generator: torch.Generator | None = None,
           constraint: DecodingConstraint | None = None, precision: str = "fp32") -> Tensor:
    """Decode a batch of latent codes.

    Args:
        z: (B, D) latent codes.
        method: ``greedy`` (argmax), ``sample`` (from softmax(logits / temperature)) or
            ``beam`` (beam search of width ``beam_size``, best total log-probability).
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
        if method == "beam":
            return _beam_search(model, z, bos_id, eos_id, pad_id, max_len, beam_size, constraint)
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


def _beam_search(model: SeqVAE, z: Tensor, bos_id: int, eos_id: int, pad_id: int,
                 max_len: int, beam_size: int,
                 constraint: DecodingConstraint | None = None) -> Tensor:
    """Batched beam search: B * K hypotheses advance together; finished ones are frozen."""
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
    best = scores.argmax(dim=-1) + torch.arange(B, device=device) * K
    return history[best]
