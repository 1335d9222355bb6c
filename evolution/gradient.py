"""The optimizers that estimate the reward's gradient from a population and follow it with Adam: OpenES (one
isotropic sigma) and PEPG (a sigma per parameter, estool's "ses")."""

from __future__ import annotations

import numpy as np

from evolution.strategy import _DECAY_RANGES, EvolutionStrategy, _checked_sigma, _initial_mean, centered_ranks


class Adam:
    """Adam (Kingma & Ba 2015) for gradient ASCENT: `step(gradient)` returns the change to add to the parameters.

    beta1 = 0.99 as in estool: the evolution-strategy gradient estimates are noisy, so momentum averages longer.
    """

    FIELDS = {"learning_rate": "positive", "beta1": "float", "beta2": "float", "epsilon": "positive",
              "first_moment": "vector", "second_moment": "vector", "steps": "count"}
    # 1 - beta ** steps divides: a beta of 1 divides by zero
    RANGES = {f"adam.{name}": (lambda v: 0 <= v < 1, "from 0 to below 1") for name in ("beta1", "beta2")}

    def __init__(self, num_params: int, learning_rate: float, beta1: float = 0.99, beta2: float = 0.999,
                 epsilon: float = 1e-8):
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.first_moment = np.zeros(num_params)
        self.second_moment = np.zeros(num_params)
        self.steps = 0

    def step(self, gradient: np.ndarray) -> np.ndarray:
        self.steps += 1
        self.first_moment = self.beta1 * self.first_moment + (1 - self.beta1) * gradient
        self.second_moment = self.beta2 * self.second_moment + (1 - self.beta2) * np.square(gradient)
        first = self.first_moment / (1 - self.beta1 ** self.steps)
        second = self.second_moment / (1 - self.beta2 ** self.steps)
        return self.learning_rate * first / (np.sqrt(second) + self.epsilon)


_ADAM_FIELDS = {f"adam.{name}": kind for name, kind in Adam.FIELDS.items()}  # an optimizer's Adam, in its FIELDS


