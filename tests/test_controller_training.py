"""Stage 05's training options, run in this process as run_leader runs them on a single rank: `lead` with a LocalPool
(the leader plays every episode itself), real CarRacing episodes with the NumPy agent or the NumPy dream of Doom.
No MPI launch, so these run in seconds (the MPI path is tested in test_training.py).

--retrain   after an evaluation that is not a new best, the optimizer's mean moves back to the best
--cap_time  each generation's episodes are capped at twice the previous generation's mean length
mirrored    antithetic optimizers (openes, pepg, ses) give rows i and i + population/2 the same tracks
--common_seeds  every solution of a generation drives the same tracks

The world models hold random weights of the right shapes: what is tested is the training machinery.
"""

import copy
import dataclasses
import json
import signal
from pathlib import Path

import numpy as np
import pytest

from benchmarks.weights import random_weights
from cli import UserError
from config import CAR_RACING, DOOM_TAKE_COVER
from controller.controller import load_params
from controller.training import TrainingState, generation_seeds, new_state, training_files, write_logs
from es import load_optimizer, save_optimizer
from npyio import save_npz
from parallel import LocalPool, task_runner
from rnn.numpy_rnn import expected_rnn_shapes
from tests.scripts import ROOT
from tests.test_dream_training import doom_world_model
from tests.test_finite_and_flags import stage_05
from tests.test_training import world_model


class Leader:
    """05's leader on one rank for `flags`, one generation a call (each call is a run of --generations 1 that goes
    on from the same optimizer and state, as a resume does)."""

    def __init__(self, folder, monkeypatch, *flags):
        self.module = stage_05()
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        monkeypatch.chdir(folder)
        self.plan = self.module.Plan(self.module.parse_args([*map(str, flags), "--generations", "1"]))
        self.pool = LocalPool(task_runner(self.plan.make_evaluator()), lambda: None)  # the check for signals: none arrives

    def generation(self, capsys):
        """Run one generation; returns its progress line."""
        self.module.lead(self.plan, self.pool, 1)
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("gen "))

    @property
    def state(self):
        return self.plan.state

    def checkpoint(self):
        """(optimizer, state) as saved in this run's checkpoint (its path is relative to the run's folder)."""
        return load_optimizer(str(self.folder / self.plan.files.checkpoint))


# --- --retrain -------------------------------------------------------------------------------------------------------

# Cheap generations (population 2, 10 steps, an evaluation of 2 episodes after every generation) whose seeded scores
# give new bests in generations 1 and 2 and none in 3.
RETRAIN = ["car_racing", "--num_worker", 2, "--max_length", 10, "--eval_episodes", 2, "--eval_steps", 1]


def test_retrain_moves_the_mean_back_to_the_best_after_an_evaluation_that_is_not_one(tmp_path, monkeypatch, capsys):
    runs = {}
    for retrain in (0, 1):
        folder = world_model(tmp_path / f"retrain{retrain}")
        leader = Leader(folder, monkeypatch, *RETRAIN, "--retrain", retrain)
        steps = []
        for _ in range(3):
            line = leader.generation(capsys)
            steps.append((line, leader.plan.optimizer.current_param(), list(leader.state.best_params)))
        runs[retrain] = leader, steps
    (plain, plain_steps), (retrained, retrained_steps) = runs[0], runs[1]
    # The flag acts only after an evaluation: until then both runs are the same run, evaluation for evaluation.
    assert plain.state.evaluations == retrained.state.evaluations
    scores = [row.score for row in retrained.state.evaluations]
    assert scores[1] > scores[0] and scores[2] <= scores[1], f"no longer 2 new bests, then none: {scores}"
    assert all("(new best)" in line for line, _, _ in retrained_steps[:2])
    line, mean, best = retrained_steps[2]
    assert "(new best)" not in line and "(mean moved back to the best)" in line
    assert best == retrained.state.evaluations[1].params  # the best is generation 2's evaluated (rounded) mean ...
    np.testing.assert_array_equal(mean, best)  # ... and the search goes on from there
    optimizer, _ = retrained.checkpoint()
    np.testing.assert_array_equal(optimizer.current_param(), best)  # so does a resume from the checkpoint
    # without --retrain, the mean stays where generation 3's update put it (the one that scored worse)
    line, mean, best = plain_steps[2]
    assert "moved back" not in line and not np.allclose(mean, best, atol=1e-3)
    assert np.abs(mean - np.asarray(best)).max() < 1.0  # (one CMA-ES step of sigma 0.1 away, not a random vector)


