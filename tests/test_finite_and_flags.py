"""Finite or refused, and every flag checked up front (issue 14, items 2 and 5), as users meet them: scripts run as
subprocesses from a scratch folder on tiny synthetic files, each refusal one line on stderr with a non-zero exit and
no traceback, and a good file on disk left as it was."""

import hashlib
import json
import os
import re
import shlex
import sys

import numpy as np
import pytest

from benchmarks.weights import random_weights
from config import CAR_RACING, DOOM_TAKE_COVER
from controller.controller import Controller, NonFiniteAction
from npyio import save_npz
from rnn.numpy_rnn import NumpyMDNRNN, expected_rnn_shapes
from tests.scripts import ROOT, run
from vae.numpy_vae import expected_vae_shapes

EPISODES, STEPS = 2, 30
# TensorFlow's C++ start-up lines (absl logging ignores TF_CPP_MIN_LOG_LEVEL on some builds): not the scripts' output
TENSORFLOW_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")


def refused(result, *phrases):
    """The script stopped with one readable error line that holds every phrase: no traceback, no warning (a
    progress bar that was under way may stand before it)."""
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip() and "ep/s]" not in line
             and not TENSORFLOW_LOG.match(line)]
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rollout_batch(folder, batch, lengths=None, actions=None):
    """Stage 01's four files of one CarRacing batch (random frames, full-length episodes unless told)."""
    rng = np.random.default_rng(batch)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    np.save(data / f"obs_data_car_racing_{batch}.npy",
            rng.integers(0, 256, (EPISODES, STEPS, 64, 64, 3), dtype=np.uint8))
    np.save(data / f"action_data_car_racing_{batch}.npy",
            np.zeros((EPISODES, STEPS, 3), np.float32) if actions is None else actions)
    np.save(data / f"length_data_car_racing_{batch}.npy",
            np.full(EPISODES, STEPS, np.int32) if lengths is None else lengths)
    np.save(data / f"done_data_car_racing_{batch}.npy", np.zeros((EPISODES, STEPS), bool))


def rnn_batch(folder, batch, lengths=None, nan_in=None):
    """Stage 03's files of one CarRacing batch as 04 reads them; `nan_in` puts one NaN into that file."""
    rng = np.random.default_rng(batch)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    mu = (rng.standard_normal((EPISODES, STEPS, 32)) * 0.5).astype(np.float32)
    arrays = {"rnn_mu": mu, "rnn_logvar": np.full_like(mu, -2.0),
              "rnn_input": np.concatenate([mu, np.zeros((EPISODES, STEPS, 3), np.float32)], axis=2),
              "rnn_length": np.full(EPISODES, STEPS, np.int32) if lengths is None else lengths,
              "rnn_done": np.zeros((EPISODES, STEPS), bool)}
    if nan_in:
        arrays[nan_in][1, 5, 0] = np.nan
    for kind, array in arrays.items():
        np.save(data / f"{kind}_car_racing_{batch}.npy", array)


def world_model(folder, poison=None):
    """./vae and ./rnn NumPy weights (random, CarRacing shapes); `poison` = (which, key) puts an inf into one."""
    weights = {"vae": random_weights(expected_vae_shapes(32), 1),
               "rnn": random_weights(expected_rnn_shapes(CAR_RACING), 2)}
    if poison:
        which, key = poison
        weights[which][key].flat[0] = np.inf
    for which, arrays in weights.items():
        save_npz(str(folder / which / "car_racing.npz"), **arrays)


# --- every flag, before any work -------------------------------------------------------------------------------------

