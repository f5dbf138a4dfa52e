import numpy as np
import torch

from seqvae.metrics import dimension_usage
from seqvae.plots import plot_latent_usage, plot_path_norms, plot_path_resemblance
from seqvae.text.interpolation import path


def test_latent_usage_plot_writes_a_png(tmp_path):
    mu = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.01]])
    fig = plot_latent_usage(dimension_usage(mu, torch.zeros(2, 3)), tmp_path / "usage.png")
    assert (tmp_path / "usage.png").stat().st_size > 0
    assert "1 of 3 dimensions active" in fig.axes[0].get_title()


def test_path_norms_plot_writes_a_png(tmp_path):
    a, b = np.array([3.0, 0.0]), np.array([0.0, 3.0])
    fig = plot_path_norms({"linear": path(a, b, 5), "slerp": path(a, b, 5, "slerp")},
                          tmp_path / "norms.png")
    assert (tmp_path / "norms.png").stat().st_size > 0
    linear, slerp = (line.get_ydata() for line in fig.axes[0].get_lines()[:2])
    assert min(linear) < 3 - 0.5 and np.allclose(slerp, 3)


def test_path_resemblance_plot_writes_a_png(tmp_path):
    scores = np.zeros((3, 5, 2))
    scores[:, :, 0] = np.linspace(1, 0, 5)
    scores[:, :, 1] = np.linspace(0, 1, 5)
    fig = plot_path_resemblance({"linear": scores, "slerp": scores}, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
    assert len(fig.axes[0].get_lines()) == 4 and "3 pairs" in fig.axes[0].get_title()
