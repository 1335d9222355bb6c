"""V and M: parameter counts, losses against hand-computed values, sampling, checkpoint round trips, learning."""

import math

import keras
import numpy as np
import pytest

from config import CAR_RACING, DOOM_TAKE_COVER
from rnn import mdn
from rnn.arch import make_rnn, mdn_negative_log_likelihood, weighted_done_loss
from rnn.train import (length_buckets, load_rnn, rnn_arrays, rnn_from_numpy_copy, save_rnn, step_norms,
                       training_masks)
from vae.arch import kl_divergence, make_vae, reconstruction_error
from vae.train import (choose_jit, epoch_file_order, load_vae, resume_point, save_vae, set_jit, vae_from_numpy_copy,
                       valid_frame_index)


@pytest.mark.parametrize("config, vae_params, rnn_params, controller_params", [
    (CAR_RACING, 4_348_547, 422_368, 867),
    (DOOM_TAKE_COVER, 4_446_915, 1_678_785, 1_088),
])
def test_parameter_counts_match_the_paper(config, vae_params, rnn_params, controller_params):
    assert make_vae(config).count_params() == vae_params
    assert make_rnn(config).count_params() == rnn_params
    assert config.controller_param_count == controller_params


def test_kl_is_zero_for_the_prior_and_matches_the_closed_form():
    zeros = np.zeros((2, 32), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(kl_divergence(zeros, zeros)), 0.0, atol=1e-7)
    mu = np.full((1, 4), 2.0, dtype=np.float32)
    logvar = np.full((1, 4), math.log(3.0), dtype=np.float32)
    per_dim = 0.5 * (3.0 + 4.0 - 1.0 - math.log(3.0))  # KL(N(2, 3) || N(0, 1))
    np.testing.assert_allclose(np.asarray(kl_divergence(mu, logvar)), [4 * per_dim], rtol=1e-6)


def test_reconstruction_error_is_a_sum_of_squares_over_pixels():
    frames = np.zeros((2, 64, 64, 3), dtype=np.float32)
    reconstruction = np.full((2, 64, 64, 3), 0.5, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(reconstruction_error(frames, reconstruction)), [3072.0, 3072.0])


def test_vae_kl_loss_has_the_free_bits_floor():
    vae = make_vae(CAR_RACING, seed=0)
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    total, reconstruction, kl = (float(x) for x in vae.losses_of(frames))
    # A fresh encoder's posterior is close to the prior, so max(KL, 0.5 * 32) is the floor 16.
    assert kl == pytest.approx(16.0)
    assert total == pytest.approx(reconstruction + kl, rel=1e-6)


def _hand_mixture_nll(params, target, k):
    """-log sum_k pi_k N(target | mu_k, sigma_k) for one latent dimension, by the textbook formula."""
    log_pi, mu, log_sigma = params[:k], params[k:2 * k], params[2 * k:]
    weights = [math.exp(v) for v in log_pi]
    weights = [w / sum(weights) for w in weights]
    density = sum(w * math.exp(-0.5 * ((target - m) / math.exp(s)) ** 2) / (math.exp(s) * math.sqrt(2 * math.pi))
                  for w, m, s in zip(weights, mu, log_sigma))
    return -math.log(density)


def test_mdn_loss_equals_the_hand_computed_mixture_density():
    rng = np.random.default_rng(1)
    k, z_size = 5, 3
    output = rng.normal(size=(2, 4, 3 * k * z_size)).astype(np.float32)
    target = rng.normal(size=(2, 4, z_size)).astype(np.float32)
    keras_nll = np.asarray(mdn_negative_log_likelihood(output, target, k))
    hand = np.array([[[_hand_mixture_nll(output[b, t, d * 3 * k:(d + 1) * 3 * k].astype(float), float(target[b, t, d]), k)
                       for d in range(z_size)] for t in range(4)] for b in range(2)])
    np.testing.assert_allclose(keras_nll, hand, rtol=1e-4)
    log_pi, mu, log_sigma = mdn.split_mdn_params(output, k)
    np.testing.assert_allclose(-mdn.mixture_log_density(log_pi, mu, log_sigma, target), hand, rtol=1e-4)


