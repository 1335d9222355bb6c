"""The simple genetic algorithm: truncation selection with elitism and Gaussian mutation."""

from __future__ import annotations

import numpy as np

from evolution.strategy import _DECAY_RANGES, EvolutionStrategy, _checked_sigma, _initial_mean


class SimpleGA(EvolutionStrategy):
    """A simple genetic algorithm: truncation selection with elitism and Gaussian mutation (Such et al. 2017,
    "Deep Neuroevolution"; estool's SimpleGA without its crossover).

    The best `elite_ratio` of each generation become the parents; the next population is the best parent unchanged
    (re-evaluated, so a lucky noisy score does not stick) plus children = a random parent + sigma * N(0, I).
    sigma shrinks by `sigma_decay` a generation down to `sigma_limit`. `antithetic` is ignored.
    """

    FIELDS = {**EvolutionStrategy.FIELDS, "elite": "rows", "sigma": "positive", "sigma_decay": "float",
              "sigma_limit": "float"}
    RANGES = {**EvolutionStrategy.RANGES, **_DECAY_RANGES}

    def __init__(self, num_params: int, popsize: int, sigma_init: float = 0.1, sigma_decay: float = 0.999,
                 weight_decay: float = 0.01, antithetic: bool = True, seed: int = 0, x0=None, *,
                 elite_ratio: float = 0.1, sigma_limit: float = 0.01):
        super().__init__(num_params, popsize, weight_decay, seed)
        sigma_init = _checked_sigma(sigma_init)
        if not 0 < elite_ratio <= 1:
            raise ValueError(f"elite_ratio must be in (0, 1], got {elite_ratio}")
        elite_count = max(1, int(self.popsize * elite_ratio))
        self.elite = np.tile(_initial_mean(x0, self.num_params), (elite_count, 1))  # best first
        self.sigma = float(sigma_init)
        self.sigma_decay = float(sigma_decay)
        self.sigma_limit = float(sigma_limit)

    def _sample(self) -> np.ndarray:
        parents = self.elite[self.rng.integers(len(self.elite), size=self.popsize)]
        children = parents + self.sigma * self.rng.standard_normal((self.popsize, self.num_params))
        children[0] = self.elite[0]
        return children

    def _update(self, fitness: np.ndarray) -> None:
        order = np.argsort(-fitness, kind="stable")
        self.elite = self.solutions[order[:len(self.elite)]].copy()
        self.sigma = max(self.sigma * self.sigma_decay, self.sigma_limit)

    def current_param(self) -> np.ndarray:
        return self.elite[0].copy()

    def sigma_vector(self) -> np.ndarray:
        return np.full(self.num_params, self.sigma)

    def set_mean(self, params: np.ndarray) -> None:
        self.elite[0] = _initial_mean(params, self.num_params)  # the best parent is the GA's mean
