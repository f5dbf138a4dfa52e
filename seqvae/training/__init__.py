"""Training: :func:`train` runs the loop of :mod:`seqvae.training.loop` over the pieces in
:mod:`~seqvae.training.run` (setup), :mod:`~seqvae.training.step` (one step),
:mod:`~seqvae.training.validation` and :mod:`~seqvae.training.run_folder` (files)."""
from .loop import train
from .step import TrainState, make_optimizer, train_step
from .validation import evaluate_elbo

__all__ = ["train", "evaluate_elbo", "make_optimizer", "train_step", "TrainState"]
