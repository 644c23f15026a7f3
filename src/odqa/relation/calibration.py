"""Calibration of a relation model on held-out labelled sentences: a temperature and one bias per
label (bias-corrected temperature scaling, Alexandari et al. 2020), fitted by the negative log
likelihood of the gold labels and then applied to the logits of every prediction.

A briefly trained model is under-confident and biased towards the labels it met first; both are
read off sentences it was not trained on (a held-out part of the training data, never the set it is
then scored on). The bias is kept small by an L2 penalty so a label missing from the held-out
sentences is not pushed to -∞."""

from __future__ import annotations

import numpy as np

from odqa.errors import OdqaError

MIN_EXAMPLES = 50


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    # a label ruled out by --restrict-types has probability ~0: keep it out of reach, not -inf
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), 1e-30))


def _softmax(z: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return softmax(z, axis=1)


def apply_calibration(probabilities: np.ndarray, temperature: float, bias) -> np.ndarray:
    """softmax(log p / temperature + bias): the same as the model's softmax(logits / T + bias),
    since log p differs from the logits by one constant per row."""
    z = _log_probabilities(probabilities) / temperature + np.asarray(bias, dtype=np.float64)
    return _softmax(z)


def fit_calibration(probabilities: np.ndarray, gold, l2: float = 1e-3) -> dict:
    """The temperature and per-label bias that minimise the mean negative log likelihood of `gold`
    (label indices) under `probabilities` (uncalibrated, examples × labels), with an L2 penalty on
    the bias; with the likelihood before and after."""
    from scipy.optimize import minimize

    log_p = _log_probabilities(probabilities)
    gold = np.asarray(gold, dtype=np.int64)
    if log_p.ndim != 2 or len(log_p) != len(gold):
        raise OdqaError(f"{len(gold)} gold labels for probabilities of shape {log_p.shape}")
    if len(gold) < MIN_EXAMPLES:
        raise OdqaError(f"calibration needs at least {MIN_EXAMPLES} labelled sentences, got {len(gold)}")
    rows = np.arange(len(gold))
    labels = log_p.shape[1]

    def objective(x):
        temperature, bias = np.exp(x[0]), x[1:]
        q = _softmax(log_p / temperature + bias)
        nll = -np.log(np.maximum(q[rows, gold], 1e-300)).mean()
        g = q.copy()
        g[rows, gold] -= 1.0
        g /= len(gold)
        grad_bias = g.sum(0) + 2 * l2 * bias
        grad_log_t = -(g * log_p).sum() / temperature  # d z / d log T = -log p / T
        return nll + l2 * float(bias @ bias), np.concatenate([[grad_log_t], grad_bias])

    start = np.zeros(labels + 1)
    before = float(objective(start)[0])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(-5, 5)] + [(None, None)] * labels)
    temperature, bias = float(np.exp(result.x[0])), result.x[1:]
    after = -np.log(np.maximum(apply_calibration(probabilities, temperature, bias)[rows, gold], 1e-300)).mean()
    return {
        "temperature": temperature,
        "bias": [float(b) for b in bias],
        "examples": len(gold),
        "nll_before": before,
        "nll_after": float(after),
    }


def fit_on(classifier, examples, batch_size: int = 64, progress: bool = False) -> tuple[dict, np.ndarray, list[int]]:
    """Fit `classifier`'s calibration on labelled `examples` (its predictions without calibration);
    returns (the fit, those predictions, the gold label indices). The classifier is left calibrated."""
    index = {label: i for i, label in enumerate(classifier.labels)}
    gold = [index[e.label] for e in examples]
    raw = classifier.calibrate(None).predict(examples, batch_size=batch_size, progress=progress)
    fitted = fit_calibration(raw, gold)
    classifier.calibrate(fitted, f"{len(examples)} sentences")
    return fitted, raw, gold
