"""The recurrent cells of the encoder and decoder, behind one small interface.

The model and the decoding code never touch a cell's state directly: they ask the cell for
an initial state from a (L, B, H) tensor (:meth:`GRU.initial_state`), to keep some rows of a
state (:meth:`GRU.select_rows`), to run a sequence (:meth:`GRU.run`) and for the final states
of an encoder pass (:meth:`GRU.final_states`). A GRU's state is one tensor; an LSTM's would be
the pair (h, c): adding one means a class here with these four methods and a name in
:data:`CELLS`, and nothing in the model or in decoding changes.

Each cell subclasses its ``torch.nn`` module, so checkpoints keep the parameter names of
``nn.GRU`` (``decoder.weight_ih_l0``, ...).

Which kernel runs is the cell's choice, from where the tensors already are: on the CPU with
gradients, the GRU is unrolled in Python (:func:`unrolled_gru`), which autograd handles far
better than ``nn.GRU`` there; for inference and on GPUs the fused kernels (cuDNN) run.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from seqvae.gru_layer import gru_layer

CELLS = ("gru",)

State = Any  # a cell's recurrent state: a (L, B, H) tensor for a GRU, a pair for an LSTM


def use_unrolled(x: Tensor) -> bool:
    """The unrolled GRU when training on the CPU (``x`` is where the inputs already are);
    ``nn.GRU``'s fused kernels are faster for inference, and cuDNN on a GPU."""
    return x.device.type == "cpu" and torch.is_grad_enabled()


