"""DoomTakeCover: the real VizDoom environment, its data through stages 01-04, and the dream (dream.py).

Everything runs for real at tiny sizes: VizDoom episodes, the numbered scripts as subprocesses, M with random
weights of the paper's shapes (and, at the end, the M that the tiny pipeline trained).
"""


import json
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks.weights import random_weights
from cli import UserError
from config import CAR_RACING, DOOM_TAKE_COVER
from controller.agent import Agent
from controller.controller import Controller, random_params, save_params
from dream import DreamBatch, DreamEnv, dream_rollouts, load_dream
from envs import get_spec
from rnn.numpy_rnn import NumpyMDNRNN, expected_rnn_shapes
from tests.scripts import run
from tests.test_agent import traced_episode
from vae.numpy_vae import NumpyVAE, expected_vae_shapes

DOOM = "doom_take_cover"
SPEC = get_spec(DOOM)
EPISODES, BATCH_SIZE, STEPS = 4, 2, 150  # stage 01 of the tiny pipeline: 2 batch files of 2 episodes



def doom_rnn(done_bias=-2.0, seed=1, one_component=False, mild=False):
    """A Doom M with random weights, the done bias setting how soon episodes end (-2: within a few dozen steps, at
    different steps for different episodes). Weights are scaled x3 so h moves a lot; such an M is chaotic (small
    differences grow). `mild` keeps fan-in scale (a contracting LSTM, as trained ones are) with a x10 done kernel.
    `one_component` gives the first Gaussian of every latent dimension all the weight, so no mixture choice is
    close to a tie."""
    weights = random_weights(expected_rnn_shapes(DOOM_TAKE_COVER), seed, scale=1.0 if mild else 3.0)
    if mild:
        weights["done/kernel"] *= 10.0
    weights["done/bias"][:] = done_bias
    if one_component:
        k = DOOM_TAKE_COVER.num_mixtures
        bias = weights["mdn/bias"].reshape(DOOM_TAKE_COVER.z_size, 3 * k)
        bias[:, 0] = 100.0
    return NumpyMDNRNN(weights, DOOM_TAKE_COVER)


