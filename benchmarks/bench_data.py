"""Benchmarks of stages 01, 02 and 04: rollout frames per second per core, VAE training images per second with and
without XLA and with the step 02 picks by default, the peak memory of 02_train_vae.py over ten batch files of 200 x 300 frames, and a Doom MDN-RNN epoch
with and without length buckets.

    python -m benchmarks.bench_data            (part of `make bench`; about 5 minutes on two idle cores)
    python -m benchmarks.bench_data --quick
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np  # noqa: E402


def rollout_rate(episodes: int = 4, steps: int = 150, workers: int = 1) -> float:
    """Frames per second of stage 01 (random policy, frame processing included) with `workers` processes."""
    from rollouts import RolloutTask, rollout

    tasks = [RolloutTask("car_racing", 10_000 + i, steps, False, None) for i in range(episodes)]
    rollout(tasks[0])  # warm-up: builds the env, imports Box2D and pygame
    started = time.perf_counter()
    if workers == 1:
        frames = sum(rollout(task).length for task in tasks)
    else:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            frames = sum(result.length for result in pool.map(rollout, tasks))
    return frames / (time.perf_counter() - started)


def vae_training_rate(steps: int = 10, jit_compile: bool | str = True) -> float:
    """Images per second of one VAE training step at the paper's minibatch of 100 (after a warm-up step);
    jit_compile=False times the same step without XLA (Keras's default on CPU), "auto" the step 02's --jit auto
    picks (vae.jit_choice, timed in a child process on other frames first: its own cost is left out, and printed)."""
    from config import CAR_RACING
    from vae.arch import make_vae
    from vae.jit_choice import choose_jit_apart
    from vae.train import set_jit

    vae = make_vae(CAR_RACING, seed=0)
    frames = np.random.default_rng(0).integers(0, 256, (100 * (steps + 1), 64, 64, 3), dtype=np.uint8)
    if jit_compile == "auto":
        started = time.perf_counter()
        timing = np.random.default_rng(1).integers(0, 256, (4, 100, 64, 64, 3), dtype=np.uint8)
        xla, rates = choose_jit_apart("car_racing", list(timing), steps=3)
        set_jit(vae, xla)
        print(f"  (--jit auto chose {'XLA' if xla else 'without XLA'} in {time.perf_counter() - started:.1f} s: "
              f"XLA {rates[True]:.0f}, without {rates[False]:.0f} images/s)")
    else:
        set_jit(vae, jit_compile)
    vae.fit(frames[:100], batch_size=100, epochs=1, verbose=0)
    started = time.perf_counter()
    vae.fit(frames[100:], batch_size=100, epochs=1, verbose=0)
    return 100 * steps / (time.perf_counter() - started)


def vae_training_rates(steps: int, rounds: int) -> dict[str, list[float]]:
    """vae_training_rate of `--jit` off, on and auto, each in a fresh Python process as 02 runs it (TensorFlow's
    thread pools and XLA's compiled code of one measurement cannot slow or speed the next), the three alternating
    for `rounds` rounds so that a machine's drift falls on all of them alike: {mode: images/s of each round}."""
    arguments = {"off": "False", "on": "True", "auto": "'auto'"}
    rates: dict[str, list[float]] = {mode: [] for mode in arguments}
    for _ in range(rounds):
        for mode, argument in arguments.items():
            code = ("from benchmarks.bench_data import vae_training_rate; "
                    f"print(vae_training_rate({steps}, {argument}))")
            result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                    timeout=1800, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if mode == "auto":
                print(result.stdout.strip().splitlines()[0])  # which step it chose, and its timing
            rates[mode].append(float(result.stdout.split()[-1]))
    return rates


def rnn_epoch_rate(episodes: int = 64, batch_size: int = 16, bucketed: bool = True) -> float:
    """Recorded steps per second of one Doom MDN-RNN epoch over `episodes` sequences whose lengths follow random
    play (exponential, mean 300, 50..2100 steps), with minibatches of similar lengths cut to their longest episode
    (04_train_rnn.py) or every minibatch run over the longest episode of the data (plain padded sequences)."""
    from config import DOOM_TAKE_COVER as config
    from rnn.arch import make_rnn
    from rnn.train import length_buckets, rnn_arrays, training_masks

    rng = np.random.default_rng(0)
    lengths = np.clip(50 + rng.exponential(250, episodes), 50, 2100).astype(int)
    steps = int(lengths.max())
    mu = rng.normal(size=(episodes, steps, config.z_size)).astype(np.float32)
    actions = rng.choice([-1.0, 0.0, 1.0], size=(episodes, steps, 1)).astype(np.float32)
    dones = np.arange(steps)[None, :] == (lengths[:, None] - 1)
    inputs, z_next = rnn_arrays(mu, np.full_like(mu, -4.0), actions, lengths, True, rng)
    targets = (z_next,) + training_masks(lengths, dones, steps)
    rnn = make_rnn(config)
    if bucketed:
        groups = length_buckets(lengths, batch_size, rng, max_steps=steps)
    else:
        order = rng.permutation(episodes)
        groups = [(order[i:i + batch_size], steps) for i in range(0, episodes, batch_size)]
    for shape in sorted({(len(rows), cut) for rows, cut in groups}):  # trace every shape before timing
        rows = np.arange(shape[0])
        rnn.train_on_batch(inputs[rows, :shape[1]], tuple(t[rows, :shape[1]] for t in targets))
    started = time.perf_counter()
    for rows, cut in groups:
        rnn.train_on_batch(inputs[rows, :cut], tuple(t[rows, :cut] for t in targets))
    return lengths.sum() / (time.perf_counter() - started)


def peak_memory_of_vae_training(files: int = 10, episodes: int = 200, steps: int = 300,
                                steps_per_file: int = 3) -> tuple[float, float]:
    """Peak resident memory (GB) of 02_train_vae.py over `files` batch files of episodes x steps frames, and the
    size (GB) a float32 copy of those frames would take. The frames are synthetic: memory use does not depend on
    what the pixels show, and rolling out 600,000 real frames would take an hour here."""
    with tempfile.TemporaryDirectory(dir=ROOT) as folder:
        os.makedirs(os.path.join(folder, "data"))
        rng = np.random.default_rng(0)
        for batch in range(files):
            frames = np.lib.format.open_memmap(os.path.join(folder, "data", f"obs_data_car_racing_{batch}.npy"),
                                               mode="w+", dtype=np.uint8, shape=(episodes, steps, 64, 64, 3))
            for e in range(episodes):
                frames[e] = rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8)
            frames.flush()
            del frames
            np.save(os.path.join(folder, "data", f"length_data_car_racing_{batch}.npy"),
                    np.full(episodes, steps, dtype=np.int32))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, os.path.join(ROOT, "02_train_vae.py"), "--start_batch", "0", "--max_batch",
                        str(files - 1), "--new_model", "--epochs", "1", "--steps_per_file", str(steps_per_file),
                        "--verbose", "0"], cwd=folder, check=True, capture_output=True)
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        assert peak_kb >= before
    float32_gb = files * episodes * steps * 64 * 64 * 3 * 4 / 1e9
    return peak_kb / 1e6, float32_gb


