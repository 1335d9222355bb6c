"""Evolution strategies for the controller (paper section 3.3): one ask/tell interface over four optimizers.

Every optimizer MAXIMISES the rewards it is told, works on a flat parameter vector, and is chosen by the names
estool's `-o/--optimizer` flag uses (`make_optimizer`, `OPTIMIZER_NAMES`):

    cma     CMAES      CMA-ES through the `cma` package (the paper's optimizer)
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

Weight decay: `tell` lowers each reward by `weight_decay * mean(params**2)` before the optimizer sees it, which
penalises large weights. The original World Models CMA-ES wrapper added this term with the wrong sign (it negated
the rewards into costs and then added a negative decay to the cost), so it favoured large weights; estool fixed it
later. The best solution and rewards reported by `result()` are the rewards as told, without the penalty.

Every optimizer draws its randomness from its own `numpy.random.Generator` seeded by `seed` (CMA-ES included: the
`cma` package is handed our generator and never touches NumPy's global one), so the same seed gives the same asks.

Files: `save_optimizer(path, optimizer, state)` writes one pickle whole (temporary file, then rename), named
`<env>.<optimizer>.<num_episode>.<popsize>.es.pk` by the training script as in estool. It holds a dict
`{"format": FILE_FORMAT, "version": FILE_VERSION, "optimizer": ..., "state": ...}`; `state` is the caller's plain
Python data (generation count, best score, seed counter, history). `load_optimizer(path)` reads it back through a
restricted unpickler that can build only this module's classes, the `cma` package's objects, NumPy arrays, dtypes
and random generators, and plain builtin containers, so a crafted file cannot run code while it is loaded.
"""

from __future__ import annotations

import abc
import io
import math
import os
import pickle
import sys
import types
from typing import NamedTuple

import numpy as np

from utils import UserError, save_bytes

FILE_FORMAT = "world-models-es-optimizer"  # marker inside every .es.pk file this module writes
FILE_VERSION = 1  # bump when the pickled classes change incompatibly
PICKLE_PROTOCOL = 5  # Python >= 3.8 reads it


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
    in `_update(fitness)`, and reports its mean in `current_param()` and its step sizes in `sigma_vector()`.
    """

    def __init__(self, num_params: int, popsize: int, weight_decay: float = 0.01, seed: int = 0):
        if num_params < 1:
            raise ValueError(f"num_params must be at least 1, got {num_params}")
        if popsize < 2:
            raise ValueError(f"popsize must be at least 2, got {popsize}")
        if weight_decay < 0:
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


class _StandardNormal:
    """The `randn(rows, columns)` that pycma samples with, drawing from our generator instead of NumPy's global one.

    It is pickled inside the CMA-ES state, so a resumed run continues the same random stream.
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


class CMAES(EvolutionStrategy):
    """CMA-ES (Hansen & Ostermeier 2001; Hansen 2016, "The CMA Evolution Strategy: A Tutorial") through pycma.

    The paper trains its controller with it (section 3.3 and appendix). `sigma_init` is the initial step size;
    pycma adapts step size and covariance itself, so `sigma_decay` and `antithetic` are ignored (pycma decides on
    mirrored sampling for small populations by itself). Output is silenced (verbose -9) and no log files are written.
    """

    def __init__(self, num_params: int, popsize: int, sigma_init: float = 0.1, sigma_decay: float = 0.999,
                 weight_decay: float = 0.01, antithetic: bool = True, seed: int = 0, x0=None):
        import cma

        super().__init__(num_params, popsize, weight_decay, seed)
        options = {
            "popsize": self.popsize,
            "verbose": -9,
            "seed": math.nan,  # nan: pycma leaves NumPy's global generator alone...
            "randn": _StandardNormal(self.rng),  # ...and samples from ours
        }
        self.es = cma.CMAEvolutionStrategy(_initial_mean(x0, self.num_params), sigma_init, options)

    def _sample(self) -> np.ndarray:
        return np.array(self.es.ask(), dtype=np.float64)

    def _update(self, fitness: np.ndarray) -> None:
        self.es.tell(list(self.solutions), (-fitness).tolist())  # pycma minimises a cost

    def current_param(self) -> np.ndarray:
        return np.array(self.es.result.xfavorite, dtype=np.float64)

    def sigma_vector(self) -> np.ndarray:
        return np.array(self.es.result.stds, dtype=np.float64)


class Adam:
    """Adam (Kingma & Ba 2015) for gradient ASCENT: `step(gradient)` returns the change to add to the parameters.

    beta1 = 0.99 as in estool: the evolution-strategy gradient estimates are noisy, so momentum averages longer.
    """

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


