"""seqvae: a GRU sequence variational autoencoder for sentences and SMILES molecules."""
__version__ = "0.1.0"
