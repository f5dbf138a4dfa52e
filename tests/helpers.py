"""Small configurations that train in seconds, and hand-built models, shared by the tests."""
import torch

from seqvae.config import Config, ModelConfig
from seqvae.model import SeqVAE


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


def bigram_model(table: dict[int, dict[int, float]], vocab_size: int, pad_id: int) -> SeqVAE:
    """A real SeqVAE whose decoder's next-token distribution is table[previous token] (ids;
    pairs not listed get about e^-40): one-hot embeddings, a GRU whose update gate is shut (the
    state is just the input token) and an output layer holding the log-probabilities; z and
    the initial state are ignored."""
    V = vocab_size
    model = SeqVAE(ModelConfig(embedding_dim=V, encoder_hidden=4, latent_dim=1, decoder_hidden=V,
                               decoder_layers=1), V).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embedding.weight.copy_(torch.eye(V))
        model.embedding.weight[pad_id] = 0.0
        gru = model.decoder
        gru.bias_ih_l0[V:2 * V] = -40.0                    # update gate closed: h' = n
        gru.weight_ih_l0[2 * V:, :V] = 20.0 * torch.eye(V)  # n = tanh(20 * onehot(token))
        log_table = torch.full((V, V), -40.0)                # [previous, next]
        for prev, nexts in table.items():
            for nxt, p in nexts.items():
                log_table[prev, nxt] = torch.tensor(p).log()
        model.output_projection.weight.copy_(log_table.t())
    return model


def allowed_after(constraint, tokens, prefix, remaining=50) -> set[str]:
    """The tokens a decoding constraint (grammar or valences) allows after writing ``prefix``
    (token strings of the vocabulary ``tokens``), ``remaining`` tokens from the length limit."""
    ids = {t: i for i, t in enumerate(tokens)}
    state = constraint.start(1)
    for tok in prefix:
        state = constraint.advance(state, torch.tensor([ids[tok]]))
    row = constraint.allowed(state, remaining)[0]
    return {tokens[i] for i in range(len(tokens)) if row[i]}
