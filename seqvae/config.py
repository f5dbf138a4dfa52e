"""Configuration: one frozen dataclass per component, composed into :class:`Config`.

The whole :class:`Config` is saved inside every checkpoint (as a plain dict), so a model
can always be rebuilt exactly as it was trained. Presets are named sets of overrides;
every field of every preset can be overridden again from the command line
(``--decoder-hidden 256`` sets ``ModelConfig.decoder_hidden``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import SeqVAEError


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None, flag: bool = True) -> Any:
    """A dataclass field whose help text (and allowed values) ``seqvae train --help`` shows;
    ``flag=False`` for a field set by another command than ``train``."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


@dataclass(frozen=True)
class DataConfig:
    source: str = _f("moses", "corpus: a file path, or an embedded corpus name (ptb, brown, "
                                  "moses)")
    kind: str = _f("auto", "auto: moses -> smiles, ptb and brown -> text, files are sniffed",
                    ("auto", "smiles", "text"))
    column: str | None = _f(None, "for CSV files: the column holding the sequences")
    valid_fraction: float = _f(0.05, "seeded validation share, for corpora without their own split")
    test_fraction: float = _f(0.05, "seeded test share, for corpora without their own split")
    split_seed: int = _f(0, "seed of the train/valid/test split")
    limit_train: int | None = _f(None, "use only the first N training sequences (quick runs)")
    max_length: int = _f(100, "maximum tokens per sequence, not counting <bos>/<eos>")
    long_sequences: str = _f("skip", "what to do with longer sequences",
                              ("skip", "truncate"))
    check_smiles: bool | None = _f(None, "skip SMILES that RDKit cannot parse (none: check files, "
                                         "not the curated moses corpus)")
    canonicalize: bool | None = _f(None, "rewrite SMILES in RDKit's canonical form, skipping "
                                   "those it cannot parse (none: files yes; moses no, its "
                                   "SMILES already are canonical)")
    augment: bool = _f(False, "train on a new randomised SMILES of each molecule every time "
                       "it is drawn (Bjerrum 2017; Arús-Pous et al. 2019)")
    span_augment: float = _f(0.0, "text: share of the training sentences replaced, each time "
                             "they are drawn, by a random span of at least 3 of their words, so "
                             "that the autoencoder copies more distinct sequences than the "
                             "corpus holds (seqvae.text.spans); 0: whole sentences only")


@dataclass(frozen=True)
class TokenizerConfig:
    kind: str = _f("auto", "auto: smiles for SMILES corpora, word for text; selfies: SMILES "
                    "in and out, SELFIES symbols inside (every decode is a valid molecule)",
                    ("auto", "smiles", "char", "word", "sentencepiece", "selfies"))
    min_freq: int = _f(1, "word tokenizer: words seen fewer times become <unk>")
    vocab_size: int = _f(8000, "sentencepiece: vocabulary size")
    sp_model_type: str = _f("unigram", "sentencepiece model type", ("unigram", "bpe"))
    lowercase: bool = _f(False, "word/sentencepiece: lower-case the text first")
    kekulize: bool = _f(False, "smiles tokenizer: write each molecule in Kekulé form inside the "
                        "model (C1=CC=CC=C1, no aromatic atoms), so that no decode fails on "
                        "aromaticity; SMILES in as usual, Kekulé SMILES out")


