"""Evolution strategies for the controller (paper section 3.3): one ask/tell interface over four optimizers.

Every optimizer MAXIMISES the rewards it is told, works on a flat parameter vector, and is chosen by the names
estool's `-o/--optimizer` flag uses (`make_optimizer`, `OPTIMIZER_NAMES`):

    cma     CMAES      CMA-ES (the paper's optimizer), written here in NumPy after Hansen's tutorial
    ses     PEPG       estool's name for PEPG
    pepg    PEPG       parameter-exploring policy gradients with symmetric sampling
    openes  OpenES     OpenAI's evolution strategy with Adam
    ga      SimpleGA   truncation selection with elitism and Gaussian mutation

One generation:

    optimizer = make_optimizer("cma", num_params=867, popsize=64, sigma_init=0.1)
    solutions = optimizer.ask()                         # (popsize, num_params) float64
    optimizer.tell(rewards)                             # (popsize,), one reward per row of the last ask()
    result = optimizer.result()                         # Result(best_param, best_reward, current_best_reward, sigma)
    mean = optimizer.current_param()                    # (num_params,), the parameters to evaluate as "the" agent

A whole run, pycma's way: CMA-ES maximising -|x - optimum|^2 (a sphere) finds the optimum to 1e-6.

    >>> import numpy as np
    >>> optimum = np.array([1.0, -2.0, 0.5, 3.0])
    >>> optimizer = make_optimizer("cma", num_params=4, popsize=12, sigma_init=0.5, weight_decay=0.0, seed=0)
    >>> for generation in range(200):
    ...     solutions = optimizer.ask()                                  # (12, 4)
    ...     optimizer.tell(-np.sum((solutions - optimum) ** 2, axis=1))  # one reward a solution, maximised
    >>> result = optimizer.result()
    >>> float(np.abs(result.best_param - optimum).max()) < 1e-6, -1e-12 < result.best_reward <= 0
    (True, True)
    >>> print(np.round(optimizer.current_param(), 6) + 0.0)
    [ 1.  -2.   0.5  3. ]

Weight decay: `tell` lowers each reward by `weight_decay * mean(params**2)` before the optimizer sees it, which
penalises large weights. The original World Models CMA-ES wrapper added this term with the wrong sign (it negated
the rewards into costs and then added a negative decay to the cost), so it favoured large weights; estool fixed it
later. The best solution and rewards reported by `result()` are the rewards as told, without the penalty.

Every optimizer draws its randomness from its own `numpy.random.Generator` seeded by `seed` and never touches
NumPy's global one, so the same seed gives the same asks.

Files: `save_optimizer(path, optimizer, state)` writes one file whole (temporary file, then rename), named
`<env>.<optimizer>.<num_episode>.<popsize>.es.pk` by the training script as in estool. Despite the estool name it
holds no pickle: it is a NumPy `.npz` archive (a zip) of float64 arrays, the optimizer's vectors and matrices, plus
one JSON text with its numbers, its random generator's state and the caller's `state` (JSON data: generation count,
best score, seed counter, history). `load_optimizer(path)` reads it with `allow_pickle=False`, checks every field's
name, type, shape and finiteness against the optimizer's own list of fields, and rebuilds the optimizer from those
values: a file from someone else can be wrong, never run code (checkpoints are data, as safetensors are).
A pickle checkpoint of an older version of this project is refused with one line that says how to go on.
"""

from __future__ import annotations

import abc
import json
import math
import os
import zipfile
from typing import NamedTuple

import numpy as np

from reading import CHECKPOINT_BYTES, LOG_JSON_BYTES, NpzArchive, open_regular, parse_json
from utils import UserError, atomic_path, finite_number, short_repr

FILE_FORMAT = "world-models-es-optimizer"  # marker inside every .es.pk file this module writes
FILE_VERSION = 3  # 1 was a pickle (refused since: a crafted pickle can run code); 2 and 3 are .npz + JSON
READABLE_VERSIONS = (2, 3)  # 3 added CMAES's TPA and active fields; a version-2 CMAES resumes as CSA, positive weights


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
    these (kinds in `_FIELD_KINDS`) and rebuilds an optimizer from them, so what is not listed does not survive a
    resume, and nothing else can be put into an optimizer by a file.
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


