import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqvae
from seqvae.errors import SeqVAEError


@pytest.fixture(scope="module")
def vae(trained_smiles_run):
    return seqvae.load(trained_smiles_run / "model.pt", device="cpu")


@pytest.fixture(scope="module")
def free_vae(trained_smiles_run):
    """The same model decoding without the SMILES grammar, as the hand-written greedy does."""
    return seqvae.load(trained_smiles_run / "model.pt", device="cpu", constrained=False)


def test_load_returns_the_verbs(vae):
    assert vae.kind == "smiles"
    assert vae.latent_dim == 8
    for verb in ("sample", "encode", "decode", "reconstruct"):
        assert callable(getattr(vae, verb))


def _hand_mean(vae, smiles):
    """The posterior mean of one string, from the encoder on [<bos>, ids, <eos>] alone."""
    tok = vae.tokenizer
    x = torch.tensor([[tok.bos_id, *tok.encode(smiles), tok.eos_id]])
    with torch.no_grad():
        mu, _ = vae.model.forward_encoder(x, torch.tensor([x.size(1)]))
    return mu[0].numpy()


def _hand_greedy(vae, z):
    """Greedy decoding written out: argmax over every token but <bos> and <pad>, one code at
    a time, until <eos>; then the tokenizer's text."""
    tok, out = vae.tokenizer, []
    for code in torch.as_tensor(np.asarray(z, np.float32)):
        ids, token, hidden = [], torch.tensor([[tok.bos_id]]), None
        with torch.no_grad():
            for _ in range(vae.max_len):
                logits, hidden = vae.model.forward_decoder(token, code[None], hidden)
                scores = logits[0, -1].clone()
                scores[[tok.bos_id, tok.pad_id]] = float("-inf")
                token = scores.argmax().view(1, 1)
                if token.item() == tok.eos_id:
                    break
                ids.append(token.item())
        out.append(tok.decode(ids))
    return out


def test_encode_gives_posterior_means(vae):
    z = vae.encode(["CCO", "c1ccccc1", "CCO"])
    assert z.shape == (3, 8) and z.dtype == np.float32
    for row, smiles in zip(z, ["CCO", "c1ccccc1", "CCO"]):   # the mean, not a sample
        assert np.allclose(row, _hand_mean(vae, smiles), atol=1e-5)
    assert not np.allclose(z[0], z[1])
    # batch independence at the API level
    assert np.allclose(vae.encode(["c1ccccc1"])[0], z[1], atol=1e-5)


def test_decode_and_reconstruct(free_vae):
    vae = free_vae
    smiles = ["CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1"]
    z = vae.encode(smiles)
    texts = vae.decode(z)
    assert texts == _hand_greedy(vae, z)
    assert vae.reconstruct(smiles) == _hand_greedy(vae, [_hand_mean(vae, s) for s in smiles])
    # prior codes far from the data: still the same greedy decodes
    far = vae.prior_codes(4, seed=0) * 2
    assert vae.decode(far) == _hand_greedy(vae, far)
    # a beam of width 1 is greedy
    assert vae.decode(z, method="beam", beam_size=1) == texts
    assert len(vae.decode(z, method="beam", beam_size=3)) == 3


def test_sample_is_seeded(free_vae):
    vae = free_vae
    a = vae.sample(20, seed=1)
    assert a == vae.sample(20, seed=1)
    assert a != vae.sample(20, seed=2)
    # greedy sampling is the hand-written greedy decode of the seeded prior codes
    assert vae.sample(3, method="greedy", seed=4) == _hand_greedy(vae, vae.prior_codes(3, seed=4))
    assert vae.prior_codes(3, seed=4) == pytest.approx(
        torch.randn(3, 8, generator=torch.Generator().manual_seed(4)).numpy())


def test_sample_quality_reports_validity(vae):
    from rdkit import Chem
    q = vae.sample_quality(30, seed=0)
    assert q["samples"] == vae.sample(30, seed=0)
    assert q["n"] == 30
    mols = [Chem.MolFromSmiles(s) if s else None for s in q["samples"]]
    assert q["valid_flags"] == [m is not None for m in mols]       # RDKit's own verdict
    assert q["valid"] == pytest.approx(sum(q["valid_flags"]) / 30)
    distinct = {Chem.MolToSmiles(m) for m in mols if m is not None}
    assert q["unique"] == pytest.approx(len(distinct) / max(1, sum(q["valid_flags"])))


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


def test_smiles_models_decode_under_the_grammar_unless_told_not_to(trained_smiles_run,
                                                                   monkeypatch):
    import seqvae.api as api
    seen = []

    def spy(*args, constraint=None, **kwargs):
        seen.append(constraint)
        return real(*args, constraint=constraint, **kwargs)
    real = api.decode_ids
    monkeypatch.setattr(api, "decode_ids", spy)
    z = np.zeros((2, 8), np.float32)
    constrained = seqvae.load(trained_smiles_run / "model.pt", device="cpu")
    free = seqvae.load(trained_smiles_run / "model.pt", device="cpu", constrained=False)
    constrained.decode(z)
    constrained.decode(z, constrained=False)
    free.decode(z)
    free.decode(z, constrained=True)
    assert [c is not None for c in seen] == [True, False, False, True]
    assert constrained.syntax is not None


def test_sampling_precision_is_chosen_at_load_and_greedy_stays_fp32(trained_smiles_run,
                                                                   monkeypatch):
    import seqvae.api as api
    import seqvae.devices as devices
    seen = []

    def spy(*args, precision="fp32", **kwargs):
        seen.append(precision)
        return real(*args, precision=precision, **kwargs)
    real = api.decode_ids
    monkeypatch.setattr(api, "decode_ids", spy)
    path = trained_smiles_run / "model.pt"
    bf16 = seqvae.load(path, device="cpu", precision="bf16")
    bf16.sample(3, seed=0)
    bf16.decode(np.zeros((2, 8), np.float32))                    # greedy: a reconstruction
    bf16.decode(np.zeros((2, 8), np.float32), method="beam", beam_size=2)
    assert seen == ["bf16", "fp32", "fp32"]
    for fast, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(devices, "fast_bf16", lambda device, fast=fast: (fast, "test"))
        assert seqvae.load(path, device="cpu").precision == expected        # auto
        assert seqvae.load(path, device="cpu", precision="fp32").precision == "fp32"
    with pytest.raises(SeqVAEError, match="fp32 or bf16"):
        api.TrainedVAE(bf16.config, bf16.tokenizer, bf16.model, precision="half")


def test_text_models_have_no_grammar(trained_text_run):
    assert seqvae.load(trained_text_run / "model.pt", device="cpu").syntax is None


def test_sample_valid_counts_draws_and_tells_duplicates_by_canonical_form(vae, monkeypatch):
    # "OCC" is "CCO" written another way; "C1" and "C(" are not molecules.
    stream = itertools.chain(["CCO", "C1", "OCC", "C(", "c1ccccc1"], itertools.repeat("CC"))
    monkeypatch.setattr(vae, "sample", lambda n, **_: [next(stream) for _ in range(n)])
    molecules, draws = vae.sample_valid(2)
    assert molecules == ["CCO", "c1ccccc1"] and draws == 5


def test_sample_valid_stops_at_max_draws_with_what_it_found(vae, monkeypatch):
    monkeypatch.setattr(vae, "sample", lambda n, **_: ["CCO"] * n)
    molecules, draws = vae.sample_valid(3, max_draws=10)
    assert molecules == ["CCO"] and draws == 10
