"""The state of a controller training run (controller.training.TrainingState) and the settings it keeps
(controller.settings.RunSettings), read from and written to a checkpoint exactly as earlier versions wrote them; a
damaged one refused in one line. The run that uses them: tests/test_controller_training.py."""

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from cli import UserError
from config import CAR_RACING
from controller.controller import load_params
from controller.settings import EvaluatorSettings, RunSettings
from controller.training import TrainingState, new_state, read_logs, training_files, write_logs
from es import load_optimizer
from tests.scripts import ROOT


# --- the training state ----------------------------------------------------------------------------------------------

# A checkpoint that the code before the typed state wrote (the CarRacing run's, generation 51), and a dream run's
# state as that code wrote it: its evaluations of new bests carry a real-game score, and the state the last one.
CHECKPOINT = f"{ROOT}/runs/car_racing/s1000/car_racing.cma.4.16.es.pk"
DREAM_STATE = {"format": 1, "env": "doom_take_cover", "optimizer": "cma", "population": 4, "num_episode": 1,
               "exp_mode": "zch", "generation": 2, "next_seed": 157, "elapsed_s": 12.25,
               "history": [[1, 6.1, 70.5, 31.0, 140.0, 40.12, 0.099875, 70.5, 140],
                           [2, 12.2, 66.0, 25.0, 131.0, 38.9, 0.09975, 66.0, 131]],
               "evaluations": [[1, 80.25, [0.1, -0.2], 301.5], [2, 75.0, [0.1, -0.1]]],
               "best_score": 80.25, "best_params": [0.1, -0.2], "cap_length": 282, "best_real_score": 301.5}


SETTINGS = {"dream_mode": 1, "antithetic": 1, "cap_time": 0, "retrain": 0, "max_length": 2100, "eval_steps": 1,
            "eval_episodes": 4, "real_episodes": 32, "seed_start": 111, "temperature": 1.15, "sigma_init": 0.1,
            "sigma_decay": 0.999, "weight_decay": 0.01, "common_seeds": 0}


def load_state(data, path="run.es.pk"):
    return TrainingState.from_json(data, path)


def test_a_state_of_todays_format_round_trips_field_for_field():
    _, saved = load_optimizer(CHECKPOINT)
    for data in (saved, DREAM_STATE):
        state = load_state(copy.deepcopy(data))
        assert json.dumps(state.to_json()) == json.dumps(data)  # the same keys in the same order, the same numbers
        for key, value in data.items():
            if key not in ("history", "evaluations"):
                assert getattr(state, key) == value, key
        assert [dataclasses.astuple(row) for row in state.history] == [tuple(row) for row in data["history"]]
        assert [row.generation for row in state.history] == [row[0] for row in data["history"]]
        assert [row.max_length for row in state.history] == [row[8] for row in data["history"]]
        for row, written in zip(state.evaluations, data["evaluations"], strict=True):
            assert (row.generation, row.score, row.params) == tuple(written[:3])
            assert row.real_score == (written[3] if len(written) == 4 else None)
    assert state.best_real_score == 301.5 and state.evaluations[0].real_score == 301.5


def test_the_logs_rewritten_from_a_loaded_state_are_the_files_the_run_wrote(tmp_path):
    _, saved = load_optimizer(CHECKPOINT)
    files = training_files("car_racing", "cma", 4, 16, str(tmp_path), str(tmp_path))
    write_logs(files, load_state(saved, CHECKPOINT), np.zeros(3), 0.0)
    written = CHECKPOINT.replace(".es.pk", ".hist.json")
    assert Path(files.history).read_text() == Path(written).read_text()  # byte for byte
    assert json.loads(Path(files.evaluations).read_text()) == saved["evaluations"]


def test_the_logs_current_parameters_keep_the_runs_mode(tmp_path):
    """log/<base>.json is a parameter file (model.py --filename, 05 --init_params): a zc run's, 867 numbers as zh's
    are, was read back as zh."""
    state = new_state("car_racing", "cma", 4, 4, 0, "zc")
    files = training_files("car_racing", "cma", 4, 4, str(tmp_path), str(tmp_path), "zc")
    params = np.random.default_rng(0).standard_normal(867)
    write_logs(files, state, params, 12.5)
    loaded, score, mode = load_params(files.current, CAR_RACING)
    assert mode == "zc" and score == 12.5
    np.testing.assert_allclose(loaded, params, atol=5e-5)  # rounded to 4 decimals, as estool writes them


def damaged(**changes):
    data = copy.deepcopy(DREAM_STATE)
    data.update(changes)
    return {key: value for key, value in data.items() if value is not MISSING}


