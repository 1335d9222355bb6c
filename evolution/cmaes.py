"""CMA-ES, the paper's optimizer (section 3.3), written in NumPy after Hansen's tutorial."""

from __future__ import annotations

import math

import numpy as np

from evolution.strategy import EvolutionStrategy, _checked_sigma, _initial_mean


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
