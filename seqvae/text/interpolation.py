"""Paths through latent space between two codes: the homotopies of Bowman et al. 2016.

Linear paths cut through the middle of the prior, where a Gaussian in many dimensions has
little mass (the norm of z ~ N(0, I) concentrates near sqrt(D)); spherical interpolation
(slerp, Shoemake 1985; White 2016 for generative models) keeps the norm in between.
"""
from __future__ import annotations

import numpy as np

PATHS = ("linear", "slerp")


def linear_path(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` evenly spaced points from a to b, both included: (D,), (D,) -> (steps, D)."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return (1 - t) * a[None] + t * b[None]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of the angle between two non-zero codes, unclipped: (D,), (D,) -> float.
    Rounded in floating point, it can fall a few ulps outside [-1, 1]."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def slerp_path(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation from a to b, both included: (D,), (D,) -> (steps, D).

    Moves along the great circle between the directions of a and b while the norm changes
    linearly from |a| to |b|. Falls back to the linear path when the angle is tiny.
    """
    t = np.linspace(0.0, 1.0, steps)[:, None]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return linear_path(a, b, steps)
    # Rounding can put the cosine of (anti)parallel codes just past +-1, where arccos is NaN.
    cos = np.clip(cosine(a, b), -1.0, 1.0)
    omega = np.arccos(cos)
    if omega < 1e-4:
        return linear_path(a, b, steps)
    ua, ub = a / na, b / nb
    direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return direction * ((1 - t) * na + t * nb)


def path(a: np.ndarray, b: np.ndarray, steps: int, kind: str = "linear") -> np.ndarray:
    """The points of a ``linear`` or ``slerp`` path, endpoints included: (steps, D) float32."""
    if steps < 2:
        raise ValueError("a path needs at least 2 points (its two endpoints)")
    if kind not in PATHS:
        raise ValueError(f"unknown path {kind!r}; choose one of {', '.join(PATHS)}")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    points = linear_path(a, b, steps) if kind == "linear" else slerp_path(a, b, steps)
    return points.astype(np.float32)


def dimension_sweep(code: np.ndarray, dim: int, values: np.ndarray) -> np.ndarray:
    """Copies of one code with a single dimension set to each of ``values`` in turn:
    (D,), dim, (n,) -> (n, D) float32. Decode them to see what that dimension changes."""
    code = np.asarray(code, dtype=np.float32)
    if code.ndim != 1:
        raise ValueError(f"expected one code of shape (D,), got {code.shape}")
    if not -code.shape[0] <= dim < code.shape[0]:
        raise ValueError(f"dimension {dim} is out of range for a code of {code.shape[0]} dimensions")
    points = np.repeat(code[None], len(values), axis=0)
    points[:, dim] = np.asarray(values, dtype=np.float32)
    return points