def first_frames(config, count=5, seed=0, logvar=-2.0):
    """(count, 2, z) stored first-frame mu and logvar, as stage 03 writes them."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((count, config.z_size))
    return np.stack([mu, np.full_like(mu, logvar)], axis=1).astype(np.float32)



def play(env, seed, actions):
    """Frames, rewards and flags of one episode from reset(seed) with the given actions (until it ends)."""
    observation, _ = env.reset(seed=seed)
    frames, rewards, ends = [observation.copy()], [], []
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        frames.append(observation.copy())
        rewards.append(reward)
        ends.append((terminated, truncated))
        if terminated or truncated:
            break
    return np.array(frames), np.array(rewards), ends


# --- the real environment ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def doom_env():
    env = SPEC.make()
    yield env
    env.close()


def test_same_seed_and_actions_give_the_same_episode(doom_env):
    policy = SPEC.random_policy(seed=7)
    actions = [policy() for _ in range(2100)]
    frames, rewards, ends = play(doom_env, 3, actions)
    again, rewards_again, _ = play(doom_env, 3, actions)
    other, _, _ = play(doom_env, 4, actions)
    assert frames.shape[1:] == (240, 320, 3) and frames.dtype == np.uint8 and frames.std() > 10
    np.testing.assert_array_equal(again, frames)
    np.testing.assert_array_equal(rewards_again, rewards)
    assert not (len(other) == len(frames) and np.array_equal(other, frames))
    # a random player dies well before 2100 steps; every step survived, the last one included, scores 1
    assert ends[-1] == (True, False) and len(rewards) < 2100
    np.testing.assert_array_equal(rewards, 1.0)


@pytest.mark.parametrize("action, buttons", [
    (-1.0, [1, 0]), (-0.34, [1, 0]), (-0.33, [0, 0]), (0.0, [0, 0]), (0.33, [0, 0]), (0.34, [0, 1]), (1.0, [0, 1]),
])
def test_action_maps_to_left_stay_right(doom_env, action, buttons):
    doom_env.reset(seed=0)
    doom_env.step(np.array([action], dtype=np.float32))
    assert list(doom_env.unwrapped.game.get_last_action()) == buttons  # MOVE_LEFT, MOVE_RIGHT as the game saw them


def test_moving_changes_the_view(doom_env):
    still, _, _ = play(doom_env, 5, [np.zeros(1, np.float32)] * 20)
    left, _, _ = play(doom_env, 5, [-np.ones(1, np.float32)] * 20)
    right, _, _ = play(doom_env, 5, [np.ones(1, np.float32)] * 20)
    assert not np.array_equal(left[-1], still[-1]) and not np.array_equal(right[-1], left[-1])


def test_episodes_are_cut_at_the_limit():
    env = SPEC.make(max_episode_steps=5)
    _, rewards, ends = play(env, 1, [np.zeros(1, np.float32)] * 10)
    env.close()
    assert len(rewards) == 5 and ends[-1] == (False, True)
    env = SPEC.make()
    assert env._max_episode_steps == 2100
    env.close()


@pytest.mark.parametrize("mode", ["rgb_array", "human"])
def test_render_modes(mode):
    env = SPEC.make(render_mode=mode)  # "human": a pygame window (SDL's dummy driver here)
    env.reset(seed=0)
    observation, *_ = env.step(np.ones(1, np.float32))
    frame = env.render()
    env.close()
    if mode == "rgb_array":
        np.testing.assert_array_equal(frame, observation)
    else:
        assert frame is None


def test_frames_are_the_top_five_sixths_resized(doom_env):
    observation, _ = doom_env.reset(seed=2)
    frame = SPEC.process_frame(observation)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    expected = np.asarray(Image.fromarray(observation[:200]).resize((64, 64), Image.BILINEAR))
    np.testing.assert_array_equal(frame, expected)
    assert not np.array_equal(frame, SPEC.process_frame(observation[::-1].copy()))  # the bottom sixth is cut


def test_random_policy_holds_random_moves_for_1_to_10_steps():
    policy = SPEC.random_policy(seed=0)
    actions, holds = [], []
    for _ in range(3000):
        drew = policy.hold_left == 0
        actions.append(float(policy()[0]))
        if drew:
            holds.append(policy.hold_left + 1)
    assert set(actions) == {-1.0, 0.0, 1.0}
    assert min(holds) == 1 and max(holds) == 10 and 5.0 < np.mean(holds) < 6.0  # uniform on 1..10: mean 5.5
    again = SPEC.random_policy(seed=0)
    assert [float(again()[0]) for _ in range(3000)] == actions
    other = SPEC.random_policy(seed=1)
    assert [float(other()[0]) for _ in range(3000)] != actions


# --- stages 01-04 on Doom -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One tiny Doom run of 01 -> 02 -> 03 -> 04; returns (folder, stdout of 02, stdout of 04)."""
    folder = tmp_path_factory.mktemp("doom_pipeline")
    run("01_generate_data.py", DOOM, "--total_episodes", EPISODES, "--batch_size", BATCH_SIZE, "--time_steps", STEPS,
        "--num_workers", 2, cwd=folder)
    vae = run("02_train_vae.py", "--env_name", DOOM, "--max_batch", 1, "--new_model", "--epochs", 1,
              "--steps_per_file", 2, "--batch_size", 16, "--verbose", 0, cwd=folder)
    run("03_generate_rnn_data.py", "--env_name", DOOM, "--max_batch", 1, cwd=folder)
    rnn = run("04_train_rnn.py", "--env_name", DOOM, "--max_batch", 1, "--new_model", "--epochs", 1, "--verbose", 0,
              cwd=folder)
    return folder, vae.stdout, rnn.stdout