FLAGS = [
    ("01_generate_data.py", ["car_racing", "--total_episodes", 0], "--total_episodes"),
    ("01_generate_data.py", ["car_racing", "--batch_size", -1], "--batch_size"),
    ("01_generate_data.py", ["car_racing", "--time_steps", 1], "--time_steps"),
    ("01_generate_data.py", ["car_racing", "--time_steps", 1001], "--time_steps"),  # recorded what no game plays
    ("01_generate_data.py", ["--run_all_envs", "--time_steps", 2100], "--time_steps"),
    ("01_generate_data.py", ["car_racing", "--num_worker", 0], "--num_worker"),
    ("01_generate_data.py", ["car_racing", "--num_workers", 0], "--num_worker"),  # the older spelling, hidden
    ("01_generate_data.py", ["car_racing", "--seed", -1], "--seed"),
    ("02_train_vae.py", ["--seed", -3], "--seed"),
    ("03_generate_rnn_data.py", ["--seed", -1], "--seed"),
    ("04_train_rnn.py", ["--seed", -1], "--seed"),
    ("05_train_controller.py", ["car_racing", "--seed_start", -1], "--seed_start"),
    ("model.py", ["car_racing", "--seed", -1], "--seed"),
    # past int64, a seed overflowed deep in a run (the dream's seeds, 05's next seed) with a traceback
    ("model.py", ["car_racing", "--dream_mode", "--seed", 2 ** 63], "--seed"),
    ("05_train_controller.py", ["car_racing", "--seed_start", 2 ** 62 + 1], "--seed_start"),
    ("01_generate_data.py", ["car_racing", "--seed", 2 ** 64], "--seed"),
    ("02_train_vae.py", ["--batch_size", -5], "--batch_size"),
    ("02_train_vae.py", ["--batch_size", 0], "--batch_size"),
    ("02_train_vae.py", ["--learning_rate", -1], "--learning_rate"),
    ("02_train_vae.py", ["--learning_rate", 0], "--learning_rate"),
    ("02_train_vae.py", ["--learning_rate", "nan"], "--learning_rate"),
    ("02_train_vae.py", ["--learning_rate", "inf"], "--learning_rate"),
    ("02_train_vae.py", ["--epochs", 0], "--epochs"),
    ("02_train_vae.py", ["--holdout_batches", -1], "--holdout_batches"),
    ("02_train_vae.py", ["--max_batch", 2, "--holdout_batches", 4, "--epochs", 0], "--holdout_batches"),
    ("02_train_vae.py", ["--epochs", 0, "--holdout_batches", 1, "--new_model"], "--new_model"),
    ("02_train_vae.py", ["--steps_per_file", 0], "--steps_per_file"),
    ("02_train_vae.py", ["--start_batch", -1], "--start_batch"),
    ("03_generate_rnn_data.py", ["--start_batch", -2, "--max_batch", 0], "--start_batch"),
    ("04_train_rnn.py", ["--batch_size", 0], "--batch_size"),
    ("04_train_rnn.py", ["--learning_rate", -0.001], "--learning_rate"),
    ("04_train_rnn.py", ["--learning_rate", "nan"], "--learning_rate"),
    ("04_train_rnn.py", ["--epochs", 0], "--epochs"),
    ("05_train_controller.py", ["car_racing", "--sigma_init", 0], "--sigma_init"),
    ("05_train_controller.py", ["car_racing", "--sigma_init", -0.1], "--sigma_init"),
    ("05_train_controller.py", ["car_racing", "--sigma_init", "nan"], "--sigma_init"),
    ("05_train_controller.py", ["car_racing", "--sigma_decay", 0], "--sigma_decay"),
    ("05_train_controller.py", ["car_racing", "--eval_episodes", -2], "--eval_episodes"),
    ("05_train_controller.py", ["doom_take_cover", "--temperature", 0], "--temperature"),
    ("05_train_controller.py", ["doom_take_cover", "--temperature", -1.15], "--temperature"),
    ("05_train_controller.py", ["doom_take_cover", "--temperature", "nan"], "--temperature"),
    ("05_train_controller.py", ["car_racing", "--weight_decay", -0.01], "--weight_decay"),
    ("05_train_controller.py", ["car_racing", "--weight_decay", "inf"], "--weight_decay"),
    ("05_train_controller.py", ["car_racing", "--max_length", 0], "--max_length"),
    ("05_train_controller.py", ["car_racing", "--generations", -1], "--generations"),
    ("05_train_controller.py", ["doom_take_cover", "--real_episodes", 0], "--real_episodes"),
    ("model.py", ["doom_take_cover", "--temperature", 0], "--temperature"),
    ("model.py", ["doom_take_cover", "--temperature", "nan"], "--temperature"),
    ("model.py", ["car_racing", "--num_episode", -1], "--num_episode"),
    ("model.py", ["car_racing", "--num_worker", 0], "--num_worker"),
    ("model.py", ["car_racing", "--max_length", -5], "--max_length"),
    ("sweep_temperature.py", ["doom_take_cover", "--temperatures", 1.0, 0], "--temperatures"),
    ("sweep_temperature.py", ["doom_take_cover", "--temperatures", "nan"], "--temperatures"),
    ("sweep_temperature.py", ["doom_take_cover", "--num_episode", 0], "--num_episode"),
    ("sweep_temperature.py", ["doom_take_cover", "--num_worker", 0], "--num_worker"),
    ("sweep_temperature.py", ["doom_take_cover", "--generations", 5], "--generations"),  # no evaluation: no controller
    ("02_train_vae.py", ["--start_batch", 5, "--max_batch", 3], "--max_batch"),  # was: "--holdout_batches must"
    ("04_train_rnn.py", ["--start_batch", 5, "--max_batch", 3], "--max_batch"),
]


