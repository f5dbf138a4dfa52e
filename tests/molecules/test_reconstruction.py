import numpy as np
import pytest

from seqvae.molecules.reconstruction import (
    greedy_reconstruction,
    stochastic_reconstruction,
)


class EchoVAE:
    """A stand-in whose decoder gives back a fixed answer per code: codes are row indices."""
    latent_dim = 1

    def __init__(self, inputs, answers):
        self.inputs, self.answers, self.decoded = list(inputs), list(answers), []

    def reconstruct(self, smiles, check=True):
        return [self.answers[self.inputs.index(s)] for s in smiles]

    def encode_posterior(self, smiles, check=True):
        mu = np.array([[self.inputs.index(s)] for s in smiles], np.float32)
        return mu, np.full_like(mu, -30.0)  # sd 3e-7: every draw rounds to its row index

    def decode(self, z, method="greedy", temperature=1.0, seed=None):
        self.decoded.append(len(z))
        return [self.answers[int(round(float(v)))] for v in z[:, 0]]


def test_greedy_reconstruction_compares_canonical_molecules_and_skips_unparsable():
    inputs = ["OCC", "c1ccccc1", "CCN", "not a molecule"]
    # "CCO" is OCC written another way: a hit; benzene comes back as toluene: a miss
    vae = EchoVAE(inputs, ["CCO", "Cc1ccccc1", "CCN", "C"])
    result = greedy_reconstruction(vae, inputs)
    assert result == {"share": pytest.approx(2 / 3), "molecules": 3, "skipped": 1}


def test_stochastic_reconstruction_counts_every_decode_of_every_encoding():
    inputs = ["OCC", "c1ccccc1"]
    vae = EchoVAE(inputs, ["CCO", "CCCC"])
    result = stochastic_reconstruction(vae, inputs, encodings=3, decodes=4)
    assert vae.decoded == [2 * 3 * 4]  # one batched call: molecules x encodings x decodes
    assert result["share"] == pytest.approx(0.5)  # every decode of OCC, none of benzene
    assert result["any"] == pytest.approx(0.5)
    assert (result["molecules"], result["encodings"], result["decodes"]) == (2, 3, 4)


class SometimesVAE(EchoVAE):
    """Gives back its answer for one decode in four, and methane otherwise."""

    def decode(self, z, method="greedy", temperature=1.0, seed=None):
        answers = super().decode(z, method, temperature, seed)
        return [a if i % 4 == 0 else "C" for i, a in enumerate(answers)]


def test_stochastic_reconstruction_tells_the_share_of_decodes_from_any_decode():
    inputs = ["OCC", "c1ccccc1"]
    vae = SometimesVAE(inputs, ["CCO", "CCCC"])
    result = stochastic_reconstruction(vae, inputs, encodings=3, decodes=4)
    # OCC: 3 of its 12 decodes are OCC; benzene: none. Share of all 24 decodes: 3/24; OCC has
    # at least one, benzene none: any = 1/2
    assert result["share"] == pytest.approx(3 / 24)
    assert result["any"] == pytest.approx(0.5)


def test_stochastic_reconstruction_of_a_trained_model(trained_smiles_run):
    from seqvae import load
    vae = load(trained_smiles_run / "model.pt", device="cpu")
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]
    first = stochastic_reconstruction(vae, smiles, encodings=2, decodes=3, seed=1)
    assert first == stochastic_reconstruction(vae, smiles, encodings=2, decodes=3, seed=1)
    assert 0.0 <= first["share"] <= first["any"] <= 1.0
