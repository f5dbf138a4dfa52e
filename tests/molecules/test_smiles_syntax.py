"""The SMILES grammar that constrained decoding follows (seqvae.molecules.smiles_syntax)."""
import helpers
import pytest
import torch
from rdkit import Chem

from seqvae.config import ModelConfig
from seqvae.decoding import decode
from seqvae.model import SeqVAE
from seqvae.molecules.smiles_syntax import ATOM, BOND, MAX_DEPTH, OTHER, RING, SmilesSyntax, token_class

TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>", "C", "1", "(", ")", "=", "c", "2", "[nH]", "O",
          "%10", "."]
PAD, BOS, EOS = 0, 1, 2
ID = {t: i for i, t in enumerate(TOKENS)}
V = len(TOKENS)


def text(row):
    out = []
    for i in row.tolist():
        if i == EOS:
            break
        if i != PAD:
            out.append(TOKENS[i])
    return "".join(out)


def test_token_classes():
    assert token_class("[C@@H]") == ATOM and token_class("Cl") == ATOM
    assert token_class("#") == BOND and token_class("%12") == RING and token_class("7") == RING
    assert token_class("<unk>") == OTHER and token_class("[") == OTHER


def allowed_after(prefix, remaining=50):
    return helpers.allowed_after(SmilesSyntax(TOKENS, EOS), TOKENS, prefix, remaining)


def test_what_each_prefix_allows():
    atoms = {"C", "c", "[nH]", "O"}
    rings = {"1", "2", "%10"}
    assert allowed_after([]) == atoms
    assert allowed_after(["C"]) == atoms | rings | {"(", "=", ".", "<eos>"}
    # An open ring: no <eos>, no '.', and label 1 cannot close on the atom that opened it.
    assert allowed_after(["C", "1"]) == atoms | {"2", "%10", "(", "="}
    # Nor on the next atom, which is already bonded to the opener.
    assert "1" not in allowed_after(["C", "1", "C"])
    assert "1" in allowed_after(["C", "1", "C", "C"])
    assert allowed_after(["C", "("]) == atoms | {"="}
    assert allowed_after(["C", "(", "C"]) == atoms | rings | {"(", ")", "="}
    assert allowed_after(["C", "=",]) == atoms | rings
    assert allowed_after(["C", "(", "="]) == atoms           # no ring label after '(='
    assert allowed_after(["C", "(", "C", ")"]) == atoms | {"(", "=", ".", "<eos>"}
    assert allowed_after(["C", "."]) == atoms


def test_the_budget_forces_an_ending():
    # "C1C": atom, close ring 1 (not on this atom: its parent opened it), eos = 3 tokens.
    assert allowed_after(["C", "1", "C"], remaining=3) == {"C", "c", "[nH]", "O"}
    assert allowed_after(["C", "1", "C", "C"], remaining=2) == {"1"}
    assert allowed_after(["C", "(", "C"], remaining=2) == {")"}
    assert allowed_after(["C"], remaining=1) == {"<eos>"}


def test_the_branch_root_is_restored_after_a_branch():
    # In "C1(C)C", the last C bonds to the ring opener (atom 0), so 1 cannot close there...
    assert "1" not in allowed_after(["C", "1", "(", "C", ")", "C"])
    # ...but after one more atom it can: C1(C)CC1 is methylcyclopropane.
    assert "1" in allowed_after(["C", "1", "(", "C", ")", "C", "C"])


def test_the_deepest_branch_near_the_length_limit():
    # Near the limit every token is advanced to price its ending, '(' included: at the deepest
    # nesting that once indexed past the branch stack (an IndexError from a decode of an odd
    # code). Now '(' is simply not allowed there, and the string can still close.
    deepest = ["C"] + ["(", "C"] * MAX_DEPTH
    allowed = allowed_after(deepest, remaining=MAX_DEPTH + 1)
    assert "(" not in allowed and ")" in allowed
    assert allowed_after(deepest, remaining=MAX_DEPTH + 1) == {")"}


def bigram_model(table) -> SeqVAE:
    """A SeqVAE whose next token depends only on the previous one; table keys are token
    strings (or ids) of this file's vocabulary."""
    return helpers.bigram_model({ID.get(prev, prev): {ID[nxt]: p for nxt, p in nexts.items()}
                                 for prev, nexts in table.items()}, V, PAD)


