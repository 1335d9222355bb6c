"""What every optimizer of es.py shares: the ask/tell bookkeeping (EvolutionStrategy: checked rewards, weight decay,
best so far), the Result it reports, centered ranks, and the checks of a starting mean and step size."""

from __future__ import annotations

import abc
import math
from typing import NamedTuple

import numpy as np

from reading import short_repr


class Result(NamedTuple):
    """What `result()` reports; read it by name."""

    best_param: np.ndarray  # (num_params,) the best solution ever told
    best_reward: float  # its reward as told (no weight decay); -inf before the first tell
    current_best_reward: float  # the best reward of the last tell; -inf before the first tell
    sigma: np.ndarray  # (num_params,) the current per-parameter search step size


def apply_weight_decay(rewards: np.ndarray, solutions: np.ndarray, weight_decay: float) -> np.ndarray:
    """Rewards (popsize,) minus `weight_decay * mean(solution**2)` per row of solutions (popsize, num_params).

    Subtracting penalises large weights: of two solutions with the same reward, the one with the smaller weights
    ranks higher. (The 2018 World Models wrapper added it with the wrong sign.)
    """
    return rewards - weight_decay * np.mean(np.square(solutions), axis=1)


def centered_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of values (n,) scaled to [-0.5, 0.5]: the worst gets -0.5, the best +0.5, ties by position.

    Rank-based fitness makes the update blind to the reward's scale and to outliers (Salimans et al. 2017).
    """
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks / max(len(values) - 1, 1) - 0.5


class EvolutionStrategy(abc.ABC):
    """The ask/tell bookkeeping every optimizer shares: checking rewards, weight decay, best-so-far.

    A subclass draws a population in `_sample()` (popsize, num_params), updates itself from the penalised rewards
    in `_update(fitness)`, reports its mean in `current_param()` and its step sizes in `sigma_vector()`, moves its
    mean in `set_mean()`, and lists in FIELDS every attribute that makes up its state: the checkpoint stores exactly
    these (kinds as evolution/checkpoint.py checks them) and rebuilds an optimizer from them, so what is not listed
    does not survive a resume, and nothing else can be put into an optimizer by a file.
    """

    FIELDS = {"num_params": "count", "popsize": "count", "weight_decay": "float", "rng": "rng",
              "solutions": "population?",  # the last ask(), waiting for its rewards
              "best_solution": "vector?", "best_reward": "reward", "current_best_reward": "reward"}
    # The range of each number whose use needs one, as (test, words): a checkpoint outside it is refused at load,
    # not a generation later (a negative weight decay rewards large weights; a sigma decay of 0 makes sigma 0, which
    # OpenES then divides by)
    RANGES = {"weight_decay": (lambda v: v >= 0, "0 or more")}

    def __init__(self, num_params: int, popsize: int, weight_decay: float = 0.01, seed: int = 0):
        if num_params < 1:
            raise ValueError(f"num_params must be at least 1, got {num_params}")
        if popsize < 2:
            raise ValueError(f"popsize must be at least 2, got {popsize}")
        if not weight_decay >= 0 or not math.isfinite(weight_decay):
            raise ValueError(f"weight_decay must be >= 0 (it penalises large weights), got {weight_decay}")
        self.num_params = int(num_params)
        self.popsize = int(popsize)
        self.weight_decay = float(weight_decay)
        self.rng = np.random.default_rng(seed)
        self.solutions: np.ndarray | None = None  # the last ask(), waiting for its rewards
        self.best_solution: np.ndarray | None = None
        self.best_reward = -math.inf
        self.current_best_reward = -math.inf

    def ask(self) -> np.ndarray:
        """A new population (popsize, num_params); the next `tell` scores these rows."""
        self.solutions = self._sample()
        return self.solutions.copy()

    def tell(self, rewards) -> None:
        """Update from rewards (popsize,), one per row of the last `ask()`, higher is better."""
        if self.solutions is None:
            raise ValueError("tell() needs the solutions of an ask() first (call ask(), evaluate, then tell())")
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.shape != (self.popsize,):
            raise ValueError(f"tell() got rewards of shape {rewards.shape}, expected ({self.popsize},): "
                             f"one reward per solution of the last ask()")
        if not np.all(np.isfinite(rewards)):
            raise ValueError(f"tell() got non-finite rewards: {rewards[~np.isfinite(rewards)]}")
        best = int(np.argmax(rewards))
        self.current_best_reward = float(rewards[best])
        if self.current_best_reward > self.best_reward:
            self.best_reward = self.current_best_reward
            self.best_solution = self.solutions[best].copy()
        self._update(apply_weight_decay(rewards, self.solutions, self.weight_decay))
        self.solutions = None

    def best_param(self) -> np.ndarray:
        """(num_params,) the best solution ever told; the current mean before the first tell."""
        return self.current_param() if self.best_solution is None else self.best_solution.copy()

    def describe(self) -> str:
        """A few words on the variant, for the training script's first line ("" when there is nothing to add)."""
        return ""

    def rms_stdev(self) -> float:
        """Root-mean-square of the per-parameter step sizes (estool's "rms sigma" column)."""
        return float(np.sqrt(np.mean(np.square(self.sigma_vector()))))

    def result(self) -> Result:
        return Result(best_param=self.best_param(), best_reward=self.best_reward,
                      current_best_reward=self.current_best_reward, sigma=self.sigma_vector())

    @abc.abstractmethod
    def current_param(self) -> np.ndarray:
        """(num_params,) the distribution's mean: the optimizer's current best guess."""

    @abc.abstractmethod
    def sigma_vector(self) -> np.ndarray:
        """(num_params,) the current search step size per parameter."""

    @abc.abstractmethod
    def set_mean(self, params: np.ndarray) -> None:
        """Move the search distribution's mean to `params` (num_params,) (estool's set_mu; 05 --retrain)."""

    def _derive(self) -> None:
        """Recompute what follows from the stored fields (strategy constants); called after a checkpoint is read."""

    def _problem(self) -> str | None:
        """What is out of range in a rebuilt optimizer (RANGES, and what ties fields together), or None."""
        for name, (test, words) in type(self).RANGES.items():
            value = _get(self, name)
            if not test(value):
                return f"{name} must be {words}, got {short_repr(value)}"
        return None

    @abc.abstractmethod
    def _sample(self) -> np.ndarray:
        """(popsize, num_params): a new population."""

    @abc.abstractmethod
    def _update(self, fitness: np.ndarray) -> None:
        """Update the distribution from the penalised rewards of the last population."""


def _initial_mean(x0, num_params: int) -> np.ndarray:
    if x0 is None:
        return np.zeros(num_params)
    mean = np.array(x0, dtype=np.float64).reshape(-1)
    if mean.shape != (num_params,):
        raise ValueError(f"x0 has {mean.size} values, expected num_params={num_params}")
    return mean


def _checked_sigma(sigma_init: float) -> float:
    if not (math.isfinite(sigma_init) and sigma_init > 0):
        raise ValueError(f"sigma_init must be a positive number (the initial search step size), got {sigma_init}")
    return float(sigma_init)


_DECAY_RANGES = {"sigma_decay": (lambda v: 0 < v <= 1, "above 0 and at most 1"),
                 "sigma_limit": (lambda v: v >= 0, "0 or more")}


def _get(optimizer: EvolutionStrategy, name: str):
    for part in name.split(".")[:-1]:
        optimizer = getattr(optimizer, part)
    return getattr(optimizer, name.split(".")[-1])
