"""The sequence VAE: a GRU encoder to a diagonal Gaussian q(z|x), and an autoregressive GRU
decoder p(x|z) that starts from z and sees z at every step (Bowman et al. 2016; the layout of
the MOSES VAE, Polykovskiy et al. 2020).

Shapes: B batch, T time steps, V vocabulary, E embedding, D latent, L layers, H hidden units.
Sequences are id tensors ``[<bos>, x_1, ..., x_n, <eos>, <pad>, ...]``; the model only ever
returns tensors. Strings live in the tokenizers.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .config import ModelConfig
from .objective import linear_cross_entropy


class VAEOutput(NamedTuple):
    rec: Tensor                  # (B,) -log p(x|z) of each sequence, nats (fp32)
    mu: Tensor                   # (B, D)
    logvar: Tensor               # (B, D)
    z: Tensor                    # (B, D)
    logits: Tensor | None = None  # (B, T-1, V) scores for tokens[:, 1:], if asked for


class SeqVAE(nn.Module):
    """GRU encoder, Gaussian latent, GRU decoder.

    Args:
        config: architecture (:class:`seqvae.config.ModelConfig`).
        vocab_size: V, including the special tokens.
        pad_id: id of <pad>; its embedding is kept at zero.
    """

    def __init__(self, config: ModelConfig, vocab_size: int, pad_id: int = 0):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        emb = config.embedding_dim or vocab_size  # 0 means one-hot-sized, as the MOSES VAE
        c = config
        self.embedding = nn.Embedding(vocab_size, emb, padding_idx=pad_id)
        if self.has_latent:
            self.encoder = nn.GRU(emb, c.encoder_hidden, num_layers=c.encoder_layers,
                                  bidirectional=c.bidirectional, batch_first=True,
                                  dropout=c.dropout if c.encoder_layers > 1 else 0.0)
            enc_out = c.encoder_hidden * (2 if c.bidirectional else 1)
            self.to_mu = nn.Linear(enc_out, c.latent_dim)
            self.to_logvar = nn.Linear(enc_out, c.latent_dim)
            self.latent_to_hidden = nn.Linear(c.latent_dim, c.decoder_layers * c.decoder_hidden)
        else:  # a plain GRU language model: no encoder, a learned initial state
            self.initial_state = nn.Parameter(torch.zeros(c.decoder_layers * c.decoder_hidden))
        self.decoder = nn.GRU(emb + c.latent_dim, c.decoder_hidden, num_layers=c.decoder_layers,
                              batch_first=True,
                              dropout=c.dropout if c.decoder_layers > 1 else 0.0)
        self.output_dropout = nn.Dropout(c.dropout)
        self.property_head = None
        if c.property_head:
            from .properties import PropertyHead
            self.property_head = PropertyHead(c.latent_dim, c.property_head)
        if c.tie_weights:
            # Project to the embedding size, then score against the embedding matrix.
            self.output_projection = nn.Linear(c.decoder_hidden, emb, bias=False)
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.output_projection = nn.Linear(c.decoder_hidden, vocab_size)

    def reset_decoder(self) -> None:
        """Re-initialise the decoder side (z-to-state layer, decoder GRU, output layer), keeping
        the encoder and the shared embedding: the second phase of Li et al. 2019's pretraining."""
        for module in (self.decoder, self.output_projection,
                       getattr(self, "latent_to_hidden", None)):
            if module is not None:
                module.reset_parameters()
        if self.config.tie_weights:
            nn.init.zeros_(self.output_bias)
        if not self.has_latent:
            nn.init.zeros_(self.initial_state)

    def decoder_parameters(self) -> list[nn.Parameter]:
        """The parameters :meth:`reset_decoder` re-initialises."""
        modules = [self.decoder, self.output_projection, getattr(self, "latent_to_hidden", None)]
        params = [p for m in modules if m is not None for p in m.parameters()]
        if self.config.tie_weights:
            params.append(self.output_bias)
        return params

    @property
    def has_latent(self) -> bool:
        """False for ``latent_dim == 0``: the same decoder trained as a language model, the
        baseline a VAE's likelihood is compared with. Its z is (B, 0) and its KL zero."""
        return self.config.latent_dim > 0

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    @staticmethod
    def _unroll(x: Tensor) -> bool:
        """Use the unrolled GRU (see :func:`unrolled_gru`) when training on the CPU; nn.GRU's
        fused kernels are faster for inference, and cuDNN on a GPU."""
        return x.device.type == "cpu" and torch.is_grad_enabled()

    def forward_encoder(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters of q(z|x).

        Args:
            tokens: (B, T) ids, padded after each sequence's end.
            lengths: (B,) number of real tokens in each row (including <bos> and <eos>).
        Returns:
            mu, logvar: (B, D) each.
        """
        if not self.has_latent:
            empty = torch.zeros(tokens.size(0), 0, device=tokens.device)
            return empty, empty
        emb = self.embedding(tokens)
        if self._unroll(emb):
            last = unrolled_encoder(self.encoder, emb, lengths)             # (dirs, B, H)
        else:  # packing keeps each row's state independent of padding and neighbours
            packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            _, h_n = self.encoder(packed)                                   # (L * dirs, B, H)
            dirs = 2 if self.config.bidirectional else 1
            last = h_n.view(self.config.encoder_layers, dirs, *h_n.shape[1:])[-1]
        summary = torch.cat(list(last), dim=-1)                             # (B, dirs * H)
        # fp32 even under bf16 autocast: the KL and the noise of z need the precision
        return self.to_mu(summary).float(), self.to_logvar(summary).float()

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) (Kingma & Welling 2014). (B, D) -> (B, D)."""
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

    def initial_hidden(self, z: Tensor) -> Tensor:
        """Decoder state at step 0 from z: (B, D) -> (L, B, H)."""
        L, H = self.config.decoder_layers, self.config.decoder_hidden
        if self.has_latent:
            h = torch.tanh(self.latent_to_hidden(z))        # (B, L * H)
        else:
            h = torch.tanh(self.initial_state).expand(z.size(0), -1)
        return h.view(z.size(0), L, H).transpose(0, 1).contiguous()

    def forward_decoder(self, inputs: Tensor, z: Tensor,
                        hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Next-token scores given the previous tokens and z (teacher forcing, or one step).

        Causal: the scores at step t depend only on inputs[:, :t+1] and z.

        Args:
            inputs: (B, T) ids of the previous tokens, starting with <bos>.
            z: (B, D).
            hidden: (L, B, H) state to continue from; None starts from z.
        Returns:
            logits (B, T, V) and the final state (L, B, H).
        """
        states, hidden = self.decoder_states(inputs, z, hidden)
        return self.project(states), hidden

    def decoder_states(self, inputs: Tensor, z: Tensor,
                       hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The decoder GRU's top-layer outputs before the vocabulary projection.

        Args as :meth:`forward_decoder`. Returns (B, T, H) outputs and the state (L, B, H).
        """
        if hidden is None:
            hidden = self.initial_hidden(z)
        emb = self.embedding(inputs)                                   # (B, T, E)
        if inputs.size(1) > 1 and self._unroll(emb):
            return unrolled_gru(self.decoder, emb, hidden, static_input=z)
        # decoding steps, inference, or cuDNN on a GPU
        z_steps = z.unsqueeze(1).expand(-1, inputs.size(1), -1)        # (B, T, D)
        return self.decoder(torch.cat([emb, z_steps], dim=-1), hidden)

    def project(self, states: Tensor) -> Tensor:
        """Vocabulary scores of decoder outputs: (..., H) -> (..., V)."""
        out = self.output_projection(self.output_dropout(states))
        if self.config.tie_weights:
            out = out @ self.embedding.weight.t() + self.output_bias
        return out

    def sequence_nll(self, states: Tensor, targets: Tensor, max_scores: int = 2 ** 23) -> Tensor:
        """-log p(targets | decoder states), summed over each sequence's real tokens.

        Uses the fused, sliced cross-entropy of :func:`seqvae.objective.linear_cross_entropy`:
        at most about ``max_scores`` vocabulary scores exist at once (what makes importance
        sampling with hundreds of z per sequence fit in memory), and training never writes out
        the (B, T, V) log-probabilities. Padding positions are scored and then ignored: with
        length-bucketed batches they are a few percent, and cheaper than gathering the real
        positions out and scattering their gradients back.

        Args:
            states: (B, T, H) decoder outputs from :meth:`decoder_states`.
            targets: (B, T) ids, ``pad_id`` after each sequence's end.
        Returns:
            (B,) nats (fp32).
        """
        features = self.output_dropout(states).reshape(-1, states.size(-1))   # (B*T, H)
        if self.config.tie_weights:
            features = self.output_projection(features)                        # (B*T, E)
            weight, bias = self.embedding.weight, self.output_bias
        else:
            weight, bias = self.output_projection.weight, self.output_projection.bias
        token_nll = linear_cross_entropy(features, weight, bias, targets.reshape(-1),
                                         ignore_index=self.pad_id, max_scores=max_scores)
        return token_nll.view(targets.shape).sum(dim=1)

    def log_likelihood(self, tokens: Tensor, z: Tensor, max_scores: int = 2 ** 23) -> Tensor:
        """log p(x|z) of whole sequences, summed over their tokens (<eos> included).

        Args:
            tokens: (B, T) padded ``[<bos>, ..., <eos>]`` ids.
            z: (B, D).
        Returns:
            (B,) nats (fp32).
        """
        states, _ = self.decoder_states(tokens[:, :-1], z)            # (B, T-1, H)
        return -self.sequence_nll(states, tokens[:, 1:], max_scores)

    def forward(self, tokens: Tensor, lengths: Tensor, decoder_inputs: Tensor | None = None,
                noise: Tensor | None = None, return_logits: bool = False) -> VAEOutput:
        """Encode, sample z, and score ``tokens[:, 1:]`` given ``tokens[:, :-1]``.

        Args:
            tokens: (B, T) padded id sequences ``[<bos>, ..., <eos>]``.
            lengths: (B,) real lengths.
            decoder_inputs: (B, T-1) replaces ``tokens[:, :-1]`` as the decoder's input
                (for word dropout); None uses it as is.
            noise: (B, D) the standard normal eps of z = mu + sigma * eps; None draws it.
            return_logits: also return the (B, T-1, V) scores (slower, and in training mode
                with their own dropout draw; the reconstruction term ``rec`` never needs them).
        """
        mu, logvar = self.forward_encoder(tokens, lengths)
        if noise is None:
            z = self.reparameterize(mu, logvar)
        else:
            z = mu + noise.to(mu) * (0.5 * logvar).exp()
        if decoder_inputs is None:
            decoder_inputs = tokens[:, :-1]
        states, _ = self.decoder_states(decoder_inputs, z)              # (B, T-1, H)
        rec = self.sequence_nll(states, tokens[:, 1:])
        logits = self.project(states) if return_logits else None
        return VAEOutput(rec, mu, logvar, z, logits)


def unrolled_gru(gru: nn.GRU, x: Tensor, h0: Tensor,
                 static_input: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The maths of a batch-first, unidirectional ``nn.GRU``, unrolled over time in Python.

    On the CPU, autograd through ``nn.GRU`` gives every time step's slice of the input
    projection a full-size zero gradient, which costs O(T^2) memory traffic per layer; here the
    projections are computed for all steps at once and split with ``unbind``, whose backward
    is a single ``stack``. ``static_input`` is a per-sequence input appended to every step's
    input (z for the decoder): its projection is computed once per sequence, not per step.

    Args:
        gru: supplies the weights (``weight_ih_l{k}`` with gate rows [r; z; n], as PyTorch).
        x: (B, T, I) inputs, without the static part.
        h0: (L, B, H) initial state.
        static_input: (B, S) with I + S = the GRU's input size, or None.
    Returns:
        outputs (B, T, H) of the last layer, and the final state (L, B, H).
    """
    finals, layer_input = [], x
    for k in range(gru.num_layers):
        w_ih, w_hh, b_ih, b_hh = _weights(gru, k)
        if k == 0 and static_input is not None:
            width = layer_input.size(-1)
            w_x, w_static = w_ih.split((width, w_ih.size(1) - width), dim=1)
            static = nn.functional.linear(static_input, w_static, b_ih)          # (B, 3H)
            projected = nn.functional.linear(layer_input, w_x) + static.unsqueeze(1)  # (B, T, 3H)
        else:
            projected = _project(layer_input, w_ih, b_ih)
        layer_input, h = _gru_layer(projected, h0[k], w_hh, b_hh)
        finals.append(h)
        if gru.dropout and gru.training and k < gru.num_layers - 1:
            layer_input = nn.functional.dropout(layer_input, gru.dropout, training=True)
    return layer_input, torch.stack(finals)


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
    mask = steps.unsqueeze(0) < lengths.unsqueeze(1)                              # (B, T)
    # t -> len-1-t inside each sequence, identity on padding; it is its own inverse
    flip = torch.where(mask, lengths.unsqueeze(1) - 1 - steps, steps)
    last = (lengths - 1).view(B, 1, 1)
    h0 = x.new_zeros(B, gru.hidden_size)
    layer_input = x
    for k in range(gru.num_layers):
        finals, outputs = [], []
        for suffix in ("", "_reverse")[:2 if gru.bidirectional else 1]:
            w_ih, w_hh, b_ih, b_hh = _weights(gru, k, suffix)
            seq = layer_input if not suffix else _gather_time(layer_input, flip)
            out, _ = _gru_layer(_project(seq, w_ih, b_ih), h0, w_hh, b_hh)
            finals.append(out.gather(1, last.expand(-1, 1, out.size(-1))).squeeze(1))
            outputs.append(out if not suffix else _gather_time(out, flip))
        layer_input = torch.cat(outputs, dim=-1)
        if gru.dropout and gru.training and k < gru.num_layers - 1:
            layer_input = nn.functional.dropout(layer_input, gru.dropout, training=True)
    return torch.stack(finals)


def _weights(gru: nn.GRU, layer: int, suffix: str = "") -> tuple[Tensor, ...]:
    return tuple(getattr(gru, f"{name}_l{layer}{suffix}")
                 for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _project(x: Tensor, w_ih: Tensor, b_ih: Tensor) -> Tensor:
    """Input projections of all time steps in one matrix product: (B, T, I) -> (B, T, 3H)."""
    return nn.functional.linear(x, w_ih, b_ih)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """x[b, index[b, t]] for (B, T, F) x and (B, T) index."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))


def _gru_layer(projected: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor
               ) -> tuple[Tensor, Tensor]:
    """Run one GRU layer over precomputed input projections (B, T, 3H) from state h (B, H).

    Returns the outputs (B, T, H) and the final state (B, H).
    """
    H, outputs = h.size(-1), []
    h = h.float()  # the state accumulates over time: keep it fp32 under bf16 autocast
    for step in projected.unbind(1):                                            # (B, 3H)
        # split/chunk, not [:, a:b]: their backward is one cat, not a zero-fill per slice
        input_ru, input_n = step.split((2 * H, H), dim=1)
        # linear() on the leaf weight, so bf16 autocast casts it once, not at every step
        hidden_ru, hidden_n = nn.functional.linear(h, w_hh, b_hh).split((2 * H, H), dim=1)
        reset, update = torch.sigmoid(input_ru + hidden_ru).chunk(2, dim=1)
        candidate = torch.tanh(input_n + reset * hidden_n)
        h = candidate + update * (h - candidate)                                # (1-u) n + u h
        outputs.append(h)
    return torch.stack(outputs, dim=1), h