@pytest.mark.slow
@pytest.mark.parametrize("script, args, flag", FLAGS, ids=[f"{s[:2]}{' '.join(map(str, a[-2:]))}" for s, a, _ in FLAGS])
def test_a_bad_flag_is_one_line_before_any_work(tmp_path, script, args, flag):
    result = run(script, *args, cwd=tmp_path, check=False, timeout=120)
    refused(result, f"{flag} must")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing made: no folder, no file


# --- batch files: every one of the range, with lengths that record frames ----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("script, make, maker", [("02_train_vae.py", rollout_batch, "01_generate_data.py"),
                                                 ("03_generate_rnn_data.py", rollout_batch, "01_generate_data.py"),
                                                 ("04_train_rnn.py", rnn_batch, "03_generate_rnn_data.py")])
def test_a_batch_missing_inside_the_range_is_named_with_its_command(tmp_path, script, make, maker):
    for batch in (0, 1, 4):
        make(tmp_path, batch)
    os.rename(tmp_path / "data", tmp_path / "mine")
    result = run(script, "--start_batch", 0, "--max_batch", 4, "--new_model" if script != "03_generate_rnn_data.py"
                 else "--seed=0", "--data_dir", "mine", cwd=tmp_path, check=False, timeout=120)
    line = refused(result, "2..3", maker, "--start_batch 2", "--data_dir mine")
    if maker == "01_generate_data.py":  # its default 2,000 episodes would have written over batch 4 and on
        assert f"--total_episodes {2 * EPISODES} --batch_size {EPISODES} " in line


@pytest.mark.slow
@pytest.mark.parametrize("script, make, lengths", [
    ("02_train_vae.py", rollout_batch, np.zeros(EPISODES, np.int32)),
    ("03_generate_rnn_data.py", rollout_batch, np.zeros(EPISODES, np.int32)),
    ("04_train_rnn.py", rnn_batch, np.zeros(EPISODES, np.int32)),
    ("04_train_rnn.py", rnn_batch, np.array([STEPS, STEPS + 5], np.int32)),  # past the file's end
    ("02_train_vae.py", rollout_batch, np.full(EPISODES, STEPS, np.float32)),  # not integers
])
def test_episode_lengths_that_record_nothing_or_too_much_are_refused(tmp_path, script, make, lengths):
    make(tmp_path, 0, lengths=lengths)
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "car_racing.weights.h5").write_bytes(b"never read: the lengths are checked first")
    result = run(script, cwd=tmp_path, check=False, timeout=120)
    refused(result, "length", "_car_racing_0.npy")