class CMAES(EvolutionStrategy):
    """CMA-ES (Hansen & Ostermeier 2001), as set out in Hansen's tutorial ("The CMA Evolution Strategy: A Tutorial",
    arXiv:1604.00772, 2016), with its default strategy parameters; the paper trains its controller with it
    (section 3.3 and appendix).

    Each generation samples x_k = m + sigma * y_k with y_k = B D z_k, z_k ~ N(0, I) and C = B D^2 B^T, ranks the
    popsize solutions, and moves m to the weighted mean of the best mu = popsize // 2 (log-decreasing positive
    weights). C follows the rank-one update (path p_c, stalled by h_sigma) plus the rank-mu update. B and D are
    recomputed from C every ~popsize / (c1 + cmu) / n / 10 generations (the tutorial's lazy eigendecomposition: for
    the controller's 867 parameters C learns slowly, c1 + cmu ~ 1e-5, and B D stays valid for many generations).

    The defaults are pycma's, which estool and the 2018 code ran:

    - `active=True`: the rank-mu update also subtracts the worst popsize - mu steps with negative weights (the
      tutorial's active CMA, its default weights for ranks mu + 1 .. popsize): each step rescaled to the Mahalanobis
      length sqrt(n), the weights summing to -min(1 + c1/cmu, 1 + 2 mu_eff^- / (mu_eff + 2), (1 - c1 - cmu) / (n cmu)).
    - `step_size="auto"`: two-point adaptation (TPA; Hansen 2008, "CMA-ES with Two-Point Step-Size Adaptation",
      and Hansen et al. 2014) from 300 parameters on (CarRacing's C has 867, Doom's 1,088), cumulative step-size
      adaptation (CSA; the tutorial's path p_sigma) below, as pycma chooses. TPA spends the first two solutions
      of each population on a line test: m +- sigma * y along the last mean shift, y of a random sample's
      Mahalanobis length. If the one ahead ranks better the step grows, if behind, it shrinks:
      z = (rank(behind) - rank(ahead)) / (popsize - 1), s <- 0.7 s + 0.3 sign(z) |z|^0.5,
      sigma <- sigma exp(s / d) with d = 0.7 + 2 ln n + 2 ln max(1, popsize - n) (pycma's constants). When the
      ranking is mostly noise the two rank alike and sigma stops growing; CSA, whose path sees only the mean's
      random walk, kept a step twice as large in the noisy 867-parameter test of docs/results.md. CSA caps one
      step's change of log sigma at 1, as pycma does. `step_size="csa"` or `"tpa"` chooses either at any size;
      TPA needs popsize >= 4 (two line samples and two or more drawn ones).

    Written here rather than wrapping pycma so that the whole state is a handful of arrays and numbers (FIELDS):
    a checkpoint is data and resumes bit for bit, and any popsize >= 2 works (pycma's mirrored sampling failed
    for population 2). A checkpoint of file version 2 predates TPA and active updates: it resumes as the
    optimizer that wrote it (CSA, positive weights only). `sigma_decay` and `antithetic` are ignored: CMA-ES
    adapts sigma itself.
    """

    FIELDS = {**EvolutionStrategy.FIELDS, "mean": "vector", "sigma": "positive", "cov": "matrix",
              "eigenbasis": "matrix", "eigenvalues_sqrt": "positive vector", "path_sigma": "vector",
              "path_cov": "vector", "generation": "count", "eigen_generation": "count", "steps": "population?",
              "tpa": "bool", "active": "bool", "tpa_s": "float", "mean_shift": "vector?"}
    VERSION_2_DEFAULTS = {"tpa": False, "active": False, "tpa_s": 0.0}  # what a version-2 file was written by
    RANGES = {**EvolutionStrategy.RANGES, "tpa_s": (lambda v: -1 <= v <= 1, "from -1 to 1 (a smoothed rank "
                                                   "difference)")}
    TPA_FROM_PARAMS = 300  # pycma's TPA_dimension: "auto" uses TPA from this many parameters on
    TPA_MIN_POPSIZE = 4

    def __init__(self, num_params: int, popsize: int, sigma_init: float = 0.1, sigma_decay: float = 0.999,
                 weight_decay: float = 0.01, antithetic: bool = True, seed: int = 0, x0=None, *,
                 step_size: str = "auto", active: bool = True):
        super().__init__(num_params, popsize, weight_decay, seed)
        if step_size not in ("auto", "tpa", "csa"):
            raise ValueError(f"step_size must be 'auto', 'tpa' or 'csa', got {step_size!r}")
        if step_size == "auto":
            step_size = ("tpa" if self.num_params >= self.TPA_FROM_PARAMS and self.popsize >= self.TPA_MIN_POPSIZE
                         else "csa")
        if step_size == "tpa" and self.popsize < self.TPA_MIN_POPSIZE:
            raise ValueError(f"TPA step-size adaptation needs a population of at least {self.TPA_MIN_POPSIZE} "
                             f"(two line samples and two drawn ones), got {self.popsize}; use step_size='csa'")
        n = self.num_params
        self.tpa = step_size == "tpa"
        self.active = bool(active)
        self.mean = _initial_mean(x0, n)
        self.sigma = _checked_sigma(sigma_init)
        self.cov = np.eye(n)  # C
        self.eigenbasis = np.eye(n)  # B: C's eigenvectors in its columns
        self.eigenvalues_sqrt = np.ones(n)  # D: square roots of C's eigenvalues
        self.path_sigma = np.zeros(n)  # CSA's path; with TPA it still gives h_sigma, as in pycma
        self.path_cov = np.zeros(n)
        self.tpa_s = 0.0  # TPA's smoothed rank difference
        self.mean_shift: np.ndarray | None = None  # TPA: the last update's m_new - m_old, the next line test
        self.generation = 0  # updates done
        self.eigen_generation = 0  # the generation whose C gave B and D
        self.steps: np.ndarray | None = None  # (popsize, n) y_k of the last ask
        self._derive()

    def _derive(self) -> None:
        """The tutorial's default strategy parameters (its table 1), from n and popsize alone; TPA's from pycma."""
        n, popsize = self.num_params, self.popsize
        self.mu = popsize // 2
        raw = math.log((popsize + 1) / 2) - np.log(np.arange(1, popsize + 1))
        self.weights = raw[:self.mu] / raw[:self.mu].sum()
        self.mu_eff = 1.0 / float(np.sum(np.square(self.weights)))
        self.c_sigma = (self.mu_eff + 2) / (n + self.mu_eff + 5)
        self.d_sigma = 1 + 2 * max(0.0, math.sqrt((self.mu_eff - 1) / (n + 1)) - 1) + self.c_sigma
        self.c_c = (4 + self.mu_eff / n) / (n + 4 + 2 * self.mu_eff / n)
        self.c_1 = 2 / ((n + 1.3) ** 2 + self.mu_eff)
        self.c_mu = min(1 - self.c_1, 2 * (self.mu_eff - 2 + 1 / self.mu_eff) / ((n + 2) ** 2 + self.mu_eff))
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))  # E|N(0, I)|
        self.eigen_interval = popsize / (self.c_1 + self.c_mu) / n / 10
        # Active CMA: the worst popsize - mu get negative weights (tutorial eq. 53), zero when not active.
        negative = raw[self.mu:]
        self.negative_weights = np.zeros(popsize - self.mu)
        if self.active and self.c_mu > 0 and np.any(negative < 0):  # (c_mu is 0 at popsize 2: no rank-mu update)
            mu_eff_negative = float(negative.sum() ** 2 / np.sum(np.square(negative)))
            scale = min(1 + self.c_1 / self.c_mu, 1 + 2 * mu_eff_negative / (self.mu_eff + 2),
                        (1 - self.c_1 - self.c_mu) / (n * self.c_mu))
            self.negative_weights = negative * scale / np.abs(negative).sum()
        self.tpa_c = 0.3
        self.tpa_damp = 0.7 + 2 * math.log(n) + 2 * math.log(max(1, popsize - n))

    def _tpa_unit(self) -> np.ndarray | None:
        """The last mean shift scaled to Mahalanobis length 1 (|C^(-1/2) v| = 1), or None: no line test this
        generation (CSA, the first generation, or a shift of length zero)."""
        if not self.tpa or self.mean_shift is None:
            return None
        length = float(np.linalg.norm((self.eigenbasis.T @ self.mean_shift) / self.eigenvalues_sqrt))
        return self.mean_shift / length if length > 0 and math.isfinite(length) else None

    def _sample(self) -> np.ndarray:
        normal = self.rng.standard_normal((self.popsize, self.num_params))
        self.steps = (normal * self.eigenvalues_sqrt) @ self.eigenbasis.T
        unit = self._tpa_unit()
        if unit is not None:  # the line test: ahead and behind along the mean shift, at a random sample's length
            self.steps[0] = unit * float(np.linalg.norm(normal[0]))
            self.steps[1] = -self.steps[0]
        return self.mean + self.sigma * self.steps

    def _update(self, fitness: np.ndarray) -> None:
        n = self.num_params
        line_test = self._tpa_unit() is not None  # asked with the current mean shift, B and D
        ranked = self.steps[np.argsort(-fitness, kind="stable")]  # (popsize, n), best first
        best = ranked[:self.mu]
        step = self.weights @ best  # y_w
        shift = self.sigma * step
        self.mean = self.mean + shift

        # Step-size path, in the coordinates where C is the identity: C^(-1/2) y_w = B D^-1 B^T y_w.
        whitened = self.eigenbasis @ ((self.eigenbasis.T @ step) / self.eigenvalues_sqrt)
        self.path_sigma = ((1 - self.c_sigma) * self.path_sigma
                           + math.sqrt(self.c_sigma * (2 - self.c_sigma) * self.mu_eff) * whitened)
        path_norm = float(np.linalg.norm(self.path_sigma))
        # h_sigma stalls the rank-one path while the step-size path is long (sigma still growing).
        corrected = path_norm / math.sqrt(1 - (1 - self.c_sigma) ** (2 * (self.generation + 1)))
        h_sigma = 1.0 if corrected / self.chi_n < 1.4 + 2 / (n + 1) else 0.0
        self.path_cov = ((1 - self.c_c) * self.path_cov
                         + h_sigma * math.sqrt(self.c_c * (2 - self.c_c) * self.mu_eff) * step)

        rank_one = np.outer(self.path_cov, self.path_cov)
        rank_mu = (best * self.weights[:, None]).T @ best
        total_weight = 1.0
        if self.active:  # the worst steps, each rescaled to Mahalanobis length sqrt(n), with negative weights
            worst = ranked[self.mu:]
            squared_lengths = np.sum(np.square((worst @ self.eigenbasis) / self.eigenvalues_sqrt), axis=1)
            coefficients = self.negative_weights * n / np.maximum(squared_lengths, 1e-300)
            rank_mu += (worst * coefficients[:, None]).T @ worst
            total_weight += float(self.negative_weights.sum())
        stalled = (1 - h_sigma) * self.c_c * (2 - self.c_c)  # keeps C's scale while h_sigma is 0
        self.cov = ((1 - self.c_1 - self.c_mu * total_weight + self.c_1 * stalled) * self.cov
                    + self.c_1 * rank_one + self.c_mu * rank_mu)

        if self.tpa:
            if line_test:
                # ranks as "how many solutions did better": z > 0 when the one ahead beat the one behind
                ahead, behind = (int(np.sum(fitness > fitness[k])) for k in (0, 1))
                z = (behind - ahead) / (self.popsize - 1)
                self.tpa_s = (1 - self.tpa_c) * self.tpa_s + self.tpa_c * math.copysign(math.sqrt(abs(z)), z)
                self.sigma *= math.exp(self.tpa_s / self.tpa_damp)
            self.mean_shift = shift
        else:
            self.sigma *= math.exp(min(1.0, (self.c_sigma / self.d_sigma) * (path_norm / self.chi_n - 1)))
        self.generation += 1

        if self.generation - self.eigen_generation > self.eigen_interval:
            self.cov = np.triu(self.cov) + np.triu(self.cov, 1).T  # exactly symmetric
            eigenvalues, self.eigenbasis = np.linalg.eigh(self.cov)
            self.eigenvalues_sqrt = np.sqrt(np.maximum(eigenvalues, 1e-300))
            self.eigen_generation = self.generation
        self.steps = None

    def _problem(self) -> str | None:
        """Beyond the ranges: C symmetric positive definite and B orthonormal (up to rounding: C's rank-mu update is
        a matrix product), as every sample, path and eigendecomposition assumes; TPA's population of 4 or more."""
        problem = super()._problem()
        if problem:
            return problem
        if self.tpa and self.popsize < self.TPA_MIN_POPSIZE:
            return f"TPA needs a population of at least {self.TPA_MIN_POPSIZE}, got {self.popsize}"
        if self.eigen_generation > self.generation:
            return f"eigen_generation {self.eigen_generation} is after generation {self.generation}"
        scale = float(np.max(np.abs(self.cov)))
        if not np.allclose(self.cov, self.cov.T, rtol=0.0, atol=1e-9 * scale):
            return "cov is not symmetric"
        try:
            np.linalg.cholesky(np.triu(self.cov) + np.triu(self.cov, 1).T)
        except np.linalg.LinAlgError:
            return "cov is not positive definite"
        if not np.allclose(self.eigenbasis.T @ self.eigenbasis, np.eye(self.num_params), rtol=0.0, atol=1e-6):
            return "eigenbasis is not orthonormal"
        return None

    def describe(self) -> str:
        return (f"step size by {'TPA' if self.tpa else 'CSA'}, "
                f"{'active' if self.active else 'positive-weight'} covariance update")

    def current_param(self) -> np.ndarray:
        return self.mean.copy()

    def sigma_vector(self) -> np.ndarray:
        return self.sigma * np.sqrt(np.diag(self.cov))

    def set_mean(self, params: np.ndarray) -> None:
        self.mean = _initial_mean(params, self.num_params)


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
_DECAY_RANGES = {"sigma_decay": (lambda v: 0 < v <= 1, "above 0 and at most 1"),
                 "sigma_limit": (lambda v: v >= 0, "0 or more")}


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


