"""Training inside the dream (05 --dream_mode 1), real-game scores of dream bests, model.py in the dream and the
temperature sweep, as users run them: real MPI launches, real VizDoom, the NumPy dream.

The Doom world model has random weights of the right shapes (the machinery is under test, not the agent's skill);
the done head's bias is 0, so dreamed episodes end after a few steps at random and the rewards vary.
"""

import json
import os

import numpy as np
import pytest

from benchmarks.weights import random_weights
from config import DOOM_TAKE_COVER
from controller.training import Evaluation, evaluation_points
from es import load_optimizer
from npyio import save_npy, save_npz
from rnn.numpy_rnn import expected_rnn_shapes
from tests.test_training import run, world_model
from vae.numpy_vae import expected_vae_shapes

pytestmark = pytest.mark.slow  # every test runs the scripts as subprocesses: left out of make test-fast

BASE = "doom_take_cover.cma.1.4"
DREAM = ["doom_take_cover", "--dream_mode", 1, "--num_worker", 2, "--num_worker_trial", 2, "--eval_steps", 1,
         "--real_episodes", 2, "--max_length", 300]


def doom_world_model(folder):
    """./vae, ./rnn weights and ./data first frames of a random Doom world model in `folder`."""
    weights = random_weights(expected_rnn_shapes(DOOM_TAKE_COVER), 3)
    weights["done/bias"][:] = 0.0
    save_npz(str(folder / "rnn" / "doom_take_cover.npz"), **weights)
    save_npz(str(folder / "vae" / "doom_take_cover.npz"), **random_weights(expected_vae_shapes(64), 4))
    initial = np.random.default_rng(5).normal(0.0, 1.0, (6, 2, 64)).astype(np.float32)
    save_npy(str(folder / "data" / "rnn_initial_doom_take_cover_0.npy"), initial)
    return folder


@pytest.fixture(scope="module")
def dreamed(tmp_path_factory):
    folder = doom_world_model(tmp_path_factory.mktemp("dream"))
    return folder, run("05_train_controller.py", *DREAM, "--generations", 2, cwd=folder)


def test_training_in_the_dream_logs_dream_and_real_scores(dreamed):
    folder, result = dreamed
    assert "dream at tau 1.15" in result.stdout and "real game" in result.stdout
    rows = json.loads((folder / "log" / f"{BASE}.hist.json").read_text())
    assert [row[0] for row in rows] == [1, 2]
    for row in rows:
        assert row[2] == pytest.approx(row[7], abs=0.01)  # reward 1 a step: average reward = average length
        assert 1 <= row[3] <= row[4] < 300  # the done head ends the dreamed episodes, at different steps
    evaluations = json.loads((folder / "log" / f"{BASE}.log.json").read_text())
    first = evaluations[0]
    assert first[0] == 1 and len(first[2]) == 1088 and len(first) == 4  # a new best carries its real score
    assert 100 < first[3] < 2100  # real VizDoom episodes of at least a few seconds
    params, score, _ = json.loads((folder / "controller" / f"{BASE}.best.json").read_text())
    assert len(params) == 1088 and score == pytest.approx(max(row[1] for row in evaluations), abs=0.005)
    _, state = load_optimizer(str(folder / "controller" / f"{BASE}.es.pk"))
    assert "real_every" not in state["settings"]
    real_rows = [row for row in evaluations if len(row) == 4]  # the new bests
    assert state["best_real_score"] == pytest.approx(real_rows[-1][3], abs=0.005)
    points = evaluation_points([Evaluation.from_json(row) for row in evaluations])  # the curve shows the real scores of the new bests beside the dream's
    np.testing.assert_array_equal(points["mean in the real game"], [[row[0], row[3]] for row in real_rows])
    assert len(points["mean evaluated"]) == len(evaluations)


def test_dream_training_resumes(dreamed):
    folder, _ = dreamed
    run("05_train_controller.py", *DREAM, "--generations", 1, "--init_opt", f"./controller/{BASE}.es.pk", cwd=folder)
    rows = json.loads((folder / "log" / f"{BASE}.hist.json").read_text())
    assert [row[0] for row in rows] == [1, 2, 3]


def test_real_every_scores_each_evaluated_mean_in_the_game_and_a_resume_keeps_it(tmp_path):
    """--real_every 1: every evaluated mean plays --real_episodes real episodes, a new best in the dream or not (the
    candidates of a long dream phase, whose later means seldom beat an early lucky dream score); a resume that
    leaves the flag out keeps it, and the checkpoint of a run without it holds no such setting."""
    doom_world_model(tmp_path)
    run("05_train_controller.py", *DREAM, "--real_every", 1, "--generations", 2, cwd=tmp_path)
    run("05_train_controller.py", *DREAM, "--generations", 2, "--init_opt", f"./controller/{BASE}.es.pk", cwd=tmp_path)
    evaluations = json.loads((tmp_path / "log" / f"{BASE}.log.json").read_text())
    assert [row[0] for row in evaluations] == [1, 2, 3, 4]
    assert all(len(row) == 4 and 100 < row[3] < 2100 for row in evaluations)
    beaten = [row for i, row in enumerate(evaluations) if i and row[1] <= max(r[1] for r in evaluations[:i])]
    assert beaten  # means that were no new best, scored in the game all the same
    _, state = load_optimizer(str(tmp_path / "controller" / f"{BASE}.es.pk"))
    assert state["settings"]["real_every"] == 1


