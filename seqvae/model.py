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


class VAEOutput(NamedTuple):
    logits: Tensor  # (B, T-1, V) scores for tokens[:, 1:]
    mu: Tensor      # (B, D)
    logvar: Tensor  # (B, D)
    z: Tensor       # (B, D)


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
        self.encoder = nn.GRU(emb, c.encoder_hidden, num_layers=c.encoder_layers,
                              bidirectional=c.bidirectional, batch_first=True,
                              dropout=c.dropout if c.encoder_layers > 1 else 0.0)
        enc_out = c.encoder_hidden * (2 if c.bidirectional else 1)
        self.to_mu = nn.Linear(enc_out, c.latent_dim)
        self.to_logvar = nn.Linear(enc_out, c.latent_dim)
        self.latent_to_hidden = nn.Linear(c.latent_dim, c.decoder_layers * c.decoder_hidden)
        self.decoder = nn.GRU(emb + c.latent_dim, c.decoder_hidden, num_layers=c.decoder_layers,
                              batch_first=True,
                              dropout=c.dropout if c.decoder_layers > 1 else 0.0)
        self.output_dropout = nn.Dropout(c.dropout)
        if c.tie_weights:
            # Project to the embedding size, then score against the embedding matrix.
            self.output_projection = nn.Linear(c.decoder_hidden, emb, bias=False)
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.output_projection = nn.Linear(c.decoder_hidden, vocab_size)

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def forward_encoder(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters of q(z|x).

        Args:
            tokens: (B, T) ids, padded after each sequence's end.
            lengths: (B,) number of real tokens in each row (including <bos> and <eos>).
        Returns:
            mu, logvar: (B, D) each.
        """
        # Packing makes each row's final state independent of the padding and of the rest of
        # the batch, in both directions.
        packed = pack_padded_sequence(self.embedding(tokens), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h_n = self.encoder(packed)                       # (L * dirs, B, H)
        dirs = 2 if self.config.bidirectional else 1
        last = h_n.view(self.config.encoder_layers, dirs, *h_n.shape[1:])[-1]  # (dirs, B, H)
        summary = torch.cat(list(last), dim=-1)             # (B, dirs * H)
        return self.to_mu(summary), self.to_logvar(summary)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) (Kingma & Welling 2014). (B, D) -> (B, D)."""
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

    def initial_hidden(self, z: Tensor) -> Tensor:
        """Decoder state at step 0 from z: (B, D) -> (L, B, H)."""
        L, H = self.config.decoder_layers, self.config.decoder_hidden
        h = torch.tanh(self.latent_to_hidden(z))            # (B, L * H)
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
        if hidden is None:
            hidden = self.initial_hidden(z)
        emb = self.embedding(inputs)                                   # (B, T, E)
        z_steps = z.unsqueeze(1).expand(-1, inputs.size(1), -1)        # (B, T, D)
        out, hidden = self.decoder(torch.cat([emb, z_steps], dim=-1), hidden)
        out = self.output_projection(self.output_dropout(out))
        if self.config.tie_weights:
            out = out @ self.embedding.weight.t() + self.output_bias
        return out, hidden

    def forward(self, tokens: Tensor, lengths: Tensor,
                decoder_inputs: Tensor | None = None) -> VAEOutput:
        """Encode, sample z, and score ``tokens[:, 1:]`` given ``tokens[:, :-1]``.

        Args:
            tokens: (B, T) padded id sequences ``[<bos>, ..., <eos>]``.
            lengths: (B,) real lengths.
            decoder_inputs: (B, T-1) replaces ``tokens[:, :-1]`` as the decoder's input
                (for word dropout); None uses it as is.
        """
        mu, logvar = self.forward_encoder(tokens, lengths)
        z = self.reparameterize(mu, logvar)
        if decoder_inputs is None:
            decoder_inputs = tokens[:, :-1]
        logits, _ = self.forward_decoder(decoder_inputs, z)
        return VAEOutput(logits, mu, logvar, z)