_OPTIMIZERS = {"cma": CMAES, "ses": PEPG, "pepg": PEPG, "openes": OpenES, "ga": SimpleGA}
OPTIMIZER_NAMES = tuple(_OPTIMIZERS)  # the values of 05_train_controller.py's -o/--optimizer


def optimizer_class(name: str) -> type:
    """The class behind an optimizer name of OPTIMIZER_NAMES (ses and pepg are both PEPG)."""
    return _OPTIMIZERS[name]


def make_optimizer(name: str, num_params: int, popsize: int, **kwargs) -> EvolutionStrategy:
    """The optimizer called `name` (one of OPTIMIZER_NAMES); kwargs go to its constructor."""
    if name not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZER_NAMES)}")
    return _OPTIMIZERS[name](num_params, popsize, **kwargs)


# ---- checkpoint files: data, never code ------------------------------------------------------------------------

_CLASSES = {cls.__name__: cls for cls in (CMAES, OpenES, PEPG, SimpleGA)}
_PARTS = {"adam": Adam}  # objects inside an optimizer, stored as "<part>.<field>" and rebuilt from their FIELDS
_HEADER = "header"  # the archive member holding the JSON text (as UTF-8 bytes in a uint8 array)
_ARRAY_PREFIX = "optimizer."  # archive members holding the optimizer's arrays, "optimizer.<field>"
_ARRAY_KINDS = ("vector", "positive vector", "matrix", "population", "half_population", "rows")
_NPY_HEADER_BYTES = 4096  # an .npy member's own header is far smaller
_ZIP_MAGIC = b"PK\x03\x04"


