"""Temperature scaling: one temperature fitted on validation logits (Guo et al., 2017).

Definitions (``z`` the ``[n, C]`` logits, ``y`` the ``[n]`` labels, ``T > 0``):

* calibrated probabilities ``p = softmax(z / T)`` (:func:`apply_temperature`); ``T = 1`` leaves
  the model's probabilities unchanged, ``T > 1`` softens them, ``T < 1`` sharpens them;
* ``NLL(T) = -mean_i log softmax(z_i / T)[y_i]`` (natural log; :func:`nll`);
* :func:`fit_temperature` minimises ``NLL(T)`` over ``log T`` in
  ``[log T_min, log T_max]`` (default ``[0.01, 100]``) with
  ``scipy.optimize.minimize_scalar(method='bounded')``. If the optimum found is not below
  ``NLL(1)`` (a flat or already calibrated case), ``T = 1`` is returned, so the fitted NLL
  on the fitting set is never worse than the uncalibrated one. If the optimum lies at a bound
  of the search, there is no temperature to fit: :class:`TemperatureFitError` says why. The
  usual cause is a fitting set whose predictions are all right with a margin (perfectly
  separated): the NLL then keeps falling as ``T -> 0``, and the "fit" would only sharpen the
  probabilities to 0 / 1, which makes every future error infinitely costly.

Dividing by a positive constant keeps the order of every row's logits, so the predicted class
(and accuracy) is unchanged; only the confidence moves. Fit on the validation split, apply to the
test split: the test split never chooses ``T``.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

DEFAULT_BOUNDS = (1e-2, 1e2)


class TemperatureFitError(ValueError):
    """The NLL has no minimum inside the search bounds (e.g. a perfectly separated split)."""


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f'temperature must be a finite number > 0, got {temperature}')
    return temperature


def _check(logits, labels=None) -> Tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f'logits must be [n, num_classes >= 2], got shape {z.shape}')
    if not np.isfinite(z).all():
        raise ValueError('logits must be finite')
    if labels is None:
        return z, None
    y = np.asarray(labels)
    if y.shape != (len(z), ):
        raise ValueError(f'labels {y.shape} must be ({len(z)},)')
    if len(y) and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f'a label is outside 0..{z.shape[1] - 1}')
    return z, y.astype(np.int64)


def apply_temperature(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` row-wise, ``[n, C]`` float64."""
    temperature = _check_temperature(temperature)
    z, _ = _check(logits)
    return np.exp(log_softmax(z / temperature, axis=1))


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)`` (NaN when empty)."""
    temperature = _check_temperature(temperature)
    z, y = _check(logits, labels)
    if not len(y):
        return math.nan
    return float(-log_softmax(z / temperature, axis=1)[np.arange(len(y)), y].mean())


def fit_temperature(logits, labels, bounds: Tuple[float, float] = DEFAULT_BOUNDS,
                    xatol: float = 1e-6) -> float:
    """The temperature minimising :func:`nll` on ``(logits, labels)`` (validation split).

    Raises ``ValueError`` on an empty split or bad bounds (``0 < low < high``), and
    :class:`TemperatureFitError` when the optimum lies at a bound.
    """
    low, high = (float(b) for b in bounds)
    if not (0 < low < high and math.isfinite(high)):
        raise ValueError(f'bounds must satisfy 0 < low < high < inf, got {bounds}')
    z, y = _check(logits, labels)
    if not len(y):
        raise ValueError('fitting a temperature needs at least one sample')
    rows = np.arange(len(y))

    def objective(log_t: float) -> float:
        return float(-log_softmax(z / math.exp(log_t), axis=1)[rows, y].mean())

    found = minimize_scalar(objective, bounds=(math.log(low), math.log(high)),
                            method='bounded', options=dict(xatol=xatol))
    temperature = float(math.exp(found.x))
    if not low <= 1.0 <= high or objective(found.x) < objective(0.0):
        # No inner minimum: the NLL at a bound is as low as at the point found (a perfectly
        # separated split flattens to ~0 towards T -> 0, so the search stops on the plateau).
        at_bound = min(objective(math.log(low)), objective(math.log(high)))
        if at_bound <= objective(found.x) + 1e-12:
            temperature = low if objective(math.log(low)) <= objective(math.log(high)) else high
            correct = float(np.mean(z.argmax(1) == y))
            why = (f'all {len(y)} predictions of the fitting set are right and the NLL keeps '
                   'falling as T -> 0 (a perfectly separated split)' if correct == 1.0 and
                   temperature < 1 else f'{correct:.1%} of its predictions are right')
            raise TemperatureFitError(
                f'the NLL has no minimum for T within [{low:g}, {high:g}] (it is lowest at the '
                f'bound T = {temperature:g}): {why}. Temperature scaling needs a '
                'fitting split on which the model makes errors; none was fitted.')
        return temperature
    return 1.0
