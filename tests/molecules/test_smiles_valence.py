"""Valence-constrained SMILES decoding (seqvae.molecules.smiles_valence)."""
import helpers
import pytest
import torch
from rdkit import Chem, RDLogger

from seqvae.decoding import decode
from seqvae.molecules.smiles_valence import SmilesValence, atom_budget

RDLogger.DisableLog("rdApp.*")

# No aromatic atoms: for these, a string the budgets let through is a molecule RDKit accepts
# (aromaticity, which needs whole rings, is not checked).
TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>", "C", "1", "(", ")", "=", "#", "2", "N", "O", "F",
          "[N+]", "[O-]", ".", "S", "Cl", "%10", "c"]
PAD, BOS, EOS = 0, 1, 2
ID = {t: i for i, t in enumerate(TOKENS)}
V = len(TOKENS)
ATOMS = {"C", "N", "O", "F", "[N+]", "[O-]", "S", "Cl", "c"}


def test_atom_budgets_by_hand():
    assert atom_budget("C") == (4, 4) and atom_budget("O") == (2, 2)
    assert atom_budget("F") == (1, 1) and atom_budget("Cl") == (1, 1)
    assert atom_budget("S") == (6, 6) and atom_budget("N") == (3, 3)
    assert atom_budget("c") == (4, 3)                 # two ring bonds and one more (c=O)
    assert atom_budget("[nH]") == (2, 2)              # n's 3, less its hydrogen
    assert atom_budget("[N+]") == (4, 4)              # bonds like carbon
    assert atom_budget("[O-]") == (1, 1)              # bonds like fluorine
    assert atom_budget("[NH3+]") == (1, 1)
    assert atom_budget("[C@@H]") == (3, 3)
    assert atom_budget("(") is None and atom_budget("=") is None


def allowed_after(prefix, remaining=50):
    return helpers.allowed_after(SmilesValence(TOKENS, EOS), TOKENS, prefix, remaining)


def test_a_full_atom_takes_no_more_bonds():
    # F and =O fill their atom: after them only an ending (or a branch's end) may come.
    assert allowed_after(["C", "F"]) == {"<eos>", "."}
    assert allowed_after(["C", "=", "O"]) == {"<eos>", "."}
    assert allowed_after(["C", "(", "F"]) == {")"}
    # After "C(=O)(O)" the carbon has one unit left: a single bond, not a double one.
    after = allowed_after(["C", "(", "=", "O", ")", "(", "O", ")"])
    assert ATOMS <= after and "=" not in after and "#" not in after
    # Nitrogen takes three single bonds, not a fourth.
    assert ATOMS - {"c"} <= allowed_after(["N", "(", "C", ")", "(", "C", ")"])
    assert allowed_after(["N", "(", "C", ")", "(", "C", ")", "(", "C", ")"]) == {"<eos>", "."}
    # A triple bond needs three free units on both ends: not to O, and not from a used C.
    assert "O" not in allowed_after(["C", "#"]) and "N" in allowed_after(["C", "#"])
    assert "#" not in allowed_after(["C", "(", "C", ")", "(", "C", ")"])


def test_an_aromatic_atom_takes_no_triple_bond():
    assert "#" not in allowed_after(["C", "c"]) and "=" in allowed_after(["C", "c"])
    assert "c" not in allowed_after(["C", "#"])


def test_no_atom_is_left_stuck_while_a_ring_is_open():
    # After "C1C=" an O would fill itself with a ring still open and nothing able to close it.
    after = allowed_after(["C", "1", "C", "="])
    assert "O" not in after and "C" in after
    assert "F" not in allowed_after(["C", "1", "C"])
    # Inside a branch it may: ')' follows, and the chain goes on from the branch's root.
    assert "F" in allowed_after(["C", "1", "C", "("])
    # A ring bond that would fill the atom while another ring stays open is ruled out too:
    # in "C12CN=" a double ring bond would fill the N and leave ring 2 open.
    after = allowed_after(["C", "1", "2", "C", "N", "="])
    assert "1" not in after and "2" not in after and "C" in after
    assert "1" in allowed_after(["C", "1", "C", "N", "="])