MISSING = object()
ROW = DREAM_STATE["history"][0]


@pytest.mark.parametrize("data, message", [
    (damaged(generation=MISSING), "holds no valid training state ('generation' is None)"),
    (damaged(population=True), "holds no valid training state ('population' is True)"),
    (damaged(generation=2.0), "holds no valid training state ('generation' is 2.0)"),
    (damaged(elapsed_s="3"), "holds no valid training state ('elapsed_s' is '3')"),
    (damaged(best_params="x"), "holds no valid training state ('best_params' is 'x')"),
    (damaged(history={}), "holds no valid training state ('history' is {})"),
    (damaged(cap_length=1.5), "holds no valid training state ('cap_length' is 1.5)"),
    (damaged(format=2), "holds a training state of format 2, this code reads 1"),
    (damaged(history=[ROW[:8]]), "holds a damaged training history"),
    (damaged(history=[[*ROW[:8], "9"]]), "holds a damaged training history"),
    (damaged(history=[[*ROW[:8], float("nan")]]), "holds a damaged training history"),
    (damaged(history=[tuple(ROW)]), "holds a damaged training history"),
    (damaged(elapsed_s=float("inf")), "holds a damaged training history"),
    (damaged(elapsed_s=10 ** 400), "holds a damaged training history"),  # JSON integers have no limit
    (damaged(history=[[*ROW[:8], 10 ** 400]]), "holds a damaged training history"),
    (damaged(best_score=float("nan")), "holds a damaged training history"),
    (damaged(evaluations=[[1, 2.0]]), "holds a damaged training history"),
    (damaged(evaluations=[[1, 2.0, [], 3.0, 4.0]]), "holds a damaged training history"),
    (damaged(evaluations=[(1, 2.0, [])]), "holds a damaged training history"),
    (damaged(generation=-1), "holds a damaged training history"),
    (damaged(cap_length=0), "holds a damaged training history"),
    (damaged(next_seed=-1), "holds a damaged training history"),
    # before: accepted, then a traceback in the first generation's plot, in --retrain, or in the controller's shape
    (damaged(evaluations=[["x", "y", "z"]]), "holds a damaged training history"),
    (damaged(evaluations=[[1, 2.0, ["a"]]]), "holds a damaged training history"),
    (damaged(best_params=["a", 1.0]), "holds a damaged training history"),
    (damaged(best_params=[float("nan")]), "holds a damaged training history"),
    (damaged(exp_mode="foo"), "holds a damaged training history"),
    (damaged(settings={"dream_mode": 1}), "holds damaged run settings"),
    (damaged(settings={**SETTINGS, "max_length": 0}), "holds damaged run settings"),
    (damaged(settings={**SETTINGS, "dream_mode": True}), "holds damaged run settings"),
    (damaged(settings={**SETTINGS, "temperature": "1.15"}), "holds damaged run settings"),
    (damaged(blas_kernel=["Haswell"]), "holds a damaged BLAS kernel name"),
])
def test_a_damaged_state_is_refused_in_one_line(data, message):
    with pytest.raises(UserError) as error:
        load_state(data)
    assert str(error.value).startswith("run.es.pk ") and message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("folder, population, exp_mode, generations, evaluations", [
    ("runs/car_racing/table1/z", 16, "z", 60, 6), ("runs/car_racing/v5000r", 32, None, 43, 4)])
def test_an_ended_runs_logs_hold_its_checkpoints_history_and_evaluations(folder, population, exp_mode, generations,
                                                                          evaluations):
    """What reproduce.py reads of an ended phase run whose .es.pk did not travel (recipe.run.Run.trained): committed
    runs' logs against their checkpoints (a dream run's real-game scores: tests/test_reproduce.py's Doom run)."""
    files = training_files("car_racing", "cma", 4 if exp_mode else 8, population, f"{ROOT}/{folder}",
                           f"{ROOT}/{folder}", exp_mode)
    _, saved = load_optimizer(files.checkpoint)
    state, logged = load_state(saved, files.checkpoint), read_logs(files)
    assert logged.generation == state.generation == len(state.history) == generations
    assert logged.history == state.history and logged.evaluations == state.evaluations
    assert len(logged.evaluations) == evaluations


