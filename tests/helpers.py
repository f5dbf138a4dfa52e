"""Small configurations that train in seconds, shared by the tests."""
from seqvae.config import Config


def tiny_config(source, **train) -> Config:
    config = Config()
    config = config.override("data", source=str(source))
    config = config.override("model", embedding_dim=16, encoder_hidden=32, latent_dim=8,
                             decoder_hidden=32)
    # no rate target: the tests were written for the plain objective (the default has one)
    config = config.override("objective", kl_schedule="linear", kl_warmup_steps=20, target_kl=0.0)
    # fp32: the tests must not depend on whether this CPU has a bf16 fast path (--precision auto)
    return config.override("train", **{"batch_size": 128, "lr": 3e-3, "epochs": 3,
                                       "log_every": 2, "save_every": 1000, "threads": 1,
                                       "precision": "fp32", **train})
