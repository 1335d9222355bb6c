"""es.CMAES against pycma (what estool and the 2018 World Models code ran) at the controller's size, under noise.

    pip install cma==4.5.0                  (not a dependency of this project; only this comparison uses it)
    python -m benchmarks.cma_vs_pycma       (about 3 minutes on two cores)

The task: maximise -|x - x*|^2 + N(0, noise^2) over 867 parameters (CarRacing's C), x* drawn N(0, 0.5^2) once,
start at 0 with sigma 0.1, population 16, 150 generations, no weight decay, 3 seeds per optimizer. Printed per noise
level and optimizer: the final sigma and squared distance |m - x*|^2 of each seed (the start is at 195.1). With no
noise every optimizer should close in; with noise that swamps the ranking, a good step-size rule shrinks sigma and
keeps the mean near where it was instead of letting it random-walk away. Three optimizers: es.CMAES as 05 uses it
(TPA step size and active covariance updates at this size, as pycma), es.CMAES with CSA and positive weights only
(what 05 ran from commit 7bda16c until TPA came in), and pycma's CMAEvolutionStrategy with its defaults.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from es import CMAES

NUM_PARAMS, POPSIZE, GENERATIONS, SIGMA = 867, 16, 150, 0.1
TARGET = np.random.default_rng(7).normal(0.0, 0.5, NUM_PARAMS)


def run(kind: str, seed: int, noise: float) -> tuple[float, float]:
    """(final sigma, final squared distance to the target) of one run."""
    rng = np.random.default_rng(1000 + seed)  # the noise, the same sequence for every optimizer

    def reward(solutions: np.ndarray) -> np.ndarray:
        return -np.sum(np.square(solutions - TARGET), axis=1) + noise * rng.standard_normal(len(solutions))

    if kind == "pycma":
        import cma

        optimizer = cma.CMAEvolutionStrategy(NUM_PARAMS * [0.0], SIGMA, {"popsize": POPSIZE, "seed": seed + 1,
                                                                         "verbose": -9})
        for _ in range(GENERATIONS):
            solutions = optimizer.ask()
            optimizer.tell(solutions, list(-reward(np.array(solutions))))  # pycma minimises
        mean, sigma = optimizer.result.xfavorite, optimizer.sigma
    else:
        settings = {"tpa+active": {}, "csa": {"step_size": "csa", "active": False}}[kind]
        optimizer = CMAES(NUM_PARAMS, POPSIZE, sigma_init=SIGMA, weight_decay=0.0, seed=seed, **settings)
        for _ in range(GENERATIONS):
            optimizer.tell(reward(optimizer.ask()))
        mean, sigma = optimizer.current_param(), optimizer.sigma
    return float(sigma), float(np.sum(np.square(mean - TARGET)))


def main() -> None:
    try:
        import cma
    except ImportError:
        print("this comparison needs pycma: pip install cma==4.5.0", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"maximise -|x - x*|^2 + noise over {NUM_PARAMS} parameters, population {POPSIZE}, sigma {SIGMA}, "
          f"{GENERATIONS} generations, start |x*|^2 = {np.sum(np.square(TARGET)):.1f}; pycma {cma.__version__}")
    started = time.time()
    for noise in (0.0, 5.0, 20.0):
        for kind in ("tpa+active", "csa", "pycma"):
            results = [run(kind, seed, noise) for seed in range(3)]
            sigmas = " ".join(f"{sigma:.3f}" for sigma, _ in results)
            distances = " ".join(f"{distance:5.1f}" for _, distance in results)
            print(f"noise {noise:4.1f}  {kind:10s}  sigma {sigmas}  |m - x*|^2 {distances}", flush=True)
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    from benchmarks import quick_flag

    quick_flag(__doc__.strip().splitlines()[0], takes_quick=False)
    main()