# --- --cap_time ------------------------------------------------------------------------------------------------------

# Doom in the dream: M's done head (random weights, bias -0.5) ends the dreamed episodes after ~70 steps on average,
# at widely different steps (30 to 300), so a cap at twice the mean cuts some episodes of every generation. 16
# episodes a generation, so the mean length is a multiple of 1/16 and the history's 2 decimals give it exactly enough
# for int(mean + 1). No evaluation (it would also play the real game).
CAP = ["doom_take_cover", "--dream_mode", 1, "--num_worker", 2, "--num_worker_trial", 2, "--num_episode", 4,
       "--max_length", 300, "--eval_steps", 1000]


def dreamy_doom_world_model(folder):
    doom_world_model(folder)
    weights = random_weights(expected_rnn_shapes(DOOM_TAKE_COVER), 3)
    weights["done/bias"][:] = -0.5
    save_npz(str(folder / "rnn" / "doom_take_cover.npz"), **weights)
    return folder


def test_cap_time_caps_each_generation_at_twice_the_previous_mean_length(tmp_path, monkeypatch, capsys):
    capped = Leader(dreamy_doom_world_model(tmp_path / "capped"), monkeypatch, *CAP, "--cap_time", 1)
    for _ in range(4):
        capped.generation(capsys)
    uncapped = Leader(dreamy_doom_world_model(tmp_path / "uncapped"), monkeypatch, *CAP)
    for _ in range(2):
        uncapped.generation(capsys)
    rows, free = capped.state.history, uncapped.state.history
    assert rows[0].to_json()[2:] == free[0].to_json()[2:]  # generation 1 has no previous one: the same episodes
    for previous, row in zip(rows, rows[1:]):
        cap = 2 * int(previous.mean_length + 1)
        assert cap < 300  # the cap, not --max_length, is what binds
        assert row.max_length == cap, f"generation {row.generation}: longest episode {row.max_length}, cap {cap}"
    assert free[1].max_length > 2 * int(free[0].mean_length + 1)  # without --cap_time generation 2 plays past it
    assert free[1].mean_length > rows[1].mean_length  # and its cut episodes were longer: the cap shortened them
    # the next generation's cap is in the checkpoint: a resumed run goes on capping
    _, saved = capped.checkpoint()
    assert saved["cap_length"] == 2 * int(rows[-1].mean_length + 1) and uncapped.state.cap_length is None
    # resumed without the flag, the run keeps its --cap_time and goes on capping
    kept = Leader(tmp_path / "capped", monkeypatch, *CAP, "--init_opt", capped.plan.files.checkpoint)
    kept.generation(capsys)
    assert kept.state.generation == 5 and kept.state.history[-1].max_length == saved["cap_length"]
    # ... and the cap binds only while --cap_time is on: resumed with --cap_time 0, full episodes again and no cap
    _, saved = kept.checkpoint()
    resumed = Leader(tmp_path / "capped", monkeypatch, *CAP, "--cap_time", 0, "--init_opt", kept.plan.files.checkpoint)
    assert "note: --cap_time 0 from now on (this run had 1)" in capsys.readouterr().out
    resumed.generation(capsys)
    assert resumed.state.generation == 6 and resumed.state.history[-1].max_length > saved["cap_length"]
    assert resumed.checkpoint()[1]["cap_length"] is None and resumed.checkpoint()[1]["settings"]["cap_time"] == 0


# --- a dream run's new best ------------------------------------------------------------------------------------------