# Unconstrained, the likeliest path is C -> 1 -> <eos>: "C1", a ring that never closes.
TABLE = {BOS: {"C": 1.0}, "C": {"1": 0.6, "<eos>": 0.3, "C": 0.1}, "1": {"<eos>": 0.7, "C": 0.3}}


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_constrained_decoding_closes_the_ring_that_greedy_leaves_open(method):
    model = bigram_model(TABLE)
    z = torch.zeros(2, 1)
    plain = decode(model, z, BOS, EOS, PAD, method, 12, beam_size=3)
    assert [text(r) for r in plain] == ["C1", "C1"]
    assert Chem.MolFromSmiles("C1") is None
    fixed = decode(model, z, BOS, EOS, PAD, method, 12, beam_size=3,
                   constraint=SmilesSyntax(TOKENS, EOS))
    assert [text(r) for r in fixed] == ["C1CC1", "C1CC1"]


def random_model(seed):
    torch.manual_seed(seed)
    return SeqVAE(ModelConfig(embedding_dim=8, encoder_hidden=8, latent_dim=4, decoder_hidden=16,
                              decoder_layers=1), V).eval()


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_constrained_decode_of_random_codes_parses(method, seed):
    """Random weights write random token strings; under the grammar every one must parse
    (syntax only: sanitize=False leaves valence and aromaticity to chemistry)."""
    model = random_model(seed)
    z = torch.randn(200, 4, generator=torch.Generator().manual_seed(seed)) * 3
    gen = torch.Generator().manual_seed(seed)
    for max_len in (8, 30):
        ids = decode(model, z, BOS, EOS, PAD, method, max_len, beam_size=3, generator=gen,
                     constraint=SmilesSyntax(TOKENS, EOS))
        strings = [text(r) for r in ids]
        assert all(strings)
        broken = [s for s in strings if Chem.MolFromSmiles(s, sanitize=False) is None]
        assert not broken, broken[:5]
        ended = [(r == EOS).any().item() for r in ids]
        assert all(ended), "every constrained string must end within max_len"
    # Without the grammar the same random models write broken strings, so the test can fail.
    plain = decode(model, z, BOS, EOS, PAD, method, 30, beam_size=3, generator=gen)
    assert any(Chem.MolFromSmiles(text(r), sanitize=False) is None for r in plain)


@pytest.mark.parametrize("seed", range(4))
def test_the_shortcut_bound_holds_after_every_legal_token(seed):
    """allowed() skips the finishing check where finish_bound says no token can need it; the
    bound must be above the real cost after every legal token, on random walks that open many
    rings and branches."""
    syntax = SmilesSyntax(TOKENS, EOS)
    generator = torch.Generator().manual_seed(seed)
    state = syntax.start(64)
    for _ in range(40):
        legal = syntax.legal(state)
        bound = syntax.finish_bound(state)
        for token in range(V):
            after = syntax.advance(state, torch.full((64,), token))
            cost = syntax.finish_cost(after)
            assert bool((cost[legal[:, token]] <= bound[legal[:, token]]).all())
        # Walk on by a legal token other than <eos>, preferring rings and branches.
        weights = legal.float() * torch.tensor([3.0 if t in ("1", "2", "%10", "(") else 1.0
                                                for t in TOKENS])
        weights[:, EOS] = 0
        weights[weights.sum(1) == 0, ID["C"]] = 1
        state = syntax.advance(state, torch.multinomial(weights, 1, generator=generator)[:, 0])
    assert int(state.ring_open.sum(1).max()) >= 2 and int(state.depth.max()) >= 2


def test_allowed_is_the_same_with_and_without_the_shortcut():
    syntax = SmilesSyntax(TOKENS, EOS)
    state = syntax.start(1)
    for tok in ["C", "1", "(", "C", "2", "(", "C", "%10"]:
        state = syntax.advance(state, torch.tensor([ID[tok]]))
    for remaining in range(1, 25):
        after = syntax.advance(state.select(torch.zeros(V, dtype=torch.long)), torch.arange(V))
        full = syntax.legal(state)[0] & (syntax.finish_cost(after) <= remaining - 1)
        assert torch.equal(syntax.allowed(state, remaining)[0], full)
