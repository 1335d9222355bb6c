"""The Gymnasium ids of envs/registration.py: made with gymnasium.make as a user of the ecosystem would (the "envs:"
form from a fresh process, vector envs in subprocesses), each with its own episode limit; the dreams run by the
shipped V and M, seen as frames or as M's state; bad ids and keyword arguments refused with one line. Gymnasium's
own checks of every id are in test_env_conformance.py."""

import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from config import CAR_RACING, DOOM_TAKE_COVER
from scripts import ENVIRONMENT, ROOT, run_command
from vae.numpy_vae import NumpyVAE

LIMITS = {"WorldModels/CarRacing-v3": CAR_RACING.max_episode_length,
          "WorldModels/DoomTakeCover-v0": DOOM_TAKE_COVER.max_episode_length,
          "WorldModels/CarRacingDream-v0": CAR_RACING.max_episode_length,
          "WorldModels/DoomTakeCoverDream-v0": DOOM_TAKE_COVER.max_episode_length}


def test_every_id_is_registered_with_its_own_episode_limit():
    assert {env_id: gymnasium.spec(env_id).max_episode_steps for env_id in LIMITS} == LIMITS
    assert list(LIMITS.values()) == [1000, 2100, 1000, 2100]


@pytest.mark.slow
def test_the_module_form_makes_every_id_without_an_import(tmp_path):
    """gymnasium.make("envs:WorldModels/...") in a fresh process that never imports envs itself, from another folder."""
    code = ("import gymnasium as gym, sys\n"
            f"for env_id in {list(LIMITS)}:\n"
            "    env = gym.make('envs:' + env_id)\n"
            "    observation, _ = env.reset(seed=0)\n"
            "    print(env_id, env.spec.max_episode_steps, observation.shape, observation.dtype)\n"
            "    env.close()\n")
    result = run_command([sys.executable, "-c", code], cwd=tmp_path, timeout=300, env=ENVIRONMENT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "WorldModels/CarRacing-v3 1000 (96, 96, 3) uint8", "WorldModels/DoomTakeCover-v0 2100 (240, 320, 3) uint8",
        "WorldModels/CarRacingDream-v0 1000 (64, 64, 3) uint8",
        "WorldModels/DoomTakeCoverDream-v0 2100 (64, 64, 3) uint8"]


@pytest.mark.slow
@pytest.mark.parametrize("env_id", list(LIMITS))
def test_async_vector_envs_play_like_single_ones(env_id, closing):
    """make_vec in two subprocesses: each sub-env plays what a single env plays for its seed."""
    vector = closing(gymnasium.make_vec(env_id, num_envs=2, vectorization_mode="async"))
    observations, _ = vector.reset(seed=[5, 6])
    for index, seed in enumerate((5, 6)):
        single, _ = closing(gymnasium.make(env_id)).reset(seed=seed)
        assert np.array_equal(observations[index], single)
    actions = np.stack([vector.single_action_space.low] * 2)
    observations, rewards, _, _, _ = vector.step(actions)
    assert observations.shape == (2, *vector.single_observation_space.shape)


def test_the_dream_shows_vs_decoding_of_ms_state(closing):
    """obs_type "rgb" is V's decoding of the z that obs_type "latent" gives, step by step, for the same seed."""
    frames = closing(gymnasium.make("WorldModels/CarRacingDream-v0"))
    latent = closing(gymnasium.make("WorldModels/CarRacingDream-v0", obs_type="latent"))
    assert set(latent.observation_space.spaces) == {"z", "h", "c"}
    vae = NumpyVAE.load(f"{ROOT}/pretrained/car_racing/vae/car_racing.npz", CAR_RACING.z_size, "")
    frame, _ = frames.reset(seed=3)
    state, _ = latent.reset(seed=3)
    for _ in range(4):
        assert state["z"].shape == (32,) and state["h"].shape == state["c"].shape == (256,)
        assert np.array_equal(frame, np.round(vae.decode(state["z"][None])[0] * 255.0).astype(np.uint8))
        action = np.array([0.5, 1.0, 0.0], dtype=np.float32)
        frame, reward, _, _, _ = frames.step(action)
        state, _, _, _, _ = latent.step(action)
        assert reward == 0.0  # CarRacing's M predicts no reward
    assert latent.observation_space.contains(state)


def test_the_shipped_doom_dream_ends_on_ms_done(closing):
    """Standing still in the shipped Doom dream: M predicts the death well before the 2100-step limit, one reward a
    step survived; the latent observation passes Gymnasium's checker too."""
    env = closing(gymnasium.make("WorldModels/DoomTakeCoverDream-v0", obs_type="latent"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # z, h and c are unbounded Boxes
        check_env(env.unwrapped)
    env.reset(seed=111)
    steps, total, terminated, truncated = 0, 0.0, False, False
    while not (terminated or truncated):
        _, reward, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
        steps, total = steps + 1, total + reward
    assert terminated and not truncated and 0 < steps < 2100 and total == steps


@pytest.mark.parametrize("env_id, kwargs, message", [
    ("WorldModels/CarRacing-v3", {"domain_randomise": True},
     "WorldModels/CarRacing-v3 takes no keyword argument 'domain_randomise'; it takes: render_mode, verbose, "
     "lap_complete_percent, domain_randomize, continuous"),
    ("WorldModels/DoomTakeCover-v0", {"frame_skip": 4},
     "WorldModels/DoomTakeCover-v0 takes no keyword argument 'frame_skip'; it takes: render_mode"),
    ("WorldModels/DoomTakeCoverDream-v0", {"tau": 1.15},
     "WorldModels/DoomTakeCoverDream-v0 takes no keyword argument 'tau'; it takes: render_mode, obs_type, "
     "temperature, vae_dir, rnn_dir, data_dir"),
    ("WorldModels/CarRacingDream-v0", {"obs_type": "z"},
     "WorldModels/CarRacingDream-v0: obs_type must be 'rgb' (V's decoded frames) or 'latent' (z, h and c), got 'z'"),
])
def test_an_unknown_keyword_argument_names_the_ones_taken(env_id, kwargs, message):
    with pytest.raises(ValueError) as caught:
        gymnasium.make(env_id, **kwargs)
    assert str(caught.value) == message


def test_a_misspelt_id_is_answered_with_ours():
    with pytest.raises(gymnasium.error.NameNotFound, match="Did you mean: `CarRacingDream`"):
        gymnasium.make("envs:WorldModels/CarRacingDreams-v0")
    with pytest.raises(gymnasium.error.VersionNotFound, match=r"provides versioned environments: \[ `v0` \]"):
        gymnasium.make("WorldModels/DoomTakeCover-v1")


def test_a_dream_without_its_world_model_names_the_files_and_the_kwargs(tmp_path):
    from cli import UserError

    with pytest.raises(UserError) as caught:
        gymnasium.make("WorldModels/DoomTakeCoverDream-v0", rnn_dir=str(tmp_path))
    assert str(caught.value) == (
        f"WorldModels/DoomTakeCoverDream-v0: {tmp_path}/doom_take_cover.npz is missing; make it with: python "
        f"04_train_rnn.py --env_name doom_take_cover --start_batch 0 --max_batch 9 --new_model; or give vae_dir=, "
        f"rnn_dir= and data_dir= of a trained world model")
    with pytest.raises(UserError, match=f"^WorldModels/CarRacingDream-v0: {tmp_path}/car_racing.npz is missing"):
        gymnasium.make("WorldModels/CarRacingDream-v0", vae_dir=str(tmp_path))
