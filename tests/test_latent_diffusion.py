"""The diffusion prior fitted to codes (seqvae.latent_diffusion)."""
import pytest
import torch

from seqvae.errors import SeqVAEError
from seqvae.latent_diffusion import ALPHA_BAR_MIN, LatentDiffusion, alpha_bar, fit_diffusion


def test_the_cosine_schedule():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    # cos^2((t + s) / (1 + s) * pi / 2) / cos^2(s / (1 + s) * pi / 2), s = 0.008, by hand
    expected = torch.tensor([1.0, 0.84701, 0.49384, ALPHA_BAR_MIN])
    assert torch.allclose(alpha_bar(t), expected, atol=1e-4)


def test_an_unfitted_model_predicts_no_noise_and_samples_are_seeded():
    model = LatentDiffusion(dim=3, blocks=2, hidden=16).eval()
    assert (model(torch.randn(5, 3), torch.rand(5)) == 0).all()
    a = model.sample(7, torch.Generator().manual_seed(0), steps=10)
    b = model.sample(7, torch.Generator().manual_seed(0), steps=10)
    assert a.shape == (7, 3) and torch.isfinite(a).all() and torch.equal(a, b)
    assert not torch.equal(a, model.sample(7, torch.Generator().manual_seed(1), steps=10))


def test_the_time_frequencies_are_rebuilt_not_saved():
    # a half-precision checkpoint would round them; the fitted centre, scale and bound travel
    state = LatentDiffusion(dim=2, blocks=1, hidden=4).state_dict()
    assert "frequencies" not in state and {"center", "scale", "limit"} <= set(state)


def test_it_has_no_density():
    with pytest.raises(SeqVAEError, match="no density"):
        LatentDiffusion(dim=2, blocks=1, hidden=4).log_prob(torch.zeros(1, 2))


def test_the_fitted_model_samples_near_a_thin_set():
    # Codes on a line through 4-D space (two tight clusters at its ends, posteriors of almost
    # no width): a Gaussian with their mean and spread fills the space around the line, the
    # fitted diffusion model must put its samples close to the two ends.
    g = torch.Generator().manual_seed(0)
    direction = torch.tensor([1.0, 2.0, -1.0, 0.5]) / 2.5
    ends = torch.where(torch.rand(2000, 1, generator=g) < 0.5, 2.0, -2.0)
    mu = ends * direction + 0.02 * torch.randn(2000, 4, generator=g)
    logvar = torch.full_like(mu, -9.0)
    model, history = fit_diffusion(mu, logvar, mu[:200], blocks=2, hidden=64, epochs=40,
                                   batch_size=250, lr=3e-3, ema=0.99, log=lambda _: None)
    assert len(history) == 40 and history[-1] < history[0]
    samples = model.sample(500, torch.Generator().manual_seed(1), steps=50)
    targets = torch.stack([2 * direction, -2 * direction])

    def to_nearest_end(codes):
        return (codes.unsqueeze(1) - targets).norm(dim=-1).min(1).values
    gaussian = mu.mean(0) + mu.std(0) * torch.randn(500, 4, generator=g)
    assert to_nearest_end(samples).median() < 0.3 < to_nearest_end(gaussian).median()
    assert 0.3 < (samples @ direction > 0).float().mean() < 0.7     # both ends are sampled


def test_sampling_can_show_its_denoising_steps_on_stderr(capsys):
    model = LatentDiffusion(4, 1, 8)
    quiet = model.sample(3, torch.Generator().manual_seed(0), steps=5)
    assert capsys.readouterr().err == ""
    shown = model.sample(3, torch.Generator().manual_seed(0), steps=5, progress=True)
    out = capsys.readouterr()
    assert "denoising 3 codes" in out.err and "5/5" in out.err and out.out == ""
    assert torch.equal(quiet, shown)


def test_one_time_for_every_code_is_the_same_prediction_as_a_time_per_code():
    torch.manual_seed(0)
    model = LatentDiffusion(dim=3, blocks=2, hidden=16).eval()
    torch.nn.init.normal_(model.head[1].weight)   # so that the prediction is not all zeros
    noisy, t = torch.randn(5, 3), torch.tensor(0.3)
    with torch.no_grad():
        shared, each = model(noisy, t), model(noisy, t.expand(5))
    assert shared.shape == (5, 3) and shared.abs().sum() > 0
    assert torch.allclose(shared, each, atol=1e-6)