class OpenES(EvolutionStrategy):
    """OpenAI's evolution strategy (Salimans et al. 2017, "Evolution Strategies as a Scalable Alternative to RL").

    Samples mean + sigma * eps with one isotropic sigma, antithetic pairs (eps, -eps) when `antithetic` (popsize
    must then be even), estimates the reward gradient from centered ranks, and follows it with Adam. sigma
    shrinks by `sigma_decay` a generation down to `sigma_limit`.
    """

    def __init__(self, num_params: int, popsize: int, sigma_init: float = 0.1, sigma_decay: float = 0.999,
                 weight_decay: float = 0.01, antithetic: bool = True, seed: int = 0, x0=None, *,
                 learning_rate: float = 0.01, sigma_limit: float = 0.01):
        super().__init__(num_params, popsize, weight_decay, seed)
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


class PEPG(EvolutionStrategy):
    """Parameter-exploring policy gradients (Sehnke et al. 2010) with symmetric sampling; estool calls it "ses".

    Each of popsize/2 perturbations eps ~ N(0, diag(sigma^2)) is tried both ways (mean + eps, mean - eps), so popsize
    must be even. From centered ranks: the mean follows sum eps / sigma^2 (r+ - r-) / 2 with Adam; each sigma follows
    sum ((r+ + r-) / 2 - baseline) (eps^2 - sigma^2) / sigma, the baseline being the average reward, each step
    clipped to `sigma_max_change` of sigma. sigma then shrinks by `sigma_decay` down to `sigma_limit`.
    `antithetic` is ignored (the sampling is always symmetric).
    """

    def __init__(self, num_params: int, popsize: int, sigma_init: float = 0.1, sigma_decay: float = 0.999,
                 weight_decay: float = 0.01, antithetic: bool = True, seed: int = 0, x0=None, *,
                 learning_rate: float = 0.01, sigma_learning_rate: float = 0.2, sigma_max_change: float = 0.2,
                 sigma_limit: float = 0.01):
        super().__init__(num_params, popsize, weight_decay, seed)
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


class SimpleGA(EvolutionStrategy):
    """A simple genetic algorithm: truncation selection with elitism and Gaussian mutation (Such et al. 2017,
    "Deep Neuroevolution"; estool's SimpleGA without its crossover).

    The best `elite_ratio` of each generation become the parents; the next population is the best parent unchanged
    (re-evaluated, so a lucky noisy score does not stick) plus children = a random parent + sigma * N(0, I).
    sigma shrinks by `sigma_decay` a generation down to `sigma_limit`. `antithetic` is ignored.
    """

    def __init__(self, num_params: int, popsize: int, sigma_init: float = 0.1, sigma_decay: float = 0.999,
                 weight_decay: float = 0.01, antithetic: bool = True, seed: int = 0, x0=None, *,
                 elite_ratio: float = 0.1, sigma_limit: float = 0.01):
        super().__init__(num_params, popsize, weight_decay, seed)
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


_OPTIMIZERS = {"cma": CMAES, "ses": PEPG, "pepg": PEPG, "openes": OpenES, "ga": SimpleGA}
OPTIMIZER_NAMES = tuple(_OPTIMIZERS)  # the values of 05_train_controller.py's -o/--optimizer


def make_optimizer(name: str, num_params: int, popsize: int, **kwargs) -> EvolutionStrategy:
    """The optimizer called `name` (one of OPTIMIZER_NAMES); kwargs go to its constructor."""
    if name not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZER_NAMES)}")
    return _OPTIMIZERS[name](num_params, popsize, **kwargs)


# ---- checkpoint files -------------------------------------------------------------------------------------------

class _Refused(Exception):
    """The pickle asked for something a saved optimizer never contains."""


# What pickle may look up and CALL while rebuilding our state: NumPy's array, dtype, scalar and random-generator
# reconstruction, and builtin containers. (`numpy.core` is NumPy 1's spelling of `numpy._core`.)
_CALLABLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__generator_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random.bit_generator", "SeedSequence"), ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "slice"),
    ("builtins", "range"), ("builtins", "bytearray"),
    ("collections", "OrderedDict"), ("collections", "deque"), ("collections", "Counter"),
}
# What may appear only as a stored value, never be called: pycma keeps this function reference in its state.
_VALUE_GLOBALS = {("numpy.linalg", "eigh")}


