"""The NumPy agent: V, M and C agree with Keras, the controller's layout, seeded rollouts and the step order."""

import numpy as np
import pytest

from config import CAR_RACING, DOOM_TAKE_COVER
from controller.agent import Agent, rollout
from controller.controller import Controller, load_params, save_params
from env import make_env
from rnn.numpy_rnn import NumpyMDNRNN, expected_rnn_shapes
from utils import UserError, random_weights
from vae.numpy_vae import NumpyVAE, expected_vae_shapes

TOLERANCE = 1e-4



def randomise_biases(model, seed):
    """Keras starts biases at zero; give them values so the NumPy bias paths are checked too."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if variable.name == "bias":
            variable.assign(rng.normal(0.0, 0.1, variable.shape).astype(np.float32))


@pytest.fixture(scope="module")
def keras_models():
    import keras

    from rnn.arch import make_rnn
    from vae.arch import make_vae

    keras.utils.set_random_seed(0)
    vae = make_vae(CAR_RACING, seed=0)
    rnn = make_rnn(CAR_RACING)
    doom_rnn = make_rnn(DOOM_TAKE_COVER)
    for index, model in enumerate((vae, rnn, doom_rnn)):
        randomise_biases(model, index)
    return vae, rnn, doom_rnn


def test_numpy_vae_matches_keras(keras_models):
    vae = keras_models[0]
    numpy_vae = NumpyVAE(vae.numpy_weights(), CAR_RACING.z_size)
    frames = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    mu, logvar = (np.asarray(t) for t in vae.encode(frames))
    numpy_mu, numpy_logvar = numpy_vae.encode(frames)
    np.testing.assert_allclose(numpy_mu, mu, atol=TOLERANCE)
    np.testing.assert_allclose(numpy_logvar, logvar, atol=TOLERANCE)
    np.testing.assert_allclose(numpy_vae.encode(frames[1])[0], mu[1:2], atol=TOLERANCE)  # one frame, no batch axis
    z = np.random.default_rng(2).standard_normal((3, CAR_RACING.z_size)).astype(np.float32)
    decoded = np.asarray(vae.decoder(z))
    assert decoded.shape == (3, 64, 64, 3) and decoded.std() > 0.01
    np.testing.assert_allclose(numpy_vae.decode(z), decoded, atol=TOLERANCE)


@pytest.mark.parametrize("index, config", [(1, CAR_RACING), (2, DOOM_TAKE_COVER)])
def test_numpy_lstm_and_mdn_match_keras(keras_models, index, config):
    rnn = keras_models[index]
    numpy_rnn = NumpyMDNRNN(rnn.numpy_weights(), config)
    inputs = np.random.default_rng(3).standard_normal((2, 6, config.rnn_input_size)).astype(np.float32)
    mdn_output, done_logit, (h_final, c_final) = rnn(inputs)
    h, c = numpy_rnn.initial_state(batch=2)
    for t in range(inputs.shape[1]):
        h, c = numpy_rnn.step(inputs[:, t], h, c)
        np.testing.assert_allclose(numpy_rnn.mdn(h), np.asarray(mdn_output)[:, t], atol=TOLERANCE)
        if config.use_done:
            np.testing.assert_allclose(numpy_rnn.done_logit(h), np.asarray(done_logit)[:, t], atol=TOLERANCE)
    np.testing.assert_allclose(h, np.asarray(h_final), atol=TOLERANCE)
    np.testing.assert_allclose(c, np.asarray(c_final), atol=TOLERANCE)
    assert np.abs(h).max() > 0.05  # the states are not trivially zero


def test_controller_parameter_layout_car_racing():
    controller = Controller(CAR_RACING)
    assert controller.param_count == 867 and controller.input_size == 288
    params = np.zeros(867)
    # W is (3, 288) row-major: W[0, 0] reads z[0]; W[1, 32] reads h[0]; W[2, 287] reads h[255]; then b.
    params[0 * 288 + 0] = 0.5
    params[1 * 288 + 32] = -1.0
    params[2 * 288 + 287] = 2.0
    params[864:867] = [0.1, 0.2, -0.3]
    controller.set_params(params)
    z = np.zeros(32, np.float32)
    h = np.zeros(256, np.float32)
    z[0], h[0], h[255] = 1.0, 0.5, 0.25
    output = np.tanh([0.5 * 1.0 + 0.1, -1.0 * 0.5 + 0.2, 2.0 * 0.25 - 0.3])
    np.testing.assert_allclose(controller.output(z, h), output, rtol=1e-6)
    expected_action = [output[0], (output[1] + 1) / 2, np.clip(output[2], 0, 1)]
    np.testing.assert_allclose(controller.act(z, h), expected_action, rtol=1e-6)
    assert controller.act(z, h).dtype == np.float32
    params[866] = -5.0  # brake can't go negative, gas stays in [0, 1]
    controller.set_params(params)
    action = controller.act(z, -h)
    assert action[2] == 0.0 and 0.0 <= action[1] <= 1.0


def test_controller_parameter_layout_doom():
    controller = Controller(DOOM_TAKE_COVER)
    assert controller.param_count == 1088 and not controller.has_bias
    params = np.zeros(1088)
    params[[0, 64, 64 + 512]] = [1.0, 2.0, 3.0]  # z[0], c[0], h[0]: input order [z, c, h]
    controller.set_params(params)
    z, c, h = np.zeros(64, np.float32), np.zeros(512, np.float32), np.zeros(512, np.float32)
    z[0], c[0], h[0] = 0.1, 0.1, -0.2
    np.testing.assert_allclose(controller.act(z, h, c), np.tanh([0.1 + 0.2 - 0.6]), rtol=1e-6)
    with pytest.raises(ValueError, match="1088"):
        controller.set_params(np.zeros(867))


def test_parameter_file_round_trip_and_checks(tmp_path):
    params = np.random.default_rng(0).standard_normal(867)
    path = str(tmp_path / "c.best.json")
    save_params(path, params, 123.5)
    loaded, score = load_params(path, CAR_RACING)
    np.testing.assert_array_equal(loaded, params)
    assert score == 123.5
    with pytest.raises(UserError, match="867"):
        load_params(path, DOOM_TAKE_COVER)
    with pytest.raises(UserError, match="05_train_controller"):
        load_params(str(tmp_path / "missing.json"), CAR_RACING)


@pytest.fixture(scope="module")
def agent():
    vae = NumpyVAE(random_weights(expected_vae_shapes(32), seed=4), 32)
    rnn = NumpyMDNRNN(random_weights(expected_rnn_shapes(CAR_RACING), seed=5, scale=3.0), CAR_RACING)
    params = np.random.default_rng(6).normal(0.0, 0.5, 867)
    return Agent(CAR_RACING, vae, rnn, Controller(CAR_RACING, params))


def test_same_seed_gives_the_same_rollout(agent):
    env = make_env("car_racing")
    first, second, other = [], [], []
    result = rollout(agent, env, seed=7, max_length=40, trace=first)
    assert rollout(agent, env, seed=7, max_length=40, trace=second) == result
    rollout(agent, env, seed=8, max_length=40, trace=other)
    assert result[1] == 40
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["action"], b["action"])
    assert any(not np.array_equal(a["z"], b["z"]) for a, b in zip(first, other))  # another track, other noise


def test_memory_advances_with_the_action_just_taken(agent):
    """h_{t+1} = M([z_t, a_t], h_t): the action chosen at step t, not the one before (the 2018 port's bug)."""
    trace = []
    rollout(agent, make_env("car_racing"), seed=9, max_length=12, trace=trace)
    assert np.abs(trace[0]["h"]).max() == 0.0  # every episode starts from a zero state
    distinct = 0
    for t, (now, after) in enumerate(zip(trace, trace[1:])):
        x = np.concatenate([now["z"], now["action"]])[None]
        h, c = agent.rnn.step(x, now["h"][None], now["c"][None])
        np.testing.assert_allclose(after["h"], h[0], atol=1e-6)
        np.testing.assert_allclose(after["c"], c[0], atol=1e-6)
        previous = trace[max(t - 1, 0)]["action"]
        if not np.allclose(previous, now["action"], atol=1e-3):
            lagged, _ = agent.rnn.step(np.concatenate([now["z"], previous])[None], now["h"][None], now["c"][None])
            distinct += not np.allclose(after["h"], lagged[0], atol=1e-6)
    assert distinct > 0  # the check above could tell a_t from a_{t-1}
