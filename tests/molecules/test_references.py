import io
import os
import pickle
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import seqvae.molecules.references as references
import seqvae.molecules.set_statistics as set_statistics_module
from seqvae.errors import SeqVAEError
from seqvae.molecules.moses_metrics import (
    fingerprints,
    fragment_counts,
    property_values,
    scaffold_counts,
)
from seqvae.molecules.references import (
    MOLSETS_STATISTICS,
    molsets_reference,
    read_statistics,
    reference_set,
)

USER_CACHE = Path(os.environ.get("SEQVAE_CACHE") or Path.home() / ".cache" / "seqvae")


@pytest.fixture
def molecules(smiles_file):
    return smiles_file.read_text().split()[:300]


def molsets_like_npz(smiles: list[str]) -> bytes:
    """A statistics file laid out as molsets 0.3.1 writes them (``np.savez(path,
    stats=get_statistics(...))``: one pickled dict of dicts), for ``smiles``."""
    rng = np.random.default_rng(0)
    props = property_values(smiles)
    stats = {"FCD": {"mu": rng.normal(size=512).astype(np.float32),
                     "sigma": np.eye(512, dtype=np.float32)},
             "SNN": {"fps": fingerprints(smiles)},
             "Frag": {"frag": fragment_counts(smiles)}, "Scaf": {"scaf": scaffold_counts(smiles)},
             **{name: {"values": values.tolist()} for name, values in props.items()}}
    buffer = io.BytesIO()
    np.savez(buffer, stats=stats)
    return buffer.getvalue()


def test_reference_statistics_in_parallel_chunks_equal_the_serial_ones(molecules, monkeypatch):
    part = molecules[:41]
    monkeypatch.setattr(set_statistics_module, "CHUNK", 10)   # 5 chunks
    monkeypatch.setattr(os, "cpu_count", lambda: 2)          # a pool even on one core
    ref = reference_set(part, log=lambda _: None)
    assert (ref.fingerprints == fingerprints(part)).all() and ref.source == "computed"
    assert ref.fragments == fragment_counts(part) and ref.scaffolds == scaffold_counts(part)
    assert all((ref.properties[k] == v).all() for k, v in property_values(part).items())


def test_cached_statistics_of_an_older_definition_are_not_read(molecules, monkeypatch):
    part = molecules[:20]
    first = reference_set(part, log=lambda _: None)
    monkeypatch.setattr(references, "STATISTICS_VERSION", references.STATISTICS_VERSION + 1)
    computed = []
    again = reference_set(part, log=computed.append)
    assert computed and again.scaffolds == first.scaffolds   # computed anew, not read


def test_molsets_statistics_are_read_as_the_reference_set(molecules, monkeypatch):
    part = molecules[:30]
    blob = molsets_like_npz(part)
    monkeypatch.setattr(references, "molsets_member",
                        lambda member, log=None: blob if member == MOLSETS_STATISTICS["test"] else 1 / 0)
    ref = molsets_reference("test", len(part))
    assert ref.source == "molsets 0.3.1"
    assert (ref.fingerprints == fingerprints(part)).all() and ref.fingerprints.dtype == np.uint8
    assert ref.fragments == fragment_counts(part) and ref.scaffolds == scaffold_counts(part)
    assert isinstance(ref.fragments, Counter)
    assert ref.chemnet[0].shape == (512,) and ref.chemnet[1].shape == (512, 512)
    for name, values in property_values(part).items():
        assert np.array_equal(ref.properties[name], values)
    with pytest.raises(SeqVAEError, match="describe 30 molecules, the split holds 31"):
        molsets_reference("test", 31)
    with pytest.raises(SeqVAEError, match="not 'valid'"):
        molsets_reference("valid", 30)


class _RunsCode:
    """Unpickles by calling ``os.getcwd``, as a malicious file would call something worse."""
    def __reduce__(self):
        return (os.getcwd, ())


def test_a_statistics_file_that_names_other_code_is_refused():
    buffer = io.BytesIO()
    np.savez(buffer, stats=np.array({"FCD": _RunsCode()}, dtype=object))
    with pytest.raises(SeqVAEError, match="may not load posix.getcwd|may not load os.getcwd"):
        read_statistics(buffer.getvalue())
    # np.load with allow_pickle would have called it:
    assert isinstance(np.load(io.BytesIO(buffer.getvalue()), allow_pickle=True)["stats"].item()["FCD"], str)


def test_a_broken_statistics_file_is_a_clear_error():
    with pytest.raises(SeqVAEError, match="not a molsets statistics file"):
        read_statistics(b"not a zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("stats.npy", pickle.dumps([1, 2]))        # no .npy header
    with pytest.raises(SeqVAEError, match="not a molsets statistics file"):
        read_statistics(buffer.getvalue())


def test_the_shipped_statistics_equal_seqvae_s_own_on_their_first_molecules(monkeypatch):
    """The real wheel: the precomputed fingerprints and property values of the first 200 test
    molecules are those seqvae computes, and their fragments and scaffolds are among the
    counted ones. Runs where a wheel was fetched before (the tests use no network)."""
    wheels = sorted((USER_CACHE / "downloads").glob("molsets-0.3.1-*.whl"))
    if not wheels:
        pytest.skip(f"no molsets 0.3.1 wheel in {USER_CACHE / 'downloads'}")
    monkeypatch.setattr(references, "molsets_member", lambda member, log=None:
                        zipfile.ZipFile(wheels[0]).read(member))
    with zipfile.ZipFile(wheels[0]) as zf:
        rows = zf.read("moses/dataset/data/test.csv.gz")
    import gzip
    smiles = [line.split(",")[0] for line in gzip.decompress(rows).decode().split("\n")[1:] if line]
    ref = molsets_reference("test", len(smiles))
    first = smiles[:200]
    assert (ref.fingerprints[:200] == fingerprints(first)).all()
    for name, values in property_values(first).items():
        assert np.allclose(ref.properties[name][:200], values, rtol=1e-9, atol=1e-12), name
    for own, theirs in ((fragment_counts(first), ref.fragments),
                        (scaffold_counts(first), ref.scaffolds)):
        assert all(theirs[key] >= count for key, count in own.items())
