"""DeLong's test of the difference of two correlated ROC AUCs (two models, same test images).

Definitions (DeLong, DeLong & Clarke-Pearson, Biometrics 44:837-845, 1988). Of the test images
``m`` are positive, with scores ``X_1..X_m``, and ``n`` negative, with scores ``Y_1..Y_n``
(one set of scores per model ``r``). With the Mann-Whitney kernel

    psi(x, y) = 1 if x > y,  1/2 if x = y,  0 if x < y

the AUC of model ``r`` is ``A_r = 1/(m n) sum_i sum_j psi(X_i, Y_j)`` (equal to the trapezoidal
ROC area, ``sklearn.metrics.roc_auc_score``). Its structural components (placement values) are

    V10_r(i) = 1/n sum_j psi(X_i, Y_j)     for each positive i,
    V01_r(j) = 1/m sum_i psi(X_i, Y_j)     for each negative j,

so ``A_r`` is the mean of either. Their sample covariances across the two models,

    S10[r, s] = 1/(m - 1) sum_i (V10_r(i) - A_r)(V10_s(i) - A_s),
    S01[r, s] = 1/(n - 1) sum_j (V01_r(j) - A_r)(V01_s(j) - A_s),

give the covariance matrix of the AUCs ``S = S10 / m + S01 / n``. For the difference
``d = A_a - A_b``: ``Var(d) = S[a, a] + S[b, b] - 2 S[a, b]``, ``z = d / sqrt(Var(d))``, the
two-sided p-value ``2 (1 - Phi(|z|))`` and the confidence interval ``d -/+ Phi^-1((1 + c)/2)
sqrt(Var(d))`` (normal approximation, ``Phi`` the standard normal distribution function). When
``Var(d) = 0`` (e.g. both models separate the classes perfectly) ``z`` is undefined: the
p-value is 1 if ``d = 0`` and 0 otherwise, and the interval is ``[d, d]``.

The placement values are computed with midranks in ``O((m + n) log(m + n))`` (Sun & Xu, IEEE
Signal Processing Letters 21:1389-1393, 2014): with ``T_z`` the midrank of a score among all
``m + n`` scores, ``T_x`` among the positives and ``T_y`` among the negatives,
``V10(i) = (T_z(i) - T_x(i)) / n`` and ``V01(j) = 1 - (T_z(j) - T_y(j)) / m``. The tests check
them against the explicit double loop over ``psi``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Sequence, Tuple

import numpy as np
from scipy.stats import norm


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` with ties given the mean of the ranks they occupy."""
    values = np.asarray(values, np.float64).reshape(-1)
    order = np.argsort(values, kind='mergesort')
    ordered = values[order]
    # Start and end (exclusive) positions of each run of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_rank = (starts + 1 + ends) / 2.0       # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def placement_values(positive: np.ndarray, score: np.ndarray) -> Tuple[float, np.ndarray,
                                                                         np.ndarray]:
    """``(AUC, V10, V01)`` of one model (module docstring), by the midrank method."""
    positive = np.asarray(positive, bool).reshape(-1)
    score = np.asarray(score, np.float64).reshape(-1)
    x, y = score[positive], score[~positive]
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        raise ValueError(f'DeLong needs positives and negatives, got {m} and {n}')
    t_z = midranks(np.r_[x, y])
    v10 = (t_z[:m] - midranks(x)) / n
    v01 = 1.0 - (t_z[m:] - midranks(y)) / m
    return float(v10.mean()), v10, v01


@dataclass
class DeLongResult:
    """DeLong's test of ``AUC(A) - AUC(B)`` on the same test images.

    Attributes:
        auc_a, auc_b: The two AUCs.
        difference: ``auc_a - auc_b``.
        var_a, var_b, covariance: DeLong's variances of the AUCs and their covariance.
        se: Standard error of the difference, ``sqrt(var_a + var_b - 2 covariance)``.
        z: ``difference / se`` (NaN when ``se = 0``).
        p_value: Two-sided p-value of ``AUC(A) = AUC(B)``.
        low, high: Normal-approximation confidence interval of the difference.
        confidence: Interval level, e.g. 0.95.
        num_positive, num_negative: ``m`` and ``n``.
    """
    auc_a: float
    auc_b: float
    difference: float
    var_a: float
    var_b: float
    covariance: float
    se: float
    z: float
    p_value: float
    low: float
    high: float
    confidence: float
    num_positive: int
    num_negative: int

    def to_dict(self) -> Dict[str, object]:
        """Plain dict; NaN as None (JSON)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


def delong_test(positive: Sequence[bool], score_a: Sequence[float], score_b: Sequence[float],
                confidence: float = 0.95) -> DeLongResult:
    """DeLong's test of two correlated ROC AUCs.

    Args:
        positive: Whether each test image is positive, ``[N]``.
        score_a, score_b: Scores of models A and B for the positive class, ``[N]``, same images
            in the same order (higher = more likely positive).
        confidence: Level of the interval of the difference, in (0, 1).

    Raises:
        ValueError: Mismatched lengths, a bad level, or fewer than two positives or negatives
            (the sample covariances need at least two of each).
    """
    positive = np.asarray(positive, bool).reshape(-1)
    score_a = np.asarray(score_a, np.float64).reshape(-1)
    score_b = np.asarray(score_b, np.float64).reshape(-1)
    if not (len(positive) == len(score_a) == len(score_b)):
        raise ValueError(f'{len(positive)} labels but {len(score_a)} and {len(score_b)} scores')
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence}')
    if not (np.isfinite(score_a).all() and np.isfinite(score_b).all()):
        raise ValueError('scores must be finite')
    m = int(positive.sum())
    n = len(positive) - m
    if m < 2 or n < 2:
        raise ValueError(f'DeLong needs at least two positives and two negatives, got {m} '
                         f'and {n}')
    auc_a, v10_a, v01_a = placement_values(positive, score_a)
    auc_b, v10_b, v01_b = placement_values(positive, score_b)
    s10 = np.cov(np.stack([v10_a, v10_b]), ddof=1)
    s01 = np.cov(np.stack([v01_a, v01_b]), ddof=1)
    s = s10 / m + s01 / n
    var_a, var_b, cov = float(s[0, 0]), float(s[1, 1]), float(s[0, 1])
    d = auc_a - auc_b
    var_d = max(var_a + var_b - 2 * cov, 0.0)
    se = math.sqrt(var_d)
    if se > 1e-15:
        z = d / se
        p_value = float(2 * norm.sf(abs(z)))
        half = float(norm.ppf((1 + confidence) / 2)) * se
        low, high = d - half, d + half
    else:
        z = math.nan
        p_value = 1.0 if abs(d) < 1e-15 else 0.0
        low = high = d
    return DeLongResult(auc_a=auc_a, auc_b=auc_b, difference=d, var_a=var_a, var_b=var_b,
                        covariance=cov, se=se, z=z, p_value=p_value, low=low, high=high,
                        confidence=confidence, num_positive=m, num_negative=n)