@pytest.mark.slow
def test_nan_actions_of_01_are_refused_by_03_before_tensorflow_loads(tmp_path):
    actions = np.zeros((EPISODES, STEPS, 3), np.float32)
    actions[1, 7, 2] = np.nan
    rollout_batch(tmp_path, 0, actions=actions)
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "car_racing.weights.h5").write_bytes(b"never read: the data is checked first")
    result = run("03_generate_rnn_data.py", cwd=tmp_path, check=False, timeout=120)
    refused(result, "action_data_car_racing_0.npy holds NaN or infinite values", "01_generate_data.py")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rnn_mu", "rnn_logvar", "rnn_input"])
def test_nan_in_03s_arrays_is_refused_by_04(tmp_path, kind):
    rnn_batch(tmp_path, 0, nan_in=kind)
    result = run("04_train_rnn.py", "--new_model", cwd=tmp_path, check=False, timeout=120)
    refused(result, f"{kind}_car_racing_0.npy holds NaN or infinite values", "03_generate_rnn_data.py")


# --- training that diverges keeps the last good weights -------------------------------------------------------------

def poison_keras_weights(path):
    """Write a NaN into the first float dataset of a Keras .weights.h5 (as a run that diverged would leave it)."""
    import h5py

    with h5py.File(path, "r+") as handle:
        datasets = []
        handle.visititems(lambda name, item: datasets.append(item) if isinstance(item, h5py.Dataset)
                          and item.dtype.kind == "f" and item.size > 1 else None)
        values = datasets[0][()]
        values.flat[0] = np.nan
        datasets[0][...] = values


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["vae", "rnn"])
def test_a_non_finite_loss_stops_training_and_keeps_the_saved_model(tmp_path, stage):
    """A good model is trained and saved; a resumed run at an absurd learning rate stops at the first NaN loss with
    one line naming the epoch and minibatch, and both weight files keep their bytes. A .weights.h5 with a NaN is
    then refused when training resumes from it."""
    if stage == "vae":
        rollout_batch(tmp_path, 0)
        script, common = "02_train_vae.py", ["--epochs", 1, "--batch_size", 8, "--verbose", 0]
        # 60 frames, 8 a minibatch: the first step blows the weights up, a later one's loss is NaN or inf
    else:
        rnn_batch(tmp_path, 0)
        script, common = "04_train_rnn.py", ["--epochs", 1, "--batch_size", 1, "--verbose", 0]
    run(script, *common, "--new_model", cwd=tmp_path, timeout=300)
    files = [tmp_path / stage / "car_racing.weights.h5", tmp_path / stage / "car_racing.npz",
             tmp_path / stage / "car_racing.history.json"]
    before = [sha(path) for path in files]
    for attempt in range(3):  # resumed: Adam's moments make later epochs as unstable as the first
        result = run(script, *common, "--learning_rate", 1e30, cwd=tmp_path, check=False, timeout=300)
        if result.returncode != 0:
            break
    line = refused(result, "loss became", "epoch", "minibatch", "--learning_rate", "keeps the last good weights")
    assert "V's" in line if stage == "vae" else "M's" in line
    assert [sha(path) for path in files] == before

    poison_keras_weights(files[0])
    result = run(script, *common, cwd=tmp_path, check=False, timeout=300)
    refused(result, "car_racing.weights.h5 holds NaN or infinite values")


# --- weights and controllers the agent loads --------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("poison", [("vae", "enc_conv0/kernel"), ("vae", "dec_deconv3/bias"),
                                    ("rnn", "lstm/kernel"), ("rnn", "mdn/bias")])
def test_non_finite_numpy_weights_are_named_before_any_episode(tmp_path, poison):
    world_model(tmp_path, poison)
    (tmp_path / "zero.best.json").write_text(json.dumps([[0.0] * 867, 0.0]))
    runs = [("model.py", "car_racing", "--max_length", 5, "--num_worker", 2, "--final_mode", "--num_episode", 2),
            ("model.py", "car_racing", "--max_length", 5, "--dream_mode" if poison[0] == "rnn" else "--seed=1"),
            ("01_generate_data.py", "car_racing", "--controller", "zero.best.json", "--total_episodes", 2,
             "--time_steps", 5, "--num_workers", 2)]
    for script, *args in runs:
        result = run(script, *args, cwd=tmp_path, check=False, timeout=120)
        refused(result, f"{poison[0]}/car_racing.npz: {poison[1]} holds NaN or infinite values")
    assert not (tmp_path / "log").exists() and not (tmp_path / "data").exists()  # no score, no episode written