def test_dream_mode_needs_the_first_frames(tmp_path):
    doom_world_model(tmp_path)
    os.remove(tmp_path / "data" / "rnn_initial_doom_take_cover_0.npy")
    result = run("05_train_controller.py", *DREAM, "--generations", 1, cwd=tmp_path, check=False)
    assert result.returncode == 1 and "03_generate_rnn_data.py" in result.stderr and "Traceback" not in result.stderr


def test_dream_mode_reads_v_before_the_first_generation(tmp_path):
    """The dream needs only M, but each new best is scored in the real game with V: a damaged V is refused at the
    start (before, after --eval_steps generations, losing the last one)."""
    doom_world_model(tmp_path)
    (tmp_path / "vae" / "doom_take_cover.npz").write_bytes(b"PK\x03\x04 not a zip")
    result = run("05_train_controller.py", *DREAM, "--eval_steps", 3, "--generations", 3, cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "doom_take_cover.npz" in result.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "controller")  # not a generation trained


def test_model_scores_a_dream_controller_in_the_real_game_and_in_the_dream(dreamed):
    folder, _ = dreamed
    best = f"./controller/{BASE}.best.json"
    real = run("model.py", "doom_take_cover", "--filename", best, "--final_mode", "--num_episode", 2,
               "--num_worker", 2, cwd=folder)
    scores = json.loads((folder / "log" / f"{BASE}.best.final.json").read_text())
    assert scores["episodes"] == 2 and not scores["dream_mode"] and "real environment" in real.stdout
    assert scores["scores"] == [float(n) for n in scores["lengths"]]  # one point a tic survived
    dream = run("model.py", "doom_take_cover", "--filename", best, "--dream_mode", "--final_mode", "--num_episode",
                3, "--num_worker", 1, cwd=folder)
    dreamed_scores = json.loads((folder / "log" / f"{BASE}.best.dream.final.json").read_text())
    assert dreamed_scores["dream_mode"] and dreamed_scores["temperature"] == 1.15
    assert "dream at tau 1.15" in dream.stdout and max(dreamed_scores["lengths"]) < 2100


def test_car_racing_dream_video_is_decoded_by_v(tmp_path):
    import imageio_ffmpeg

    world_model(tmp_path)
    initial = np.random.default_rng(6).normal(0.0, 1.0, (3, 2, 32)).astype(np.float32)
    save_npy(str(tmp_path / "data" / "rnn_initial_car_racing_0.npy"), initial)
    result = run("model.py", "car_racing", "--dream_mode", "--record_video", "--max_length", 30, cwd=tmp_path)
    assert "dream at tau 0.7" in result.stdout
    video = tmp_path / "video" / "random.car_racing.dream.seed111.mp4"
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    assert meta["size"] == (256, 256) and sum(1 for _ in reader) == 31  # V's 64x64 frames, enlarged 4x


def test_temperature_sweep_prints_the_table(tmp_path):
    doom_world_model(tmp_path)
    result = run("sweep_temperature.py", "doom_take_cover", "--temperatures", 0.5, 1.15, "--generations", 1,
                 "-n", 2, "-t", 2, "-e", 1, "--eval_steps", 1, "--episodes", 2, "--real_episodes", 2, cwd=tmp_path)
    table = json.loads((tmp_path / "log" / "doom_take_cover.temperature_sweep.json").read_text())
    assert [row["temperature"] for row in table["rows"]] == [0.5, 1.15]
    for row in table["rows"]:
        assert os.path.exists(tmp_path / row["controller"]) and row["real_mean"] > 0
    assert "1092 ± 556" in result.stdout  # the paper's column beside ours


def test_a_temperature_sweep_run_again_trains_only_the_generations_still_owed(tmp_path):
    """--generations is each temperature's total: the same command again only scores; a larger total resumes."""
    doom_world_model(tmp_path)
    flags = ["-n", 2, "-t", 2, "-e", 1, "--eval_steps", 1, "--episodes", 2, "--real_episodes", 2]
    checkpoint = tmp_path / "controller" / "tau1.15" / "doom_take_cover.cma.1.4.es.pk"
    run("sweep_temperature.py", "doom_take_cover", "--temperatures", 1.15, "--generations", 1, *flags, cwd=tmp_path)
    first = json.loads((tmp_path / "log" / "doom_take_cover.temperature_sweep.json").read_text())["rows"]
    again = run("sweep_temperature.py", "doom_take_cover", "--temperatures", 1.15, "--generations", 1, *flags,
                cwd=tmp_path)
    assert "holds 1 generation(s) of 1" in again.stdout and "training in the dream" not in again.stdout
    assert json.loads((tmp_path / "log" / "doom_take_cover.temperature_sweep.json").read_text())["rows"] == first
    more = run("sweep_temperature.py", "doom_take_cover", "--temperatures", 1.15, "--generations", 3, *flags,
               cwd=tmp_path)
    assert "--generations 2 " in more.stdout
    assert f"--init_opt {os.path.join('.', 'controller', 'tau1.15')}" in more.stdout
    assert load_optimizer(str(checkpoint))[1]["generation"] == 3
