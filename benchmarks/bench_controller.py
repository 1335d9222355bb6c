"""Benchmark of controller training (stage 05): environment steps per second of a whole generation with 1 and 2
MPI workers, launched as users launch it.

    python -m benchmarks.bench_controller            (part of `make bench`)

Each configuration runs 05_train_controller.py for a few generations in a scratch folder (random world-model
weights of the paper's shapes; a population of 8, one episode each of 1000 steps as users train), and the two
alternate. The leader's own work between generations (CMA-ES update, checkpoint, logs and PNG: about 0.3 s) is
serial, so generations much shorter than a real one (seconds instead of minutes) would understate the scaling. Throughput counts the
episode steps of a generation over its wall time, evaluation and checkpoint writing included; the first generation
(start-up) is left out and the median of the rest is reported.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POPULATION = 8


def make_world_model(folder: str) -> None:
    from config import CAR_RACING
    from rnn.numpy_rnn import expected_rnn_shapes
    from utils import random_weights, save_npz
    from vae.numpy_vae import expected_vae_shapes

    save_npz(os.path.join(folder, "vae", "car_racing.npz"), **random_weights(expected_vae_shapes(32), 0))
    save_npz(os.path.join(folder, "rnn", "car_racing.npz"), **random_weights(expected_rnn_shapes(CAR_RACING), 1))


def steps_per_second(workers: int, generations: int, max_length: int) -> list[float]:
    """Episode steps per second of each generation after the first, for one run with `workers` workers."""
    from controller.training import HistoryRow

    with tempfile.TemporaryDirectory() as folder:
        make_world_model(folder)
        command = [sys.executable, os.path.join(ROOT, "05_train_controller.py"), "car_racing",
                   "--num_worker", str(workers), "--num_worker_trial", str(POPULATION // workers),
                   "--max_length", str(max_length), "--eval_steps", "1000", "--generations", str(generations)]
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=1800,
                                env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
        if result.returncode != 0:
            raise RuntimeError(f"05 failed:\n{result.stdout}\n{result.stderr}")
        seconds = [float(m) for m in re.findall(r"len \S+\s+([\d.]+)s", result.stdout)]
        base = f"car_racing.cma.1.{POPULATION}"
        with open(os.path.join(folder, "log", f"{base}.hist.json")) as handle:
            rows = [HistoryRow.from_json(row) for row in json.load(handle)]
        steps = [row.mean_length * POPULATION for row in rows]
        return [count / time for count, time in zip(steps[1:], seconds[1:])]


def main(quick: bool = False) -> dict[str, float]:
    rounds, generations, max_length = (1, 3, 300) if quick else (2, 3, 1000)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for workers in (1, 2):
            rates[workers] += steps_per_second(workers, generations, max_length)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"== controller training (05 under mpiexec, population {POPULATION}, episodes of {max_length} steps)")
    print(f"  1 worker : {one:8.1f} env steps/s (agent and env included)")
    print(f"  2 workers: {two:8.1f} env steps/s ({two / one:.2f}x)")
    return {"one": one, "two": two, "ratio": two / one}


if __name__ == "__main__":
    from benchmarks import quick_flag

    main(quick=quick_flag(__doc__.strip().splitlines()[0]))
