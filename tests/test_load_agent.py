"""The trained agent as a Python object (pretrained.load_agent): driven in a plain Gymnasium loop on the registered
ids, the shipped agents replay their manifests' check episodes to model.py's scores exactly; examples/ plays the
shipped CarRacing agent to model.py's score; wrong files and observations are one clear error."""

import json
import os

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from cli import UserError
from pretrained import load_agent
from scripts import ROOT, run
from shipping.manifest import verify

IDS = {"car_racing": "WorldModels/CarRacing-v3", "doom_take_cover": "WorldModels/DoomTakeCover-v0"}


def play(agent, env, seed):
    """The loop a user writes: the total reward of one episode from env.reset(seed=seed)."""
    observation, _ = env.reset(seed=seed)
    agent.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, _ = env.step(agent.act(observation))
        total += reward
        done = terminated or truncated
    return total


@pytest.mark.parametrize("env_name", list(IDS))
def test_the_shipped_agent_in_a_plain_loop_scores_model_pys_check_episodes(env_name):
    """The manifest's check episodes (shipping.pack played them with model.py's scoring.Play; test_shipped replays
    them so) score the same to the last bit in the user's loop on the registered id capped at their length."""
    check = verify(env_name)["check"]
    agent = load_agent(env_name)
    env = gymnasium.make(IDS[env_name], max_episode_steps=check["max_length"])
    try:
        assert [play(agent, env, seed) for seed in check["seeds"]] == check["scores"]
    finally:
        env.close()


def test_a_best_json_with_its_v_and_m_plays_as_the_shipped_agent():
    folder = os.path.join(ROOT, "pretrained", "car_racing")
    own = load_agent(os.path.join(folder, "controller", "car_racing.best.json"),
                     vae_dir=os.path.join(folder, "vae"), rnn_dir=os.path.join(folder, "rnn"))
    shipped = load_agent("car_racing")
    assert (own.env_name, own.exp_mode, own.observation_shape) == ("car_racing", "zh", (96, 96, 3))
    env = gymnasium.make(IDS["car_racing"], max_episode_steps=40)
    try:
        assert play(own, env, 5) == play(shipped, env, 5)
    finally:
        env.close()


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copy_of_the_agent_mid_episode_plays_on_as_the_original(how):
    """Copied after some steps (its V's encoder buffers in use), the copy chooses the original's actions."""
    import copy
    import pickle

    agent = load_agent("car_racing")
    env = gymnasium.make(IDS["car_racing"], max_episode_steps=60)
    try:
        observation, _ = env.reset(seed=7)
        agent.reset(seed=7)
        for _ in range(30):
            observation, *_ = env.step(agent.act(observation))
        duplicate = pickle.loads(pickle.dumps(agent)) if how == "pickle" else copy.deepcopy(agent)
        for _ in range(20):
            action = agent.act(observation)
            assert np.array_equal(duplicate.act(observation), action)
            observation, *_ = env.step(action)
    finally:
        env.close()


def test_other_blas_kernels_than_the_scores_are_warned_of(tmp_path):
    import shutil

    shutil.copytree(os.path.join(ROOT, "pretrained", "doom_take_cover"), tmp_path / "doom_take_cover")
    path = tmp_path / "doom_take_cover" / "manifest.json"
    path.write_text(path.read_text().replace('"blas_kernel": "Haswell"', '"blas_kernel": "Zen9"'))
    with pytest.warns(UserWarning, match="played with OpenBLAS's Zen9 kernels and this process runs Haswell: the "
                                         "same seeds may score differently here"):
        load_agent("doom_take_cover", root=str(tmp_path))


def test_reset_without_a_seed_draws_one():
    agent = load_agent("doom_take_cover")
    env = gymnasium.make(IDS["doom_take_cover"], max_episode_steps=20)
    try:
        observation, _ = env.reset(seed=0)
        agent.reset()
        action = agent.act(observation)
        assert action.shape == (1,) and action.dtype == np.float32 and env.action_space.contains(action)
    finally:
        env.close()