def test_a_dream_run_stopped_while_its_new_best_plays_the_real_game_writes_no_best_and_finds_it_again(
        tmp_path, monkeypatch, capsys):
    """Before: .best.json was written before the real-game episodes (minutes); a run stopped during them replayed
    the generation on resume, found its score equal to the file's, not above it, and lost that best from its state
    (no real-game score, --retrain moving the mean back to an older best)."""
    flags = [*CAP, "--eval_steps", 1, "--eval_episodes", 2, "--real_episodes", 2, "--max_length", 30]
    folder = dreamy_doom_world_model(tmp_path / "run")
    stopped = Leader(folder, monkeypatch, *flags)
    play = stopped.pool.function

    def stopped_in_the_real_game(task):
        if task.real:
            raise stopped.module.Stopping(signal.SIGTERM)
        return play(task)

    stopped.pool.function = stopped_in_the_real_game
    with pytest.raises(stopped.module.Stopping):
        stopped.generation(capsys)
    assert not (folder / stopped.plan.files.best).exists() and not (folder / stopped.plan.files.checkpoint).exists()
    again = Leader(folder, monkeypatch, *flags)  # the same command again: generation 1 replayed
    line = again.generation(capsys)
    assert "(new best), real game" in line
    score = again.state.evaluations[0].score
    assert round(again.state.best_score, 2) == score and again.state.best_real_score is not None
    assert json.loads((folder / again.plan.files.best).read_text())[1] == again.state.best_score


def test_a_run_stopped_between_the_checkpoint_of_a_new_best_and_its_best_file_writes_it_on_resume(
        tmp_path, monkeypatch, capsys):
    """.best.json is written after the checkpoint that holds the new best (before, it came first: a stop or a full disk
    at the checkpoint left a best file the resumed state did not know, so the replayed generation's score equalled
    it and was no new best: the state kept an older best, and --retrain moved back to it)."""
    folder = world_model(tmp_path / "run")
    stopped = Leader(folder, monkeypatch, *RETRAIN)

    def stopped_before_the_best_file(plan):
        raise stopped.module.Stopping(signal.SIGTERM)

    monkeypatch.setattr(stopped.module, "write_best", stopped_before_the_best_file)
    with pytest.raises(stopped.module.Stopping):
        stopped.generation(capsys)
    monkeypatch.undo()
    best = folder / stopped.plan.files.best
    assert not best.exists() and stopped.checkpoint()[1]["best_score"] is not None
    _, saved = stopped.checkpoint()
    resumed = Leader(folder, monkeypatch, *RETRAIN, "--init_opt", stopped.plan.files.checkpoint)
    monkeypatch.setattr(resumed.module, "evaluate_mean", lambda *args: ("", False))  # no newer best in generation 2
    resumed.module.lead(resumed.plan, resumed.pool, 1)
    assert "best.json written again from the checkpoint (it held nothing)" in capsys.readouterr().out
    params, score = json.loads(best.read_text())[:2]
    assert score == saved["best_score"] and params == saved["best_params"]


# --- how episodes are handed out ----------------------------------------------------------------------------------

def recorded_tasks(leader):
    """The shape of every task's seeds, in the order the pool was given them."""
    shapes, play = [], leader.pool.function
    leader.pool.function = lambda task: (shapes.append(task.seeds.shape), play(task))[1]
    return shapes


def test_real_episodes_go_out_one_a_task(tmp_path, monkeypatch, capsys):
    """Each episode its own task, the next free worker's: no worker waits for another's block of long episodes
    (before, a worker got num_worker_trial solutions, every episode of them, in one task)."""
    leader = Leader(world_model(tmp_path / "run"), monkeypatch, "car_racing", "--num_worker", 2, "--num_worker_trial",
                    2, "--num_episode", 2, "--max_length", 10, "--eval_steps", 1, "--eval_episodes", 3)
    shapes = recorded_tasks(leader)
    leader.generation(capsys)
    assert shapes == [(1, 1)] * (4 * 2 + 3)  # the population's episodes, then the evaluation's


def test_dream_episodes_go_out_in_batches_of_num_worker_trial_solutions(tmp_path, monkeypatch, capsys):
    """The dream rolls a task's episodes out together (fast), and a batch of other rows would round them otherwise."""
    leader = Leader(dreamy_doom_world_model(tmp_path / "run"), monkeypatch, *CAP)
    shapes = recorded_tasks(leader)
    leader.generation(capsys)
    assert shapes == [(2, 4), (2, 4)]


# --- mirrored seeds ------------------------------------------------------------------------------------------------

def test_mirrored_generation_seeds_repeat_the_first_half():
    state = new_state("car_racing", "openes", 6, 2, 111, "zh")
    seeds = generation_seeds(state, 6, 2, mirrored=True)
    np.testing.assert_array_equal(seeds, [[111, 112], [113, 114], [115, 116], [111, 112], [113, 114], [115, 116]])
    assert seeds.dtype == np.int64 and state.next_seed == 117  # half the seeds are used: never reused later
    np.testing.assert_array_equal(generation_seeds(state, 6, 2, mirrored=False), np.arange(117, 129).reshape(6, 2))
    assert state.next_seed == 129
    np.testing.assert_array_equal(generation_seeds(state, 5, 1, mirrored=True), np.arange(129, 134).reshape(5, 1))