@pytest.mark.slow
def test_05_with_non_finite_weights_stops_without_a_best(tmp_path):
    """The issue's case: inf in V made every CarRacing episode end after 2-3 steps scoring 999.8, saved as a best.
    Only the MPI workers read the weights: the leader reports the worker's line and ends the run with MPI_Abort,
    whose own message (MPICH's "Abort(1) on node 0 ...") is silenced, so the worker's line is the last."""
    world_model(tmp_path, ("vae", "enc_conv0/kernel"))
    result = run("05_train_controller.py", "car_racing", "--num_worker", 2, "--num_worker_trial", 2, "--max_length",
                 25, "--eval_steps", 1, "--generations", 1, cwd=tmp_path, check=False, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: worker") and "enc_conv0/kernel holds NaN or infinite values" in last, result.stderr
    assert not list(tmp_path.glob("controller/*.best.json")) and not list(tmp_path.glob("log/*.log.json"))


BAD_CONTROLLERS = {
    "strings": [["0.1"] * 867, 1.0],
    "nested lists": [[[0.1, 0.2]] * 433 + [0.1], 1.0],
    "booleans": [[True] * 867, 1.0],
    "null": [[None] * 867, 1.0],
    "near 1e308": [[1e308] * 867, 999.8],
    "beyond float32": [[0.0] * 866 + [1e39], 1.0],
    "huge integer": [[0] * 866 + [10 ** 400], 1.0],
    "nan": [[float("nan")] + [0.0] * 866, 1.0],
    "too few": [[0.0] * 866, 1.0],
    "not a list": {"params": [0.0] * 867},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD_CONTROLLERS))
def test_a_malformed_controller_file_is_one_line(tmp_path, name):
    world_model(tmp_path)
    (tmp_path / "bad.best.json").write_text(json.dumps(BAD_CONTROLLERS[name]))
    result = run("model.py", "car_racing", "--filename", "bad.best.json", "--max_length", 5, cwd=tmp_path,
                 check=False, timeout=120)
    refused(result, "bad.best.json")


def huge_params(config):
    """Parameters inside float32's range whose products overflow: +inf and -inf meet in W x, giving NaN."""
    return np.full(config.controller_param_count, 3e38)


def test_the_controller_never_returns_a_non_finite_action():
    controller = Controller(CAR_RACING, huge_params(CAR_RACING))
    z, h = np.ones(32, np.float32), np.full(256, -2.0, np.float32)  # the z terms sum to +inf, each h term is -inf
    with pytest.raises(NonFiniteAction, match="not finite"):
        controller.act(z, h)
    np.testing.assert_array_equal(Controller(CAR_RACING).act(z, h), [0.0, 0.5, 0.0])  # a sane one still acts


def test_the_dream_refuses_a_controller_whose_action_is_nan():
    from dream import dream_rollouts

    rnn = NumpyMDNRNN(random_weights(expected_rnn_shapes(DOOM_TAKE_COVER), 3), DOOM_TAKE_COVER)
    initial = np.random.default_rng(0).standard_normal((4, 2, 64)).astype(np.float32)
    params = np.stack([np.zeros(DOOM_TAKE_COVER.controller_param_count),
                       huge_params(DOOM_TAKE_COVER) * np.resize([1, -1], DOOM_TAKE_COVER.controller_param_count)])
    with pytest.raises(NonFiniteAction):  # Doom's move would read NaN as "stay": the episode would never end
        dream_rollouts(rnn, DOOM_TAKE_COVER, initial, params, np.array([[1], [2]]), 1.15, 50)


