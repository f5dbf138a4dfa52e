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

from .cells import State, make_cell
from .config import ModelConfig
from .cross_entropy import linear_cross_entropy
from .gaussian import gaussian_kl, reparameterize, standard_normal_log_prob
from .latent_diffusion import LatentDiffusion
from .latent_flow import RealNVP
from .mixture_prior import GaussianMixture
from .molecules.property_head import PropertyHead
from .tokenizers import EOS_ID


class VAEOutput(NamedTuple):
    rec: Tensor                  # (B,) -log p(x|z) of each sequence, nats (fp32)
    mu: Tensor                   # (B, D)
    logvar: Tensor               # (B, D)
    z: Tensor                    # (B, D)
    logits: Tensor | None = None  # (B, T-1, V) scores for tokens[:, 1:], if asked for
    # With a learned prior (--learned-prior): log p(z) (B,), differentiable in z and in the
    # prior's parameters, and log p(z.detach()) (B,), which fits the prior to the codes alone
    # (seqvae.objective.training_loss). None under N(0, I).
    prior_log_prob: Tensor | None = None
    prior_fit_log_prob: Tensor | None = None
    bag_of_words_nll: Tensor | None = None   # (B,) with --bag-of-words: SeqVAE.bag_of_words_nll


def make_fitted_density(kind: str, latent_dim: int, components: int, layers: int,
                        hidden: int) -> GaussianMixture | RealNVP | LatentDiffusion | None:
    """The module of a prior fitted after training, of ``kind`` (mixture, flow or diffusion)
    with the recorded sizes (weights loaded after); None for ``standard`` or ``none``."""
    if kind == "mixture":
        return GaussianMixture(latent_dim, components)
    if kind == "flow":
        return RealNVP(latent_dim, layers, hidden)
    if kind == "diffusion":
        return LatentDiffusion(latent_dim, layers, hidden)
    return None