@pytest.mark.parametrize("optimizer, antithetic, seeds_used", [("openes", 1, 2), ("ses", 1, 2), ("pepg", 1, 2),
                                                                ("openes", 0, 4), ("cma", 1, 4), ("ga", 1, 4)])
def test_05_mirrors_the_seeds_of_antithetic_optimizers_only(tmp_path, monkeypatch, capsys, optimizer, antithetic,
                                                            seeds_used):
    leader = Leader(world_model(tmp_path), monkeypatch, "car_racing", "-o", optimizer, "--antithetic", antithetic,
                    "--num_worker", 2, "--num_worker_trial", 2, "--max_length", 5, "--eval_steps", 1000)
    leader.generation(capsys)
    assert leader.state.next_seed == 111 + seeds_used  # a population of 4, one episode each


def test_mirrored_rows_drive_the_same_tracks(tmp_path, monkeypatch):
    """openes's rows i and i + 2 are mean + eps and mean - eps; at --sigma_init 1e-9 both are the same driver (to
    1e-9), so their rewards are equal exactly when their tracks are."""
    leader = Leader(world_model(tmp_path), monkeypatch, "car_racing", "-o", "openes", "--sigma_init", 1e-9,
                    "--num_worker", 2, "--num_worker_trial", 2, "--max_length", 25)
    solutions = leader.plan.optimizer.ask()
    mean = leader.plan.optimizer.current_param()
    np.testing.assert_allclose(solutions[:2] - mean, mean - solutions[2:], atol=1e-15)  # mean + eps, mean - eps
    chunks = [slice(0, 2), slice(2, 4)]  # the two workers' shares, as lead splits a population of 2 x 2
    mirrored, _ = leader.module.evaluate(leader.pool, solutions, generation_seeds(leader.state, 4, 1, True), 25,
                                         chunks)
    assert mirrored[0, 0] == mirrored[2, 0] and mirrored[1, 0] == mirrored[3, 0]
    assert mirrored[0, 0] != mirrored[1, 0]  # another track, another reward
    fresh, _ = leader.module.evaluate(leader.pool, solutions, generation_seeds(leader.state, 4, 1, False), 25, chunks)
    assert fresh[0, 0] != fresh[2, 0] and fresh[1, 0] != fresh[3, 0]  # without mirroring the pair drives two tracks


# --- common seeds ----------------------------------------------------------------------------------------------------

def test_common_seeds_give_every_solution_the_same_fresh_tracks():
    state = new_state("car_racing", "cma", 4, 3, 111, "zh")
    np.testing.assert_array_equal(generation_seeds(state, 4, 3, mirrored=False, common=True), [[111, 112, 113]] * 4)
    assert state.next_seed == 114  # num_episode seeds a generation, never reused later
    np.testing.assert_array_equal(generation_seeds(state, 4, 3, mirrored=True, common=True), [[114, 115, 116]] * 4)
    np.testing.assert_array_equal(generation_seeds(state, 4, 3, mirrored=False), np.arange(117, 129).reshape(4, 3))


COMMON = ["car_racing", "--num_worker", 2, "--num_worker_trial", 2, "--num_episode", 2, "--max_length", 25,
          "--eval_steps", 1000]


def test_with_common_seeds_every_solution_drives_the_generations_tracks(tmp_path, monkeypatch):
    """At --sigma_init 1e-9 the four solutions are one driver (to 1e-9): with --common_seeds 1 they score the same
    on each of the generation's two tracks, which differ from each other; without, each solution has its own."""
    leader = Leader(world_model(tmp_path / "common"), monkeypatch, *COMMON, "--sigma_init", 1e-9, "--common_seeds", 1)
    solutions = leader.plan.optimizer.ask()
    chunks = [slice(0, 2), slice(2, 4)]
    common, _ = leader.module.evaluate(leader.pool, solutions, generation_seeds(leader.state, 4, 2, False, True), 25,
                                       chunks)
    assert np.all(common == common[0]) and common[0, 0] != common[0, 1]
    fresh, _ = leader.module.evaluate(leader.pool, solutions, generation_seeds(leader.state, 4, 2, False), 25, chunks)
    assert len(set(fresh.ravel().tolist())) == 8