@dataclass(frozen=True)
class ModelConfig:
    embedding_dim: int = _f(64, "token embedding size (0: the vocabulary size, as the MOSES VAE)")
    cell: str = _f("gru", "recurrent cell of the encoder and decoder", ("gru",))
    encoder_hidden: int = _f(256, "encoder GRU units per direction")
    encoder_layers: int = _f(1, "encoder GRU layers")
    bidirectional: bool = _f(False, "bidirectional encoder")
    latent_dim: int = _f(64, "size of z (0: no latent, a plain GRU language model)")
    decoder_hidden: int = _f(512, "decoder GRU units")
    decoder_layers: int = _f(1, "decoder GRU layers")
    dropout: float = _f(0.0, "dropout between GRU layers and on decoder outputs")
    embedding_dropout: float = _f(0.0, "dropout on the decoder's input embeddings, the one "
                                  "non-recurrent connection --dropout leaves out (Zaremba et al. "
                                  "2014); regularises a large text decoder")
    weight_drop: float = _f(0.0, "DropConnect on the decoder's recurrent (hidden-to-hidden) "
                            "weights while training, one mask per batch shared by every step "
                            "(weight drop, Merity et al. 2018): regularises the recurrence, "
                            "which --dropout leaves alone; 0: off")
    tie_weights: bool = _f(False, "tie the output projection to the embedding (Press & Wolf 2017)")
    property_head: int = _f(0, "SMILES: hidden units of an MLP on z predicting logP, QED, SA and "
                            "penalised logP, trained jointly (Gómez-Bombarelli et al. 2018); 0: none")
    bag_of_words: int = _f(0, "hidden units of an MLP from z to scores over the vocabulary, "
                           "trained to predict the sequence's tokens in any order: a "
                           "bag-of-words loss that makes z carry what the sequence says, which "
                           "the decoder then need not guess (Zhao et al. 2017); 0: none")
    learned_prior: int = _f(0, "coupling layers of a RealNVP prior p(z) learned with the model "
                            "instead of N(0, I), so that the prior follows the aggregate "
                            "posterior and prior samples land where codes of real sequences "
                            "are (a learned prior: Tomczak & Welling 2018; a flow prior: Chen "
                            "et al. 2017); the KL becomes a one-sample estimate; 0: N(0, I)")
    learned_prior_hidden: int = _f(256, "hidden units of each coupling of --learned-prior")
    latent_prior: str = _f("standard", "what prior samples are drawn from: N(0, I), or a density "
                           "fitted to the training codes after training by seqvae fit-prior "
                           "(a Gaussian mixture, a RealNVP flow or a diffusion model)",
                           ("standard", "mixture", "flow", "diffusion"), flag=False)
    prior_components: int = _f(0, "components of the fitted Gaussian mixture", flag=False)
    prior_layers: int = _f(0, "coupling layers of the fitted flow, or residual blocks of the "
                           "fitted diffusion model", flag=False)
    prior_hidden: int = _f(0, "hidden units of each coupling of the fitted flow, or the width "
                           "of the diffusion model's blocks", flag=False)
    # A diffusion prior samples but has no density; the flow or mixture fitted before it is
    # kept beside it, so that log p(z) (seqvae optimize's penalty) stays what it was.
    density_prior: str = _f("none", "the fitted density kept beside a diffusion prior to give "
                            "log p(z): the mixture or flow fitted before it, or none",
                            ("none", "mixture", "flow"), flag=False)
    density_components: int = _f(0, "components of the kept mixture", flag=False)
    density_layers: int = _f(0, "coupling layers of the kept flow", flag=False)
    density_hidden: int = _f(0, "hidden units of each coupling of the kept flow", flag=False)


