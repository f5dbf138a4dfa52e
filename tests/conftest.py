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
