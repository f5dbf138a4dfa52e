"""Sentence-only parts of seqvae: the Penn Treebank corpus, latent interpolation, and the
measures of interpolation quality.

Nothing is imported here, so that importing one module does not pull the others in.
"""
