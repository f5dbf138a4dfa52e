import os

import pytest
import torch

from seqvae.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from seqvae.config import Config
from seqvae.devices import resolve_device
from seqvae.errors import SeqVAEError
from seqvae.model import SeqVAE
from seqvae.tokenizers import TokenizerConfig, fit_tokenizer


def make(tmp_path):
    config = Config().override("model", embedding_dim=8, encoder_hidden=8, latent_dim=4,
                               decoder_hidden=8)
    tok = fit_tokenizer(TokenizerConfig(), ["CCO", "c1ccccc1", "CCN(C)C(=O)Cl"], "smiles")
    torch.manual_seed(0)
    model = SeqVAE(config.model, tok.vocab_size)
    opt = torch.optim.Adam(model.parameters())
    model(torch.tensor([[1, 5, 6, 2]]), torch.tensor([4])).rec.sum().backward()
    opt.step()
    path = tmp_path / "model.pt"
    save_checkpoint(path, config, tok, model, opt, {"step": 7, "torch_rng": torch.get_rng_state()})
    return path, config, tok, model


def test_round_trip(tmp_path):
    path, config, tok, model = make(tmp_path)
    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert loaded.tokenizer.encode("CCN(C)C(=O)Cl") == tok.encode("CCN(C)C(=O)Cl")
    a, b = model.state_dict(), loaded.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.blob["train_state"]["step"] == 7
    assert loaded.blob["optimizer"]["state"]
    assert not loaded.model.training
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path, config, tok, model = make(tmp_path)
    before = path.read_bytes()

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed in the middle of writing
    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, config, tok, model)
    assert path.read_bytes() == before
    read_checkpoint(path)


def test_refuses_non_finite_weights(tmp_path):
    path, config, tok, model = make(tmp_path)
    with torch.no_grad():
        model.to_mu.weight[0, 0] = float("nan")
    with pytest.raises(SeqVAEError, match="non-finite"):
        save_checkpoint(tmp_path / "bad.pt", config, tok, model)
    assert not (tmp_path / "bad.pt").exists()


def test_clear_errors_for_bad_files(tmp_path):
    path, *_ = make(tmp_path)
    with pytest.raises(SeqVAEError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(SeqVAEError, match="truncated"):
        read_checkpoint(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(SeqVAEError, match="not a seqvae checkpoint"):
        read_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(SeqVAEError, match="not a seqvae checkpoint"):
        read_checkpoint(other)


def test_other_format_version(tmp_path):
    path, *_ = make(tmp_path)
    blob = torch.load(path, weights_only=True)
    blob["format_version"] = FORMAT_VERSION + 1
    torch.save(blob, path)
    with pytest.raises(SeqVAEError, match="format version"):
        read_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "seqvae-checkpoint", "payload": Payload()}, path)
    with pytest.raises(SeqVAEError, match=r"refused to load.*posix\.system") as exc:
        read_checkpoint(path)
    assert "\n" not in str(exc.value)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(SeqVAEError, match="--device cpu"):
            resolve_device("cuda")
