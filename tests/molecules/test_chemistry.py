import pytest

from seqvae.molecules.chemistry import canonical, is_valid, validity_and_uniqueness


def test_validity():
    assert is_valid("CCO") and is_valid("c1ccccc1")
    assert not is_valid("c1cccc1")        # not kekulisable: fails sanitisation
    assert not is_valid("C(C")            # does not parse
    assert not is_valid("") and not is_valid("  ")


def test_canonical():
    assert canonical("OCC") == canonical("CCO") == "CCO"
    assert canonical("C(C") is None


def test_validity_and_uniqueness_by_hand():
    r = validity_and_uniqueness(["CCO", "OCC", "C(C", "c1ccccc1"])
    assert r == {"n": 4, "valid": 0.75, "unique": 2 / 3}


def test_properties_of_paracetamol():
    from seqvae.molecules.chemistry import properties
    p = properties("CC(=O)Nc1ccc(O)cc1")
    assert p["mw"] == pytest.approx(151.165, abs=0.01)            # C8H9NO2
    assert p["logp"] == pytest.approx(1.35, abs=0.05)             # Crippen
    assert 0.5 < p["qed"] < 0.7 and 1 < p["sa"] < 2
    assert properties("not a molecule") is None


def test_normalized_penalized_logp_uses_jtvae_constants():
    from rdkit import Chem
    from rdkit.Chem import Crippen

    from seqvae.molecules.chemistry import (
        _sascorer,
        normalized_penalized_logp,
        ring_penalty,
    )

    def by_hand(smiles, ring):
        mol = Chem.MolFromSmiles(smiles)
        sa = _sascorer().calculateScore(mol)
        return ((Crippen.MolLogP(mol) - 2.4570953396190123) / 1.434324401111988
                + (-sa + 3.0525811293166134) / 0.8335207024513095
                + (-ring + 0.0485696876403053) / 0.2860212110245455)

    assert ring_penalty(Chem.MolFromSmiles("CCO")) == 0
    assert ring_penalty(Chem.MolFromSmiles("C1CCCCCCC1")) == 2          # 8 atoms: 8 - 6
    for smiles, ring in (("CCO", 0), ("c1ccccc1", 0), ("C1CCCCCCC1", 2)):
        assert normalized_penalized_logp(smiles) == pytest.approx(by_hand(smiles, ring))
    assert normalized_penalized_logp("not a molecule") is None