class GRU(nn.GRU):
    """``nn.GRU`` (batch first) with the cell interface. State: (L, B, H).

    ``weight_drop`` (a plain attribute, not a parameter: checkpoints do not change) drops
    entries of the hidden-to-hidden weights while training, one mask per forward pass shared
    by every time step (DropConnect on the recurrence, Merity et al. 2018, "Regularizing and
    optimizing LSTM language models"). It runs on the unrolled GRU, on any device.
    """

    weight_drop: float = 0.0

    def initial_state(self, h: Tensor) -> State:
        """The state that starts from hidden values ``h`` (L, B, H)."""
        return h

    @staticmethod
    def select_rows(state: State, index: Tensor) -> State:
        """The state of the batch rows ``index`` (a bool mask or ids), in that order."""
        return state[:, index]

    def run(self, x: Tensor, state: State, static_input: Tensor | None = None
            ) -> tuple[Tensor, State]:
        """Run over a batch of sequences (teacher forcing, or one decoding step).

        Args:
            x: (B, T, I) inputs; static_input: (B, S) appended to every step's input, or None.
        Returns:
            top-layer outputs (B, T, H) and the final state.
        """
        dropping = self.weight_drop > 0 and self.training and torch.is_grad_enabled()
        if x.size(1) > 1 and (use_unrolled(x) or dropping):
            return unrolled_gru(self, x, state, static_input=static_input)
        if static_input is not None:
            x = torch.cat([x, static_input.unsqueeze(1).expand(-1, x.size(1), -1)], dim=-1)
        return self(x, state)

    def final_states(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The last layer's final state in each direction, (dirs, B, H), over padded
        sequences (B, T, I) with real lengths (B,): padding and neighbours change nothing."""
        if use_unrolled(x):
            return unrolled_encoder(self, x, lengths)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self(packed)                                               # (L * dirs, B, H)
        dirs = 2 if self.bidirectional else 1
        return h_n.view(self.num_layers, dirs, *h_n.shape[1:])[-1]


def make_cell(kind: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
              bidirectional: bool = False, weight_drop: float = 0.0) -> GRU:
    """A batch-first recurrent stack of the named kind (:data:`CELLS`)."""
    if kind not in CELLS:
        raise ValueError(f"unknown recurrent cell {kind!r}; choose one of {', '.join(CELLS)}")
    cell = GRU(input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
               batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
    cell.weight_drop = weight_drop
    return cell


def unrolled_gru(gru: nn.GRU, x: Tensor, h0: Tensor,
                 static_input: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The maths of a batch-first, unidirectional ``nn.GRU``, unrolled over time in Python.

    On the CPU, autograd through ``nn.GRU`` gives every time step's slice of the input
    projection a full-size zero gradient, which costs O(T^2) memory traffic per layer; here the
    projections are computed for all steps at once and each layer's recurrence runs as one
    autograd node with a hand-written backward (:mod:`seqvae.gru_layer`). ``static_input`` is
    a per-sequence input appended to every step's input (z for the decoder): its projection is
    computed once per sequence, not per step.

    Args:
        gru: supplies the weights (``weight_ih_l{k}`` with gate rows [r; z; n], as PyTorch).
        x: (B, T, I) inputs, without the static part.
        h0: (L, B, H) initial state.
        static_input: (B, S) with I + S = the GRU's input size, or None.
    Returns:
        outputs (B, T, H) of the last layer, and the final state (L, B, H).
    """
    # time-major inside: each step's rows are one contiguous block (seqvae.gru_layer)
    finals, layer_input = [], x.transpose(0, 1)                                  # (T, B, I)
    drop = getattr(gru, "weight_drop", 0.0) if gru.training else 0.0
    for k in range(gru.num_layers):
        w_ih, w_hh, b_ih, b_hh = _weights(gru, k)
        if drop:  # one mask for the whole sequence: the same recurrence at every step
            w_hh = nn.functional.dropout(w_hh, drop, training=True)
        if k == 0 and static_input is not None:
            width = layer_input.size(-1)
            w_x, w_static = w_ih.split((width, w_ih.size(1) - width), dim=1)
            static = nn.functional.linear(static_input, w_static, b_ih)          # (B, 3H)
            projected = nn.functional.linear(layer_input, w_x) + static          # (T, B, 3H)
        else:
            projected = _project(layer_input, w_ih, b_ih)
        layer_input, h = gru_layer(projected, h0[k], w_hh, b_hh)
        finals.append(h)
        if gru.dropout and gru.training and k < gru.num_layers - 1:
            layer_input = nn.functional.dropout(layer_input, gru.dropout, training=True)
    return layer_input.transpose(0, 1), torch.stack(finals)


def unrolled_encoder(gru: nn.GRU, x: Tensor, lengths: Tensor) -> Tensor:
    """Final states of a batch-first ``nn.GRU`` (either direction) over padded sequences.

    A row's final state is its output at step length - 1, which the padding after it cannot
    have touched; the backward direction reads each sequence reversed within its own length.
    So padding and batch neighbours change nothing: the same result as packing the sequences,
    without the O(T^2) backward of ``nn.GRU``, and without a per-step mask.

    Args:
        x: (B, T, I); lengths: (B,).
    Returns:
        (dirs, B, H): the last layer's final state in each direction.
    """
    B, T = x.shape[:2]
    steps = torch.arange(T, device=x.device)
    lengths = lengths.to(x.device)
    mask = steps.unsqueeze(1) < lengths.unsqueeze(0)                              # (T, B)
    # t -> len-1-t inside each sequence, identity on padding; it is its own inverse
    flip = torch.where(mask, lengths.unsqueeze(0) - 1 - steps.unsqueeze(1), steps.unsqueeze(1))
    last = (lengths - 1).view(1, B, 1)
    h0 = x.new_zeros(B, gru.hidden_size)
    layer_input = x.transpose(0, 1)                    # time-major inside, as unrolled_gru
    for k in range(gru.num_layers):
        finals, outputs = [], []
        for suffix in ("", "_reverse")[:2 if gru.bidirectional else 1]:
            w_ih, w_hh, b_ih, b_hh = _weights(gru, k, suffix)
            seq = layer_input if not suffix else _gather_time(layer_input, flip)
            out, _ = gru_layer(_project(seq, w_ih, b_ih), h0, w_hh, b_hh)       # (T, B, H)
            finals.append(out.gather(0, last.expand(-1, -1, out.size(-1))).squeeze(0))
            outputs.append(out if not suffix else _gather_time(out, flip))
        layer_input = torch.cat(outputs, dim=-1)
        if gru.dropout and gru.training and k < gru.num_layers - 1:
            layer_input = nn.functional.dropout(layer_input, gru.dropout, training=True)
    return torch.stack(finals)


def _weights(gru: nn.GRU, layer: int, suffix: str = "") -> tuple[Tensor, ...]:
    return tuple(getattr(gru, f"{name}_l{layer}{suffix}")
                 for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _project(x: Tensor, w_ih: Tensor, b_ih: Tensor) -> Tensor:
    """Input projections of all time steps in one matrix product: (T, B, I) -> (T, B, 3H)."""
    return nn.functional.linear(x, w_ih, b_ih)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """x[index[t, b], b] for time-major (T, B, F) x and (T, B) index."""
    return x.gather(0, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))
