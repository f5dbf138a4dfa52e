import numpy as np
import pytest

import seqvae
from seqvae.errors import SeqVAEError


@pytest.fixture(scope="module")
def vae(trained_smiles_run):
    return seqvae.load(trained_smiles_run / "model.pt", device="cpu")


def test_load_returns_the_verbs(vae):
    assert vae.kind == "smiles"
    assert vae.latent_dim == 8
    for verb in ("sample", "encode", "decode", "reconstruct"):
        assert callable(getattr(vae, verb))


def test_encode_gives_posterior_means(vae):
    z = vae.encode(["CCO", "c1ccccc1", "CCO"])
    assert z.shape == (3, 8) and z.dtype == np.float32
    assert np.allclose(z[0], z[2])            # deterministic: the mean, not a sample
    assert not np.allclose(z[0], z[1])
    # batch independence at the API level
    assert np.allclose(vae.encode(["c1ccccc1"])[0], z[1], atol=1e-5)


def test_decode_and_reconstruct(vae):
    z = vae.encode(["CCO", "c1ccccc1"])
    texts = vae.decode(z)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert vae.reconstruct(["CCO", "c1ccccc1"]) == texts
    assert len(vae.decode(z, method="beam", beam_size=3)) == 2


def test_sample_is_seeded(vae):
    a = vae.sample(20, seed=1)
    assert a == vae.sample(20, seed=1)
    assert a != vae.sample(20, seed=2)
    assert len(vae.sample(3, method="greedy")) == 3


def test_sample_quality_reports_validity(vae):
    q = vae.sample_quality(30, seed=0)
    assert q["n"] == 30 and len(q["valid_flags"]) == 30
    assert q["valid"] == pytest.approx(sum(q["valid_flags"]) / 30)


def test_bad_inputs(vae):
    with pytest.raises(SeqVAEError, match="empty"):
        vae.encode(["CCO", ""])
    with pytest.raises(TypeError):
        vae.encode("CCO")
    with pytest.raises(SeqVAEError, match="shape"):
        vae.decode(np.zeros((2, 3)))
    # characters the tokenizer never saw become <unk> and do not crash
    assert vae.encode(["C[Xe]C€"]).shape == (1, 8)


def test_problems_and_unknown_tokens(vae):
    texts = ["CCO", "", "C(C", "c1ccccc1[Se]"]
    assert vae.problems(texts) == {1: "empty", 2: "not a valid SMILES (RDKit cannot parse it)"}
    assert vae.unknown_tokens(texts)[0] == 0 and vae.unknown_tokens(texts)[3] >= 1
    with pytest.raises(SeqVAEError, match=r"input 3 \('C\(C'\) is not a valid SMILES"):
        vae.encode(["CCO", "CCN", "C(C"])


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_encode_any_string_works_or_says_why(vae, text):
    try:
        z = vae.encode([text])
    except SeqVAEError as exc:
        assert "empty" in str(exc) or "not a valid SMILES" in str(exc)
        return
    assert z.shape == (1, vae.latent_dim) and np.isfinite(z).all()
    assert isinstance(vae.decode(z)[0], str)


def test_low_rate_warning_names_the_preset_to_use(trained_smiles_run, trained_text_run):
    from seqvae import load
    smiles = load(trained_smiles_run / "model.pt", device="cpu")
    assert smiles.recorded_kl is not None  # recorded at the validation that saved model.pt
    smiles.train_state["valid_kl"] = 6.7
    assert "--preset moses-autoencoder" in smiles.low_rate_warning("latent optimisation")
    smiles.train_state["valid_kl"] = 40.0
    assert smiles.low_rate_warning("latent optimisation") is None
    text = load(trained_text_run / "model.pt", device="cpu")
    text.train_state["valid_kl"] = 14.9
    assert "--preset ptb-interpolate" in text.low_rate_warning("interpolation")
    text.train_state.pop("valid_kl")
    assert text.low_rate_warning("interpolation") is None  # older checkpoints: no record, no warning
