"""Every notebook is executed end to end in its quick mode (SEQVAE_NOTEBOOK_TINY=1), so none
can silently stop working: once with the shipped model (where it is installed; without it the
notebook falls back to training a tiny model), and once through its optional training section."""
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, tmp_path: Path, monkeypatch, train: bool):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient
    monkeypatch.setenv("SEQVAE_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("SEQVAE_NOTEBOOK_RUN_DIR", str(tmp_path / "run"))
    for variable in ("SEQVAE_NOTEBOOK_MODEL", "SEQVAE_NOTEBOOK_CHECKPOINT"):
        monkeypatch.delenv(variable, raising=False)
    if train:
        monkeypatch.setenv("SEQVAE_NOTEBOOK_TRAIN", "1")
    else:
        monkeypatch.delenv("SEQVAE_NOTEBOOK_TRAIN", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    return text, images


def expect_model(tmp_path: Path, name: str, train: bool) -> None:
    """A model is trained in the run folder exactly when asked to or when none is shipped."""
    from seqvae.pretrained import models
    trained = train or name not in models()
    assert (tmp_path / "run" / "model.pt").exists() == trained


@pytest.mark.parametrize("train", [False, True], ids=["shipped", "train"])
def test_latent_optimization_notebook_runs_end_to_end(tmp_path, monkeypatch, train):
    text, images = run_notebook("latent_optimization.ipynb", tmp_path, monkeypatch, train)
    assert "decodes" in text and "validity of all decodes" in text
    # the start and its neighbours, and the trajectory (a tiny model may find no valid best)
    assert len(images) >= 2
    expect_model(tmp_path, "moses", train)


@pytest.mark.parametrize("train", [False, True], ids=["shipped", "train"])
def test_sentence_interpolation_notebook_runs_end_to_end(tmp_path, monkeypatch, train):
    text, images = run_notebook("sentence_interpolation.ipynb", tmp_path, monkeypatch, train)
    for seen in ("linear", "slerp", "sampled", "endpoints recovered", "temperature 0.5",
                 "dimension", "prior samples"):
        assert seen in text
    assert len(images) == 3   # |z| along the paths, resemblance to the ends, latent usage
    expect_model(tmp_path, "brown", train)
