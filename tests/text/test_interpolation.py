import numpy as np
import pytest

from seqvae.text import interpolation
from seqvae.text.interpolation import dimension_sweep, path


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


def test_slerp_between_codes_of_different_norms_by_hand():
    # 45 degrees apart, norms 2 and sqrt(2): halfway is at 22.5 degrees with norm (2 + sqrt 2) / 2
    a, b = np.array([2.0, 0.0]), np.array([1.0, 1.0])
    points = path(a, b, steps=3, kind="slerp")
    half = np.pi / 8
    assert np.allclose(points[1], (2 + np.sqrt(2)) / 2 * np.array([np.cos(half), np.sin(half)]),
                       atol=1e-6)
    # a quarter of the way: 11.25 degrees, norm 2 - (2 - sqrt 2) / 4
    quarter = path(a, b, steps=5, kind="slerp")[1]
    assert np.allclose(quarter, (2 - (2 - np.sqrt(2)) / 4) * np.array([np.cos(half / 2),
                                                                       np.sin(half / 2)]),
                       atol=1e-6)
    assert np.allclose(points[[0, 2]], [a, b], atol=1e-6)


def test_slerp_from_or_to_the_origin_is_the_linear_path():
    b = np.array([0.0, 3.0, 4.0])
    for start, end in ((np.zeros(3), b), (b, np.zeros(3))):
        expected = path(start, end, 4, "linear")
        assert np.allclose(path(start, end, 4, "slerp"), expected)
    unit = np.array([1.0, 0.0, 0.0])                 # norm exactly 1 is not the origin
    assert np.allclose(path(unit, 2 * np.array([0.0, 1.0, 0.0]), 3, "slerp")[1],
                       1.5 * np.array([1.0, 1.0, 0.0]) / np.sqrt(2), atol=1e-6)
    assert np.allclose(path(2 * np.array([0.0, 1.0, 0.0]), unit, 3, "slerp")[1],
                       1.5 * np.array([1.0, 1.0, 0.0]) / np.sqrt(2), atol=1e-6)


def test_slerp_survives_rounding_of_the_cosine_past_plus_or_minus_one(monkeypatch):
    # Whether a dot product rounds past +-1 depends on the CPU's BLAS and SIMD width, so the
    # rounded cosines are built by hand: one ulp above 1 and one below -1.
    above, below = np.nextafter(1.0, 2.0), np.nextafter(-1.0, -2.0)
    with np.errstate(invalid="ignore"):
        assert np.isnan(np.arccos(above)) and np.isnan(np.arccos(below))  # what the clip guards
    x = np.array([0.1257302210933933, -0.1321048632913019, 0.6404226504432821])
    monkeypatch.setattr(interpolation, "cosine", lambda a, b: above)
    parallel = path(x, 5 * x, 5, "slerp")
    assert np.isfinite(parallel).all()
    assert np.allclose(parallel, path(x, 5 * x, 5, "linear"), atol=1e-6)
    y = np.array([0.10490011715303971, -0.535669373161111, 0.36159505490948474])
    monkeypatch.setattr(interpolation, "cosine", lambda a, b: below)
    opposite = path(y, -0.7 * y, 3, "slerp")           # the great circle is undefined, but
    assert np.isfinite(opposite).all()
    assert np.allclose(opposite[[0, 2]], [y, -0.7 * y], atol=1e-6)  # the endpoints hold


def test_cosine_is_the_unclipped_cosine():
    assert interpolation.cosine(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == 0.0
    assert interpolation.cosine(np.array([1.0, 1.0]), np.array([-2.0, -2.0])) == pytest.approx(-1.0)
    assert interpolation.cosine(np.array([3.0, 4.0]), np.array([4.0, 3.0])) == pytest.approx(24 / 25)


def test_two_steps_are_the_endpoints_and_low_precision_inputs_are_computed_in_double():
    a, b = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    for kind in ("linear", "slerp"):
        assert np.allclose(path(a, b, 2, kind), [a, b])
        # float16 codes are widened first: the same points as from float64 codes
        a16, b16 = a.astype(np.float16), b.astype(np.float16)
        exact = path(a16.astype(np.float64), b16.astype(np.float64), 7, kind)
        assert np.array_equal(path(a16, b16, 7, kind), exact)
        assert np.array_equal(path(a16, b, 7, kind), path(a16.astype(np.float64), b, 7, kind))
        assert np.array_equal(path(a, b16, 7, kind), path(a, b16.astype(np.float64), 7, kind))


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^a path needs at least 2 points \(its two endpoints\)$"):
        path(np.zeros(2), np.ones(2), steps=1)
    with pytest.raises(ValueError, match=r"^unknown path 'bezier'; choose one of linear, slerp$"):
        path(np.zeros(2), np.ones(2), steps=3, kind="bezier")


def test_dimension_sweep_changes_only_that_dimension():
    code = np.array([0.5, -1.0, 2.0])
    points = dimension_sweep(code, 1, np.array([-2.0, 0.0, 2.0]))
    assert points.shape == (3, 3) and points.dtype == np.float32
    assert np.allclose(points[:, 1], [-2, 0, 2])
    assert np.allclose(points[:, [0, 2]], [[0.5, 2.0]] * 3)
    with pytest.raises(ValueError):
        dimension_sweep(code, 3, np.zeros(2))
