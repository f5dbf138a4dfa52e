"""The benchmark measures the trainer's objective: same batch, same step, same loss."""
import pytest
from helpers import tiny_config

import seqvae.training.step as step
from seqvae.bench import bench
from seqvae.devices import resolve_device
from seqvae.training import train


def _recorded_losses(monkeypatch) -> list[tuple[float, float]]:
    """Record (loss, KL weight) of every call of the one loss function."""
    real, seen = step.training_loss, []

    def recording(*args, **kwargs):
        terms = real(*args, **kwargs)
        seen.append((terms.loss.item(), terms.beta, terms.kl_weight))
        return terms
    monkeypatch.setattr(step, "training_loss", recording)
    return seen


@pytest.mark.parametrize("objective", [
    {},                                                         # linear warm-up
    {"kl_schedule": "cyclical", "kl_cycles": 2, "kl_warmup_steps": 4, "free_bits": 0.1},
    {"ae_pretrain_steps": 1, "kl_start_step": 1, "word_dropout": 0.2},
    {"encoder_noise": 0.3},                                     # denoising: same draws
    # the --target-kl controller: its weight (probe every step) enters both losses alike
    {"target_kl": 5.0, "target_kl_probe_every": 1, "target_kl_kp": 2.0},
])
def test_bench_and_train_compute_the_same_loss(tmp_path, smiles_file, monkeypatch, objective):
    config = tiny_config(smiles_file, max_steps=3, lr_warmup_steps=2, log_every=1)
    config = config.override("objective", **objective)
    seen = _recorded_losses(monkeypatch)
    train(config, tmp_path / "run", log=lambda _: None, progress=False)
    trained = list(seen)
    seen.clear()
    bench(config, resolve_device("cpu"), steps=2, warmup=1, n_sample=2, n_encode=4,
          log=lambda _: None)
    assert len(trained) == len(seen) == 3
    for (loss_t, beta_t, weight_t), (loss_b, beta_b, weight_b) in zip(trained, seen):
        assert beta_b == beta_t
        assert weight_b == pytest.approx(weight_t, rel=1e-6)
        assert loss_b == pytest.approx(loss_t, rel=1e-5)
    if config.objective.target_kl:   # the controller moved, or the test would show nothing
        assert len({round(w, 6) for _, _, w in trained}) > 1
