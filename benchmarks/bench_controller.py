"""Benchmark of controller training (stage 05): environment steps per second of a whole generation with 1 and 2
MPI workers, launched as users launch it, against the environment and agent alone, and where a generation's time
goes.

    python -m benchmarks.bench_controller            (part of `make bench`; about 9 minutes on two idle cores)
    python -m benchmarks.bench_controller --quick    (about 2 minutes)

Each configuration runs 05_train_controller.py for a few generations in a scratch folder (random world-model
weights of the paper's shapes; a population of 8, four episodes each of 1000 steps as the README's command trains:
32 a generation, where the recipe's phases play 64 and 128 and the paper 1,024), and the two alternate. A worker idles
at a generation's end from its last episode to the last episode of all, about half an episode's spread in length and
speed; the more episodes a generation has, the smaller that share (at one episode a solution, as this bench ran until
2026-12-06, it took 4 to 11% of a generation). Throughput counts the episode steps of a generation over its wall time, evaluation and checkpoint writing
included; the first generation (start-up) is left out and the median of the rest is reported. The leader's own work
between generations (CMA-ES update, checkpoint, logs and PNG) is serial, so generations much shorter than a real one
(seconds instead of minutes) would understate the scaling.

"Alone" is one process playing the same kind of episodes with the same agent (controller/agent.EpisodeRunner, what a
worker runs) and nothing else: the most a worker can do. "Two alone" is two such processes started together, their
rates summed: the most two cores of the machine give two processes that share no work, so a shortfall of two
workers against twice alone splits into what the machine takes (two alone below 2x alone) and what 05 takes. The breakdown (05's --phase_times) splits each generation's
wall time into the workers' episodes, their wait at the end for the last episode, the messages and handing out
between episodes, and the leader's serial work (ask, update, save), as shares of the generation, averaged over the
workers. The episode speed (steps a second of a worker's time in episodes) tells the two kinds of loss apart: a
worker that waits (the shares) and a worker whose episodes run slower than alone (cores or caches shared with the
other worker, the leader, mpiexec or other load).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POPULATION = 8
EPISODES = 4  # a solution's episodes a generation (--num_episode)
PHASES = ("episodes", "waiting", "messages", "ask", "update", "save")  # of a generation; no evaluation is due


def make_world_model(folder: str) -> None:
    from benchmarks.weights import random_weights
    from config import CAR_RACING
    from npyio import save_npz
    from rnn.numpy_rnn import expected_rnn_shapes
    from vae.numpy_vae import expected_vae_shapes

    save_npz(os.path.join(folder, "vae", "car_racing.npz"), **random_weights(expected_vae_shapes(32), 0))
    save_npz(os.path.join(folder, "rnn", "car_racing.npz"), **random_weights(expected_rnn_shapes(CAR_RACING), 1))


def generations(workers: int, count: int, max_length: int) -> list[dict]:
    """05's --phase_times rows of each generation after the first, for one run with `workers` workers."""
    with tempfile.TemporaryDirectory() as folder:
        make_world_model(folder)
        command = [sys.executable, os.path.join(ROOT, "05_train_controller.py"), "car_racing",
                   "--num_worker", str(workers), "--num_worker_trial", str(POPULATION // workers),
                   "--num_episode", str(EPISODES),
                   "--max_length", str(max_length), "--eval_steps", "1000", "--generations", str(count),
                   "--phase_times", "phases.json"]
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=1800,
                                env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
        if result.returncode != 0:
            raise RuntimeError(f"05 failed:\n{result.stdout}\n{result.stderr}")
        with open(os.path.join(folder, "phases.json")) as handle:
            return json.load(handle)[1:]


def play_alone(episodes: int, max_length: int) -> None:
    """Print the steps per second of one process playing `episodes` episodes as a worker does (run in a fresh
    Python: the BLAS settings must come before NumPy loads)."""
    from blas import prepare_blas

    prepare_blas()
    import time

    import numpy as np

    from config import CAR_RACING, controller_shape
    from controller.agent import EpisodeRunner

    with tempfile.TemporaryDirectory() as folder:
        make_world_model(folder)
        runner = EpisodeRunner(CAR_RACING, max_length, vae_dir=os.path.join(folder, "vae"),
                               rnn_dir=os.path.join(folder, "rnn"))
    rng = np.random.default_rng(0)
    params = 0.1 * rng.standard_normal((episodes + 1, controller_shape(CAR_RACING).param_count))  # CMA-ES's start
    runner(params[0], np.array([110]), max_length)  # warm-up: the first reset builds the track renderer
    started, steps = time.perf_counter(), 0
    for episode in range(episodes):
        steps += int(runner(params[episode + 1], np.array([111 + episode]), max_length)[1].sum())
    print(steps / (time.perf_counter() - started))


def alone_rate(episodes: int, max_length: int) -> float:
    code = f"from benchmarks.bench_controller import play_alone; play_alone({episodes}, {max_length})"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "SDL_VIDEODRIVER": "dummy"}, check=True)
    return float(result.stdout.split()[-1])


