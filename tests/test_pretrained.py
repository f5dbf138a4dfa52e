"""Shipped models: names, run folders and files resolve through one path; checksums guard
the shipped files; and each shipped model still scores what its card says."""
from pathlib import Path

import pytest

import seqvae.pretrained as pretrained
from seqvae import load
from seqvae.checkpoint import export_half_precision, read_checkpoint
from seqvae.errors import SeqVAEError

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def shelf(tmp_path, monkeypatch):
    """An empty stand-in for the package's pretrained folder."""
    monkeypatch.setattr(pretrained, "HERE", tmp_path)
    monkeypatch.setattr(pretrained, "REGISTRY_FILE", tmp_path / "models.json")
    pretrained._verified.cache_clear()
    return tmp_path


def flip_a_byte_in_the_middle(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_an_exported_model_loads_by_name_in_half_precision(shelf, trained_smiles_run):
    target = export_half_precision(trained_smiles_run / "model.pt", shelf / "tiny.pt")
    pretrained.register("tiny", target, "a tiny test model", "nothing to speak of")
    blob = read_checkpoint("tiny")
    assert blob["optimizer"] is None and "torch_rng" not in blob["train_state"]
    assert all(w.dtype.is_floating_point is False or w.dtype.itemsize == 2
               for w in blob["model"].values())
    shipped, own = load("tiny", device="cpu"), load(trained_smiles_run, device="cpu")
    assert pretrained.models()["tiny"].description == "a tiny test model"
    # fp16 weights decode the same molecules as the fp32 original, here
    z = own.prior_codes(20, seed=0)
    same = sum(a == b for a, b in zip(shipped.decode(z), own.decode(z)))
    assert same >= 18
    assert target.stat().st_size < (trained_smiles_run / "model.pt").stat().st_size / 2


def test_a_changed_shipped_file_is_refused(shelf, trained_smiles_run):
    target = export_half_precision(trained_smiles_run / "model.pt", shelf / "tiny.pt")
    pretrained.register("tiny", target, "", "")
    flip_a_byte_in_the_middle(target)
    with pytest.raises(SeqVAEError, match="SHA-256"):
        load("tiny", device="cpu")


def test_names_folders_and_files(shelf, trained_smiles_run, tmp_path):
    assert pretrained.resolve(trained_smiles_run) == trained_smiles_run / "model.pt"
    assert pretrained.resolve(trained_smiles_run / "model.pt") == trained_smiles_run / "model.pt"
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(SeqVAEError, match="without a model.pt"):
        pretrained.resolve(empty)
    target = export_half_precision(trained_smiles_run / "model.pt", shelf / "tiny.pt")
    pretrained.register("tiny", target, "", "")
    with pytest.raises(SeqVAEError, match="shipped models are: tiny"):
        pretrained.resolve("tinny")
    assert pretrained.is_shipped(pretrained.resolve("tiny"))
    assert not pretrained.is_shipped(trained_smiles_run / "model.pt")


def test_a_bare_name_means_the_shipped_model_even_beside_a_local_folder_of_that_name(
        shelf, trained_smiles_run, tmp_path, monkeypatch):
    target = export_half_precision(trained_smiles_run / "model.pt", shelf / "tiny.pt")
    pretrained.register("tiny", target, "", "")
    work = tmp_path / "work"
    (work / "tiny").mkdir(parents=True)
    (work / "tiny" / "model.pt").write_bytes((trained_smiles_run / "model.pt").read_bytes())
    monkeypatch.chdir(work)
    assert pretrained.resolve("tiny") == target                  # the name: the shipped model
    assert pretrained.resolve("./tiny") == Path("tiny") / "model.pt"   # a path: the folder
    assert pretrained.resolve(Path("tiny")) == Path("tiny") / "model.pt"


def test_a_shipped_file_given_by_its_path_is_checked_too(shelf, trained_smiles_run):
    target = export_half_precision(trained_smiles_run / "model.pt", shelf / "tiny.pt")
    pretrained.register("tiny", target, "", "")
    assert pretrained.resolve(str(target)) == target
    flip_a_byte_in_the_middle(target)
    with pytest.raises(SeqVAEError, match="SHA-256"):
        load(str(target), device="cpu")
    with pytest.raises(SeqVAEError, match="SHA-256"):
        load(target, device="cpu")


# The guard: each shipped model, loaded as a user loads it, must still score what it scored
# when it was shipped (measured with the commands in the comments, on this repository's data/
# files). A change that breaks loading, half-precision weights or decoding fails here.
SHIPPED_GUARDS = {
    # seqvae.molecules.reconstruction.greedy_reconstruction(seqvae.load("moses"), the 1,000 MOSES test
    # molecules of data/moses_test_sample.smi)["share"]
    "moses": ("moses_test_sample.smi", 1000, 0.937),
    # exact greedy reconstruction of the first 300 sentences of data/ptb_sample.txt (PTB train)
    "ptb": ("ptb_sample.txt", 300, 124 / 300),
    # exact greedy reconstruction of the 500 sentences of data/brown_test_sample.txt (the first
    # 500 Brown test sentences of at most 15 words)
    "brown": ("brown_test_sample.txt", 500, 138 / 500),
}
# Decoding is deterministic: the margin is one or two items (of 1,000 molecules, of 300 or 500
# sentences) whose argmax may tie differently under another CPU's summation order.
GUARD_TOLERANCE_ITEMS = {"moses": 2, "ptb": 2, "brown": 2}


@pytest.mark.parametrize("name", sorted(SHIPPED_GUARDS))
def test_a_shipped_model_still_scores_what_its_card_says(name):
    if name not in pretrained.models():
        pytest.fail(f"the shipped model {name!r} is not installed")
    from seqvae.molecules.reconstruction import greedy_reconstruction
    vae = load(name, device="cpu")
    file, n, expected = SHIPPED_GUARDS[name]
    lines = (DATA / file).read_text().splitlines()[:n]
    if vae.kind == "smiles":
        share = greedy_reconstruction(vae, lines)["share"]
    else:
        from seqvae.text.evaluation import exact_reconstruction
        share = exact_reconstruction(vae, lines)
    assert abs(share * n - expected * n) <= GUARD_TOLERANCE_ITEMS[name] + 1e-9, \
        f"{share * n:.0f} of {n} reconstructed; the card says {expected * n:.0f}"