def test_wrong_observations_are_refused_with_what_to_give():
    agent = load_agent("car_racing")
    frame = np.zeros((96, 96, 3), dtype=np.uint8)
    with pytest.raises(RuntimeError, match=r"^call reset\(seed=...\) before act\(\)"):
        agent.act(frame)
    agent.reset(seed=0)
    expected = "act() takes the car_racing environment's raw observation, a (96, 96, 3) uint8 array; got "
    for wrong, got in ((np.zeros((64, 64, 3), np.uint8), "(64, 64, 3) uint8"),
                       (frame.astype(np.float32), "(96, 96, 3) float32"), (frame.tolist(), "list")):
        with pytest.raises(ValueError) as caught:
            agent.act(wrong)
        assert str(caught.value) == expected + got
    with pytest.raises(ValueError, match="integer 0 or more"):
        agent.reset(seed=-1)


def test_a_file_of_another_env_or_mode_is_refused(tmp_path):
    doom = os.path.join(ROOT, "pretrained", "doom_take_cover", "controller", "doom_take_cover.best.json")
    with pytest.raises(UserError, match=f"^{doom} is a doom_take_cover controller, not a car_racing one$"):
        load_agent(doom, env_name="car_racing")
    with pytest.raises(UserError, match=f"^{doom} is a controller of mode zch, not zh: leave exp_mode out"):
        load_agent(doom, exp_mode="zh")
    car = os.path.join(ROOT, "pretrained", "car_racing")
    with pytest.raises(UserError, match="vae/doom_take_cover.npz is missing"):  # the file's env picks V and M
        load_agent(doom, vae_dir=os.path.join(car, "vae"), rnn_dir=os.path.join(car, "rnn"))
    with pytest.raises(UserError, match="^load_agent\\('car_racing'\\) plays the shipped car_racing agent"):
        load_agent("car_racing", vae_dir="./vae")
    unlabelled = tmp_path / "old.best.json"
    unlabelled.write_text(json.dumps([[0.0] * 867, 1.0]))
    with pytest.raises(UserError, match=r"does not say which environment it plays: give env_name="):
        load_agent(str(unlabelled))
    assert load_agent(str(unlabelled), vae_dir=os.path.join(car, "vae"), rnn_dir=os.path.join(car, "rnn"),
                      env_name="car_racing").exp_mode == "zh"
    with pytest.raises(UserError, match="does not exist; give a controller's .best.json .*: car_racing, doom_take_"):
        load_agent("carracing")


@pytest.mark.slow
def test_the_example_plays_the_shipped_agent_to_model_pys_score(tmp_path):
    """examples/play_car_racing.py and model.py --pretrained on the same seed (300 steps): the same score, exactly."""
    seed, steps = 112, 300
    run("model.py", "car_racing", "--pretrained", "--seed", seed, "--max_length", steps, "--final_mode",
        "--num_episode", 1, "--num_worker", 1, "--log_dir", tmp_path, cwd=tmp_path)
    with open(tmp_path / "pretrained.car_racing.final.json") as handle:
        (score,) = json.load(handle)["scores"]
    printed = run("examples/play_car_racing.py", "--seed", seed, "--max_length", steps, cwd=tmp_path).stdout
    assert printed.splitlines()[-1] == f"seed {seed}: score {score}"
    assert score == verify("car_racing")["check"]["scores"][1]


@pytest.mark.slow
def test_the_v_error_example_tables_the_agents_frames_by_tic(tmp_path):
    """examples/v_error_by_tic.py plays the shipped agent and puts every frame V encoded into its span of tics."""
    printed = run("examples/v_error_by_tic.py", "car_racing", "--episodes", 2, "--first_seed", 5, "--max_length", 50,
                  "--span", 20, "--root", os.path.join(ROOT, "pretrained"), cwd=tmp_path).stdout.splitlines()
    assert [line.split(":")[0] for line in printed] == ["seed 5", "seed 6", "tics 0-19", "tics 20-39", "tics 40-59"]
    assert [line.split(" over ")[1] for line in printed[2:]] == ["40 frames", "40 frames", "20 frames"]
    errors = [float(line.split("mean error ")[1].split()[0]) for line in printed[2:]]
    assert all(0 < error < 64 * 64 * 3 for error in errors)  # a sum of squares of 12,288 pixel errors in [0, 1]
    refused = run("examples/v_error_by_tic.py", "car_racing", "--episodes", 0, cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "--episodes must be 1 or more" in refused.stderr
    assert "Traceback" not in refused.stderr
