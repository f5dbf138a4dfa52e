import numpy as np
import pytest

from seqvae.interpolation import path


def test_linear_path_by_hand():
    points = path(np.array([0.0, 2.0]), np.array([4.0, 0.0]), steps=3)
    assert np.allclose(points, [[0, 2], [2, 1], [4, 0]])
    assert points.dtype == np.float32


def test_slerp_keeps_the_norm_between_the_endpoints():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 3.0])
    points = path(a, b, steps=3, kind="slerp")
    assert np.allclose(points[0], a) and np.allclose(points[-1], b)
    # halfway along the quarter circle of radius 3
    assert np.allclose(points[1], [3 / np.sqrt(2), 3 / np.sqrt(2)], atol=1e-6)
    # the linear midpoint has norm 3 / sqrt(2): slerp does not shrink it
    assert np.linalg.norm(path(a, b, 3)[1]) == pytest.approx(3 / np.sqrt(2))


def test_slerp_of_parallel_codes_is_linear():
    a = np.array([1.0, 1.0])
    assert np.allclose(path(a, 2 * a, 5, "slerp"), path(a, 2 * a, 5, "linear"), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError):
        path(np.zeros(2), np.ones(2), steps=1)
    with pytest.raises(ValueError):
        path(np.zeros(2), np.ones(2), steps=3, kind="bezier")
