"""One GRU layer over time with a hand-written backward pass, for training on the CPU.

Autograd through a GRU unrolled in Python records about a dozen operations per time step and
differentiates them one by one: each step's backward then runs its own small product for the
recurrent weights' gradient (3H x B times B x H) and a chain of element-wise kernels that each
allocate their result. :class:`GRULayer` does what cuDNN does instead (Appleyard et al. 2016,
"Optimizing performance of recurrent neural networks on GPUs"): the backward pass walks back
through time computing only what the recurrence needs (the gates' gradients and one
3H x H product per step), writes the gates' gradients into one (T, B, 3H) buffer, and after
the loop forms the recurrent weights' gradient as a single (3H x T·B) x (T·B x H) product,
which runs near the machine's matrix-product peak. The arithmetic is the same; only its
grouping changes.

The maths are PyTorch's ``nn.GRU`` (gate rows [r; z; n]); ``update`` below is its z.
Precision follows autocast as ``F.linear`` would: under bf16 autocast the recurrent product and
the gates run in bf16 while the state h, which accumulates over time, stays fp32.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .devices import compute_dtype


def _state_dtype(h0: Tensor) -> torch.dtype:
    # fp32 at least: the state accumulates over time (float64 stays float64, for gradcheck)
    return torch.promote_types(h0.dtype, torch.float32)


class GRULayer(torch.autograd.Function):
    """``states, h_T = GRULayer.apply(projected, h0, w_hh, b_hh)``, time-major.

    Time-major so that every step reads and writes one contiguous (B, ·) block, and the
    weights' gradient is one product over the flattened (T·B) rows without a copy.

    Args:
        projected: (T, B, 3H) input projections of every step, ``x_t W_ih^T + b_ih``.
        h0: (B, H) initial state.
        w_hh: (3H, H) recurrent weights; b_hh: (3H,) their bias.
    Returns:
        every step's state (T, B, H) and the final state h_T (B, H), in the state's dtype
        (fp32 under bf16 autocast).
    """

    @staticmethod
    def forward(ctx, projected: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor
                ) -> tuple[Tensor, Tensor]:
        dtype, state_dtype = compute_dtype(projected), _state_dtype(h0)
        with torch.autocast(projected.device.type, enabled=False):
            T, B, three_h = projected.shape
            H = three_h // 3
            w_t = w_hh.to(dtype).t()                                    # (H, 3H), cast once
            bias = b_hh.to(dtype)
            inputs = projected.to(dtype)
            states = projected.new_empty((T, B, H), dtype=state_dtype)  # h_1 .. h_T
            gates = projected.new_empty((T, B, 2 * H), dtype=dtype)     # [r; update]
            candidates = projected.new_empty((T, B, H), dtype=dtype)    # n
            hidden = projected.new_empty((T, B, 3 * H), dtype=dtype)    # h_{t-1} W_hh^T + b_hh
            h = h0.to(state_dtype)
            for t in range(T):
                torch.addmm(bias, h.to(dtype), w_t, out=hidden[t])
                ru = torch.add(inputs[t, :, :2 * H], hidden[t, :, :2 * H], out=gates[t])
                torch.sigmoid_(ru)
                reset, update = ru[:, :H], ru[:, H:]
                n = torch.addcmul(inputs[t, :, 2 * H:], reset, hidden[t, :, 2 * H:],
                                  out=candidates[t])
                torch.tanh_(n)
                # h_t = n + update (h_{t-1} - n)
                h = torch.lerp(n.to(state_dtype), h, update.to(state_dtype), out=states[t])
        ctx.save_for_backward(h0, w_hh, states, gates, candidates, hidden)
        ctx.projected_dtype = projected.dtype
        ctx.compute_dtype = dtype
        return states, states[-1].clone()

    @staticmethod
    def backward(ctx, grad_states: Tensor | None, grad_final: Tensor | None):
        h0, w_hh, states, gates, candidates, hidden = ctx.saved_tensors
        dtype = ctx.compute_dtype
        T, B, H = states.shape
        state_dtype = states.dtype
        w = w_hh.to(dtype)                                                   # (3H, H)
        grad_h = (grad_final.to(state_dtype) if grad_final is not None
                  else h0.new_zeros((B, H), dtype=state_dtype))
        # the gradients of the gates' pre-activations: [r; update; n] for the inputs, and
        # [r; update; r * dn] for the recurrent product (its n rows are scaled by r)
        grad_inputs = states.new_empty((T, B, 3 * H))
        grad_hidden = states.new_empty((T, B, 3 * H), dtype=dtype)
        for t in reversed(range(T)):
            if grad_states is not None:
                grad_h = grad_h + grad_states[t]
            h_prev = states[t - 1] if t else h0.to(state_dtype)
            ru = gates[t].to(state_dtype)
            reset, update = ru[:, :H], ru[:, H:]
            n = candidates[t].to(state_dtype)
            d_reset, d_update, d_n = grad_inputs[t].split(H, dim=1)
            keep = 1 - update
            torch.mul(grad_h, keep, out=d_n).mul_(1 - n * n)               # through tanh
            torch.sub(h_prev, n, out=d_update).mul_(grad_h).mul_(update).mul_(keep)
            torch.mul(d_n, hidden[t, :, 2 * H:], out=d_reset).mul_(reset).mul_(1 - reset)
            step_hidden = grad_hidden[t]
            step_hidden[:, :2 * H] = grad_inputs[t, :, :2 * H]
            torch.mul(d_n, reset, out=step_hidden[:, 2 * H:])
            if dtype == state_dtype:
                grad_h = torch.addmm(grad_h * update, step_hidden, w)
            else:
                grad_h = grad_h * update + (step_hidden @ w).to(state_dtype)
        grad_projected = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_projected = grad_inputs.to(ctx.projected_dtype)
        if ctx.needs_input_grad[2]:
            # sum over steps of (dgates_t)^T h_{t-1}: step 0 against h0, the rest in one product
            grad_w = (grad_hidden[0].t() @ h0.to(dtype)).to(w_hh.dtype)
            if T > 1:
                grad_w += (grad_hidden[1:].reshape(-1, 3 * H).t()
                           @ states[:-1].reshape(-1, H).to(dtype)).to(w_hh.dtype)
        if ctx.needs_input_grad[3]:
            grad_b = grad_hidden.sum((0, 1), dtype=state_dtype).to(w_hh.dtype)
        grad_h0 = grad_h.to(h0.dtype) if ctx.needs_input_grad[1] else None
        return grad_projected, grad_h0, grad_w, grad_b


def gru_layer(projected: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor
              ) -> tuple[Tensor, Tensor]:
    """Run one GRU layer over precomputed input projections (T, B, 3H), time-major, from
    state h0 (B, H) (:class:`GRULayer`). Returns the states (T, B, H) and the final (B, H)."""
    return GRULayer.apply(projected, h0, w_hh, b_hh)