@dataclass(frozen=True)
class ObjectiveConfig:
    kl_schedule: str = _f("linear", "KL weight schedule",
                           ("constant", "linear", "logistic", "cyclical"))
    kl_weight: float = _f(1.0, "target KL weight (beta)")
    kl_warmup_steps: int | None = _f(5000, "steps to reach the target (none: the whole run)")
    kl_start_step: int = _f(0, "KL weight is 0 before this step (linear, logistic)")
    kl_cycles: int = _f(4, "cyclical: number of cycles over the warm-up span (Fu et al. 2019)")
    kl_cycle_ratio: float = _f(0.5, "cyclical: share of each cycle spent increasing beta")
    free_bits: float = _f(0.0, "per-dimension KL floor in nats (Kingma et al. 2016); 0 = off")
    word_dropout: float = _f(0.0, "share of decoder inputs replaced by <unk> (Bowman et al. 2016)")
    encoder_noise: float = _f(0.0, "share of the encoder's input tokens replaced by <unk> while "
                              "training: a denoising autoencoder (Shen et al. 2020), whose codes "
                              "must survive a corrupted input, so near sentences get near codes "
                              "and codes of unseen sentences stay on the decoder's manifold; "
                              "the decoder still reconstructs the clean sequence; 0: off")
    ae_pretrain_steps: int = _f(0, "train as a plain autoencoder (KL weight 0) for this many "
                                "steps, then reset the decoder and start the KL schedule "
                                "(Li et al. 2019); 0: off")
    bag_of_words_weight: float = _f(1.0, "weight of the --bag-of-words loss (nats per "
                                    "sequence) in the training loss")
    property_weight: float = _f(1.0, "weight of the property head's mean squared error "
                                "(standardised properties) in the loss")
    target_kl: float = _f(20.0, "target rate in nats per sequence: a PI controller on the KL "
                          "weight (ControlVAE, Shao et al. 2020) holds the KL of held-out "
                          "validation sequences at this value, lowering the weight below 0 "
                          "where the decoder does not yet want the code; measured to end within "
                          "a tenth of it on SMILES and sentence files of a few thousand lines "
                          "(see docs/guide/rate-control.md); 0: off, the plain ELBO")
    target_kl_lr: float = _f(0.01, "integral gain of the --target-kl controller: the KL weight's "
                             "change per step per unit of relative KL error, (target - KL) / target")
    target_kl_kp: float = _f(1.0, "proportional gain of the --target-kl controller: the KL "
                             "weight's immediate offset per unit of relative KL error")
    target_kl_min_weight: float = _f(-0.1, "the lowest KL weight the --target-kl controller may "
                                     "set (below 0 the loss rewards information in the code)")
    target_kl_probe_every: int = _f(1, "--target-kl: every N steps, measure the KL of 256 "
                                    "validation sequences with dropout off, and let the "
                                    "controller take one step on it")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = _f(256, "sequences per batch")
    lr: float = _f(1e-3, "peak Adam learning rate")
    lr_schedule: str = _f("constant", "learning-rate decay after the warm-up",
                           ("constant", "cosine", "linear"))
    lr_warmup_steps: int = _f(0, "linear learning-rate warm-up steps")
    min_lr_ratio: float = _f(0.1, "cosine/linear: final lr as a share of the peak")
    grad_clip: float = _f(5.0, "clip the global gradient norm to this (0 = off)")
    epochs: int | None = _f(10, "passes over the training split (none: as many as --max-steps "
                            "needs); given --max-steps and not --epochs, seqvae train runs "
                            "exactly --max-steps steps")
    max_steps: int | None = _f(None, "stop after exactly this many optimiser steps in total (or "
                               "earlier, with a note before training, if --epochs ends the run "
                               "first)")
    val_every: int | None = _f(None, "validate every N steps (none: at the end of each epoch)")
    max_val_examples: int | None = _f(5000, "validate on at most this many sequences")
    early_stopping: int | None = _f(None, "stop after N validations without improvement")
    log_every: int = _f(50, "log training terms every N steps")
    save_every: int = _f(500, "write the resumable last.pt every N steps")
    seed: int = _f(0, "seed for initialisation, batch order, sampling and dropout")
    threads: int | None = _f(None, "CPU threads for torch (none: torch's default)")
    precision: str = _f("auto", "arithmetic of the training matrix products: bf16 uses bfloat16 "
                        "products with fp32 weights, state and losses; auto picks bf16 where "
                        "the hardware has a fast path for it (a CPU with AMX or AVX512-BF16, a "
                        "GPU with bf16) and fp32 elsewhere, and the log and summary.json say "
                        "which", ("auto", "fp32", "bf16"))


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, Any]]) -> "Config":
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults
        (those of :data:`LEGACY_DEFAULTS` where a default has changed since the key was added:
        an older checkpoint was trained without it)."""
        parts = {}
        for f in dataclasses.fields(cls):
            sub = {**LEGACY_DEFAULTS.get(f.name, {}), **d.get(f.name, {})}
            known = {g.name for g in dataclasses.fields(f.default_factory)}
            unknown = set(sub) - known
            if unknown:
                raise ValueError(f"unknown {f.name} config keys: {sorted(unknown)}")
            parts[f.name] = f.default_factory(**sub)
        return cls(**parts)

    def override(self, section: str, **changes: Any) -> "Config":
        """A copy with some fields of one section replaced."""
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **changes)})


    def validate(self) -> "Config":
        """Raise :class:`SeqVAEError` naming the flag of the first impossible value."""
        at_least_one = {"data": ("max_length", "limit_train"), "tokenizer": ("min_freq", "vocab_size"),
                        "model": ("encoder_hidden", "encoder_layers",
                                  "decoder_hidden", "decoder_layers", "learned_prior_hidden"),
                        "objective": ("kl_warmup_steps", "kl_cycles", "target_kl_probe_every"),
                        "train": ("batch_size", "epochs", "max_steps", "val_every",
                                  "max_val_examples", "early_stopping", "log_every",
                                  "save_every", "threads")}
        non_negative = {"model": ("embedding_dim", "latent_dim", "property_head",
                                  "prior_components", "prior_layers", "prior_hidden",
                                  "density_components", "density_layers", "density_hidden",
                                  "learned_prior", "bag_of_words"),
                        "objective": ("kl_weight", "kl_start_step", "free_bits", "property_weight",
                                      "bag_of_words_weight",
                                      "ae_pretrain_steps", "target_kl", "target_kl_lr",
                                      "target_kl_kp"),
                        "train": ("lr", "lr_warmup_steps", "min_lr_ratio", "grad_clip")}
        shares = {"data": ("span_augment",),
                  "model": ("dropout", "embedding_dropout", "weight_drop"),
                  "objective": ("word_dropout", "encoder_noise", "kl_cycle_ratio")}

        def flag(name: str) -> str:
            return "--" + {"kind": "tokenizer", "source": "data"}.get(name, name).replace("_", "-")
        for section, names in at_least_one.items():
            for name in names:
                value = getattr(getattr(self, section), name)
                if value is not None and value < 1:
                    raise SeqVAEError(f"{flag(name)} must be at least 1, not {value}")
        for section, names in non_negative.items():
            for name in names:
                value = getattr(getattr(self, section), name)
                if value < 0:
                    raise SeqVAEError(f"{flag(name)} must not be negative, not {value}")
        if self.model.bag_of_words and self.model.latent_dim == 0:
            raise SeqVAEError("--bag-of-words predicts the tokens from z: it needs a latent "
                              "(--latent-dim at least 1)")
        if self.model.learned_prior and self.model.latent_dim == 0:
            raise SeqVAEError("--learned-prior needs a latent: --latent-dim must be at least 1")
        if self.train.epochs is None and self.train.max_steps is None:
            raise SeqVAEError("--epochs none needs --max-steps: the run would never end")
        for section, names in shares.items():
            for name in names:
                value = getattr(getattr(self, section), name)
                if not 0 <= value <= 1:
                    raise SeqVAEError(f"{flag(name)} must be between 0 and 1, not {value}")
        return self


SECTIONS = ("data", "tokenizer", "model", "objective", "train")

# What a key missing from an older checkpoint's config meant: --target-kl did not exist
# before its default became 20, so such a model was trained without a rate target.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {"objective": {"target_kl": 0.0}}

# Each preset is a set of overrides on top of the dataclass defaults.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The MOSES VAE (Polykovskiy et al. 2020, molsets 0.3.1 defaults): 1-layer GRU encoder of
    # 256, 3-layer GRU decoder of 512, d_z 128, one-hot-sized embedding, batch 512, Adam 3e-4
    # (its SGDR schedule has lr_start == lr_end, i.e. constant), clipping at 50, and a KL weight
    # rising linearly from 0 to 0.05 over the whole run.
    # Presets made for a corpus carry it (--data overrides): a text preset must not fall
    # back on the default, MOSES.
    "moses": {
        "data": {"source": "moses"},
        "tokenizer": {"kind": "char"},
        "model": {"embedding_dim": 0, "encoder_hidden": 256, "encoder_layers": 1,
                  "bidirectional": False, "latent_dim": 128, "decoder_hidden": 512,
                  "decoder_layers": 3, "dropout": 0.0},
        "objective": {"kl_schedule": "linear", "kl_weight": 0.05, "kl_warmup_steps": None,
                      "word_dropout": 0.0, "free_bits": 0.0, "target_kl": 0.0},
        "train": {"batch_size": 512, "lr": 3e-4, "lr_schedule": "constant", "grad_clip": 50.0,
                  "epochs": 100},
    },
    # A text VAE after Bowman et al. 2016, sized for a CPU: word vocabulary, embedding 256,
    # a bidirectional GRU encoder and a GRU decoder of 256, d_z 32. Collapse defences: logistic
    # KL annealing to 1 over 4,000 steps and free bits of 0.2 nats per dimension (Kingma et al.
    # 2016), which keeps the KL at 6.4 nats or more (docs/results/ptb.md).
    "ptb": {
        "data": {"source": "ptb", "max_length": 100},
        "tokenizer": {"kind": "word", "min_freq": 1},
        "model": {"embedding_dim": 256, "encoder_hidden": 256, "encoder_layers": 1,
                  "bidirectional": True, "latent_dim": 32, "decoder_hidden": 256,
                  "decoder_layers": 1, "dropout": 0.3},
        "objective": {"kl_schedule": "logistic", "kl_weight": 1.0, "kl_warmup_steps": 4000,
                      "word_dropout": 0.0, "free_bits": 0.2, "target_kl": 0.0},
        "train": {"batch_size": 32, "lr": 1e-3, "lr_schedule": "constant", "grad_clip": 5.0,
                  "epochs": 10, "early_stopping": 3, "max_val_examples": None},
    },
    # The fastest setting that still learns well on 2 CPU cores (docs/guide/own-data.md#presets).
    "cpu-small": {
        "model": {"embedding_dim": 64, "encoder_hidden": 256, "encoder_layers": 1,
                  "bidirectional": False, "latent_dim": 64, "decoder_hidden": 384,
                  "decoder_layers": 1, "dropout": 0.0},
        "objective": {"kl_schedule": "linear", "kl_weight": 1.0, "kl_warmup_steps": None,
                      "word_dropout": 0.0, "free_bits": 0.0},
        "train": {"batch_size": 256, "lr": 2e-3, "lr_schedule": "cosine", "lr_warmup_steps": 100,
                  "grad_clip": 5.0, "epochs": 10},
    },
    # The defaults of the most used public sentence VAE (timbmg/Sentence-VAE) on PTB, for
    # side-by-side throughput: embedding 300, one GRU of 256 each way, d_z 16, batch 32, and
    # its logistic KL annealing (k = 0.0025).
    "sentence-vae": {
        "data": {"source": "ptb"},
        "tokenizer": {"kind": "word", "min_freq": 1},
        "model": {"embedding_dim": 300, "encoder_hidden": 256, "encoder_layers": 1,
                  "bidirectional": False, "latent_dim": 16, "decoder_hidden": 256,
                  "decoder_layers": 1, "dropout": 0.5},
        "objective": {"kl_schedule": "logistic", "kl_weight": 1.0, "kl_warmup_steps": 4000,
                      "word_dropout": 0.0, "target_kl": 0.0},
        "train": {"batch_size": 32, "lr": 1e-3, "lr_schedule": "constant", "grad_clip": 5.0,
                  "epochs": 10},
    },
}

# The use-case presets reuse a network above, with a rate target (docs/guide/rate-control.md):
# the KL weight at 1 at most, and a rate in nats per sequence that the controller holds.
RATE_OBJECTIVE = {"kl_schedule": "constant", "kl_weight": 1.0, "free_bits": 0.0,
                  "word_dropout": 0.0}
# molecules whose codes identify them: the cpu-small network at 40 nats, 8,000 steps
PRESETS["moses-autoencoder"] = {
    "data": PRESETS["moses"]["data"],
    "model": PRESETS["cpu-small"]["model"],
    "objective": {**RATE_OBJECTIVE, "target_kl": 40.0},
    "train": {**PRESETS["cpu-small"]["train"], "max_steps": 8000, "val_every": 1000},
}
# sentences whose codes decode back to them at a density model's rate: the ptb network with
# tied embeddings at 80 nats (the shipped `ptb` until 2026-12-07)
PRESETS["ptb-interpolate"] = {
    "data": PRESETS["ptb"]["data"], "tokenizer": PRESETS["ptb"]["tokenizer"],
    "model": {**PRESETS["ptb"]["model"], "tie_weights": True},
    "objective": {**RATE_OBJECTIVE, "target_kl": 80.0},
    "train": {**PRESETS["ptb"]["train"], "early_stopping": 4, "val_every": 1315},
}
# natural sentences whose codes decode back to them (the shipped `brown`): the ptb network on
# sentencepiece pieces, a wider code, no dropout, sentences of at most 40 pieces, and half of
# the sentences drawn replaced by random spans of their words (docs/results/brown.md says how
# each choice was measured); with --data ptb --tokenizer word, the shipped `ptb`
PRESETS["brown-interpolate"] = {
    "data": {"source": "brown", "max_length": 40, "span_augment": 0.5},
    "tokenizer": {"kind": "sentencepiece", "vocab_size": 4000},
    "model": {**PRESETS["ptb-interpolate"]["model"], "latent_dim": 128, "decoder_hidden": 256,
              "dropout": 0.0, "embedding_dropout": 0.0},
    "objective": {**RATE_OBJECTIVE, "target_kl": 300.0},
    "train": {"batch_size": 128, "lr": 2e-3, "lr_schedule": "cosine", "lr_warmup_steps": 100,
              "grad_clip": 5.0, "epochs": None, "max_steps": 6000, "val_every": 1000,
              "early_stopping": 4, "max_val_examples": None},
}


PRESET_NOTES = {
    "moses": "the MOSES VAE architecture and training settings, for comparison with it",
    "ptb": "a text VAE as in Bowman et al. 2016, for the Penn Treebank",
    "cpu-small": "the fastest setting that still learns well on 2 CPU cores",
    "sentence-vae": "the sizes of timbmg/Sentence-VAE's defaults, for throughput comparisons",
    "moses-autoencoder": "molecules whose codes decode back to them: reconstruction and "
                         "latent optimisation (--target-kl 40)",
    "ptb-interpolate": "sentences whose codes decode back to them: interpolation (--target-kl 80)",
    "brown-interpolate": "natural English sentences whose codes decode back to them: "
                         "interpolation on the Brown corpus (--target-kl 300; with --data ptb "
                         "--tokenizer word, the shipped ptb)",
}


def preset(name: str | None) -> Config:
    """The :class:`Config` of a named preset (``None``: the dataclass defaults)."""
    config = Config()
    if name is None:
        return config
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    for section, changes in PRESETS[name].items():
        config = config.override(section, **changes)
    return config
