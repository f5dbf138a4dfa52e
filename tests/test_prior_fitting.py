"""Fitting a mixture prior to a trained model's codes (seqvae.prior_fitting, seqvae fit-prior)."""
import math

import numpy as np
import pytest
import torch

import seqvae
from seqvae.checkpoint import export_half_precision
from seqvae.cli import main
from seqvae.errors import SeqVAEError
from seqvae.prior_fitting import choose_mixture


def test_choose_mixture_keeps_the_components_that_fit_held_out_codes():
    generator = torch.Generator().manual_seed(0)

    def clusters(n):
        labels = torch.rand(n, generator=generator) < 0.5
        centres = torch.where(labels.unsqueeze(1), torch.tensor([3.0, 0.0]), torch.tensor([-3.0, 0.0]))
        return centres + 0.3 * torch.randn(n, 2, generator=generator)
    mixture, scores = choose_mixture(clusters(2000), clusters(500), [1, 2], log=lambda _: None)
    assert mixture.components == 2
    assert set(scores) == {"N(0, I)", "mixture K=1", "mixture K=2"}
    assert scores["mixture K=2"] > scores["mixture K=1"] > scores["N(0, I)"]


def fit_prior(tmp_path_factory, argv):
    """Run seqvae fit-prior with a cache of its own (a module's fixtures run outside the
    per-test cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQVAE_CACHE", str(tmp_path_factory.mktemp("prior_cache")))
        assert main(argv) == 0


@pytest.fixture(scope="module")
def fitted(trained_smiles_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("prior") / "with_prior.pt"
    fit_prior(tmp_path_factory, ["fit-prior", str(trained_smiles_run / "model.pt"), "-o", str(out),
                 "--kind", "mixture", "--components", "1", "2", "--train-codes", "300",
                 "--valid-codes", "50"])
    return out


@pytest.fixture(scope="module")
def fitted_flow(trained_smiles_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("prior") / "with_flow.pt"
    fit_prior(tmp_path_factory, ["fit-prior", str(trained_smiles_run / "model.pt"), "-o", str(out),
                 "--layers", "2", "--hidden", "8", "--epochs", "2", "--train-codes", "300",
                 "--valid-codes", "50"])
    return out


def test_fit_prior_writes_a_checkpoint_that_samples_from_the_mixture(fitted, capsys):
    vae = seqvae.load(fitted)
    assert vae.prior == "fitted" and vae.config.model.prior_components in (1, 2)
    assert vae.config.model.latent_prior == "mixture"
    record = vae.train_state["prior"]
    assert record["prior_components"] == vae.config.model.prior_components
    assert record["train_codes"] <= 300 and record["valid_codes"] <= 50
    expected = vae.model.latent_prior.sample(6, torch.Generator().manual_seed(3)).numpy()
    assert (vae.prior_codes(6, seed=3) == expected).all()
    assert len(vae.sample(6, seed=3)) == 6
    assert "mixture of" in vae.prior_description


def test_fit_prior_fits_a_flow_by_default(fitted_flow):
    vae = seqvae.load(fitted_flow)
    c = vae.config.model
    assert (c.latent_prior, c.prior_layers, c.prior_hidden) == ("flow", 2, 8)
    assert "RealNVP" in vae.prior_description
    expected = vae.model.latent_prior.sample(5, torch.Generator().manual_seed(4)).numpy()
    assert (vae.prior_codes(5, seed=4) == expected).all()
    scores = vae.train_state["prior"]["held_out_log_likelihood"]
    assert set(scores) == {"N(0, I)", "flow 2x8"}


def test_fit_prior_fits_a_diffusion_model(trained_smiles_run, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("prior") / "with_diffusion.pt"
    fit_prior(tmp_path_factory, ["fit-prior", str(trained_smiles_run / "model.pt"), "-o", str(out),
                                 "--kind", "diffusion", "--layers", "1", "--hidden", "8",
                                 "--epochs", "2", "--train-codes", "300", "--valid-codes", "50"])
    table = capsys.readouterr().out
    assert "diffusion 1x8" in table and "denoising loss" in table and "N(0, I)" in table
    vae = seqvae.load(out)
    c = vae.config.model
    assert (c.latent_prior, c.prior_layers, c.prior_hidden) == ("diffusion", 1, 8)
    assert "diffusion model" in vae.prior_description
    record = vae.train_state["prior"]
    assert record["held_out_denoising_loss"] > 0 and set(record["held_out_log_likelihood"]) == {"N(0, I)"}
    expected = vae.model.latent_prior.sample(5, torch.Generator().manual_seed(4)).numpy()
    assert (vae.prior_codes(5, seed=4) == expected).all()
    assert len(vae.sample(5, seed=4)) == 5
    # its fitted centre, scale and clipping bound travel in the checkpoint
    assert torch.isfinite(vae.model.latent_prior.limit).all()
    assert not torch.equal(vae.model.latent_prior.scale, torch.ones(vae.latent_dim))
    with pytest.raises(SeqVAEError, match="no density"):
        vae.prior_log_prob(torch.zeros(1, vae.latent_dim))
    # shipped in half precision, it draws nearly the same codes from the same noise
    half = seqvae.load(export_half_precision(out, out.with_name("half.pt")))
    assert torch.allclose(torch.as_tensor(half.prior_codes(50, seed=1)),
                          torch.as_tensor(vae.prior_codes(50, seed=1)), atol=0.05)


def test_a_diffusion_prior_keeps_the_flow_fitted_before_it_for_log_p(fitted_flow,
                                                                     tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("prior") / "flow_then_diffusion.pt"
    fit_prior(tmp_path_factory, ["fit-prior", str(fitted_flow), "-o", str(out), "--kind",
                                 "diffusion", "--layers", "1", "--hidden", "8", "--epochs", "1",
                                 "--train-codes", "300", "--valid-codes", "50"])
    assert "the flow 2x8 fitted before, kept" in capsys.readouterr().out
    flow, both = seqvae.load(fitted_flow), seqvae.load(out)
    c = both.config.model
    assert (c.latent_prior, c.density_prior, c.density_layers, c.density_hidden) == (
        "diffusion", "flow", 2, 8)
    assert "log p(z) from the RealNVP flow (2 couplings of 8 units)" in both.prior_description
    # sampling is the diffusion model's; log p(z) is the flow's, unchanged
    z = torch.randn(7, both.latent_dim, generator=torch.Generator().manual_seed(2))
    assert torch.equal(both.prior_log_prob(z), flow.prior_log_prob(z))
    assert (both.prior_codes(5, seed=4) == both.model.latent_prior.sample(
        5, torch.Generator().manual_seed(4)).numpy()).all()
    assert not np.allclose(both.prior_codes(5, seed=4), flow.prior_codes(5, seed=4))
    # a refitted diffusion model keeps the same density; a flow fitted again replaces both
    again = out.with_name("diffusion_again.pt")
    fit_prior(tmp_path_factory, ["fit-prior", str(out), "-o", str(again), "--kind", "diffusion",
                                 "--layers", "1", "--hidden", "8", "--epochs", "1",
                                 "--train-codes", "300", "--valid-codes", "50"])
    assert torch.equal(seqvae.load(again).prior_log_prob(z), flow.prior_log_prob(z))
    refit = out.with_name("flow_again.pt")
    fit_prior(tmp_path_factory, ["fit-prior", str(out), "-o", str(refit), "--layers", "1",
                                 "--hidden", "4", "--epochs", "1", "--train-codes", "300",
                                 "--valid-codes", "50"])
    replaced = seqvae.load(refit)
    assert (replaced.config.model.density_prior, replaced.model.latent_density) == ("none", None)
    # the kept flow ships in half precision with the rest
    half = seqvae.load(export_half_precision(out, out.with_name("both_half.pt")))
    assert torch.allclose(half.prior_log_prob(z), flow.prior_log_prob(z), rtol=0.01, atol=0.5)


def test_the_standard_prior_stays_available(fitted, trained_smiles_run):
    standard = seqvae.load(fitted, prior="standard")
    assert (standard.prior_codes(4, seed=1) == torch.randn(
        4, standard.latent_dim, generator=torch.Generator().manual_seed(1)).numpy()).all()
    assert seqvae.load(trained_smiles_run).prior == "standard"
    with pytest.raises(SeqVAEError, match="fit-prior"):
        seqvae.load(trained_smiles_run, prior="fitted")
    with pytest.raises(SeqVAEError, match="auto, fitted or standard"):
        seqvae.load(fitted, prior="gmm")


def test_fit_prior_prints_the_held_out_table(trained_smiles_run, tmp_path, capsys):
    out = tmp_path / "p.pt"
    assert main(["fit-prior", str(trained_smiles_run), "-o", str(out), "--epochs", "1",
                 "--train-codes", "100", "--valid-codes", "20"]) == 0
    table = capsys.readouterr().out
    assert "N(0, I)" in table and "flow 8x256" in table and "<- kept" in table


def test_fit_prior_refuses_zero_components(trained_smiles_run, tmp_path):
    assert main(["fit-prior", str(trained_smiles_run), "-o", str(tmp_path / "p.pt"),
                 "--components", "0"]) == 2
    assert not (tmp_path / "p.pt").exists()


def test_the_prior_survives_half_precision_export(fitted_flow, tmp_path):
    half = export_half_precision(fitted_flow, tmp_path / "half.pt")
    full, shipped = seqvae.load(fitted_flow), seqvae.load(half)
    assert shipped.prior == "fitted"
    z = torch.randn(20, full.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(shipped.model.latent_prior.log_prob(z),
                              full.model.latent_prior.log_prob(z), atol=0.05)


def test_sample_cli_takes_the_prior(fitted, capsys):
    assert main(["sample", str(fitted), "-n", "3", "--seed", "0", "--prior", "standard"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_prior_log_prob_follows_the_prior_in_use(fitted_flow):
    fitted, standard = seqvae.load(fitted_flow), seqvae.load(fitted_flow, prior="standard")
    z = torch.randn(4, fitted.latent_dim, generator=torch.Generator().manual_seed(2),
                    requires_grad=True)
    expected = -0.5 * z.detach().pow(2).sum(1) - 0.5 * fitted.latent_dim * math.log(2 * math.pi)
    assert torch.allclose(standard.prior_log_prob(z).detach(), expected, atol=1e-4)
    log_p = fitted.prior_log_prob(z)
    assert torch.allclose(log_p.detach(), fitted.model.latent_prior.log_prob(z).detach())
    log_p.sum().backward()                                  # optimisation's penalty needs it
    assert z.grad is not None and torch.isfinite(z.grad).all()


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A tiny SMILES VAE trained with a learned flow prior (--learned-prior 2)."""
    from conftest import DATA, _train_tiny
    return _train_tiny(tmp_path_factory, "learned_prior", DATA / "moses_test_sample.smi",
                       model={"learned_prior": 2, "learned_prior_hidden": 8})