def test_done_loss_weights_positives():
    logits = np.array([0.3, -1.2], dtype=np.float32)
    targets = np.array([1.0, 0.0], dtype=np.float32)
    expected = [-10.0 * math.log(1 / (1 + math.exp(-0.3))), -math.log(1 - 1 / (1 + math.exp(1.2)))]
    np.testing.assert_allclose(np.asarray(weighted_done_loss(logits, targets, 10.0)), expected, rtol=1e-5)


def test_sampling_with_temperature_scales_sigma_by_sqrt_tau():
    rng = np.random.default_rng(2)
    n = 40000
    log_pi = np.zeros((n, 1, 1))
    mu = np.full((n, 1, 1), 1.5)
    log_sigma = np.full((n, 1, 1), math.log(0.4))
    for tau in (0.25, 1.0, 1.15):
        z = mdn.sample_mdn(log_pi, mu, log_sigma, tau, rng)[:, 0]
        assert z.mean() == pytest.approx(1.5, abs=0.02)
        assert z.std() == pytest.approx(0.4 * math.sqrt(tau), rel=0.03)


def test_sampling_with_low_temperature_picks_the_likeliest_component():
    rng = np.random.default_rng(3)
    log_pi = np.log(np.array([[[0.6, 0.4]]] * 2000))
    mu = np.array([[[-5.0, 5.0]]] * 2000)
    log_sigma = np.full_like(mu, math.log(0.01))
    cold = mdn.sample_mdn(log_pi, mu, log_sigma, 0.01, rng)
    assert np.all(cold < 0)
    warm = mdn.sample_mdn(log_pi, mu, log_sigma, 1.0, rng)
    assert np.mean(warm < 0) == pytest.approx(0.6, abs=0.04)