def make_latent_prior(config: ModelConfig) -> GaussianMixture | RealNVP | LatentDiffusion | None:
    """The module of a learned or fitted prior, with the sizes the config records (weights
    loaded after); None for the standard N(0, I)."""
    if config.learned_prior:
        return RealNVP(config.latent_dim, config.learned_prior, config.learned_prior_hidden)
    return make_fitted_density(config.latent_prior, config.latent_dim, config.prior_components,
                               config.prior_layers, config.prior_hidden)


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
            self.encoder = make_cell(c.cell, emb, c.encoder_hidden, c.encoder_layers, c.dropout,
                                     bidirectional=c.bidirectional)
            enc_out = c.encoder_hidden * (2 if c.bidirectional else 1)
            self.to_mu = nn.Linear(enc_out, c.latent_dim)
            self.to_logvar = nn.Linear(enc_out, c.latent_dim)
            self.latent_to_hidden = nn.Linear(c.latent_dim, c.decoder_layers * c.decoder_hidden)
        else:  # a plain GRU language model: no encoder, a learned initial state
            self.initial_state = nn.Parameter(torch.zeros(c.decoder_layers * c.decoder_hidden))
        self.decoder = make_cell(c.cell, emb + c.latent_dim, c.decoder_hidden, c.decoder_layers,
                                 c.dropout, weight_drop=c.weight_drop)
        self.output_dropout = nn.Dropout(c.dropout)
        self.embedding_dropout = nn.Dropout(c.embedding_dropout)
        self.bag_of_words = None
        if c.bag_of_words and self.has_latent:
            self.bag_of_words = nn.Sequential(nn.Linear(c.latent_dim, c.bag_of_words), nn.Tanh(),
                                              nn.Linear(c.bag_of_words, vocab_size))
        self.property_head = None
        if c.property_head:
            self.property_head = PropertyHead(c.latent_dim, c.property_head)
        # A density fitted to the aggregate posterior after training (seqvae fit-prior), which
        # training never touches, or a flow learned with the model (--learned-prior), the p(z)
        # of its ELBO. Sampling draws from either instead of N(0, I).
        self.latent_prior = make_latent_prior(c) if self.has_latent else None
        # Beside a diffusion prior, which has no density: the flow or mixture fitted before it,
        # for log p(z) only.
        self.latent_density = make_fitted_density(
            c.density_prior, c.latent_dim, c.density_components, c.density_layers,
            c.density_hidden) if self.has_latent else None
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
    def has_learned_prior(self) -> bool:
        """True when p(z) is a flow trained with the model (``--learned-prior``), False for
        N(0, I) (a flow fitted after training by ``seqvae fit-prior`` is only for sampling:
        the model was trained, and its ELBO is measured, under N(0, I))."""
        return self.has_latent and self.config.learned_prior > 0

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log p(z) under the prior the model is trained with: (N, D) -> (N,) fp32.

        The learned flow runs in fp32 even under bf16 autocast: its log-determinant sums
        D x layers scales, which bf16 would blur by a good fraction of a nat."""
        if not self.has_learned_prior:
            return standard_normal_log_prob(z)
        with torch.autocast(z.device.type, enabled=False):
            return self.latent_prior.log_prob(z.float())

    def kl(self, mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(q(z|x) || p(z)) per sequence, nats: (B, D) each -> (B,).

        Under N(0, I) the exact value (z unused). Under a learned prior the analytic KL to
        N(0, I) plus log N(z; 0, I) - log p(z) at the sample z ~ q(z|x): an unbiased one-sample
        estimate of E_q[log q(z|x) - log p(z)] with less variance than the plain one."""
        kl = gaussian_kl(mu, logvar).sum(-1)
        if self.has_learned_prior:
            kl = kl + standard_normal_log_prob(z) - self.prior_log_prob(z)
        return kl

    def bag_of_words_nll(self, z: Tensor, tokens: Tensor) -> Tensor:
        """The bag-of-words loss (Zhao et al. 2017): -sum_t log softmax(f(z))[x_t] over each
        sequence's tokens, in any order; <bos>, <eos> and padding left out.

        Args:
            z: (B, D). tokens: (B, T) padded ``[<bos>, ..., <eos>]`` ids.
        Returns:
            (B,) nats (fp32).
        """
        log_p = torch.log_softmax(self.bag_of_words(z).float(), dim=-1)    # (B, V)
        words = tokens[:, 1:]
        counted = (words != self.pad_id) & (words != EOS_ID)
        return -(log_p.gather(1, words) * counted).sum(dim=1)

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
        if not self.has_latent:
            empty = torch.zeros(tokens.size(0), 0, device=tokens.device)
            return empty, empty
        last = self.encoder.final_states(self.embedding(tokens), lengths)   # (dirs, B, H)
        summary = torch.cat(list(last), dim=-1)                             # (B, dirs * H)
        # fp32 even under bf16 autocast: the KL and the noise of z need the precision
        return self.to_mu(summary).float(), self.to_logvar(summary).float()

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) (Kingma & Welling 2014). (B, D) -> (B, D)."""
        return reparameterize(mu, logvar)

    def initial_hidden(self, z: Tensor) -> State:
        """Decoder state at step 0 from z (B, D): the cell's state built from (L, B, H)."""
        L, H = self.config.decoder_layers, self.config.decoder_hidden
        if self.has_latent:
            h = torch.tanh(self.latent_to_hidden(z))        # (B, L * H)
        else:
            h = torch.tanh(self.initial_state).expand(z.size(0), -1)
        return self.decoder.initial_state(h.view(z.size(0), L, H).transpose(0, 1).contiguous())

    def forward_decoder(self, inputs: Tensor, z: Tensor,
                        hidden: State | None = None) -> tuple[Tensor, State]:
        """Next-token scores given the previous tokens and z (teacher forcing, or one step).

        Causal: the scores at step t depend only on inputs[:, :t+1] and z.

        Args:
            inputs: (B, T) ids of the previous tokens, starting with <bos>.
            z: (B, D).
            hidden: the decoder cell's state to continue from; None starts from z.
        Returns:
            logits (B, T, V) and the final state (for a GRU (L, B, H)).
        """
        states, hidden = self.decoder_states(inputs, z, hidden)
        return self.project(states), hidden

    def decoder_states(self, inputs: Tensor, z: Tensor,
                       hidden: State | None = None) -> tuple[Tensor, State]:
        """The decoder's top-layer outputs before the vocabulary projection.

        Args as :meth:`forward_decoder`. Returns (B, T, H) outputs and the cell's state.
        """
        if hidden is None:
            hidden = self.initial_hidden(z)
        embedded = self.embedding_dropout(self.embedding(inputs))
        return self.decoder.run(embedded, hidden, static_input=z)   # z every step

    def project(self, states: Tensor) -> Tensor:
        """Vocabulary scores of decoder outputs: (..., H) -> (..., V)."""
        out = self.output_projection(self.output_dropout(states))
        if self.config.tie_weights:
            out = out @ self.embedding.weight.t() + self.output_bias
        return out

    def sequence_nll(self, states: Tensor, targets: Tensor, max_scores: int | None = None) -> Tensor:
        """-log p(targets | decoder states), summed over each sequence's real tokens.

        Uses the fused, sliced cross-entropy of :func:`seqvae.cross_entropy.linear_cross_entropy`:
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

    def log_likelihood(self, tokens: Tensor, z: Tensor, max_scores: int | None = None) -> Tensor:
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
                noise: Tensor | None = None, return_logits: bool = False,
                encoder_tokens: Tensor | None = None) -> VAEOutput:
        """Encode, sample z, and score ``tokens[:, 1:]`` given ``tokens[:, :-1]``.

        Args:
            tokens: (B, T) padded id sequences ``[<bos>, ..., <eos>]``.
            lengths: (B,) real lengths.
            decoder_inputs: (B, T-1) replaces ``tokens[:, :-1]`` as the decoder's input
                (for word dropout); None uses it as is.
            noise: (B, D) the standard normal eps of z = mu + sigma * eps; None draws it.
            return_logits: also return the (B, T-1, V) scores (slower, and in training mode
                with their own dropout draw; the reconstruction term ``rec`` never needs them).
            encoder_tokens: (B, T) what the encoder reads instead of ``tokens`` (a corrupted
                copy of the same lengths, for a denoising autoencoder); None: ``tokens``.
        """
        encoded = tokens if encoder_tokens is None else encoder_tokens
        mu, logvar = self.forward_encoder(encoded, lengths)
        z = reparameterize(mu, logvar, noise)
        if decoder_inputs is None:
            decoder_inputs = tokens[:, :-1]
        states, _ = self.decoder_states(decoder_inputs, z)              # (B, T-1, H)
        rec = self.sequence_nll(states, tokens[:, 1:])
        logits = self.project(states) if return_logits else None
        prior, prior_fit = None, None
        if self.has_learned_prior:
            prior, prior_fit = self.prior_log_prob(z), self.prior_log_prob(z.detach())
        bag = self.bag_of_words_nll(z, tokens) if self.bag_of_words is not None else None
        return VAEOutput(rec, mu, logvar, z, logits, prior, prior_fit, bag)
