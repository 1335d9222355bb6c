"""What a controller-training worker computes: the total rewards of episodes for rows of controller parameters.

`Evaluator(task)` answers one parallel.Task: for every row of `task.params` (m, num_params), one episode per seed of
the same row of `task.seeds` (m, k), each at most `task.max_length` steps -> rewards (m, k), lengths (m, k).

    real environment   the NumPy agent (controller/agent.py) drives CarRacing or VizDoom, one episode after another
    dream              (--dream_mode 1) all m * k episodes run together inside the MDN-RNN (dream.py), batched in NumPy

A dream-mode evaluator still builds the real agent, on first use, for tasks marked `real` (new dream bests are also
scored in the real game). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import numpy as np

from config import DATA_DIR, RNN_DIR, VAE_DIR


class Evaluator:
    def __init__(self, config, max_length: int, dream_mode: bool = False, temperature: float | None = None,
                 vae_dir: str = VAE_DIR, rnn_dir: str = RNN_DIR, data_dir: str = DATA_DIR, exp_mode: str | None = None):
        self.config = config
        self.exp_mode = exp_mode  # the controller's input mode (None: the paper's)
        self.max_length = max_length
        self.dream_mode = dream_mode
        self.temperature = config.dream_temperature if temperature is None else temperature
        self.vae_dir, self.rnn_dir, self.data_dir = vae_dir, rnn_dir, data_dir
        self.runner = None
        self.dream = None
        if dream_mode:
            from dream import load_dream

            self.dream = load_dream(config, data_dir=data_dir, rnn_dir=rnn_dir)
        else:
            self.real_runner()  # load the weights now: a bad file is reported before the first generation

    def real_runner(self):
        """The real-environment episode runner, built on first use."""
        if self.runner is None:
            from controller.agent import EpisodeRunner

            self.runner = EpisodeRunner(self.config, self.max_length, vae_dir=self.vae_dir, rnn_dir=self.rnn_dir,
                                        exp_mode=self.exp_mode)
        return self.runner

    def __call__(self, task) -> tuple[np.ndarray, np.ndarray]:
        params = np.atleast_2d(task.params)
        seeds = np.atleast_2d(task.seeds)
        if self.dream_mode and not task.real:
            from dream import dream_rollouts

            rnn, initial = self.dream
            return dream_rollouts(rnn, self.config, initial, params, seeds, self.temperature, task.max_length,
                                  self.exp_mode)
        runner = self.real_runner()
        outcomes = [runner(row, row_seeds, task.max_length) for row, row_seeds in zip(params, seeds)]
        return np.stack([rewards for rewards, _ in outcomes]), np.stack([lengths for _, lengths in outcomes])
