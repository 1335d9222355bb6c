"""Benchmark of the agent's overhead: the NumPy V + M + C of one step against the environment's own step, and
what calling Keras once per step (as older ports do with `predict()`) would cost instead.

    python -m benchmarks.bench_agent            (part of `make bench`)

One process, one BLAS thread, random weights of the paper's shapes (speed does not depend on their values).
The three measurements alternate round by round on the same FastCarRacing frames; each figure is the median over
rounds of the mean time per step.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
from blas import prepare_blas  # noqa: E402

prepare_blas()  # before NumPy loads its BLAS
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.weights import random_weights  # noqa: E402


def numpy_agent(config):
    from controller.agent import Agent
    from controller.controller import Controller, random_params
    from rnn.numpy_rnn import NumpyMDNRNN, expected_rnn_shapes
    from vae.numpy_vae import NumpyVAE, expected_vae_shapes

    vae = NumpyVAE(random_weights(expected_vae_shapes(config.z_size), 0), config.z_size)
    rnn = NumpyMDNRNN(random_weights(expected_rnn_shapes(config), 1), config)
    return Agent(config, vae, rnn, Controller(config, random_params(config, 2)))


def keras_step(config):
    """V and M called through Keras `predict()` once per step, the controller in NumPy: the older ports' loop."""
    import keras

    from envs import get_spec
    from rnn.arch import make_rnn
    from vae.arch import make_vae

    vae, rnn = make_vae(config, seed=0), make_rnn(config)
    agent = numpy_agent(config)
    spec = get_spec(config.name)
    state = [np.zeros((1, config.rnn_size), np.float32), np.zeros((1, config.rnn_size), np.float32)]

    def step(observation):
        frame = spec.process_frame(observation)[None]
        mu, _ = vae.encoder.predict(frame, verbose=0)
        action = agent.controller.act(mu[0], state[0][0])
        x = np.concatenate([mu[0], action])[None, None].astype(np.float32)
        _, h, c = _rnn_predict(rnn, x, state)
        state[0], state[1] = h, c
        return action

    keras.utils.set_random_seed(0)
    return step


_STEP_MODELS: dict = {}


def _rnn_predict(rnn, x, state):
    """One LSTM step through Keras: the MDN-RNN's LSTM layer as a small functional model, run with predict()."""
    if id(rnn) not in _STEP_MODELS:
        import keras

        inputs = keras.Input(batch_shape=(1, 1, x.shape[-1]))
        h_in = keras.Input(batch_shape=(1, rnn.lstm.units))
        c_in = keras.Input(batch_shape=(1, rnn.lstm.units))
        output, h, c = rnn.lstm(inputs, initial_state=[h_in, c_in])
        _STEP_MODELS[id(rnn)] = keras.Model([inputs, h_in, c_in], [rnn.mdn(output), h, c])
    return _STEP_MODELS[id(rnn)].predict([x, state[0], state[1]], verbose=0)


ENCODER_MFLOP = 2 * (31 * 31 * 48 * 32 + 14 * 14 * 512 * 64 + 6 * 6 * 1024 * 128 + 2 * 2 * 2048 * 256) / 1e6


def measure(steps: int, rounds: int) -> dict[str, float]:
    """Median milliseconds per step of: the env step, the NumPy agent step, the Keras-predict agent step."""
    from config import CAR_RACING
    from envs import get_spec

    env = get_spec(CAR_RACING.name).make()
    stock_env = get_spec(CAR_RACING.name).make(fast=False)
    agent = numpy_agent(CAR_RACING)
    keras_agent = keras_step(CAR_RACING)
    observation, _ = env.reset(seed=0)
    agent.reset(0)
    frames, actions = [], []
    policy_rng = np.random.default_rng(0)
    for _ in range(steps):  # the frames every measurement sees, and the env steps' own timing
        frames.append(observation)
        actions.append(np.array([policy_rng.uniform(-1, 1), 0.3, 0.0], np.float32))
        observation, *_ = env.step(actions[-1])
    timings = {"env": [], "stock": [], "numpy": [], "keras": []}
    keras_agent(frames[0])  # warm-up: graph tracing
    for _ in range(rounds):
        env.reset(seed=0)
        started = time.perf_counter()
        for action in actions:
            env.step(action)
        timings["env"].append((time.perf_counter() - started) / steps)
        stock_env.reset(seed=0)
        started = time.perf_counter()
        for action in actions:
            stock_env.step(action)
        timings["stock"].append((time.perf_counter() - started) / steps)
        agent.reset(0)
        started = time.perf_counter()
        for frame in frames:
            agent.act(frame)
            agent.advance()
        timings["numpy"].append((time.perf_counter() - started) / steps)
        keras_steps = max(steps // 5, 10)  # slow: fewer steps
        started = time.perf_counter()
        for frame in frames[:keras_steps]:
            keras_agent(frame)
        timings["keras"].append((time.perf_counter() - started) / keras_steps)
    return {name: statistics.median(values) * 1e3 for name, values in timings.items()}


def main(quick: bool = False) -> dict[str, float]:
    ms = measure(steps=100 if quick else 300, rounds=3 if quick else 5)
    print("== agent overhead per CarRacing step (one thread, z 32, LSTM 256)")
    print(f"  env step, Gymnasium CarRacing-v3        {ms['stock']:7.2f} ms")
    print(f"  env step, FastCarRacing (this project)  {ms['env']:7.2f} ms")
    print(f"  NumPy V + M + C (this project)          {ms['numpy']:7.2f} ms = {ms['numpy'] / ms['stock']:5.1%} of a "
          f"CarRacing-v3 step, {ms['numpy'] / ms['env']:5.1%} of a FastCarRacing step")
    print(f"  Keras predict() per step (older ports)  {ms['keras']:7.2f} ms = {ms['keras'] / ms['stock']:5.1f}x a "
          f"CarRacing-v3 step, {ms['keras'] / ms['numpy']:.0f}x the NumPy agent")
    print(f"  (V's encoder is {ENCODER_MFLOP:.0f} MFLOP a frame: {ENCODER_MFLOP / ms['numpy']:.0f} GFLOP/s "
          f"counting the whole agent step)")
    return ms


if __name__ == "__main__":
    from benchmarks import quick_flag

    main(quick=quick_flag(__doc__.strip().splitlines()[0]))