class OpenES(EvolutionStrategy):
    """OpenAI's evolution strategy (Salimans et al. 2017, "Evolution Strategies as a Scalable Alternative to RL").

    Samples mean + sigma * eps with one isotropic sigma, antithetic pairs (eps, -eps) when `antithetic` (popsize
    must then be even), estimates the reward gradient from centered ranks, and follows it with Adam. sigma
    shrinks by `sigma_decay` a generation down to `sigma_limit`.
    """

    FIELDS = {**EvolutionStrategy.FIELDS, "antithetic": "bool", "mean": "vector", "sigma": "positive",
              "sigma_decay": "float", "sigma_limit": "float", "noise": "population?", **_ADAM_FIELDS}
    RANGES = {**EvolutionStrategy.RANGES, **_DECAY_RANGES, **Adam.RANGES}

    def _problem(self) -> str | None:
        if self.antithetic and self.popsize % 2:
            return f"antithetic sampling needs an even population, got {self.popsize}"
        return super()._problem()

    def __init__(self, num_params: int, popsize: int, sigma_init: float = 0.1, sigma_decay: float = 0.999,
                 weight_decay: float = 0.01, antithetic: bool = True, seed: int = 0, x0=None, *,
                 learning_rate: float = 0.01, sigma_limit: float = 0.01):
        super().__init__(num_params, popsize, weight_decay, seed)
        sigma_init = _checked_sigma(sigma_init)
        if antithetic and self.popsize % 2:
            raise ValueError(f"antithetic sampling pairs every solution with its mirror image, so popsize must be "
                             f"even, got {popsize}")
        self.antithetic = bool(antithetic)
        self.mean = _initial_mean(x0, self.num_params)
        self.sigma = float(sigma_init)
        self.sigma_decay = float(sigma_decay)
        self.sigma_limit = float(sigma_limit)
        self.adam = Adam(self.num_params, learning_rate)
        self.noise: np.ndarray | None = None  # (popsize, num_params) the eps of the last ask

    def _sample(self) -> np.ndarray:
        if self.antithetic:
            half = self.rng.standard_normal((self.popsize // 2, self.num_params))
            self.noise = np.concatenate([half, -half])
        else:
            self.noise = self.rng.standard_normal((self.popsize, self.num_params))
        return self.mean + self.sigma * self.noise

    def _update(self, fitness: np.ndarray) -> None:
        gradient = self.noise.T @ centered_ranks(fitness) / (self.popsize * self.sigma)
        self.mean = self.mean + self.adam.step(gradient)
        self.sigma = max(self.sigma * self.sigma_decay, self.sigma_limit)

    def current_param(self) -> np.ndarray:
        return self.mean.copy()

    def sigma_vector(self) -> np.ndarray:
        return np.full(self.num_params, self.sigma)

    def set_mean(self, params: np.ndarray) -> None:
        self.mean = _initial_mean(params, self.num_params)


class PEPG(EvolutionStrategy):
    """Parameter-exploring policy gradients (Sehnke et al. 2010) with symmetric sampling; estool calls it "ses".

    Each of popsize/2 perturbations eps ~ N(0, diag(sigma^2)) is tried both ways (mean + eps, mean - eps), so popsize
    must be even. From centered ranks: the mean follows sum eps / sigma^2 (r+ - r-) / 2 with Adam; each sigma follows
    sum ((r+ + r-) / 2 - baseline) (eps^2 - sigma^2) / sigma, the baseline being the average reward, each step
    clipped to `sigma_max_change` of sigma. sigma then shrinks by `sigma_decay` down to `sigma_limit`.
    `antithetic` is ignored (the sampling is always symmetric).
    """

    FIELDS = {**EvolutionStrategy.FIELDS, "mean": "vector", "sigma": "positive vector", "sigma_decay": "float",
              "sigma_limit": "float", "sigma_learning_rate": "float", "sigma_max_change": "float",
              "perturbations": "half_population?", **_ADAM_FIELDS}
    RANGES = {**EvolutionStrategy.RANGES, **_DECAY_RANGES, **Adam.RANGES,
              "sigma_learning_rate": (lambda v: v >= 0, "0 or more"),
              "sigma_max_change": (lambda v: 0 <= v < 1, "from 0 to below 1 (a change of sigma by all of it could "
                                   "make it 0)")}

    def _problem(self) -> str | None:
        if self.popsize % 2:
            return f"PEPG needs an even population, got {self.popsize}"
        return super()._problem()

    def __init__(self, num_params: int, popsize: int, sigma_init: float = 0.1, sigma_decay: float = 0.999,
                 weight_decay: float = 0.01, antithetic: bool = True, seed: int = 0, x0=None, *,
                 learning_rate: float = 0.01, sigma_learning_rate: float = 0.2, sigma_max_change: float = 0.2,
                 sigma_limit: float = 0.01):
        super().__init__(num_params, popsize, weight_decay, seed)
        sigma_init = _checked_sigma(sigma_init)
        if self.popsize % 2:
            raise ValueError(f"PEPG tries every perturbation both ways, so popsize must be even, got {popsize}")
        self.mean = _initial_mean(x0, self.num_params)
        self.sigma = np.full(self.num_params, float(sigma_init))
        self.sigma_decay = float(sigma_decay)
        self.sigma_limit = float(sigma_limit)
        self.sigma_learning_rate = float(sigma_learning_rate)
        self.sigma_max_change = float(sigma_max_change)
        self.adam = Adam(self.num_params, learning_rate)
        self.perturbations: np.ndarray | None = None  # (popsize/2, num_params) the eps of the last ask

    def _sample(self) -> np.ndarray:
        self.perturbations = self.sigma * self.rng.standard_normal((self.popsize // 2, self.num_params))
        return np.concatenate([self.mean + self.perturbations, self.mean - self.perturbations])

    def _update(self, fitness: np.ndarray) -> None:
        ranks = centered_ranks(fitness)
        half = self.popsize // 2
        plus, minus = ranks[:half], ranks[half:]
        # The likelihood-ratio gradient eps / sigma^2 (not Sehnke's sigma^2-scaled eps): Adam remembers the
        # gradient's scale for ~1000 steps, so an estimate that shrank with sigma would shrink Adam's steps too.
        gradient = (self.perturbations / np.square(self.sigma)).T @ ((plus - minus) / 2) / half
        self.mean = self.mean + self.adam.step(gradient)

        spread = np.std(ranks)
        if spread > 0:
            scores = (plus + minus) / 2 - np.mean(ranks)
            directions = (np.square(self.perturbations) - np.square(self.sigma)) / self.sigma
            change = self.sigma_learning_rate * (scores @ directions) / (half * spread)
            limit = self.sigma_max_change * self.sigma
            self.sigma = self.sigma + np.clip(change, -limit, limit)
        self.sigma = np.maximum(self.sigma * self.sigma_decay, self.sigma_limit)

    def current_param(self) -> np.ndarray:
        return self.mean.copy()

    def sigma_vector(self) -> np.ndarray:
        return self.sigma.copy()

    def set_mean(self, params: np.ndarray) -> None:
        self.mean = _initial_mean(params, self.num_params)