@pytest.mark.slow
def test_a_resumed_doom_m_keeps_its_learning_rate_schedule(pipeline, tmp_path):
    """Doom's decaying rate is not in the weights file: before, a resume restarted the schedule from 1e-3 (a run
    begun at 3e-4 jumped up), and a given --learning_rate started a schedule of its own at step 0."""
    import json

    folder = pipeline[0]
    rnn_dir = tmp_path / "rnn"
    flags = ["--env_name", DOOM, "--max_batch", 1, "--epochs", 1, "--verbose", 0, "--data_dir", folder / "data",
             "--rnn_dir", rnn_dir]
    run("04_train_rnn.py", *flags, "--new_model", "--learning_rate", 3e-4, cwd=tmp_path)
    resumed = run("04_train_rnn.py", *flags, cwd=tmp_path)
    rows = json.loads((rnn_dir / f"{DOOM}.history.json").read_text())
    steps = [row["rate_offset"] for row in rows]
    assert [row["rate_start"] for row in rows] == [3e-4, 3e-4] and steps == [0, 0]
    assert 2.9e-4 < rows[1]["learning_rate"] < rows[0]["learning_rate"] < 3e-4  # decaying on from the run's own
    assert "decaying from 0.0003 (step 0)" in resumed.stdout
    run("04_train_rnn.py", *flags, "--learning_rate", 5e-4, cwd=tmp_path)
    last = json.loads((rnn_dir / f"{DOOM}.history.json").read_text())[-1]
    assert last["rate_start"] == 5e-4 and last["rate_offset"] > 0  # from the given rate, at the step it was given
    assert 4.9e-4 < last["learning_rate"] < 5e-4


def load(folder, kind, batch=0):
    return np.load(folder / "data" / f"{kind}_{DOOM}_{batch}.npy")


@pytest.mark.slow
def test_rollout_files_have_the_documented_shapes(pipeline):
    folder = pipeline[0]
    for batch in (0, 1):
        obs, actions = load(folder, "obs_data", batch), load(folder, "action_data", batch)
        lengths, dones = load(folder, "length_data", batch), load(folder, "done_data", batch)
        assert obs.shape == (BATCH_SIZE, STEPS, 64, 64, 3) and obs.dtype == np.uint8 and obs.std() > 10
        assert actions.shape == (BATCH_SIZE, STEPS, 1) and actions.dtype == np.float32
        assert set(np.unique(actions)) <= {-1.0, 0.0, 1.0}
        assert lengths.shape == (BATCH_SIZE,) and dones.shape == (BATCH_SIZE, STEPS) and dones.dtype == bool
        for episode, length in enumerate(lengths):
            # done marks the step the player died; an episode cut at STEPS steps has none
            assert dones[episode].sum() == (1 if length < STEPS else 0)
            assert length == STEPS or dones[episode, length - 1]
            assert not obs[episode, length:].any() and not actions[episode, length:].any()
    assert (np.concatenate([load(folder, "length_data", b) for b in (0, 1)]) < STEPS).any()  # someone died


@pytest.mark.slow
def test_rollouts_do_not_depend_on_the_worker_count(pipeline, tmp_path):
    run("01_generate_data.py", DOOM, "--total_episodes", BATCH_SIZE, "--batch_size", BATCH_SIZE, "--time_steps",
        STEPS, "--num_workers", 1, cwd=tmp_path)
    for kind in ("obs_data", "action_data", "length_data", "done_data"):
        np.testing.assert_array_equal(load(tmp_path, kind), load(pipeline[0], kind))
    assert not (tmp_path / "_vizdoom.ini").exists()


@pytest.mark.slow
def test_padding_after_an_episode_takes_no_disk(tmp_path):
    # Episodes are padded to --time_steps in the obs file, but only the played frames are written into the sparse
    # file: at the paper's 2100 steps a random Doom episode plays ~300, so the file must be mostly holes.
    run("01_generate_data.py", DOOM, "--total_episodes", 2, "--batch_size", 2, "--num_workers", 1, cwd=tmp_path)
    path = tmp_path / "data" / f"obs_data_{DOOM}_0.npy"
    obs, lengths = np.load(path, mmap_mode="r"), load(tmp_path, "length_data")
    assert obs.shape == (2, 2100, 64, 64, 3) and lengths.max() < 1000
    played = int(lengths.sum()) * 64 * 64 * 3
    on_disk = os.stat(path).st_blocks * 512
    assert played <= on_disk < played + 1_000_000  # the played frames, the header and a few partial pages
    for episode, length in enumerate(lengths):
        assert obs[episode, length - 1].any() and not obs[episode, length:].any()


@pytest.mark.slow
def test_run_all_envs_collects_both_games(tmp_path):
    run("01_generate_data.py", "--run_all_envs", "--total_episodes", 1, "--time_steps", 5, "--num_workers", 1,
        cwd=tmp_path)
    for env_name, action_size in (("car_racing", 3), (DOOM, 1)):
        assert np.load(tmp_path / "data" / f"obs_data_{env_name}_0.npy").shape == (1, 5, 64, 64, 3)
        assert np.load(tmp_path / "data" / f"action_data_{env_name}_0.npy").shape == (1, 5, action_size)