@pytest.mark.slow
def test_model_py_and_01_stop_when_the_action_is_not_finite(tmp_path):
    world_model(tmp_path)
    params = huge_params(CAR_RACING) * np.resize([1, -1, -1, 1], CAR_RACING.controller_param_count)
    (tmp_path / "huge.best.json").write_text(json.dumps([params.tolist(), 999.8]))
    for script, *args in [("model.py", "car_racing", "--filename", "huge.best.json", "--num_worker", 1),
                          ("model.py", "car_racing", "--filename", "huge.best.json", "--num_worker", 2,
                           "--num_episode", 2),
                          ("01_generate_data.py", "car_racing", "--controller", "huge.best.json", "--total_episodes", 2,
                           "--num_workers", 2)]:
        result = run(script, *args, "--max_length" if script == "model.py" else "--time_steps", 5, cwd=tmp_path,
                     check=False, timeout=120)
        refused(result, "action", "not finite")
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").glob("action_data_*"))


# --- stage 05: never a non-finite best, a resume command that pastes ------------------------------------------------

def training_run(*argv):
    """05's run of the command line `argv`, settled in this process as rank 0 settles it (no lock, no MPI)."""
    from controller.run import TrainingRun
    from controller.settings import command_line_parser

    parser, argv = command_line_parser(), [*map(str, argv)]
    return TrainingRun(parser.parse(argv), parser.given(argv), argv)


class ScoringPool:
    """Stands in for the MPI pool in one place only: every episode scores `reward` (a real pool can no longer
    produce a NaN score: NaN weights, parameters and actions are all refused before or while playing)."""

    def __init__(self, reward):
        self.reward = reward

    def run(self, tasks):
        from parallel import Result

        return [Result(t.task_id, np.full(np.shape(t.seeds), self.reward), np.ones(np.shape(t.seeds), np.int64))
                for t in tasks]


@pytest.mark.parametrize("reward", [float("nan"), float("inf")])
def test_05_never_records_a_non_finite_evaluation_as_the_best(tmp_path, monkeypatch, reward):
    from cli import UserError

    from controller.leader import evaluate_mean, write_best

    world_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    run = training_run("car_racing", "--num_worker", "2", "--num_worker_trial", "2")
    with pytest.raises(UserError, match="not finite"):
        evaluate_mean(run, ScoringPool(reward), 1, 25)
    assert not (tmp_path / "controller").exists() and run.state.best_score is None
    _, new_best = evaluate_mean(run, ScoringPool(12.5), 1, 50)  # a finite score still becomes the best
    assert new_best and run.state.best_score == 12.5
    write_best(run)  # (05 writes it once the checkpoint holds it)
    assert json.loads((tmp_path / "controller" / f"{run.files.base}.best.json").read_text())[1] == 12.5


def test_05_prints_a_resume_command_that_survives_the_shell(tmp_path, monkeypatch):
    folder = tmp_path / "my runs"
    world_model(folder)
    monkeypatch.chdir(folder)
    argv = ["car_racing", "--num_worker", "4", "--controller_dir", "controllers 'a'", "--log_dir", "log $HOME"]
    words = shlex.split(training_run(*argv).resume_command())
    script = os.path.relpath(os.path.join(ROOT, "05_train_controller.py"))  # from the folder it runs in
    assert words[0] in ("python", sys.executable)  # "python" only where that is this Python
    assert words[1:] == [script, *argv, "--init_opt", "controllers 'a'/car_racing.cma.1.4.es.pk"]


def test_05_resume_command_drops_the_init_flag_and_a_stop_before_any_checkpoint_says_start_again(
        tmp_path, monkeypatch):
    world_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "start.best.json").write_text(json.dumps([[0.0] * 867, 1.0]))
    argv = ["car_racing", "--init_params=start.best.json", "--num_worker", "2"]
    run = training_run(*argv)
    assert shlex.split(run.resume_command())[2:] == ["car_racing", "--num_worker", "2", "--init_opt",
                                                      "./controller/car_racing.cma.1.2.es.pk"]
    hint = run.resume_hint()  # nothing saved yet: the same command again, --init_params and all
    assert hint.startswith("no generation was finished, nothing is saved; start again with: ")
    assert shlex.split(hint.split("start again with: ")[1])[2:] == argv