def test_common_seeds_train_on_and_a_resume_may_switch_them_on(tmp_path, monkeypatch, capsys):
    """05 with --common_seeds 1 uses num_episode seeds a generation and keeps the setting; a run that began without
    it (or a checkpoint from before the flag, whose settings lack it) may switch it on when resumed, with a note."""
    first = Leader(world_model(tmp_path / "run"), monkeypatch, *COMMON)
    first.generation(capsys)
    assert first.state.next_seed == 111 + 4 * 2 and first.checkpoint()[1]["settings"]["common_seeds"] == 0
    checkpoint = first.plan.files.checkpoint
    optimizer, data = load_optimizer(str(tmp_path / "run" / checkpoint))
    del data["settings"]["common_seeds"]  # as the checkpoints written before --common_seeds
    save_optimizer(str(tmp_path / "run" / checkpoint), optimizer, data)
    kept = Leader(tmp_path / "run", monkeypatch, *COMMON, "--init_opt", checkpoint)
    assert kept.plan.args.common_seeds == 0
    switched = Leader(tmp_path / "run", monkeypatch, *COMMON, "--common_seeds", 1, "--init_opt", checkpoint)
    out = capsys.readouterr().out
    assert "note: --common_seeds 1 from now on (this run had 0)" in out
    switched.generation(capsys)
    assert switched.state.next_seed == 111 + 4 * 2 + 2 and switched.checkpoint()[1]["settings"]["common_seeds"] == 1
    again = Leader(tmp_path / "run", monkeypatch, *COMMON, "--init_opt", checkpoint)  # the switch is kept
    assert again.plan.args.common_seeds == 1


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


def test_a_score_beyond_float64_in_a_best_file_is_no_score(tmp_path):
    """Before: OverflowError (a traceback) from math.isfinite, in 05's check of the best on disk and in model.py."""
    from config import CAR_RACING
    from controller.controller import load_params
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


def test_a_resume_keeps_the_runs_settings_and_refuses_a_change_that_makes_another_run(tmp_path, monkeypatch, capsys):
    """Resumed with the env, the population and the checkpoint only, a dream run goes on in the dream at its
    temperature and episode length (before: in the real game, at the default tau, with 2100 steps)."""
    first = Leader(dreamy_doom_world_model(tmp_path / "run"), monkeypatch, *CAP, "--temperature", 1.3,
                   "--seed_start", 500)
    first.generation(capsys)
    population = ["doom_take_cover", "--num_worker", 2, "--num_worker_trial", 2, "--num_episode", 4]
    checkpoint = first.plan.files.checkpoint
    resumed = Leader(tmp_path / "run", monkeypatch, *population, "--init_opt", checkpoint)
    assert (resumed.plan.args.dream_mode, resumed.plan.temperature, resumed.plan.max_length) == (1, 1.3, 300)
    resumed.generation(capsys)
    straight = Leader(dreamy_doom_world_model(tmp_path / "straight"), monkeypatch, *CAP, "--temperature", 1.3,
                      "--seed_start", 500)
    straight.generation(capsys)
    straight.generation(capsys)
    assert [row.to_json()[2:] for row in resumed.state.history] == \
        [row.to_json()[2:] for row in straight.state.history]  # the same generations as one run straight through
    for flags, message in ((["--dream_mode", 0], "trained with --dream_mode 1, this resume asks for --dream_mode 0"),
                           (["--seed_start", 111], "trained with --seed_start 500, this resume asks for"),
                           (["--temperature", 1.15, "--sigma_init", 0.5], "--temperature 1.3 --sigma_init 0.1, this")):
        with pytest.raises(UserError) as error:
            Leader(tmp_path / "run", monkeypatch, *population, *flags, "--init_opt", checkpoint)
        assert message in str(error.value)
    # a checkpoint from before settings were kept: resumed as before, with the flags given, and none made up for it
    optimizer, data = load_optimizer(str(tmp_path / "run" / checkpoint))
    del data["settings"]
    save_optimizer(str(tmp_path / "run" / checkpoint), optimizer, data)
    older = Leader(tmp_path / "run", monkeypatch, *CAP, "--seed_start", 111, "--init_opt", checkpoint)
    older.generation(capsys)
    assert "settings" not in older.checkpoint()[1]