@pytest.mark.slow
def test_models_have_the_papers_sizes_and_files(pipeline):
    folder, vae_stdout, rnn_stdout = pipeline
    assert "z = 64, 4,446,915 parameters" in vae_stdout
    assert "LSTM 512" in rnn_stdout and "1,678,785 parameters" in rnn_stdout
    for name in ("vae", "rnn"):
        assert (folder / name / f"{DOOM}.npz").exists() and (folder / name / f"{DOOM}.weights.h5").exists()
    history = (folder / "rnn" / f"{DOOM}.history.json").read_text()
    assert "done_loss" in history


@pytest.mark.slow
def test_rnn_data_carries_restart_flags_first_frames_and_dones(pipeline):
    folder = pipeline[0]
    rnn_input, mu = load(folder, "rnn_input"), load(folder, "rnn_mu")
    lengths = load(folder, "rnn_length")
    assert rnn_input.shape == (BATCH_SIZE, STEPS, 64 + 1 + 1)
    np.testing.assert_array_equal(rnn_input[:, 0, 65], 1.0)  # restart on the first step only
    assert not rnn_input[:, 1:, 65].any()
    for episode, length in enumerate(lengths):  # the move, as recorded
        np.testing.assert_array_equal(rnn_input[episode, :length, 64], load(folder, "action_data")[episode, :length, 0])
    initial = load(folder, "rnn_initial")
    assert initial.shape == (BATCH_SIZE, 2, 64) and initial.dtype == np.float32
    np.testing.assert_array_equal(initial[:, 0], mu[:, 0])
    np.testing.assert_array_equal(initial[:, 1], load(folder, "rnn_logvar")[:, 0])
    np.testing.assert_array_equal(load(folder, "rnn_done"), load(folder, "done_data"))


@pytest.mark.slow
def test_the_trained_model_dreams(pipeline):
    folder = pipeline[0]
    rnn, initial = load_dream(DOOM_TAKE_COVER, data_dir=str(folder / "data"), rnn_dir=str(folder / "rnn"))
    assert initial.shape == (EPISODES, 2, 64)  # both batch files
    rewards, lengths = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, np.zeros((2, 1088)), np.arange(4).reshape(2, 2),
                                      1.15, 50)
    assert lengths.shape == (2, 2) and np.all((lengths >= 1) & (lengths <= 50))
    np.testing.assert_array_equal(rewards, lengths)


@pytest.mark.slow
def test_01_plays_a_trained_controller_as_model_py_does(pipeline, tmp_path):
    # the paper's iterative training: 01 --controller records the episodes the agent (V + M + C) plays
    folder = pipeline[0]
    params = random_params(DOOM_TAKE_COVER, seed=5)
    save_params(str(tmp_path / "c.json"), params, 0.0)
    run("01_generate_data.py", DOOM, "--controller", "c.json", "--total_episodes", 3, "--batch_size", 3,
        "--start_batch", 4, "--time_steps", STEPS, "--num_workers", 2, "--vae_dir", folder / "vae",
        "--rnn_dir", folder / "rnn", cwd=tmp_path)
    actions, lengths = load(tmp_path, "action_data", 4), load(tmp_path, "length_data", 4)
    agent = Agent.load(DOOM_TAKE_COVER, params, vae_dir=str(folder / "vae"), rnn_dir=str(folder / "rnn"))
    env = SPEC.make()
    try:
        for episode in range(3):
            trace = []
            _, steps = traced_episode(agent, env, 4 * 3 + episode, STEPS, trace)  # episode k is seeded k
            assert steps == lengths[episode]
            moves = SPEC.model_action(np.stack([step["action"] for step in trace]))
            np.testing.assert_array_equal(actions[episode, :steps], moves)
    finally:
        env.close()
    played = np.concatenate([actions[episode, :length, 0] for episode, length in enumerate(lengths)])
    assert len(np.unique(played)) > 1  # the controller's moves, not a constant
    refused = run("01_generate_data.py", DOOM, "--controller", "c.json", "--total_episodes", 1, cwd=tmp_path,
                  check=False)
    assert refused.returncode == 1 and "vae/doom_take_cover.npz is missing" in refused.stderr