def main(quick: bool = False) -> None:
    print("== stage 01: random rollouts (CarRacing, frame crop and resize included)")
    one = rollout_rate(episodes=2 if quick else 4, steps=100 if quick else 200, workers=1)
    two = rollout_rate(episodes=4 if quick else 8, steps=100 if quick else 200, workers=2)
    print(f"  1 worker : {one:8.1f} frames/s (per core)")
    print(f"  2 workers: {two:8.1f} frames/s ({two / one:.2f}x)")
    rounds = 1 if quick else 3
    print(f"== stage 02: VAE training (z = 32, minibatch 100, CPU; each step in a fresh process, {rounds} round(s) "
          f"alternating, median)")
    rates = vae_training_rates(steps=3 if quick else 10, rounds=rounds)
    plain, xla, auto = (statistics.median(rates[mode]) for mode in ("off", "on", "auto"))
    for mode, label in (("off", "without XLA (--jit off)  "), ("on", "XLA (--jit on)           "),
                        ("auto", "02's default (--jit auto)")):
        print(f"  {label}: {statistics.median(rates[mode]):8.1f} images/s  (each round: "
              f"{', '.join(f'{rate:.1f}' for rate in rates[mode])})")
    print(f"  XLA / without: {xla / plain:.2f}x; the default: {auto / max(plain, xla):.2f} of the faster")
    episodes = 32 if quick else 64
    print(f"== stage 04: Doom MDN-RNN epoch ({episodes} random-play-length episodes, minibatch 16)")
    padded = rnn_epoch_rate(episodes, bucketed=False)
    bucketed = rnn_epoch_rate(episodes, bucketed=True)
    print(f"  padded to the longest : {padded:8.1f} recorded steps/s")
    print(f"  length buckets (04)   : {bucketed:8.1f} recorded steps/s ({bucketed / padded:.2f}x)")
    print("== stage 02: peak memory over ten batch files of 200 x 300 frames")
    peak, float32 = peak_memory_of_vae_training(files=2 if quick else 10)
    print(f"  peak resident memory {peak:.2f} GB; a float32 load of the same frames would need {float32:.1f} GB")


if __name__ == "__main__":
    from benchmarks import quick_flag
    from benchmarks.machine import describe

    quick = quick_flag(__doc__.strip().splitlines()[0])
    print(describe())
    main(quick=quick)
