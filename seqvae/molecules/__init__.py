"""Molecule-only parts of seqvae: RDKit chemistry, the MOSES corpus and metrics, molecule
evaluation and reconstruction, the property head and gradient-based latent optimisation.

Nothing is imported here, so that importing one module does not pull RDKit-heavy others in.
"""