@pytest.mark.slow
def test_model_py_random_policy_replays_01s_episodes_and_plays_in_the_dream(pipeline):
    folder = pipeline[0]
    # 01 seeds episode k (environment and policy) with k: --random_policy --seed 0 plays the same episodes again
    run("model.py", DOOM, "--random_policy", "--seed", 0, "--num_episode", BATCH_SIZE, "--final_mode",
        "--max_length", STEPS, "--num_worker", 2, cwd=folder)
    real = json.loads((folder / "log" / f"random_policy.{DOOM}.final.json").read_text())
    assert real["random_policy"] and not real["dream_mode"]
    np.testing.assert_array_equal(real["lengths"], load(folder, "length_data"))
    np.testing.assert_array_equal(real["scores"], load(folder, "length_data"))  # 1 a tic survived
    dream = run("model.py", DOOM, "--random_policy", "--dream_mode", "--num_episode", 3, "--final_mode",
                "--max_length", 40, "--num_worker", 1, cwd=folder)
    assert "dream at tau 1.15" in dream.stdout
    scores = json.loads((folder / "log" / f"random_policy.{DOOM}.dream.final.json").read_text())
    assert scores["dream_mode"] and scores["temperature"] == 1.15
    assert all(1 <= n <= 40 for n in scores["lengths"]) and scores["scores"] == [float(n) for n in scores["lengths"]]
    refused = run("model.py", DOOM, "--random_policy", "--filename", "some.best.json", cwd=folder, check=False)
    assert refused.returncode == 1 and "leave out --filename" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow
def test_missing_dream_inputs_name_their_commands(pipeline, tmp_path):
    with pytest.raises(UserError, match="03_generate_rnn_data.py --env_name doom_take_cover"):
        load_dream(DOOM_TAKE_COVER, data_dir=str(tmp_path), rnn_dir=str(pipeline[0] / "rnn"))
    with pytest.raises(UserError, match="04_train_rnn.py --env_name doom_take_cover"):
        load_dream(DOOM_TAKE_COVER, data_dir=str(pipeline[0] / "data"), rnn_dir=str(tmp_path))
    (tmp_path / f"rnn_initial_{DOOM}_0.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UserError, match="is corrupt"):
        load_dream(DOOM_TAKE_COVER, data_dir=str(tmp_path), rnn_dir=str(pipeline[0] / "rnn"))


# --- the dream ------------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*(infinity|not having a spec).*:UserWarning")  # z is unbounded; no registry id
def test_dream_env_passes_gymnasiums_checks():
    from gymnasium.utils.env_checker import check_env

    check_env(DreamEnv(doom_rnn(), DOOM_TAKE_COVER, first_frames(DOOM_TAKE_COVER)), skip_render_check=True)
    car_rnn = NumpyMDNRNN(random_weights(expected_rnn_shapes(CAR_RACING), 2), CAR_RACING)
    vae = NumpyVAE(random_weights(expected_vae_shapes(32), 3), 32)
    car_dream = DreamEnv(car_rnn, CAR_RACING, first_frames(CAR_RACING), vae=vae, render_mode="rgb_array")
    check_env(car_dream)
    car_dream.reset(seed=0)
    frame = car_dream.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    # CarRacing's dream never ends by itself and pays nothing
    for step in range(1, 1001):
        _, reward, terminated, truncated, _ = car_dream.step(car_dream.action_space.sample())
        assert reward == 0.0 and not terminated and truncated == (step == 1000)


def dream_env_episode(env, params, seed, max_length, exp_mode=None):
    """Play one DreamEnv episode with the real agent's Controller; returns (total reward, steps)."""
    controller = Controller(DOOM_TAKE_COVER, params, exp_mode)
    env.reset(seed=seed)
    total, steps = 0.0, 0
    while steps < max_length:
        _, reward, terminated, truncated, _ = env.step(controller.act(env.z, env.h, env.c))
        total, steps = total + reward, steps + 1
        if terminated or truncated:
            break
    return total, steps


def test_batched_rollouts_equal_one_episode_at_a_time():
    """Every episode of a batch is the episode its seed plays alone (equal up to float32 rounding, which a
    contracting M keeps small: see dream.py on reproducibility)."""
    rnn = doom_rnn(one_component=True, mild=True)
    initial = first_frames(DOOM_TAKE_COVER)
    params = np.random.default_rng(0).normal(0.0, 0.5, (3, 1088))
    seeds = np.array([[10, 11], [12, 13], [14, 15]])
    rewards, lengths = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params, seeds, 1.15, 60)
    assert rewards.dtype == np.float64 and lengths.dtype == np.int64 and lengths.shape == (3, 2)
    assert len(set(lengths.ravel())) > 2 and lengths.min() < 60  # episodes end at different steps
    env = DreamEnv(rnn, DOOM_TAKE_COVER, initial, temperature=1.15)
    for member in range(3):
        for column in range(2):
            reward, steps = dream_env_episode(env, params[member], int(seeds[member, column]), 60)
            assert (reward, steps) == (rewards[member, column], lengths[member, column])
            alone = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params[member:member + 1],
                                   seeds[member:member + 1, column:column + 1], 1.15, 60)
            assert alone[1][0, 0] == steps
    shuffled = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params[::-1], seeds[::-1, ::-1], 1.15, 60)
    np.testing.assert_array_equal(shuffled[1], lengths[::-1, ::-1])