def test_ring_closures_respect_both_atoms_and_one_bond_order():
    # "C=1CC1": the ring bond is double at both ends, so O, which has 2 units, cannot close it
    # after a single bond.
    assert "1" not in allowed_after(["C", "=", "1", "C", "C", "O"])
    assert "1" in allowed_after(["C", "=", "1", "C", "C", "C"])
    # Two different orders for one ring bond do not parse ("C=1CC#1").
    assert "1" not in allowed_after(["C", "=", "1", "C", "C", "#"])
    assert "1" in allowed_after(["C", "=", "1", "C", "C", "="])


# Under the grammar alone the likeliest string is N#O (probability 0.855): an oxygen with three
# bonds. Under the budgets O cannot take the triple bond, and N#C (0.095) beats N (0.05).
TABLE = {BOS: {"N": 1.0}, "N": {"#": 0.95, "<eos>": 0.05}, "#": {"O": 0.9, "C": 0.1},
         "O": {"<eos>": 1.0}, "C": {"<eos>": 1.0}}


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_constrained_decoding_gives_no_atom_more_bonds_than_it_takes(method):
    model = helpers.bigram_model({ID.get(p, p): {ID[n]: q for n, q in nexts.items()}
                                  for p, nexts in TABLE.items()}, V, PAD)
    z = torch.zeros(2, 1)
    valence = SmilesValence(TOKENS, EOS)
    plain = decode(model, z, BOS, EOS, PAD, method, 12, beam_size=3,
                   constraint=valence.grammar)
    assert [text(r) for r in plain] == ["N#O", "N#O"]
    assert Chem.MolFromSmiles("N#O") is None
    fixed = decode(model, z, BOS, EOS, PAD, method, 12, beam_size=3, constraint=valence)
    assert [text(r) for r in fixed] == ["N#C", "N#C"]


def text(row):
    ids = row.tolist()
    ids = ids[:ids.index(EOS)] if EOS in ids else ids
    return "".join(TOKENS[i] for i in ids if i > 3)


@pytest.mark.parametrize("seed", range(3))
def test_every_walk_the_budgets_allow_is_a_molecule(seed):
    """Random walks through the mask (a uniformly drawn allowed token at each step): every
    string the budgets kept whole (no dead end, where the mask falls back on the grammar) is a
    molecule RDKit sanitises; under the grammar alone most are not."""
    vocab = [t for t in TOKENS if t != "c"]           # aromaticity needs whole rings: not here
    valence = SmilesValence(vocab, EOS)
    n, max_len = 400, 30
    gen = torch.Generator().manual_seed(seed)
    results = {}
    for name, masks in (("valence", valence), ("grammar", valence.grammar)):
        state, rows = valence.start(n), []
        clean = torch.ones(n, dtype=torch.bool)
        done = torch.zeros(n, dtype=torch.bool)
        for t in range(max_len):
            grammar = valence.grammar.allowed(state.syntax, max_len - t)
            if masks is valence:
                clean &= (grammar & valence.within_budget(state)).any(1) | done
                allowed = valence.allowed(state, max_len - t)
            else:
                allowed = grammar
            weights = allowed.float()
            weights[:, EOS] *= 0.05                   # long strings: more for the mask to do
            weights[done] = 0.0
            weights[done, PAD] = 1.0
            token = torch.multinomial(weights, 1, generator=gen).squeeze(1)
            rows.append(token)
            state = valence.advance(state, token)
            done |= token == EOS
        strings = ["".join(vocab[i] for i in row if i > 3) for row in torch.stack(rows, 1).tolist()]
        ok = [Chem.MolFromSmiles(s) is not None for s in strings]
        results[name] = sum(ok)
        if masks is valence:
            assert clean.sum() >= n // 4
            broken = [s for s, good, c in zip(strings, ok, clean.tolist()) if c and not good]
            assert not broken, broken[:5]
    assert results["grammar"] < results["valence"] / 2
