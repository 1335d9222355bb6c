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

from evolution.checkpoint import FILE_FORMAT, FILE_VERSION, READABLE_VERSIONS, load_optimizer, save_optimizer
from evolution.cmaes import CMAES
from evolution.ga import SimpleGA
from evolution.gradient import PEPG, Adam, OpenES
from evolution.strategy import EvolutionStrategy, Result, apply_weight_decay, centered_ranks

__all__ = ["CMAES", "FILE_FORMAT", "FILE_VERSION", "OPTIMIZER_NAMES", "PEPG", "READABLE_VERSIONS", "Adam",
           "EvolutionStrategy", "OpenES", "Result", "SimpleGA", "apply_weight_decay", "centered_ranks",
           "load_optimizer", "make_optimizer", "optimizer_class", "save_optimizer"]


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
