"""The NumPy agent: V, M and C agree with Keras, the controller's layout, seeded rollouts and the step order."""

import json

import numpy as np
import pytest

from benchmarks.weights import random_weights
from cli import UserError
from config import CAR_RACING, DOOM_TAKE_COVER, controller_shape
from controller.agent import Agent
from controller.controller import Controller, load_params, save_params
from envs import get_spec
from episodes import play_episode
from rnn.numpy_rnn import NumpyMDNRNN, expected_rnn_shapes
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
    assert controller.param_count == 867 and controller.shape.input_size == 288
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
    assert controller.param_count == 1088 and not controller.shape.bias
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
    save_params(path, params, 123.5)  # estool's [params, score]: the paper's mode
    loaded, score, mode = load_params(path, CAR_RACING)
    np.testing.assert_array_equal(loaded, params)
    assert score == 123.5 and mode == "zh"
    with pytest.raises(UserError, match="867"):
        load_params(path, DOOM_TAKE_COVER)
    with pytest.raises(UserError, match="05_train_controller"):
        load_params(str(tmp_path / "missing.json"), CAR_RACING)


# ---- controller input modes (the official EXP_MODE; paper, table 1) ------------------------------------------------

@pytest.mark.parametrize("mode, car_racing, doom", [
    ("zh", 867, 576), ("z", 99, 64), ("z_hidden", 1443, 2600), ("zc", 867, 576), ("zch", 1635, 1088),
])
def test_each_mode_has_the_official_parameter_count(mode, car_racing, doom):
    """CarRacing (z 32, LSTM 256, 3 outputs with biases): z 32x3+3, z_hidden (32+1)x40 + 40x3+3, zc and zh
    (32+256)x3+3, zch (32+512)x3+3. Doom (z 64, LSTM 512, 1 output, no bias): 64, 64x40+40, 576, 576, 1,088."""
    assert controller_shape(CAR_RACING, mode).param_count == car_racing
    assert controller_shape(DOOM_TAKE_COVER, mode).param_count == doom
    assert Controller(CAR_RACING, exp_mode=mode).param_count == car_racing


def test_z_hidden_forward_pass_by_hand():
    """a = tanh(W2 tanh(W1 z + b1) + b2) with W1 (40, 32), b1, W2 (3, 40), b2 in that order."""
    rng = np.random.default_rng(4)
    params = rng.standard_normal(1443) * 0.3
    w1 = params[:1280].reshape(40, 32)
    b1 = params[1280:1320]
    w2 = params[1320:1440].reshape(3, 40)
    b2 = params[1440:]
    z = rng.standard_normal(32).astype(np.float32)
    hidden = [np.tanh(sum(w1[unit, j] * z[j] for j in range(32)) + b1[unit]) for unit in range(40)]
    expected = [np.tanh(sum(w2[o, unit] * hidden[unit] for unit in range(40)) + b2[o]) for o in range(3)]
    controller = Controller(CAR_RACING, params, "z_hidden")
    np.testing.assert_allclose(controller.output(z, h=np.full(256, 9.0, np.float32)), expected, rtol=1e-5)


@pytest.mark.parametrize("mode", ["z", "zc", "zch"])
def test_linear_modes_read_their_inputs_in_order(mode):
    """W (3, inputs) row-major over the mode's parts in z, c, h order, then b: weight 1 on the first element of
    each part, so the output is tanh(z[0] + c[0] + h[0] + b) for the parts the mode has."""
    shape = controller_shape(CAR_RACING, mode)
    sizes = {"z": 32, "c": 256, "h": 256}
    params = np.zeros(shape.param_count)
    offset = 0
    for part in shape.parts:
        params[offset] = 1.0  # W[0, first input of the part]
        offset += sizes[part]
    params[-3:] = [0.1, 0.0, 0.0]
    z, c, h = (np.zeros(n, np.float32) for n in (32, 256, 256))
    z[0], c[0], h[0] = 0.2, 0.3, 0.4
    value = {"z": 0.2, "c": 0.3, "h": 0.4}
    expected = np.tanh(sum(value[part] for part in shape.parts) + 0.1)
    assert Controller(CAR_RACING, params, mode).output(z, h, c)[0] == pytest.approx(expected, rel=1e-6)


def test_a_parameter_file_saved_without_a_mode_is_read_back_in_the_paper_mode(tmp_path):
    path = str(tmp_path / "doom.best.json")
    save_params(path, np.zeros(1088), 3.0, "doom_take_cover")  # wrote "exp_mode": null, which load_params refused
    assert load_params(path, DOOM_TAKE_COVER)[2] == "zch"


def test_a_mode_round_trips_through_the_parameter_file_and_a_mismatch_is_refused(tmp_path):
    params = np.random.default_rng(1).standard_normal(1443)
    path = str(tmp_path / "car_racing.z_hidden.cma.1.4.best.json")
    save_params(path, params, 12.5, "car_racing", "z_hidden")
    loaded, score, mode = load_params(path, CAR_RACING)
    assert mode == "z_hidden" and score == 12.5
    np.testing.assert_array_equal(loaded, params)
    assert load_params(path, CAR_RACING, "z_hidden")[2] == "z_hidden"
    with pytest.raises(UserError, match="mode z_hidden; --exp_mode zh"):
        load_params(path, CAR_RACING, "zh")
    with pytest.raises(UserError, match="is a car_racing controller, not a doom_take_cover one"):
        load_params(path, DOOM_TAKE_COVER)
    with open(path, "w") as handle:
        json.dump([params.tolist(), 1.0, {"env": "car_racing", "exp_mode": "zh"}], handle)  # 1,443 values for zh
    with pytest.raises(UserError, match="1443 parameters; car_racing's zh controller has 867"):
        load_params(path, CAR_RACING)
    with open(path, "w") as handle:
        json.dump([["1"] * 867, 1.0], handle)
    with pytest.raises(UserError, match="other than numbers"):
        load_params(path, CAR_RACING)


@pytest.fixture(scope="module")
def agent():
    vae = NumpyVAE(random_weights(expected_vae_shapes(32), seed=4), 32)
    rnn = NumpyMDNRNN(random_weights(expected_rnn_shapes(CAR_RACING), seed=5, scale=3.0), CAR_RACING)
    params = np.random.default_rng(6).normal(0.0, 0.5, 867)
    return Agent(CAR_RACING, vae, rnn, Controller(CAR_RACING, params))


def traced_episode(agent, env, seed, max_length, trace):
    """episodes.play_episode with the agent; `trace` gets a dict a step: z, the action, and the h and c the action
    was chosen with. Returns (total reward, steps)."""
    def record(step, observation, action):
        trace.append({"z": agent.z.copy(), "action": action.copy(), "h": agent.h[0].copy(), "c": agent.c[0].copy()})

    episode = play_episode(env, agent, seed, max_length, on_step=record)
    return episode.reward, episode.steps


def test_same_seed_gives_the_same_rollout(agent):
    env = get_spec("car_racing").make()
    first, second, other = [], [], []
    result = traced_episode(agent, env, 7, 40, first)
    assert traced_episode(agent, env, 7, 40, second) == result
    traced_episode(agent, env, 8, 40, other)
    assert result[1] == 40
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["action"], b["action"])
    assert any(not np.array_equal(a["z"], b["z"]) for a, b in zip(first, other))  # another track, other noise


def test_memory_advances_with_the_action_just_taken(agent):
    """h_{t+1} = M([z_t, a_t], h_t): the action chosen at step t, not the one before (the 2018 port's bug)."""
    trace = []
    traced_episode(agent, get_spec("car_racing").make(), 9, 12, trace)
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