def test_dream_env_and_a_batch_of_one_agree_exactly():
    rnn, initial = doom_rnn(), first_frames(DOOM_TAKE_COVER)  # chaotic, five Gaussians per dimension
    params = np.random.default_rng(1).normal(0.0, 0.5, (1, 1088))
    rewards, lengths = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params, np.array([[21]]), 1.15, 60)
    env = DreamEnv(rnn, DOOM_TAKE_COVER, initial, temperature=1.15)
    assert dream_env_episode(env, params[0], 21, 60) == (rewards[0, 0], lengths[0, 0])


@pytest.mark.parametrize("mode, count", [("z", 64), ("z_hidden", 2600), ("zh", 576)])
def test_other_controller_modes_in_the_dream_agree_with_the_agents_controller(mode, count):
    """--exp_mode in dream training: the batched rollouts read the mode's parameter layout as Controller does."""
    rnn, initial = doom_rnn(one_component=True, mild=True), first_frames(DOOM_TAKE_COVER)
    params = np.random.default_rng(2).normal(0.0, 0.5, (2, count))
    rewards, lengths = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params, np.array([[31], [32]]), 1.15, 60,
                                      exp_mode=mode)
    env = DreamEnv(rnn, DOOM_TAKE_COVER, initial, temperature=1.15)
    for member in range(2):
        assert dream_env_episode(env, params[member], 31 + member, 60, mode) == (rewards[member, 0],
                                                                               lengths[member, 0])
    with pytest.raises(ValueError, match=f"\\(2, {count}\\)"):
        dream_rollouts(rnn, DOOM_TAKE_COVER, initial, np.zeros((2, 1088)), np.array([[1], [2]]), 1.0, 10,
                       exp_mode=mode)


def test_same_call_same_result_other_seeds_other_results():
    rnn, initial = doom_rnn(), first_frames(DOOM_TAKE_COVER)
    params = np.random.default_rng(2).normal(0.0, 0.5, (4, 1088))
    seeds = np.arange(16).reshape(4, 4)
    first = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params, seeds, 1.15, 100)
    second = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params, seeds, 1.15, 100)
    other = dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params, seeds + 100, 1.15, 100)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[1], other[1])


def test_dream_moves_are_the_real_envs_moves():
    """M is fed the move the real game would make: -1 for a < -1/3, 1 for a > 1/3, else 0."""
    rnn, initial = doom_rnn(), first_frames(DOOM_TAKE_COVER)
    env = DreamEnv(rnn, DOOM_TAKE_COVER, initial)

    def after(action):
        env.reset(seed=5)
        env.step(np.array([action], dtype=np.float32))
        return env.h.copy()

    np.testing.assert_array_equal(after(-0.34), after(-1.0))
    np.testing.assert_array_equal(after(0.33), after(0.0))
    np.testing.assert_array_equal(after(-0.33), after(0.0))
    np.testing.assert_array_equal(after(0.9), after(1.0))
    assert not np.array_equal(after(-1.0), after(0.0)) and not np.array_equal(after(1.0), after(0.0))


