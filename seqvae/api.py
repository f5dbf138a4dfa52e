"""The Python API: ``seqvae.load(path)`` and the verbs sample / encode / decode / reconstruct.

    >>> import seqvae
    >>> vae = seqvae.load("runs/moses/model.pt")
    >>> vae.sample(5)                       # five strings decoded from z ~ N(0, I)
    >>> z = vae.encode(["CCO", "c1ccccc1"])  # (2, D) posterior means, numpy
    >>> vae.decode(z)                       # greedy decodes of those codes
    >>> vae.reconstruct(["CCO"])            # encode then decode

Strings in, strings out; the tensors stay inside.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint
from .config import Config
from .corpus_files import Corpus
from .data import PreparedData, TokenizedSplit, collate, prepare_data
from .decoding import DEFAULT_BEAM_SIZE
from .decoding import decode as decode_ids
from .devices import resolve_device, resolve_precision
from .errors import SeqVAEError
from .gaussian import standard_normal_log_prob
from .latent_diffusion import LatentDiffusion
from .logs import to_stderr
from .model import SeqVAE
from .molecules.chemistry import canonical, is_valid, validity_and_uniqueness
from .molecules.smiles_valence import SmilesValence
from .text.interpolation import path as latent_path
from .tokenizers import UNK, Tokenizer

# Below this validation KL (nats per sequence) a model's codes identify little of their input.
LOW_RATE_NATS = 15.0


def fitted_density_name(kind: str, components: int, layers: int, hidden: int) -> str:
    """A fitted prior in words, without its article: ``RealNVP flow (8 couplings of 256
    units)``, ``mixture of 4 Gaussians``, ``diffusion model (4 residual blocks of 256 units)``."""
    if kind == "mixture":
        return f"mixture of {components} Gaussians"
    if kind == "diffusion":
        return f"diffusion model ({layers} residual blocks of {hidden} units)"
    return f"RealNVP flow ({layers} couplings of {hidden} units)"


class TrainedVAE:
    """A trained model with its tokenizer, ready for inference."""

    def __init__(self, config: Config, tokenizer: Tokenizer, model: SeqVAE,
                 train_state: dict | None = None, constrained: bool = True, prior: str = "auto",
                 precision: str = "fp32"):
        self.config, self.tokenizer, self.model = config, tokenizer, model.eval()
        # The arithmetic of temperature sampling (fp32 or bf16: see :func:`load`). Greedy and
        # beam decoding stay fp32, so reconstructions never depend on it.
        if precision not in ("fp32", "bf16"):
            raise SeqVAEError(f"precision must be fp32 or bf16, not {precision!r}")
        self.precision = precision
        self.train_state = dict(train_state or {})  # step, validation KL, ... when recorded
        # A SMILES model decodes under the SMILES grammar and atom valences (None for other
        # tokenizers), unless ``constrained`` is False here or in a call.
        self.syntax = SmilesValence.for_tokenizer(tokenizer)
        self.constrained = constrained
        self.prior = prior

    @property
    def prior(self) -> str:
        """Where :meth:`prior_codes` (and so :meth:`sample`) draws codes from: ``fitted``, the
        density (a Gaussian mixture or a flow) that ``seqvae fit-prior`` fitted to the
        training codes, or ``standard``, N(0, I). Set it to ``auto`` (the fitted density where
        the checkpoint has one),
        ``fitted`` or ``standard``."""
        return self._prior

    @prior.setter
    def prior(self, choice: str) -> None:
        fitted = self.model.latent_prior is not None
        if choice not in ("auto", "fitted", "standard"):
            raise SeqVAEError(f"prior must be auto, fitted or standard, not {choice!r}")
        if choice == "fitted" and not fitted:
            raise SeqVAEError("this model has no fitted prior; fit one with "
                              "`seqvae fit-prior MODEL` or use the standard prior")
        if choice == "auto":
            choice = "fitted" if fitted else "standard"
        self._prior = choice

    @property
    def prior_description(self) -> str:
        """The prior in words, for reports: ``N(0, I)`` or the fitted mixture's size."""
        c = self.config.model
        if self.prior == "standard":
            return "N(0, I)"
        if c.learned_prior:
            flow = fitted_density_name("flow", 0, c.learned_prior, c.learned_prior_hidden)
            return f"a {flow} learned with the model"
        prior = fitted_density_name(c.latent_prior, c.prior_components, c.prior_layers,
                                    c.prior_hidden)
        if c.density_prior == "none":
            return f"a {prior} fitted to the training codes"
        density = fitted_density_name(c.density_prior, c.density_components, c.density_layers,
                                      c.density_hidden)
        return f"a {prior} fitted to the training codes; log p(z) from the {density} fitted before it"

    @property
    def recorded_kl(self) -> float | None:
        """The validation KL (nats per sequence) recorded when the checkpoint was saved, or
        None for a checkpoint that does not record it."""
        return self.train_state.get("valid_kl")

    def low_rate_warning(self, verb: str, floor: float = LOW_RATE_NATS) -> str | None:
        """A one-line warning when the model's codes carry little information (recorded
        validation KL under ``floor`` nats): its decodes of an encoded input drift far from
        that input, which undermines interpolation and latent optimisation."""
        kl = self.recorded_kl
        if kl is None or kl >= floor or not self.latent_dim:
            return None
        use = "moses-autoencoder" if self.kind == "smiles" else "ptb-interpolate"
        return (f"this model's codes carry only {kl:.1f} nats (validation KL), so what it "
                f"decodes from an encoded input is often far from that input, which hurts "
                f"{verb}; train with --preset {use} (or --target-kl 40 or more) for a model "
                f"made for it")

    @property
    def kind(self) -> str:
        """"smiles" or "text": what the model was trained on."""
        return self.config.data.kind

    @property
    def latent_dim(self) -> int:
        return self.config.model.latent_dim

    @property
    def max_len(self) -> int:
        """Default decoding limit: the training maximum plus the <eos>."""
        return self.config.data.max_length + 1

    def problems(self, texts: Sequence[str]) -> dict[int, str]:
        """Inputs the model cannot encode: {index: reason}. Empty ones, and for SMILES models
        those RDKit cannot parse (decoding them back could not be compared to anything)."""
        return self._inspect(texts)[1]

    def _inspect(self, texts: Sequence[str]) -> tuple[list[list[int]], dict[int, str]]:
        """Token ids of each input, and the problems of those that cannot be encoded."""
        if isinstance(texts, str):
            raise TypeError("pass a list of strings, not a single string")
        ids = self.tokenizer.encode_batch(list(texts))
        found = {i: "empty" for i, seq in enumerate(ids) if not seq}
        if self.kind == "smiles":
            found.update({i: "not a valid SMILES (RDKit cannot parse it)"
                          for i, seq in enumerate(ids) if seq and not is_valid(texts[i])})
        return ids, dict(sorted(found.items()))

    def unknown_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens of each input the tokenizer never saw in training (encoded as <unk>).

        A corpus that writes its rare words as the literal token ``<unk>`` (the Penn Treebank)
        has seen that token: it is not counted."""
        unk = self.tokenizer.unk_id
        literal = self.tokenizer.encode(UNK) == [unk]
        return [max(0, ids.count(unk) - (text.split().count(UNK) if literal else 0))
                for text, ids in zip(texts, self.tokenizer.encode_batch(list(texts)))]

    def _ids(self, texts: Sequence[str], check: bool = True) -> list[list[int]]:
        if not check:
            return self.tokenizer.encode_batch(list(texts))
        ids, bad = self._inspect(texts)
        if bad:
            i, reason = next(iter(bad.items()))
            raise SeqVAEError(f"input {i + 1} ({texts[i]!r}) is {reason}; "
                              f"give a non-empty, valid {'SMILES' if self.kind == 'smiles' else 'sentence'}"
                              + (f" ({len(bad)} such inputs in all)" if len(bad) > 1 else ""))
        return ids

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 512, progress: bool = False,
               check: bool = True) -> np.ndarray:
        """Posterior means E_q[z|x]: N strings -> (N, D) float32.

        With ``check`` (the default) empty inputs, and invalid SMILES for SMILES models, raise
        :class:`SeqVAEError`; pass False for inputs already checked with :meth:`problems`.
        """
        split = TokenizedSplit.from_lists(self._ids(texts, check))
        return self.encode_means(split, batch_size, progress).cpu().numpy()

    def encode_posterior(self, texts: Sequence[str], batch_size: int = 512,
                         check: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The posterior q(z|x) = N(mu, diag(exp(logvar))) of each string: two (N, D) float32
        arrays, mu and logvar."""
        split = TokenizedSplit.from_lists(self._ids(texts, check))
        mu, logvar = self.encode_split(split, batch_size)
        return mu.cpu().numpy(), logvar.cpu().numpy()

    def encode_means(self, split: TokenizedSplit, batch_size: int = 512,
                     progress: bool = False) -> torch.Tensor:
        """Posterior means of tokenised sequences, in order: (N, D) fp32 on the model's device."""
        return self.encode_split(split, batch_size, progress)[0]

    @torch.no_grad()  # not inference_mode: the means may feed a head that is then trained
    def encode_split(self, split: TokenizedSplit, batch_size: int = 512,
                     progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means and log-variances of tokenised sequences, in order: two (N, D) fp32
        tensors on the model's device.

        The one "encode everything" loop: the API, property heads and the benchmark use it.
        """
        means, logvars = [], []
        for start in tqdm(range(0, len(split), batch_size), disable=not progress, unit="batch",
                          desc="encoding"):
            tokens, lengths = collate(split, np.arange(start, min(start + batch_size, len(split))))
            mu, logvar = self.model.forward_encoder(tokens.to(self.model.device), lengths)
            means.append(mu.float())
            logvars.append(logvar.float())
        if not means:
            empty = torch.zeros(0, self.latent_dim, device=self.model.device)
            return empty, empty.clone()
        return torch.cat(means), torch.cat(logvars)

    def corpus(self, log: Callable[[str], None] = to_stderr,
               only: Sequence[str] | None = None, lines: Corpus | None = None) -> PreparedData:
        """The corpus the model was trained on, tokenised with its own tokenizer (cached);
        ``only``: just these splits where nothing is cached yet; ``lines``: the corpus as
        read, when the caller has it (see :func:`prepare_data`)."""
        return prepare_data(self.config.data, self.config.tokenizer, tokenizer=self.tokenizer,
                            log=log, only=only, corpus=lines)

    @torch.inference_mode()
    def decode(self, z: np.ndarray | torch.Tensor, method: str = "greedy",
               temperature: float = 1.0, beam_size: int | None = None,
               max_len: int | None = None, batch_size: int = 1024, seed: int | None = None,
               progress: bool = False, constrained: bool | None = None) -> list[str]:
        """Decode latent codes (N, D) into N strings.

        ``method`` is ``greedy``, ``sample`` (temperature sampling), ``beam`` or ``rerank``
        (beam search, then the candidate whose own code lies nearest; the most faithful
        reconstructions: see :func:`seqvae.decoding.rerank_by_reencoding`). ``beam_size``
        defaults to :data:`seqvae.decoding.DEFAULT_BEAM_SIZE`; a beam search runs
        ``batch_size`` hypotheses at a time, not codes, to bound its memory.

        For a SMILES model, ``constrained`` (by default the model's ``constrained``, True
        unless :func:`load` was told otherwise) masks the tokens after which no well-formed
        SMILES string could be finished (open rings, unbalanced branches, a dangling bond; see
        :mod:`seqvae.molecules.smiles_syntax`) and the bonds that would exceed an atom's
        valence (:mod:`seqvae.molecules.smiles_valence`); other models ignore it.
        """
        if constrained is None:
            constrained = self.constrained
        z = torch.as_tensor(np.asarray(z, dtype=np.float32)).to(self.model.device)
        if z.ndim != 2 or z.size(1) != self.latent_dim:
            raise SeqVAEError(f"expected latent codes of shape (N, {self.latent_dim}), "
                              f"got {tuple(z.shape)}")
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.model.device).manual_seed(seed)
        if method in DEFAULT_BEAM_SIZE:
            batch_size = max(1, batch_size // (beam_size or DEFAULT_BEAM_SIZE[method]))
        tok = self.tokenizer
        texts: list[str] = []
        for start in tqdm(range(0, len(z), batch_size), disable=not progress, unit="batch",
                          desc="decoding"):
            ids = decode_ids(self.model, z[start:start + batch_size], tok.bos_id, tok.eos_id,
                             tok.pad_id, method=method, max_len=max_len or self.max_len,
                             temperature=temperature, beam_size=beam_size, generator=generator,
                             constraint=self.syntax if constrained else None,
                             precision=self.precision if method == "sample" else "fp32")
            texts.extend(tok.decode(row) for row in ids.cpu().tolist())
        return texts

    def sample(self, n: int, temperature: float = 1.0, method: str = "sample",
               seed: int | None = None, progress: bool = False, **kwargs) -> list[str]:
        """n strings decoded from prior codes (:meth:`prior_codes`; temperature sampling by
        default)."""
        return self.decode(self.prior_codes(n, seed, progress), method=method,
                           temperature=temperature, seed=seed, progress=progress, **kwargs)

    def sample_valid(self, n: int, temperature: float = 1.0, method: str = "sample",
                     seed: int | None = None, max_draws: int | None = None,
                     progress: bool = False) -> tuple[list[str], int]:
        """Draw from the prior until n distinct valid molecules are found (SMILES models).

        Each round decodes a batch sized from the validity seen so far; duplicates are told
        apart by their RDKit canonical form. Returns the molecules (canonical SMILES, in the
        order found) and the number of strings it took to find them. Stops after
        ``max_draws`` strings (default 100 n) and returns what it has, fewer than n, if the
        model cannot find more.
        """
        if self.kind != "smiles":
            raise SeqVAEError("sample_valid needs a SMILES model; a text model's samples are "
                              "all strings (use sample)")
        max_draws = 100 * n if max_draws is None else max_draws
        found: dict[str, None] = {}                 # canonical SMILES, insertion-ordered
        draws, round_ = 0, 0
        bar = tqdm(total=n, disable=not progress, unit="mol", desc="valid molecules")
        while len(found) < n and draws < max_draws:
            rate = len(found) / draws if draws else 0.5
            batch = min(max_draws - draws, max(64, int(1.2 * (n - len(found)) / max(rate, 0.05))))
            round_seed = None if seed is None else seed + round_
            for smiles in self.sample(batch, temperature=temperature, method=method,
                                      seed=round_seed):
                draws += 1                          # the strings looked at, not decoded
                key = canonical(smiles)
                if key is not None and key not in found:
                    found[key] = None
                    bar.update(1)
                    if len(found) == n:
                        break
            round_ += 1
        bar.close()
        return list(found), draws

    def sample_quality(self, n: int = 1000, seed: int = 0) -> dict:
        """Sample n strings from the prior and measure them.

        Returns the samples, and for SMILES models the per-sample RDKit validity with the
        share of valid samples and the share of distinct canonical molecules among them; for
        text models the share of distinct sentences.
        """
        samples = self.sample(n, seed=seed)
        if self.kind != "smiles":
            return {"samples": samples, "n": n, "unique": len(set(samples)) / max(n, 1)}
        return {"samples": samples, "valid_flags": [is_valid(s) for s in samples],
                **validity_and_uniqueness(samples)}

    def interpolate(self, start: str | np.ndarray, end: str | np.ndarray, steps: int = 8,
                    path: str = "linear", method: str = "rerank", seed: int | None = None,
                    **kwargs) -> list[str]:
        """Decode evenly spaced points on a latent path (Bowman et al. 2016).

        Args:
            start, end: sentences/SMILES (encoded to their posterior means) or codes (D,).
            steps: points on the path, both endpoints included.
            path: ``linear`` or ``slerp`` (see :mod:`seqvae.text.interpolation`).
            method: how each point is decoded: ``rerank`` (the default: beam search, then
                the candidate whose own code lies nearest to the point, so that the endpoints
                come back most often), ``greedy``, ``beam`` or ``sample``.
        Returns:
            ``steps`` strings, from start to end.
        """
        self.require_latent("interpolate")
        ends = [self.encode([x])[0] if isinstance(x, str) else np.asarray(x, np.float32)
                for x in (start, end)]
        return self.decode(latent_path(ends[0], ends[1], steps, path), method=method,
                           seed=seed, **kwargs)

    def prior_codes(self, n: int, seed: int | None = None, progress: bool = False) -> np.ndarray:
        """n codes from the prior (see :attr:`prior`): (n, D) float32. ``progress`` shows a bar
        where drawing them takes a while (a diffusion prior's denoising steps)."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if self.prior == "fitted":
            prior = self.model.latent_prior
            with torch.no_grad():
                if isinstance(prior, LatentDiffusion):
                    return prior.sample(n, generator, progress=progress).cpu().numpy()
                return prior.sample(n, generator).cpu().numpy()
        return torch.randn(n, self.latent_dim, generator=generator).numpy()

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) under the prior in use (see :attr:`prior`), differentiable in z:
        (N, D) -> (N,)."""
        if self.prior == "fitted":
            # a diffusion prior's kept flow or mixture gives the density; alone it raises
            density = self.model.latent_density
            return (density if density is not None else self.model.latent_prior).log_prob(z)
        return standard_normal_log_prob(z)

    def require_latent(self, verb: str) -> None:
        """A language model (trained with --no-latent) has no latent space to work in."""
        if self.latent_dim == 0:
            raise SeqVAEError(f"cannot {verb}: this model was trained without a latent "
                              "(--no-latent); use a VAE checkpoint")

    def reconstruct(self, texts: Sequence[str], method: str = "greedy", check: bool = True,
                    **kwargs) -> list[str]:
        """Encode each string to its posterior mean and decode it back."""
        return self.decode(self.encode(texts, check=check), method=method, **kwargs)


def load(path: str | Path, device: str = "auto", constrained: bool = True,
         prior: str = "auto", precision: str = "auto") -> TrainedVAE:
    """Load a model: the name of a shipped one (``"moses"``, ``"brown"``, ``"ptb"``; see
    :func:`seqvae.pretrained.models`), a run folder written by ``seqvae train`` (its
    ``model.pt``), or a checkpoint file. ``constrained=False`` turns off the SMILES grammar
    in every decode of a SMILES model (see :meth:`TrainedVAE.decode`); ``prior`` chooses what
    sampling draws codes from (see :attr:`TrainedVAE.prior`); ``precision`` is the arithmetic
    of temperature sampling: ``auto`` (bf16 where the device has a fast path for it, see
    :func:`seqvae.devices.fast_bf16`; measured in docs/results/performance.md), ``fp32`` or
    ``bf16``."""
    where = resolve_device(device)
    loaded = load_checkpoint(path, where)
    return TrainedVAE(loaded.config, loaded.tokenizer, loaded.model,
                      loaded.blob.get("train_state"), constrained=constrained, prior=prior,
                      precision=resolve_precision(precision, where)[0])