@pytest.mark.parametrize("history, evaluations, message", [
    (MISSING, [], ".hist.json does not exist"),
    ([ROW], MISSING, ".log.json does not exist"),
    ([[*ROW[:8], float("nan")]], [], "holds a damaged training history"),
    ([ROW], [[1, 2.0, [float("inf")]]], "holds a damaged training history"),
    ([ROW], [[1, 2.0]], "holds a damaged training history"),
    ({"1": ROW}, [], "holds a damaged training history"),
    ([[2, *ROW[1:]]], [], "does not hold one row a generation from generation 1"),
    ([ROW, ROW], [], "does not hold one row a generation from generation 1"),
])
def test_damaged_or_missing_logs_are_one_line(tmp_path, history, evaluations, message):
    files = training_files("doom_take_cover", "cma", 1, 4, str(tmp_path), str(tmp_path))
    for path, rows in ((files.history, history), (files.evaluations, evaluations)):
        if rows is not MISSING:
            Path(path).write_text(json.dumps(rows))
    with pytest.raises(UserError) as error:
        read_logs(files)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_score_beyond_float64_in_a_best_file_is_no_score(tmp_path):
    """Before: OverflowError (a traceback) from math.isfinite, in 05's check of the best on disk and in model.py."""
    from controller.training import best_score_on_disk

    path = tmp_path / "x.best.json"
    path.write_text(json.dumps([[0.0] * 867, 10 ** 400]))
    assert best_score_on_disk(str(path)) is None
    params, score, mode = load_params(str(path), CAR_RACING)
    assert score is None and mode == "zh" and params.shape == (867,)


def test_a_state_with_settings_round_trips():
    assert load_state(damaged(settings=SETTINGS)).to_json() == damaged(settings=SETTINGS)


def test_a_state_with_its_blas_kernels_round_trips():
    data = damaged(settings=SETTINGS, blas_kernel="Haswell")
    assert load_state(copy.deepcopy(data)).to_json() == data and list(data)[-1] == "blas_kernel"


def test_what_the_state_check_lets_through():
    """Exactly what the dict check let through before the typed state: unknown keys (dropped), a missing real score,
    integer numbers where floats are written."""
    state = load_state(damaged(unknown=1, best_real_score=MISSING, elapsed_s=12, best_score=None, best_params=None,
                               cap_length=None))
    assert state.to_json() == damaged(elapsed_s=12, best_score=None, best_params=None, cap_length=None,
                                     best_real_score=MISSING)


# --- the settings a run keeps ----------------------------------------------------------------------------------------

KEPT_SETTINGS = [f"{ROOT}/runs/car_racing/v5000/car_racing.cma.8.16.es.pk",
                 f"{ROOT}/runs/car_racing/v5000r/car_racing.cma.8.32.es.pk"]  # committed checkpoints with settings


@pytest.mark.parametrize("path", KEPT_SETTINGS)
def test_the_settings_of_a_committed_checkpoint_are_written_back_as_read(path):
    _, saved = load_optimizer(path)
    state = load_state(copy.deepcopy(saved), path)
    assert isinstance(state.settings, RunSettings)
    assert json.dumps(state.to_json()) == json.dumps(saved)  # keys, order and int/float types
    assert [type(value) for value in state.settings.to_json().values()] == [type(value) for value in
                                                                          saved["settings"].values()]


def test_settings_from_before_common_seeds_read_as_its_old_behaviour_and_each_field_says_if_a_resume_may_change_it():
    older = {key: value for key, value in SETTINGS.items() if key != "common_seeds"}
    assert RunSettings.from_json(older, "run.es.pk") == RunSettings(**SETTINGS)
    assert RunSettings.from_json(older, "run.es.pk").to_json() == SETTINGS  # written back with it, in its place
    changeable = [field.name for field in dataclasses.fields(RunSettings) if RunSettings.changeable(field.name)]
    assert changeable == ["cap_time", "retrain", "max_length", "eval_steps", "eval_episodes", "real_episodes",
                          "common_seeds", "real_every"]
    assert "real_every" not in RunSettings(**SETTINGS, real_every=0).to_json()  # written only when set
    assert RunSettings.from_json({**SETTINGS, "real_every": 1}, "run.es.pk").to_json() == {**SETTINGS, "real_every": 1}
    with pytest.raises(UserError, match="holds damaged run settings"):
        RunSettings.from_json([SETTINGS], "run.es.pk")
    with pytest.raises(UserError, match="holds damaged run settings"):
        RunSettings.from_json({**SETTINGS, "sigma_decay": 1.5}, "run.es.pk")


def test_evaluator_settings_travel_as_plain_json_data():
    settings = EvaluatorSettings("doom_take_cover", 2100, True, 1.15, "v", "r", "d", "zch")
    data = settings.to_json()
    assert json.loads(json.dumps(data)) == data and EvaluatorSettings.from_json(data) == settings