def alone_pair_rate(episodes: int, max_length: int) -> float:
    """Env steps a second of two `alone` processes started together, summed: what two cores of this machine give two
    processes that share nothing (caches, memory bandwidth and the host's scheduling aside), the ceiling for two
    workers."""
    code = f"from benchmarks.bench_controller import play_alone; play_alone({episodes}, {max_length})"
    processes = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
                 for _ in range(2)]
    try:
        outputs = [process.communicate(timeout=1800)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    return sum(float(output.split()[-1]) for output in outputs)


def main(quick: bool = False) -> dict[str, float]:
    rounds, count, max_length = (1, 2, 300) if quick else (2, 2, 1000)
    rows: dict[int, list[dict]] = {1: [], 2: []}
    alone, pair = [], []
    for _ in range(rounds):
        alone.append(alone_rate(2 if quick else 4, max_length))
        pair.append(alone_pair_rate(2 if quick else 4, max_length))
        for workers in (1, 2):
            rows[workers] += generations(workers, count, max_length)
    rates = {workers: statistics.median(row["steps"] / row["total"] for row in rows[workers]) for workers in (1, 2)}
    single, one, two, both = statistics.median(alone), rates[1], rates[2], statistics.median(pair)
    print(f"== controller training (05 under mpiexec, population {POPULATION} x {EPISODES} episodes of {max_length} "
          f"steps)")
    print(f"  alone    : {single:8.1f} env steps/s (environment and agent, one process, nothing else)")
    print(f"  two alone: {both:8.1f} env steps/s (two such processes at once, summed: {both / single:.2f}x alone, "
          f"the most two cores of this machine give)")
    print(f"  1 worker : {one:8.1f} env steps/s ({one / single:.2f} of alone)")
    print(f"  2 workers: {two:8.1f} env steps/s ({two / one:.2f}x 1 worker; {two / 2 / single:.2f} of alone per worker; {two / both:.2f} of two alone)")
    for workers in (1, 2):  # below alone: the workers' episodes themselves ran slower (cores shared, caches)
        speed = statistics.median(row["steps"] / (workers * row["episodes"]) for row in rows[workers])
        print(f"  episode speed, {workers} worker{'s' if workers > 1 else ' '}: {speed:8.1f} env steps a second of a "
              f"worker's episode time ({speed / single:.2f} of alone)")
    print("  where a generation's time goes (median share of its wall time, per worker):")
    print("             " + "".join(f"{phase:>10}" for phase in PHASES))
    for workers in (1, 2):
        shares = [statistics.median(row[phase] / row["total"] for row in rows[workers]) for phase in PHASES]
        print(f"  {workers} worker{'s' if workers > 1 else ' '}:" + "".join(f"{100 * share:9.1f}%" for share in shares))
    return {"alone": single, "two_alone": both, "one": one, "two": two, "ratio": two / one,
            "per_worker": two / 2 / single}


if __name__ == "__main__":
    from benchmarks import quick_flag
    from benchmarks.machine import describe

    quick = quick_flag(__doc__.strip().splitlines()[0])
    print(describe())
    main(quick=quick)