def test_a_non_finite_dream_action_is_refused():
    """Clipping lets NaN through: Doom's dream took it for "stay" and gave a reward, CarRacing's fed it to M."""
    env = DreamEnv(doom_rnn(), DOOM_TAKE_COVER, first_frames(DOOM_TAKE_COVER))
    env.reset(seed=0)
    for action in (np.nan, np.inf):
        with pytest.raises(ValueError, match="not finite"):
            env.step(np.array([action], dtype=np.float32))
    assert env.step(np.array([np.float32(2.0)]))[1] == 1.0  # beyond the box is still the bound


def test_done_head_ends_episodes_and_reward_counts_steps():
    initial = first_frames(DOOM_TAKE_COVER)
    params = np.random.default_rng(3).normal(0.0, 0.5, (2, 1088))
    seeds = np.arange(6).reshape(2, 3)
    rewards, lengths = dream_rollouts(doom_rnn(done_bias=100.0), DOOM_TAKE_COVER, initial, params, seeds, 1.15, 50)
    np.testing.assert_array_equal(lengths, 1)  # M says "dead" at once
    np.testing.assert_array_equal(rewards, 1.0)
    rewards, lengths = dream_rollouts(doom_rnn(done_bias=-100.0), DOOM_TAKE_COVER, initial, params, seeds, 1.15, 50)
    np.testing.assert_array_equal(lengths, 50)  # M never ends them: cut at max_length
    np.testing.assert_array_equal(rewards, 50.0)
    env = DreamEnv(doom_rnn(done_bias=100.0), DOOM_TAKE_COVER, initial)
    env.reset(seed=0)
    assert env.step(np.zeros(1, np.float32))[1:4] == (1.0, True, False)
    env = DreamEnv(doom_rnn(done_bias=-100.0), DOOM_TAKE_COVER, initial, max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(np.zeros(1, np.float32))[2:4] for _ in range(3)] == [(False, False), (False, False), (False, True)]


def z_spread(rnn, tau, steps, episodes=50):
    """Mean over latent dimensions of the spread (std) of z across episodes that start from the same z_0 (logvar
    -40) and take the same moves, after `steps` dream steps at temperature tau."""
    batch = DreamBatch(rnn, DOOM_TAKE_COVER, first_frames(DOOM_TAKE_COVER, count=1, logvar=-40.0),
                       np.arange(episodes), tau)
    for _ in range(steps):
        batch.step(np.zeros((episodes, 1), np.float32))
    return float(batch.z.std(axis=0).mean())


def test_low_temperature_makes_the_dream_nearly_deterministic():
    """tau sharpens the mixture weights and scales every sigma by sqrt(tau): at tau 1e-4 episodes that start from
    the same z and take the same moves dream almost the same frames, at tau 1 they do not."""
    rnn = doom_rnn(done_bias=-100.0, mild=True)
    hot, cold = z_spread(rnn, 1.0, steps=3), z_spread(rnn, 1e-4, steps=3)
    assert hot > 0.5 and cold < 0.02 * hot
    # one Gaussian per dimension: the spread after one step is sigma * sqrt(tau) times the same normal draws
    single = doom_rnn(done_bias=-100.0, mild=True, one_component=True)
    for tau in (0.25, 1.15):
        assert z_spread(single, tau, steps=1) == pytest.approx(np.sqrt(tau) * z_spread(single, 1.0, steps=1),
                                                              rel=1e-4)


def test_bad_dream_arguments_are_refused():
    rnn, initial = doom_rnn(), first_frames(DOOM_TAKE_COVER)
    with pytest.raises(ValueError, match="1088"):
        dream_rollouts(rnn, DOOM_TAKE_COVER, initial, np.zeros((2, 867)), np.zeros((2, 1), np.int64), 1.0, 10)
    with pytest.raises(ValueError, match="0 or more"):
        dream_rollouts(rnn, DOOM_TAKE_COVER, initial, np.zeros((1, 1088)), np.array([[-1]]), 1.0, 10)
    with pytest.raises(ValueError, match="vae"):
        DreamEnv(rnn, DOOM_TAKE_COVER, initial, render_mode="rgb_array")