class _Invalid(Exception):
    """The file's contents do not make an optimizer state; the message says which field is wrong."""


def _get(optimizer: EvolutionStrategy, name: str):
    for part in name.split(".")[:-1]:
        optimizer = getattr(optimizer, part)
    return getattr(optimizer, name.split(".")[-1])


def _put(optimizer: EvolutionStrategy, name: str, value) -> None:
    """Set the field `name` (one of our FIELDS, never a name from the file) on a rebuilt optimizer."""
    target = optimizer
    for part in name.split(".")[:-1]:
        if not hasattr(target, part):
            setattr(target, part, _PARTS[part].__new__(_PARTS[part]))
        target = getattr(target, part)
    setattr(target, name.split(".")[-1], value)


_MAX_COUNT = 1_000_000  # parameters or population of a stored optimizer: beyond any run, below a MemoryError


def _array_shape(kind: str, num_params: int, popsize: int, rows: int) -> tuple[int, ...]:
    return {"vector": (num_params,), "positive vector": (num_params,), "matrix": (num_params, num_params),
            "population": (popsize, num_params), "half_population": (popsize // 2, num_params),
            "rows": (rows, num_params)}[kind]


def _is_int(value) -> bool:
    return type(value) is int  # not bool, not float


def _checked_value(name: str, kind: str, value):
    """A JSON value of the optimizer's field `name`, checked against its kind."""
    if kind == "count":
        if not (_is_int(value) and 0 <= value < 2 ** 63):
            raise _Invalid(f"{name} must be a non-negative integer, got {short_repr(value)}")
        return value
    if kind == "bool":
        if type(value) is not bool:
            raise _Invalid(f"{name} must be true or false, got {value!r}")
        return value
    if kind == "reward":  # -inf (nothing told yet) is stored as null
        if value is None:
            return -math.inf
        kind = "float"
    if kind in ("float", "positive"):
        if finite_number(value) is None:
            raise _Invalid(f"{name} must be a finite number, got {short_repr(value)}")
        if kind == "positive" and not value > 0:
            raise _Invalid(f"{name} must be positive, got {value!r}")
        return float(value)
    if kind == "rng":
        return _checked_generator(name, value)
    raise AssertionError(f"unknown field kind {kind!r}")


def _checked_generator(name: str, value) -> np.random.Generator:
    """A PCG64 generator from its stored state: four integers, nothing else."""
    if not (isinstance(value, dict) and set(value) == {"bit_generator", "state", "has_uint32", "uinteger"}
            and value["bit_generator"] == "PCG64" and isinstance(value["state"], dict)
            and set(value["state"]) == {"state", "inc"}
            and all(_is_int(v) and 0 <= v < 2 ** 128 for v in value["state"].values())
            and value["has_uint32"] in (0, 1) and _is_int(value["has_uint32"])
            and _is_int(value["uinteger"]) and 0 <= value["uinteger"] < 2 ** 32):
        raise _Invalid(f"{name} is not the state of a PCG64 random generator")
    bit_generator = np.random.PCG64()
    bit_generator.state = value
    return np.random.Generator(bit_generator)


def _checked_array(name: str, kind: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if array.dtype != np.float64 or array.shape != shape:
        raise _Invalid(f"{name} is a {array.dtype} array of shape {array.shape}, expected float64 {shape}")
    if not np.all(np.isfinite(array)):
        raise _Invalid(f"{name} holds non-finite values")
    if kind == "positive vector" and not np.all(array > 0):
        raise _Invalid(f"{name} must be positive")
    return np.array(array)  # a writable copy


def _state_of(optimizer: EvolutionStrategy) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON values, arrays) of every field in the optimizer's FIELDS; a non-finite value raises ValueError."""
    values, arrays = {}, {}
    for name, kind in type(optimizer).FIELDS.items():
        value, kind = _get(optimizer, name), kind.rstrip("?")
        if value is None:
            continue
        if kind in _ARRAY_KINDS:
            array = np.asarray(value, dtype=np.float64)
            if not np.all(np.isfinite(array)):
                raise ValueError(f"the optimizer's {name} holds non-finite values; a checkpoint keeps finite numbers "
                                 f"only (the search diverged: lower --sigma_init?)")
            arrays[_ARRAY_PREFIX + name] = array
        elif kind == "rng":
            values[name] = value.bit_generator.state
        elif kind == "reward":
            values[name] = None if value == -math.inf else float(value)
        else:
            values[name] = value
    return values, arrays


def save_optimizer(path: str, optimizer: EvolutionStrategy, state: dict) -> None:
    """Write `optimizer` and the caller's `state` (JSON data) to the one file `path`, whole.

    The file is an uncompressed NumPy .npz archive: a member "header" with the JSON text {"format", "version",
    "optimizer": class name, "values": the optimizer's numbers and generator state, "state": `state`} and one
    float64 array "optimizer.<field>" per array field. It is written to a temporary file beside `path` and renamed
    onto it, so `path` always holds a complete state. A `state` that is not JSON data (or holds NaN or infinity)
    raises ValueError, and the previous file stays as it was.
    """
    if not isinstance(optimizer, EvolutionStrategy) or type(optimizer).__name__ not in _CLASSES:
        raise ValueError(f"save_optimizer needs an optimizer from make_optimizer, got {type(optimizer).__name__}")
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict of JSON data, got {type(state).__name__}")
    values, arrays = _state_of(optimizer)
    header = {"format": FILE_FORMAT, "version": FILE_VERSION, "optimizer": type(optimizer).__name__,
              "values": values, "state": state}
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"state for {path} is not JSON data ({error}); keep it to numbers, strings, lists, dicts, "
                         f"true/false and null") from None
    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(temporary, **{_HEADER: np.frombuffer(text.encode(), dtype=np.uint8)}, **arrays)


