"""02's --jit auto: which of V's training steps runs faster on this machine, XLA's or the plain TensorFlow graph's,
timed in a child process of its own (`python -m vae.jit_choice`).

The process that trains then runs the chosen step alone, exactly as under `--jit on` or `--jit off`: after both steps
had run in one process, the chosen plain step trained at 0.71 to 0.83 of the same step forced by `--jit off` in
benchmarks.bench_data (2026-12-06, two AMD EPYC cores), a slowdown we did not track down. The child costs a Python
start and a TensorFlow import (seconds); it times steps of a new V of the same shapes on the run's own frames
(vae.train.choose_jit: one step each way to compile, then alternating), and reports on its last line as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Sequence

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def choose_jit_apart(env_name: str, batches: Sequence[np.ndarray], steps: int) -> tuple[bool, dict[bool, float]]:
    """(XLA faster?, {XLA?: images per second}) of V's training step on `batches` (uint8 minibatches, at least
    1 + steps), timed in a child process. A child that fails is a UserError naming --jit on and off."""
    from cli import UserError
    from processes import dies_with_this_process

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "minibatches.npz")
        np.savez(path, *batches)
        result = subprocess.run([sys.executable, "-m", "vae.jit_choice", env_name, path, str(steps)], cwd=ROOT,
                                capture_output=True, text=True, preexec_fn=dies_with_this_process())
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        said = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise UserError(f"--jit auto could not time the training step ({said}); give --jit on or --jit off")
    report = json.loads(lines[-1])
    return bool(report["xla"]), {True: float(report["xla_images_per_s"]), False: float(report["plain_images_per_s"])}


def main(argv: Sequence[str]) -> None:
    env_name, path, steps = argv
    from keras_setup import quiet_tensorflow

    quiet_tensorflow()
    from config import get_config
    from vae.arch import make_vae
    from vae.train import choose_jit

    with np.load(path) as stored:
        batches = [stored[name] for name in stored.files]
    xla, rates = choose_jit(make_vae(get_config(env_name), seed=0), batches, steps=int(steps))
    print(json.dumps({"xla": xla, "xla_images_per_s": rates[True], "plain_images_per_s": rates[False]}))


if __name__ == "__main__":
    main(sys.argv[1:])
