"""Temperature scaling against a closed-form hand example and a brute-force grid (scipy)."""
import math

import numpy as np
import pytest
from scipy.optimize import brute
from scipy.special import softmax

from hifuse_mm.evaluation.temperature import apply_temperature, fit_temperature, nll


def grid_nll(z, y, temperature):
    """NLL written out with softmax probabilities (not log-softmax)."""
    p = softmax(z / temperature, axis=1)
    with np.errstate(divide='ignore'):  # p underflows to 0 at the grid's tiny T: NLL = inf
        return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def test_hand_example():
    # four samples with logits (2, 0), three of class 0: NLL is minimal where
    # sigmoid(2 / T) = 3/4, i.e. 2 / T = ln 3, T = 2 / ln 3
    z = np.array([[2.0, 0.0]] * 4)
    y = np.array([0, 0, 0, 1])
    t = fit_temperature(z, y)
    assert t == pytest.approx(2 / math.log(3), rel=1e-5)
    assert apply_temperature(z, t)[0] == pytest.approx([0.75, 0.25], rel=1e-5)
    expected_nll = -(3 * math.log(0.75) + math.log(0.25)) / 4
    assert nll(z, y, t) == pytest.approx(expected_nll, rel=1e-8)
    # T = 1 is the plain softmax
    assert apply_temperature(z, 1.0)[0] == pytest.approx(
        [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)])


@pytest.mark.parametrize('seed,scale', [(0, 4.0), (1, 0.3), (2, 1.0), (3, 2.5)])
def test_random_against_brute_force(seed, scale):
    rng = np.random.default_rng(seed)
    n, num_classes = 200, 5
    y = rng.integers(0, num_classes, n)
    z = scale * (rng.normal(size=(n, num_classes)) + 1.2 * np.eye(num_classes)[y])
    t = fit_temperature(z, y)
    assert t > 0
    # brute force over log T on a fine grid, then polished by scipy's fmin
    log_t = brute(lambda v: grid_nll(z, y, math.exp(v[0])), [(math.log(1e-2), math.log(1e2))],
                  Ns=2001, finish=None)
    t_grid = math.exp(float(np.atleast_1d(log_t)[0]))
    assert t == pytest.approx(t_grid, rel=5e-3)
    assert nll(z, y, t) <= grid_nll(z, y, t_grid) + 1e-9
    assert nll(z, y, t) == pytest.approx(grid_nll(z, y, t), rel=1e-10)
    # never worse than uncalibrated on the fitting set
    assert nll(z, y, t) <= nll(z, y, 1.0) + 1e-12
    # over-confident logits get T > 1, under-confident ones T < 1
    if scale >= 2.5:
        assert t > 1
    if scale <= 0.3:
        assert t < 1


@pytest.mark.parametrize('temperature', [0.05, 0.5, 1.0, 1.7, 30.0])
def test_accuracy_unchanged(temperature):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(300, 7)) * 3
    y = rng.integers(0, 7, 300)
    probs = apply_temperature(z, temperature)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(probs.argmax(1), z.argmax(1))
    assert np.mean(probs.argmax(1) == y) == np.mean(z.argmax(1) == y)
    np.testing.assert_allclose(probs, softmax(z / temperature, axis=1), rtol=1e-10)


def test_bad_inputs():
    z = np.array([[1.0, 0.0], [0.0, 1.0]])
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match='temperature'):
            apply_temperature(z, bad)
    with pytest.raises(ValueError, match='at least one sample'):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match='outside'):
        fit_temperature(z, [0, 2])
    with pytest.raises(ValueError, match='bounds'):
        fit_temperature(z, [0, 1], bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match='finite'):
        nll(np.array([[math.nan, 0.0]]), [0])
    # already perfectly uncertain logits: nothing to gain, T = 1 is kept
    assert fit_temperature(np.zeros((4, 3)), [0, 1, 2, 0]) == 1.0


def test_a_perfectly_separated_split_has_no_temperature_to_fit():
    """Every prediction right with a margin: NLL(T) falls monotonically as T -> 0, so the
    optimum is the search bound; that is refused, not returned as a 'fitted' temperature."""
    from hifuse_mm.evaluation.temperature import TemperatureFitError
    z = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0], [-1.0, 0.0, 1.5], [4.0, 1.0, 0.0]])
    y = z.argmax(1)
    assert nll(z, y, 0.5) < nll(z, y, 1.0) < nll(z, y, 2.0)  # monotone: sharper is "better"
    with pytest.raises(TemperatureFitError, match='all 4 predictions of the fitting set are '
                       'right'):
        fit_temperature(z, y)
    # One error with a large margin makes the NLL turn up again: an inner optimum exists.
    y_err = y.copy()
    y_err[0] = 2
    t = fit_temperature(z, y_err)
    assert 0.01 < t < 100
    assert nll(z, y_err, t) <= min(nll(z, y_err, t * 1.05), nll(z, y_err, t / 1.05)) + 1e-9


def test_temperature_section_records_why_none_was_fitted():
    from hifuse_mm.evaluation.medical_metrics import LastEvaluation
    from hifuse_mm.evaluation.validation_choices import temperature_section
    scores = softmax(np.array([[3.0, 0.0], [0.0, 3.0], [2.0, 0.0], [0.0, 2.5]]), axis=1)
    labels = scores.argmax(1)

    def evaluation(labels, scores):
        from hifuse_mm.evaluation import evaluate_predictions
        return LastEvaluation(evaluation=evaluate_predictions(labels, scores, classes=['a', 'b']),
                              labels=labels, preds=scores.argmax(1), scores=scores,
                              images=[''] * len(labels), ece_bins=15)

    section = temperature_section(evaluation(labels, scores), evaluation(labels, scores))
    assert section['temperature'] is None and 'after' not in section
    assert 'perfectly separated' in section['not_fitted']
    assert section['before']['accuracy'] == 1.0