def _read_header(archive: NpzArchive, path: str) -> dict:
    if _HEADER not in archive.names:
        raise _Invalid("it has no header")
    if archive.member_size(_HEADER) > LOG_JSON_BYTES:
        raise _Invalid(f"its header is {archive.member_size(_HEADER)} bytes")
    array = archive.array(_HEADER)
    if array.dtype != np.uint8 or array.ndim != 1:
        raise _Invalid("its header is not JSON text")
    return parse_json(array.tobytes(), path, "an optimizer state (its header)", "resume from another file")


def _rebuild(path: str) -> tuple[EvolutionStrategy, dict]:
    """Read and check everything; raises _Invalid with what is wrong. Nothing from the file is called or imported:
    the class comes from a fixed table, the fields from that class's own FIELDS, the values are numbers. The
    archive is read bounded (reading.NpzArchive): np.savez stores its members, so a compressed one is refused."""
    with NpzArchive(path, CHECKPOINT_BYTES, "delete it or resume from another file", stored_only=True) as archive:
        members = {name + ".npy": name for name in archive.names}
        header = _read_header(archive, path)
        if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
            raise _Invalid(f"it has no {FILE_FORMAT!r} marker")
        if header.get("version") not in READABLE_VERSIONS:
            raise _Invalid(f"it is format version {header.get('version')!r}; this code reads versions "
                           f"{', '.join(map(str, READABLE_VERSIONS))}")
        if set(header) != {"format", "version", "optimizer", "values", "state"}:
            raise _Invalid(f"its header has the keys {sorted(header)}")
        cls = _CLASSES.get(header["optimizer"]) if isinstance(header["optimizer"], str) else None
        if cls is None:
            raise _Invalid(f"it names the optimizer {header['optimizer']!r}; known: {', '.join(_CLASSES)}")
        values, state = header["values"], header["state"]
        if not isinstance(values, dict) or not isinstance(state, dict):
            raise _Invalid("its values or state are not objects")
        if header["version"] == 2:  # fields added since: the values of the optimizer that wrote the file
            values = {**getattr(cls, "VERSION_2_DEFAULTS", {}), **values}

        kinds = {name: kind.rstrip("?") for name, kind in cls.FIELDS.items()}
        array_names = {name for name, kind in kinds.items() if kind in _ARRAY_KINDS}
        optional = {name for name, kind in cls.FIELDS.items() if kind.endswith("?")}
        expected = set(kinds) - array_names
        if set(values) != expected:
            raise _Invalid(f"its {cls.__name__} values are {sorted(values)}, expected {sorted(expected)}")
        stored = {name[len(_ARRAY_PREFIX):-len(".npy")] for name in members if name.startswith(_ARRAY_PREFIX)}
        unknown = set(members) - {_HEADER + ".npy"} - {_ARRAY_PREFIX + name + ".npy" for name in array_names}
        if unknown or not (array_names - optional) <= stored:
            raise _Invalid(f"its arrays are {sorted(stored)}, expected {sorted(array_names)}")

        optimizer = cls.__new__(cls)
        for name in sorted(values):
            _put(optimizer, name, _checked_value(name, kinds[name], values[name]))
        if not (1 <= optimizer.num_params <= _MAX_COUNT and 2 <= optimizer.popsize <= _MAX_COUNT):
            raise _Invalid(f"num_params {optimizer.num_params} or popsize {optimizer.popsize} is out of range (1 and 2 "
                           f"to {_MAX_COUNT:,})")
        for name in sorted(array_names):
            if name not in stored:
                _put(optimizer, name, None)
                continue
            size = archive.member_size(_ARRAY_PREFIX + name)
            largest = _array_shape(kinds[name], optimizer.num_params, optimizer.popsize, rows=optimizer.popsize)
            if size > 8 * int(np.prod(largest)) + _NPY_HEADER_BYTES:  # checked before reading
                raise _Invalid(f"{name} is {size} bytes, more than a float64 {largest} array")
            array = archive.array(_ARRAY_PREFIX + name)  # its .npy header checked against its size first
            shape = largest
            if kinds[name] == "rows" and array.ndim == 2 and 1 <= array.shape[0] <= optimizer.popsize:
                shape = (array.shape[0], optimizer.num_params)  # SimpleGA's elite: 1..popsize rows
            _put(optimizer, name, _checked_array(name, kinds[name], array, shape))
    problem = optimizer._problem()
    if problem:
        raise _Invalid(problem)
    optimizer._derive()
    return optimizer, state