def test_masks_cover_recorded_steps_only():
    lengths = np.array([3, 5])
    dones = np.zeros((2, 5), dtype=bool)
    dones[0, 2] = True
    z_mask, done_target, done_mask = training_masks(lengths, dones, 5)
    np.testing.assert_array_equal(z_mask, [[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    np.testing.assert_array_equal(done_mask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(done_target, [[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(valid_frame_index(lengths, 5), [0, 1, 2, 5, 6, 7, 8, 9])


def test_length_buckets_hold_every_episode_once_and_cut_only_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 2101, 203)
    groups = length_buckets(lengths, 16, np.random.default_rng(1), multiple=64, max_steps=2100)
    assert len(groups) == 13  # 12 full minibatches and one of 11
    np.testing.assert_array_equal(np.sort(np.concatenate([rows for rows, _ in groups])), np.arange(203))
    for rows, steps in groups:
        assert lengths[rows].max() <= steps <= 2100
        assert steps == 2100 or (steps % 64 == 0 and steps - lengths[rows].max() < 64)
    # similar lengths go together: far less padding than cutting every minibatch to the longest episode
    kept = sum(len(rows) * steps for rows, steps in groups)
    assert kept < 1.1 * lengths.sum() + 64 * len(lengths) < 2100 * len(lengths)
    other = length_buckets(lengths, 16, np.random.default_rng(2), multiple=64, max_steps=2100)
    assert [list(rows) for rows, _ in other] != [list(rows) for rows, _ in groups]  # a new split every epoch


def test_mdn_rnn_losses_of_a_cut_minibatch_equal_those_of_the_padded_one():
    rng = np.random.default_rng(3)
    lengths = np.array([7, 12, 4])
    mu = rng.normal(size=(3, 40, 64)).astype(np.float32)
    actions = rng.choice([-1.0, 0.0, 1.0], size=(3, 40, 1)).astype(np.float32)
    dones = np.zeros((3, 40), dtype=bool)
    dones[1, 11] = True
    inputs, z_next = rnn_arrays(mu, np.full_like(mu, -4.0), actions, lengths, True, rng)
    z_mask, done_target, done_mask = training_masks(lengths, dones, 40)
    rnn = make_rnn(DOOM_TAKE_COVER)
    full = rnn.losses_of(inputs, z_next, z_mask, done_target, done_mask)
    cut = rnn.losses_of(inputs[:, :12], z_next[:, :12], z_mask[:, :12], done_target[:, :12], done_mask[:, :12])
    np.testing.assert_allclose([float(x) for x in cut], [float(x) for x in full], rtol=1e-6)
    assert float(full[2]) > 0  # the done loss is in it


def test_mdn_rnn_test_step_gives_the_training_loss_without_a_step():
    inputs, targets = _doom_batch()
    rnn = make_rnn(DOOM_TAKE_COVER)
    before = [w.copy() for w in rnn.get_weights()]
    evaluated = rnn.test_on_batch(inputs, targets, return_dict=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, rnn.get_weights()))  # no step taken
    by_hand = [float(x) for x in rnn.losses_of(inputs, *targets, training=False)]
    np.testing.assert_allclose([evaluated[n] for n in ("loss", "z_loss", "done_loss")], by_hand, rtol=1e-6)
    trained = rnn.train_on_batch(inputs, targets, return_dict=True)  # the loss before its own step
    np.testing.assert_allclose(trained["loss"], evaluated["loss"], rtol=1e-5)
    assert not all(np.array_equal(a, b) for a, b in zip(before, rnn.get_weights()))


def test_every_step_weighs_the_same_in_training_however_episodes_are_grouped():
    """04 groups episodes by length. When each minibatch was its own mean, a minibatch of two short episodes weighed
    each of its steps 8 times what one of two long ones did: the epoch's summed gradient depended on the grouping
    (and the long episodes a controller plays counted less). With the epoch's norms it is the same for any grouping,
    and it is the gradient of the per-step mean loss of the whole epoch."""
    import tensorflow as tf

    rng = np.random.default_rng(5)
    lengths = np.array([5, 5, 40, 40])
    mu = rng.normal(size=(4, 40, 64)).astype(np.float32)
    actions = rng.choice([-1.0, 0.0, 1.0], size=(4, 40, 1)).astype(np.float32)
    dones = np.zeros((4, 40), dtype=bool)
    dones[0, 4] = dones[2, 39] = True
    inputs, z_next = rnn_arrays(mu, np.full_like(mu, -4.0), actions, lengths, True, rng)
    targets = (z_next, *training_masks(lengths, dones, 40), *step_norms(lengths))
    rnn = make_rnn(DOOM_TAKE_COVER)

    def summed_gradient(groups, normed=True):
        total = None
        for rows in map(np.array, groups):
            with tf.GradientTape() as tape:
                loss = rnn.losses_of(inputs[rows], *(t[rows] for t in targets[:6 if normed else 4]))[0]
            gradient = [np.asarray(g) for g in tape.gradient(loss, rnn.trainable_weights)]
            total = gradient if total is None else [a + b for a, b in zip(total, gradient)]
        return np.concatenate([g.ravel() for g in total])

    by_length, mixed = summed_gradient([[0, 1], [2, 3]]), summed_gradient([[0, 2], [1, 3]])
    np.testing.assert_allclose(by_length, mixed, rtol=2e-4, atol=1e-7)
    whole = summed_gradient([[0, 1, 2, 3]])  # one minibatch of the epoch, whose loss is the per-step mean
    np.testing.assert_allclose(by_length, 2 * whole, rtol=2e-4, atol=1e-7)  # two minibatches of half the norm each
    old_by_length, old_mixed = summed_gradient([[0, 1], [2, 3]], False), summed_gradient([[0, 2], [1, 3]], False)
    assert np.abs(old_by_length - old_mixed).max() > 0.1 * np.abs(old_mixed).max()  # the bias that was


def _doom_batch():
    """(inputs, targets) of two Doom episodes of 9 and 5 steps, the second ending in death."""
    rng = np.random.default_rng(4)
    lengths = np.array([9, 5])
    mu = rng.normal(size=(2, 10, 64)).astype(np.float32)
    actions = rng.choice([-1.0, 0.0, 1.0], size=(2, 10, 1)).astype(np.float32)
    dones = np.zeros((2, 10), dtype=bool)
    dones[1, 4] = True
    inputs, z_next = rnn_arrays(mu, np.full_like(mu, -4.0), actions, lengths, True, rng)
    return inputs, (z_next, *training_masks(lengths, dones, 10))


def test_doom_m_resumes_with_adams_state_under_a_rate_below_the_schedules_end(tmp_path):
    """Before: --learning_rate 1e-5 or lower built a constant-rate Adam, one variable more than the decaying one's;
    Keras then skipped the saved Adam state with a warning and 04 went on afresh, saying it had resumed."""
    rnn = make_rnn(DOOM_TAKE_COVER)
    for _ in range(3):
        rnn.train_on_batch(*_doom_batch())
    save_rnn(rnn, "doom_take_cover", str(tmp_path))
    resumed = load_rnn(DOOM_TAKE_COVER, str(tmp_path), learning_rate=5e-6)
    assert int(resumed.optimizer.iterations) == 3
    for saved, loaded in zip(rnn.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))
    assert math.isclose(float(resumed.optimizer.learning_rate), 5e-6, rel_tol=1e-6)  # stays at the given rate


def test_a_ctrl_c_while_m_is_saved_waits_for_both_files(tmp_path, monkeypatch):
    """The Keras weights and their NumPy copy are written together or not at all: a stop between them would leave a
    new one beside an old one (03 encodes with V's first, 05 plays with the second)."""
    import os
    import signal

    from rnn.numpy_rnn import expected_rnn_shapes
    from vae.numpy_vae import load_npz_weights

    rnn = make_rnn(CAR_RACING)
    save_weights = rnn.save_weights

    def interrupted(path):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first file is being written
        save_weights(path)

    monkeypatch.setattr(rnn, "save_weights", interrupted)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if run in background
    try:
        with pytest.raises(KeyboardInterrupt):
            save_rnn(rnn, "car_racing", str(tmp_path))
    finally:
        signal.signal(signal.SIGINT, before)
    assert sorted(os.listdir(tmp_path)) == ["car_racing.npz", "car_racing.weights.h5"]  # both, and no temporary
    saved = load_npz_weights(str(tmp_path / "car_racing.npz"), expected_rnn_shapes(CAR_RACING), "04")
    assert all(np.array_equal(saved[name], value) for name, value in rnn.numpy_weights().items())


def test_an_m_whose_adam_does_not_fit_is_refused_not_resumed_afresh(tmp_path):
    import keras

    from cli import UserError
    from rnn.arch import MDNRNN

    rnn = MDNRNN(DOOM_TAKE_COVER).build_all()  # Doom's M with a constant-rate Adam, as earlier versions made
    rnn.compile(optimizer=keras.optimizers.Adam(1e-4, clipvalue=1.0))
    rnn.optimizer.build(rnn.trainable_variables)
    save_rnn(rnn, "doom_take_cover", str(tmp_path))
    with pytest.raises(UserError, match="resuming would lose Adam's state"):
        load_rnn(DOOM_TAKE_COVER, str(tmp_path))


@pytest.mark.slow  # XLA compiles the VAE's training step (over ten seconds): left out of make test-fast
def test_xla_and_plain_vae_training_steps_agree():
    frames = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    losses = []
    for jit_compile in (True, False):
        keras.utils.set_random_seed(0)  # the same initial weights
        vae = make_vae(CAR_RACING, seed=0)
        set_jit(vae, jit_compile)  # as 02's --jit on / off
        losses.append([vae.train_on_batch(frames[i:i + 8], return_dict=True)["loss"] for i in (0, 8)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    assert losses[0][1] != losses[0][0]  # the second step sees the first one's update and other frames


@pytest.mark.slow  # compiles the VAE's training step both ways (over ten seconds)
def test_choosing_the_step_by_timing_changes_nothing_but_the_step():
    """choose_jit (02's --jit auto) trains on copies of nothing: it runs real steps and then puts every variable of V
    and Adam back, the noise generator's included, so V trains on exactly as one given the chosen step from the
    start does."""
    frames = np.random.default_rng(0).integers(0, 256, (48, 64, 64, 3), dtype=np.uint8)
    keras.utils.set_random_seed(0)
    timed = make_vae(CAR_RACING, seed=0)
    state = [*timed.variables, *timed.optimizer.variables, timed.seed_generator.state]
    before = [np.array(variable.numpy()) for variable in state]
    xla, rates = choose_jit(timed, [frames[i:i + 8] for i in range(0, 32, 8)])
    assert timed.jit_compile == xla == (rates[True] > rates[False]) and min(rates.values()) > 0
    assert all(np.array_equal(np.asarray(variable.numpy()), value) for variable, value in zip(state, before))
    keras.utils.set_random_seed(0)
    forced = make_vae(CAR_RACING, seed=0)
    set_jit(forced, xla)
    for vae in (timed, forced):
        for i in (32, 40):
            vae.train_on_batch(frames[i:i + 8])
    assert int(timed.optimizer.iterations.numpy()) == 2
    for a, b in zip(timed.variables, forced.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))


@pytest.mark.slow  # Keras traces and compiles fit() (over ten seconds): left out of make test-fast
def test_vae_checkpoint_round_trip_is_exact(tmp_path):
    vae = make_vae(CAR_RACING, seed=0)
    frames = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    vae.fit(frames, batch_size=4, epochs=1, verbose=0)  # moves the weights and Adam's moments off their start
    save_vae(vae, "car_racing", str(tmp_path))
    loaded = load_vae(CAR_RACING, str(tmp_path))
    for a, b in zip(vae.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(vae.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    exported = np.load(tmp_path / "car_racing.npz")
    np.testing.assert_array_equal(exported["enc_conv0/kernel"], vae.encoder.get_layer("enc_conv0").kernel.numpy())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["car_racing.npz", "car_racing.weights.h5"]


def test_rnn_checkpoint_round_trip_is_exact(tmp_path):
    rnn = make_rnn(DOOM_TAKE_COVER)
    save_rnn(rnn, "doom_take_cover", str(tmp_path))
    loaded = load_rnn(DOOM_TAKE_COVER, str(tmp_path))
    for a, b in zip(rnn.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert set(np.load(tmp_path / "doom_take_cover.npz").files) == {
        "lstm/kernel", "lstm/recurrent_kernel", "lstm/bias", "mdn/kernel", "mdn/bias", "done/kernel", "done/bias"}


def test_an_m_rebuilt_from_its_numpy_copy_has_exactly_its_weights(tmp_path):
    rnn = make_rnn(DOOM_TAKE_COVER)  # random weights: every variable differs from a fresh model's
    save_rnn(rnn, "doom_take_cover", str(tmp_path))
    rebuilt = rnn_from_numpy_copy(DOOM_TAKE_COVER, str(tmp_path / "doom_take_cover.npz"))
    assert len(rebuilt.trainable_weights) == len(rnn.trainable_weights) == 7
    for a, b in zip(rnn.trainable_weights, rebuilt.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(rebuilt.optimizer.iterations.numpy()) == 0  # Adam starts afresh


def test_a_v_rebuilt_from_its_numpy_copy_has_exactly_its_weights(tmp_path):
    vae = make_vae(CAR_RACING)
    save_vae(vae, "car_racing", str(tmp_path))
    rebuilt = vae_from_numpy_copy(CAR_RACING, str(tmp_path / "car_racing.npz"))
    fresh = make_vae(CAR_RACING)  # other random weights: the copy is not an accident of the initialisers
    assert len(rebuilt.trainable_weights) == len(vae.trainable_weights) == 22
    for a, b, c in zip(vae.trainable_weights, rebuilt.trainable_weights, fresh.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        if "kernel" in a.path:
            assert not np.array_equal(a.numpy(), c.numpy())
    assert int(rebuilt.optimizer.iterations.numpy()) == 0  # Adam starts afresh


def test_corrupt_weights_are_named(tmp_path):
    from cli import UserError

    (tmp_path / "car_racing.weights.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(UserError, match="car_racing.weights.h5 is corrupt.*02_train_vae.py"):
        load_vae(CAR_RACING, str(tmp_path))
    with pytest.raises(UserError, match="is missing.*04_train_rnn.py"):
        load_rnn(CAR_RACING, str(tmp_path / "empty"))


def test_resume_continues_the_history_and_names_a_corrupt_one(tmp_path):
    from cli import UserError
    from config import rnn_weights_path
    from files import save_json
    from model_files import new_or_resumed

    folder, history_path = str(tmp_path), str(tmp_path / "doom_take_cover.history.json")
    weights_path = rnn_weights_path("doom_take_cover", rnn_dir=folder)

    def start(new_model=False):
        return new_or_resumed("MDN-RNN", weights_path, history_path, new_model,
                              make=lambda: make_rnn(DOOM_TAKE_COVER), load=lambda: load_rnn(DOOM_TAKE_COVER, folder))

    rnn, history = start()
    assert history == []
    save_rnn(rnn, "doom_take_cover", folder)
    save_json(history_path, [{"epoch": 1, "loss": 1.5}])
    resumed, history = start()
    assert history == [{"epoch": 1, "loss": 1.5}]
    for a, b in zip(rnn.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert start(new_model=True)[1] == []
    for corrupt in ('[{"epoch": 1', '{"epoch": 1}'):
        (tmp_path / "doom_take_cover.history.json").write_text(corrupt)
        with pytest.raises(UserError, match="doom_take_cover.history.json is corrupt.*--new_model"):
            start()


def test_02_resumes_a_stopped_epoch_at_the_next_file():
    files = ["obs_0.npy", "obs_1.npy", "obs_2.npy"]

    def rows(epoch, names, total=3):
        return [{"epoch": epoch, "file": name, "position": position, "files": total}
                for position, name in enumerate(names)]

    assert resume_point([], files) == (1, 0)
    assert resume_point(rows(1, files), files) == (2, 0)  # a whole epoch: the next one
    assert resume_point(rows(1, files) + rows(2, files[:2]), files) == (2, 2)  # stopped after 2 of 3: the third
    assert resume_point(rows(1, files[:1]), files) == (1, 1)
    assert resume_point(rows(1, files[:1]), files[:2]) == (2, 0)  # another range than the stopped run's
    assert resume_point(rows(1, files[:1]), ["obs_5.npy"] + files[1:]) == (2, 0)
    assert resume_point([{"epoch": 4, "file": "obs_0.npy"}], files) == (5, 0)  # rows of older runs end their epoch
    # 02 visits an epoch's files in an order of its own: a stopped epoch goes on in that order
    visits = [files[i] for i in epoch_file_order(7, 2, 3)]
    assert resume_point(rows(1, files) + rows(2, visits[:1]), files, seed=7) == (2, 1)
    assert resume_point(rows(1, files) + rows(2, visits[1:2]), files, seed=7) == (3, 0)  # not this epoch's first


def test_02_shuffles_the_order_of_its_files_every_epoch():
    """A fixed order ended every epoch on the range's last file (in a round of iterative training, the controller's
    episodes); the official code shuffles all frames every epoch."""
    orders = [epoch_file_order(0, epoch, 12) for epoch in range(1, 9)]
    assert all(sorted(order) == list(range(12)) for order in orders)
    assert len({order[-1] for order in orders}) > 3  # not always the same file last
    assert epoch_file_order(0, 3, 12) == orders[2]  # a function of seed and epoch: a resume finds the same order


@pytest.mark.slow  # 60 epochs of training (over ten seconds): left out of make test-fast
def test_mdn_rnn_learns_a_predictable_sequence():
    """z_{t+1} = 0.9 z_t exactly: the MDN loss must fall well below its starting value."""
    rng = np.random.default_rng(4)
    rnn = make_rnn(CAR_RACING)
    z = np.zeros((32, 20, 32), dtype=np.float32)
    z[:, 0] = rng.normal(size=(32, 32))
    for t in range(1, 20):
        z[:, t] = 0.9 * z[:, t - 1]
    inputs = np.concatenate([z, np.zeros((32, 20, 3), np.float32)], axis=-1)
    targets = np.concatenate([z[:, 1:], np.zeros((32, 1, 32), np.float32)], axis=1)
    mask, _, done_mask = training_masks(np.full(32, 20), np.zeros((32, 20)), 20)
    history = rnn.fit(inputs, (targets, mask, np.zeros_like(mask), done_mask), batch_size=32, epochs=60,
                      verbose=0).history["z_loss"]
    assert history[-1] < history[0] - 1.0


def test_jit_auto_whose_timing_child_fails_says_so_in_one_line():
    """vae.jit_choice times the steps in a child process; one that fails (here: an environment it does not know) is a
    UserError that names the child's last line and the flags that skip the timing."""
    from cli import UserError
    from vae.jit_choice import choose_jit_apart

    frames = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(UserError, match=r"--jit auto could not time the training step \(.*no_such_env.*\); give "
                                        r"--jit on or --jit off"):
        choose_jit_apart("no_such_env", [frames, frames], steps=1)