def _is_own_object(module: str, value: object) -> bool:
    """A class defined in this module, or a class or Python function defined in the `cma` package."""
    owner = getattr(value, "__module__", None) or ""
    if module == __name__:
        return isinstance(value, type) and owner == __name__
    return isinstance(value, (type, types.FunctionType)) and (owner == "cma" or owner.startswith("cma."))


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickles only the objects an optimizer state is made of; anything else raises `_Refused` before it runs.

    `find_class` admits the globals listed above, this module's classes, and pycma's classes and functions, from
    modules that are already imported (importing can itself run code) and by plain names (a dotted name could walk
    from an admitted module to, say, its `os`). It is the Python implementation of the unpickler, not the C one,
    so that the REDUCE opcode (which calls a global with arguments) can be checked too: only `_CALLABLE_GLOBALS` may
    be called. Our classes and pycma's are rebuilt the way pickle rebuilds plain objects (`cls.__new__`, then
    their saved `__dict__`), never by calling them: `cma.CMAEvolutionStrategy(...)` would `eval` option strings.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file):
        super().__init__(file)
        self.callables: list[object] = []  # what find_class handed out from _CALLABLE_GLOBALS

    def find_class(self, module: str, name: str):
        if (module, name) in _CALLABLE_GLOBALS or (module, name) in _VALUE_GLOBALS:
            __import__(module)
            value = getattr(sys.modules[module], name)
            if (module, name) in _CALLABLE_GLOBALS:
                self.callables.append(value)
            return value
        is_ours = module == __name__ or module == "cma" or module.startswith("cma.")
        if is_ours and "." not in name and module in sys.modules:
            value = getattr(sys.modules[module], name, None)
            if _is_own_object(module, value):
                return value
        raise _Refused(f"{module}.{name}")

    def _load_reduce(self):
        function = self.stack[-2]  # the stack holds [..., function, arguments]
        if not any(function is allowed for allowed in self.callables):
            raise _Refused(f"a call to {getattr(function, '__qualname__', type(function).__name__)}")
        pickle._Unpickler.load_reduce(self)

    def _load_instance(self):
        raise _Refused("a protocol 0/1 instance (INST/OBJ opcode)")

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.INST[0]] = _load_instance
    dispatch[pickle.OBJ[0]] = _load_instance


def _restricted_loads(data: bytes) -> object:
    import cma  # noqa: F401  (find_class admits only pycma modules already imported; this imports them)

    return _RestrictedUnpickler(io.BytesIO(data)).load()


def save_optimizer(path: str, optimizer: EvolutionStrategy, state: dict) -> None:
    """Write `optimizer` and the caller's `state` (plain Python data) to the one file `path`, whole.

    The file is a pickle of {"format": FILE_FORMAT, "version": FILE_VERSION, "optimizer": ..., "state": ...},
    written to a temporary file beside `path` and renamed onto it, so `path` always holds a complete state.
    The payload is read back through the restricted unpickler before writing: a `state` that `load_optimizer`
    would refuse raises ValueError now, and the previous file stays as it was.
    """
    if not isinstance(optimizer, EvolutionStrategy):
        raise ValueError(f"save_optimizer needs an optimizer from make_optimizer, got {type(optimizer).__name__}")
    payload = {"format": FILE_FORMAT, "version": FILE_VERSION, "optimizer": optimizer, "state": state}
    data = pickle.dumps(payload, protocol=PICKLE_PROTOCOL)
    try:
        _restricted_loads(data)
    except _Refused as refused:
        raise ValueError(f"state for {path} holds {refused}, which load_optimizer would refuse; "
                         f"keep it to plain Python data (numbers, strings, lists, dicts, NumPy arrays)") from None
    save_bytes(path, data)


def load_optimizer(path: str) -> tuple[EvolutionStrategy, dict]:
    """Read (optimizer, state) from a file `save_optimizer` wrote.

    A missing, truncated or corrupt file, a pickle of anything else, or one that would build or call anything
    besides our state's own objects raises a one-line UserError naming `path`; nothing in the file runs.
    """
    if not os.path.exists(path):
        raise UserError(f"{path} is missing: no optimizer state to resume from")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        payload = _restricted_loads(data)
    except _Refused as refused:
        raise UserError(f"{path} is not an optimizer state written by this project (it asks for {refused}); "
                        f"refusing to load it") from None
    except Exception as error:  # truncated or random bytes fail in many ways: EOFError, UnpicklingError, KeyError...
        raise UserError(f"{path} is truncated or corrupt ({type(error).__name__}: {error}); "
                        f"delete it or resume from another file") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise UserError(f"{path} is not an optimizer state written by this project (no {FILE_FORMAT!r} marker)")
    if payload.get("version") != FILE_VERSION:
        raise UserError(f"{path} is an optimizer state of format version {payload.get('version')!r}, this code reads "
                        f"version {FILE_VERSION}; resume with the code that wrote it or start afresh")
    if not isinstance(payload.get("optimizer"), EvolutionStrategy) or not isinstance(payload.get("state"), dict):
        raise UserError(f"{path} is not an optimizer state written by this project (wrong contents)")
    return payload["optimizer"], payload["state"]
