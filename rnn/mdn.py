"""The mixture-density head of M in NumPy: layout, log density and sampling with a temperature.

No TensorFlow here: dream rollouts and controller workers use these functions.

Layout of the MDN output of one step: for each of the z_size latent dimensions, num_mixtures log mixture weights,
then num_mixtures means, then num_mixtures log standard deviations (3 * K values), so a step has 3 * K * z_size
values (480 for CarRacing: K = 5, z = 32).
"""

from __future__ import annotations

import math

import numpy as np

LOG_SQRT_TWO_PI = 0.5 * math.log(2.0 * math.pi)


def split_mdn_params(output: np.ndarray, num_mixtures: int):
    """(..., 3*K*z) -> log_pi, mu, log_sigma, each (..., z, K); log_pi normalised over K (log-softmax)."""
    grouped = output.reshape(output.shape[:-1] + (-1, 3 * num_mixtures))
    log_pi, mu, log_sigma = np.split(grouped, 3, axis=-1)
    log_pi = log_pi - _logsumexp(log_pi, axis=-1, keepdims=True)
    return log_pi, mu, log_sigma


def mixture_log_density(log_pi, mu, log_sigma, target):
    """log p(target) under the per-dimension mixtures: params (..., z, K), target (..., z) -> (..., z)."""
    standardized = (target[..., None] - mu) * np.exp(-log_sigma)
    log_gaussian = -0.5 * standardized**2 - log_sigma - LOG_SQRT_TWO_PI
    return _logsumexp(log_pi + log_gaussian, axis=-1)


def sample_mdn(log_pi, mu, log_sigma, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """Draw z (..., z) from the mixtures (..., z, K) at temperature tau.

    As in the paper: mixture weights are softmax(log_pi / tau) and each Gaussian's sigma is scaled by sqrt(tau),
    so tau < 1 makes dreams more predictable and tau > 1 makes them harder (the Doom agent trains at tau = 1.15).
    """
    uniform = rng.random(mu.shape[:-1])
    noise = rng.standard_normal(mu.shape[:-1])
    return sample_mdn_from_noise(log_pi, mu, log_sigma, temperature, uniform, noise)


def sample_mdn_from_noise(log_pi, mu, log_sigma, temperature: float, uniform: np.ndarray,
                          noise: np.ndarray) -> np.ndarray:
    """`sample_mdn` with its random numbers given: uniform (..., z) in [0, 1) picks each dimension's component
    (inverse CDF of the tempered weights), noise (..., z) standard normal draws within it. -> z (..., z) float32.

    log_pi may be unnormalised (softmax does not change when a constant is added to every log weight), which saves
    the dream a log-softmax. The dream (dream.py) draws uniform and noise per episode from the episode's own
    generator, so what an episode samples does not depend on the other episodes stepped beside it.
    """
    tau = max(float(temperature), 1e-6)
    logits = log_pi / tau
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))  # softmax(log_pi / tau) up to its sum
    cumulative = np.cumsum(weights, axis=-1)
    threshold = uniform * cumulative[..., -1]
    component = np.minimum((threshold[..., None] > cumulative).sum(axis=-1), cumulative.shape[-1] - 1)
    chosen_mu = np.take_along_axis(mu, component[..., None], axis=-1)[..., 0]
    chosen_log_sigma = np.take_along_axis(log_sigma, component[..., None], axis=-1)[..., 0]
    return (chosen_mu + np.exp(chosen_log_sigma) * math.sqrt(tau) * noise).astype(np.float32)


def _logsumexp(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    peak = np.max(x, axis=axis, keepdims=True)
    total = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return total if keepdims else np.squeeze(total, axis=axis)