def test_what_the_state_check_lets_through():
    """Exactly what the dict check let through before the typed state: unknown keys (dropped), a missing real score,
    integer numbers where floats are written."""
    state = load_state(damaged(unknown=1, best_real_score=MISSING, elapsed_s=12, best_score=None, best_params=None,
                               cap_length=None))
    assert state.to_json() == damaged(elapsed_s=12, best_score=None, best_params=None, cap_length=None,
                                     best_real_score=MISSING)



# --- runs side by side: plots.py ---------------------------------------------------------------------------------

def test_plots_py_draws_runs_side_by_side_from_their_logs(tmp_path):
    from PIL import Image

    from figures import read_evaluations, read_history
    from tests.scripts import run

    rows = json.loads(Path(CHECKPOINT.replace(".es.pk", ".hist.json")).read_text())  # a committed run's logs
    evaluations = load_optimizer(CHECKPOINT)[1]["evaluations"]
    (tmp_path / "log").mkdir()
    history = tmp_path / "log" / "a.hist.json"
    history.write_text(json.dumps(rows))
    (tmp_path / "log" / "a.log.json").write_text(json.dumps(evaluations))
    assert read_history(str(history)) == ([row[0] for row in rows], [row[2] for row in rows])
    assert read_evaluations(str(tmp_path / "log" / "a.log.json")) == ([row[0] for row in evaluations],
                                                                      [row[1] for row in evaluations])
    other = tmp_path / "log" / "b.hist.json"  # a second run with no .log.json beside it: a line, no dots
    other.write_text(json.dumps([[1, 1.0, -20.5], [2, 2.0, 30]]))
    result = run("plots.py", f"seed 1000={history}", str(other), "--official", cwd=tmp_path)
    assert result.stdout.strip() == "log/runs.png" and result.stderr == ""
    with Image.open(tmp_path / "log" / "runs.png") as image:
        assert image.format == "PNG" and image.size == (800, 450)


@pytest.mark.parametrize("text, parsed", [
    ("log/a.hist.json", ("a", "log/a.hist.json", 0)),
    ("v5000=log/a.hist.json", ("v5000", "log/a.hist.json", 0)),
    ("restart=log/a.hist.json+182", ("restart", "log/a.hist.json", 182)),
    ("log/a.hist.json+7", ("a", "log/a.hist.json", 7)),
    ("x+y=log/a+b.hist.json", ("x+y", "log/a+b.hist.json", 0)),
])
def test_plots_py_reads_a_label_and_a_restart_s_generations_before(text, parsed):
    from figures import parse_run

    assert parse_run(text) == parsed


