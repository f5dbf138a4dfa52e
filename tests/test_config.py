import dataclasses

import pytest

from seqvae.config import PRESETS, Config, preset


def test_round_trip_through_dict():
    config = preset("ptb")
    assert Config.from_dict(config.to_dict()) == config


def test_unknown_keys_are_rejected():
    d = Config().to_dict()
    d["model"]["hidden"] = 3
    with pytest.raises(ValueError, match="hidden"):
        Config.from_dict(d)


def test_moses_preset_is_the_moses_vae():
    c = preset("moses")
    assert (c.model.encoder_hidden, c.model.encoder_layers, c.model.bidirectional) == (256, 1, False)
    assert (c.model.decoder_hidden, c.model.decoder_layers, c.model.latent_dim) == (512, 3, 128)
    assert (c.train.batch_size, c.train.lr, c.train.grad_clip) == (512, 3e-4, 50.0)
    assert (c.objective.kl_schedule, c.objective.kl_weight) == ("linear", 0.05)
    assert c.objective.kl_warmup_steps is None  # over the whole run


def test_ptb_preset_is_a_text_vae_with_collapse_defences():
    c = preset("ptb")
    assert c.model.latent_dim == 32 and c.objective.kl_weight == 1.0 and c.tokenizer.kind == "word"
    assert c.objective.kl_schedule == "logistic" and c.objective.kl_warmup_steps == 4000
    # free bits keep the KL at d_z * lambda = 6.4 nats or more: the target is 5
    assert c.model.latent_dim * c.objective.free_bits >= 6.4 - 1e-9


def test_every_preset_builds_and_unknown_is_an_error():
    for name in PRESETS:
        assert isinstance(preset(name), Config)
    with pytest.raises(ValueError, match="cpu-small"):
        preset("huge")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().model.latent_dim = 3


@pytest.mark.parametrize("section, field, value, message", [
    ("train", "batch_size", 0, "--batch-size must be at least 1"),
    ("train", "lr", -1e-3, "--lr must not be negative"),
    ("model", "latent_dim", -1, "--latent-dim must not be negative"),
    ("objective", "word_dropout", 1.5, "--word-dropout must be between 0 and 1"),
    ("objective", "encoder_noise", -0.1, "--encoder-noise must be between 0 and 1"),
    ("model", "embedding_dropout", -0.1, "--embedding-dropout must be between 0 and 1"),
    ("data", "limit_train", 0, "--limit-train must be at least 1"),
    ("objective", "kl_warmup_steps", 0, "--kl-warmup-steps must be at least 1"),
])
def test_validate_names_the_flag(section, field, value, message):
    from seqvae.errors import SeqVAEError
    with pytest.raises(SeqVAEError, match=message):
        Config().override(section, **{field: value}).validate()


def test_presets_are_valid():
    for name in PRESETS:
        preset(name).validate()
