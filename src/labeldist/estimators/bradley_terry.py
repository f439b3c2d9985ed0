"""Bradley–Terry strengths from (soft) pairwise outcomes, many items at once (R. A. Bradley and
M. E. Terry, Biometrika 39, 1952; the likelihood's concavity and its maximisation as in D. R.
Hunter, "MM algorithms for generalized Bradley-Terry models", Annals of Statistics 32, 2004,
here by Newton's method).

Model: P(i beats j) = sigmoid(s_i - s_j). ``wins[..., i, j]`` is how much i beat j — a count,
or a probability (a soft outcome: the model's P(i is the better label)); i and j were compared
``wins[i, j] + wins[j, i]`` times. The strengths maximise

    sum_{i != j} wins_ij * log sigmoid(s_i - s_j)  -  ridge / 2 * ||s||^2

a concave function: Newton's method with the exact Hessian converges in a handful of steps,
done for all items together with batched linear solves (the original fitted each item with
5,000 Adam steps in a Python loop). With ``ridge > 0`` the optimum is unique and finite even when
one label wins every comparison; the strengths are returned centred (mean 0).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit


def bradley_terry(wins, ridge: float = 1e-2, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Strengths (..., m) for ``wins`` (..., m, m); leading axes are independent items."""
    wins = np.asarray(wins, dtype=float)
    if wins.ndim < 2 or wins.shape[-1] != wins.shape[-2]:
        raise ValueError(f"wins must be (..., m, m), got shape {wins.shape}")
    if np.isnan(wins).any() or (wins < 0).any():
        raise ValueError("wins must be non-negative numbers (no NaN)")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, not {ridge}")
    shape = wins.shape
    m = shape[-1]
    w = wins.reshape(-1, m, m).copy()
    w[:, np.arange(m), np.arange(m)] = 0.0
    total = w + w.transpose(0, 2, 1)  # comparisons of each pair
    s = np.zeros((len(w), m))
    eye = np.eye(m)
    # s -> s - mean(s) leaves the likelihood unchanged; with ridge = 0 the Hessian is singular
    # along that direction, so a tiny floor keeps the solve well posed without moving the optimum
    floor = max(ridge, 1e-12)
    for _ in range(max_iter):
        p = expit(s[:, :, None] - s[:, None, :])
        grad = (w - total * p).sum(axis=2) - ridge * s
        curvature = total * p * (1 - p)
        hessian = curvature - np.einsum("bij,ij->bij", np.broadcast_to(curvature.sum(axis=2)[:, :, None], curvature.shape), eye)
        hessian -= floor * eye
        step = np.linalg.solve(-hessian, grad[:, :, None])[:, :, 0]
        s = s + _damped(step, s, w, total, ridge)
        if np.max(np.abs(step), initial=0.0) < tol:
            break
    s -= s.mean(axis=1, keepdims=True)
    return s.reshape(shape[:-1])


def log_likelihood(strengths, wins, ridge: float = 0.0) -> np.ndarray:
    """The objective above, per item."""
    s = np.asarray(strengths, dtype=float)
    w = np.asarray(wins, dtype=float).copy()
    m = w.shape[-1]
    w[..., np.arange(m), np.arange(m)] = 0.0
    d = s[..., :, None] - s[..., None, :]
    return (w * log_expit(d)).sum(axis=(-1, -2)) - ridge / 2 * (s**2).sum(axis=-1)


def _damped(step: np.ndarray, s: np.ndarray, w, total, ridge) -> np.ndarray:
    """Halve an item's Newton step until its objective does not fall (rarely needed: the
    objective is concave, but a full step from far away can overshoot)."""
    before = log_likelihood(s, w, ridge)
    scale = np.ones(len(s))
    for _ in range(30):
        after = log_likelihood(s + scale[:, None] * step, w, ridge)
        worse = after < before - 1e-12 * np.abs(before)
        if not worse.any():
            break
        scale = np.where(worse, scale / 2, scale)
    return scale[:, None] * step
