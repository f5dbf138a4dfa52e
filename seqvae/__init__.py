"""seqvae: a GRU sequence variational autoencoder for sentences and SMILES molecules.

    >>> import seqvae
    >>> vae = seqvae.load("runs/moses/model.pt")
    >>> vae.sample(3)
"""
__version__ = "0.1.0"

from .api import TrainedVAE, load  # noqa: E402

__all__ = ["TrainedVAE", "load", "__version__"]