def test_plots_py_draws_a_restart_after_the_generation_it_went_on_from(tmp_path):
    from figures import read_run
    from tests.scripts import run

    (tmp_path / "r.hist.json").write_text("[[1, 300.0, 790.25], [2, 560.0, 841.64], [3, 830.0, 788.7]]")
    (tmp_path / "r.log.json").write_text("[[2, 774.48, [0.5]]]")
    assert read_run(str(tmp_path / "r.hist.json"), 182) == (([183, 184, 185], [790.25, 841.64, 788.7]),
                                                           ([184], [774.48]))
    assert read_run(str(tmp_path / "r.hist.json")) == (([1, 2, 3], [790.25, 841.64, 788.7]), ([2], [774.48]))
    result = run("plots.py", "restart=r.hist.json+182", "--out", "r.png", "--official", cwd=tmp_path)
    assert result.stdout.strip() == "r.png" and (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.parametrize("content, beside, message", [
    (None, None, "does not exist"),
    ("[[1, 2.0, 3", None, "is not JSON"),
    ("{}", None, "is not a controller run's history"),
    ("[]", None, "has no generation yet"),
    ("[[1, 2.0]]", None, "its rows start [generation, elapsed s, average]"),
    ("[[1, 2.0, NaN]]", None, "row 1: nan is not a finite number"),
    ('[[1, 2.0, 5], [2, 3.0, "7"]]', None, "row 2: '7' is not a finite number"),
    ("[[1, 2.0, true]]", None, "row 1: True is not a finite number"),
    (f"[[1, 2.0, 1{'0' * 400}]]", None, "row 1: 10000000000000000... is not a finite number"),
    ("[[1, 2.0, 5]]", "[[1, Infinity, []]]", "b.log.json, row 1: inf is not a finite number"),
    ("[[1, 2.0, 5]]", "[3]", "is not a controller run's evaluations"),
])
def test_plots_py_refuses_a_malformed_run_in_one_line_and_writes_nothing(tmp_path, content, beside, message):
    from tests.scripts import run
    from tests.test_finite_and_flags import refused

    if content is not None:
        (tmp_path / "b.hist.json").write_text(content)
    if beside is not None:
        (tmp_path / "b.log.json").write_text(beside)
    refused(run("plots.py", "b.hist.json", "--out", "out.png", cwd=tmp_path, check=False), message)
    assert not (tmp_path / "out.png").exists()


def test_plots_py_refuses_what_is_not_a_history_or_a_png(tmp_path):
    from tests.scripts import run
    from tests.test_finite_and_flags import refused

    refused(run("plots.py", "b.log.json", cwd=tmp_path, check=False), "b.log.json is not a .hist.json file")
    refused(run("plots.py", "b.hist.json", "--out", "x.jpg", cwd=tmp_path, check=False), "ending in .png")
    (tmp_path / "b.hist.json").write_text("[[1, 2.0, 5]]")
    (tmp_path / "file").write_text("")
    refused(run("plots.py", "b.hist.json", "--out", "file/x.png", cwd=tmp_path, check=False),
            f"cannot write to {tmp_path / 'file'}: ")


@pytest.mark.parametrize("seed_start, warned", [(None, True), (150, True), (211, False), (1000, False)])
def test_05_says_when_its_episodes_may_take_the_tracks_model_py_scores(tmp_path, monkeypatch, capsys, seed_start,
                                                                       warned):
    """model.py --final_mode scores seeds 111..210 by default, and 05's --seed_start is 111 by default (both as in the
    command lines users know): a run that will play some of those tracks says so."""
    folder = world_model(tmp_path / "run")
    flags = RETRAIN + ([] if seed_start is None else ["--seed_start", seed_start])
    leader = Leader(folder, monkeypatch, *flags)
    leader.module.lead(leader.plan, leader.pool, 1)
    out = capsys.readouterr().out
    assert ("note: this run's episode seeds go on from" in out) == warned, out
    if warned:
        assert f"from {seed_start or 111}, so it may train on some of the tracks 111..210" in out


def test_a_checkpoint_records_its_blas_kernels_and_a_resume_on_other_ones_says_so(tmp_path, monkeypatch, capsys):
    from es import load_optimizer, save_optimizer

    first = Leader(world_model(tmp_path / "run"), monkeypatch, *RETRAIN)
    first.generation(capsys)
    path = first.plan.files.checkpoint
    optimizer, state = load_optimizer(path)
    assert state["blas_kernel"] == "Haswell"  # the pinned kernels (tests/test_blas.py)
    resumed = Leader(tmp_path / "run", monkeypatch, *RETRAIN, "--init_opt", path)
    resumed.module.lead(resumed.plan, resumed.pool, 1)
    assert "note: this run's last generation ran" not in capsys.readouterr().out
    optimizer, state = load_optimizer(path)
    save_optimizer(path, optimizer, {**state, "blas_kernel": "Sandybridge"})  # as if run on another machine
    resumed = Leader(tmp_path / "run", monkeypatch, *RETRAIN, "--init_opt", path)
    resumed.module.lead(resumed.plan, resumed.pool, 1)
    assert ("note: this run's last generation ran OpenBLAS's Sandybridge kernels and this machine runs Haswell"
            in capsys.readouterr().out)
    assert load_optimizer(path)[1]["blas_kernel"] == "Haswell"  # the kernels of its last generation


def test_a_resumed_run_past_the_scoring_seeds_still_says_it_trained_on_some(tmp_path, monkeypatch, capsys):
    first = Leader(world_model(tmp_path / "run"), monkeypatch, *RETRAIN, "--seed_start", 205)
    first.generation(capsys)
    first.generation(capsys)  # 2 x (2 solutions + 2 evaluation episodes): seeds 205..212
    assert first.state.next_seed == 213
    resumed = Leader(tmp_path / "run", monkeypatch, *RETRAIN, "--init_opt", first.plan.files.checkpoint)
    resumed.module.lead(resumed.plan, resumed.pool, 1)
    assert "seeds started at 205, so it trained on some of the tracks 111..210" in capsys.readouterr().out