def test_a_learned_prior_trains_with_the_model_and_is_sampled(learned):
    from seqvae.gaussian import standard_normal_log_prob
    vae = seqvae.load(learned / "model.pt")
    assert vae.prior == "fitted" and "learned with the model" in vae.prior_description
    z = torch.randn(16, vae.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        log_p = vae.prior_log_prob(z)
        # training moved the flow off its starting point, the identity (N(0, I))
        assert not torch.allclose(log_p, standard_normal_log_prob(z), atol=1e-3)
        assert torch.allclose(log_p, vae.model.prior_log_prob(z), atol=1e-6)
    assert len(vae.sample(5, seed=0)) == 5
    codes = vae.prior_codes(500, seed=1)
    standard = seqvae.load(learned / "model.pt", prior="standard").prior_codes(500, seed=1)
    # the same base draws u, mapped through the trained flow: no longer N(0, I)'s codes
    assert not np.allclose(codes, standard, atol=1e-3)


def test_fit_prior_refuses_a_model_with_a_learned_prior(learned, tmp_path, capsys):
    assert main(["fit-prior", str(learned / "model.pt"), "-o", str(tmp_path / "x.pt")]) != 0
    assert "trained with a learned prior" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_a_learned_prior_survives_half_precision_export(learned, tmp_path):
    half = seqvae.load(export_half_precision(learned / "model.pt", tmp_path / "half.pt"))
    full = seqvae.load(learned / "model.pt")
    z = torch.randn(20, full.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(half.prior_log_prob(z), full.prior_log_prob(z), atol=0.05)