def load_optimizer(path: str) -> tuple[EvolutionStrategy, dict]:
    """Read (optimizer, state) from a file `save_optimizer` wrote.

    A missing, truncated or corrupt file, a file of anything else, or one whose fields are missing, unknown, of the
    wrong type or shape, or not finite raises a one-line UserError naming `path`. Nothing in the file is executed:
    it is read as a zip of .npy arrays (allow_pickle=False) and JSON. A pickle (what this project's checkpoints
    were before version 2) is refused without being unpickled.
    """
    if not os.path.exists(path):
        raise UserError(f"{path} is missing: no optimizer state to resume from")
    with open_regular(path, CHECKPOINT_BYTES, "resume from another file") as handle:
        magic = handle.read(4)
    if magic != _ZIP_MAGIC:
        if magic[:1] == b"\x80" and path.endswith(".es.pk"):  # a pickle of protocol 2 or later
            best = path[: -len(".es.pk")] + ".best.json"
            raise UserError(f"{path} is a pickle, the checkpoint format of older versions of this project; it is not "
                            f"read because a crafted pickle can run code. Go on from that run's best controller: "
                            f"start a new run with --init_params {best}")
        raise UserError(f"{path} is not an optimizer state written by this project (not an .npz archive)")
    try:
        return _rebuild(path)
    except _Invalid as invalid:
        raise UserError(f"{path} is not a valid optimizer state: {invalid}; refusing to load it") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:  # truncated or damaged archive
        raise UserError(f"{path} is truncated or corrupt ({type(error).__name__}: {error}); "
                        f"delete it or resume from another file") from None
