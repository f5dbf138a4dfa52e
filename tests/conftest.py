import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own corpus cache, so none sees another's files or the user's."""
    if "SEQVAE_TEST_SHARED_CACHE" not in os.environ:
        monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def smiles_file() -> Path:
    return DATA / "moses_test_sample.smi"


@pytest.fixture
def text_file() -> Path:
    return DATA / "ptb_sample.txt"


@pytest.fixture(scope="session")
def trained_smiles_run(tmp_path_factory):
    """A tiny model trained for a few steps on the MOSES sample; shared by read-only tests."""
    from seqvae.training import train
    from helpers import tiny_config
    out = tmp_path_factory.mktemp("smiles_run")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQVAE_CACHE", str(tmp_path_factory.mktemp("run_cache")))
    try:
        train(tiny_config(DATA / "moses_test_sample.smi", max_steps=16), out,
              log=lambda _: None, progress=False)
    finally:
        mp.undo()
    return out


def _train_tiny(tmp_path_factory, name: str, source: Path, **changes):
    from seqvae.training import train
    from helpers import tiny_config
    out = tmp_path_factory.mktemp(name)
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQVAE_CACHE", str(tmp_path_factory.mktemp(f"{name}_cache")))
    try:
        config = tiny_config(source, max_steps=16)
        for section, values in changes.items():
            config = config.override(section, **values)
        train(config, out, log=lambda _: None, progress=False)
    finally:
        mp.undo()
    return out


@pytest.fixture(scope="session")
def trained_text_run(tmp_path_factory):
    """A tiny word-level VAE trained for a few steps on the PTB sample; read-only."""
    return _train_tiny(tmp_path_factory, "text_run", DATA / "ptb_sample.txt",
                       model={"latent_dim": 4})


@pytest.fixture(scope="session")
def trained_text_lm(tmp_path_factory):
    """The same, trained as a language model without a latent (--no-latent); read-only."""
    return _train_tiny(tmp_path_factory, "text_lm", DATA / "ptb_sample.txt",
                       model={"latent_dim": 0})


@pytest.fixture(scope="session")
def trained_smiles_head(tmp_path_factory):
    """A tiny SMILES VAE with a jointly trained property head; read-only."""
    return _train_tiny(tmp_path_factory, "smiles_head", DATA / "moses_test_sample.smi",
                       model={"property_head": 16})
