"""Stage 05's training options, run in this process as run_leader runs them on a single rank: controller.leader's
`lead` with a LocalPool
(the leader plays every episode itself), real CarRacing episodes with the NumPy agent or the NumPy dream of Doom.
No MPI launch, so these run in seconds (the MPI path is tested in test_training.py).

--retrain   after an evaluation that is not a new best, the optimizer's mean moves back to the best
--cap_time  each generation's episodes are capped at twice the previous generation's mean length
mirrored    antithetic optimizers (openes, pepg, ses) give rows i and i + population/2 the same tracks
--common_seeds  every solution of a generation drives the same tracks

The world models hold random weights of the right shapes: what is tested is the training machinery.
"""

import json
import signal

import numpy as np
import pytest

from benchmarks.weights import random_weights
from cli import UserError
from config import DOOM_TAKE_COVER
from controller import leader as leading
from controller.training import generation_seeds, new_state
from es import load_optimizer, save_optimizer
from npyio import save_npz
from parallel import LocalPool, task_runner
from rnn.numpy_rnn import expected_rnn_shapes
from tests.test_dream_training import doom_world_model
from tests.test_finite_and_flags import training_run
from tests.test_training import world_model


class Leader:
    """05's leader on one rank for `flags`, one generation a call (each call is a run of --generations 1 that goes
    on from the same optimizer and state, as a resume does)."""

    def __init__(self, folder, monkeypatch, *flags):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        monkeypatch.chdir(folder)
        self.run = training_run(*flags, "--generations", 1)
        # the check for signals: none arrives
        self.pool = LocalPool(task_runner(self.run.evaluator_settings().make_evaluator()), lambda: None)

    def generation(self, capsys):
        """Run one generation; returns its progress line."""
        leading.lead(self.run, self.pool, 1)
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("gen "))

    @property
    def state(self):
        return self.run.state

    def checkpoint(self):
        """(optimizer, state) as saved in this run's checkpoint (its path is relative to the run's folder)."""
        return load_optimizer(str(self.folder / self.run.files.checkpoint))


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
            steps.append((line, leader.run.optimizer.current_param(), list(leader.state.best_params)))
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
    kept = Leader(tmp_path / "capped", monkeypatch, *CAP, "--init_opt", capped.run.files.checkpoint)
    kept.generation(capsys)
    assert kept.state.generation == 5 and kept.state.history[-1].max_length == saved["cap_length"]
    # ... and the cap binds only while --cap_time is on: resumed with --cap_time 0, full episodes again and no cap
    _, saved = kept.checkpoint()
    resumed = Leader(tmp_path / "capped", monkeypatch, *CAP, "--cap_time", 0, "--init_opt", kept.run.files.checkpoint)
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
            raise leading.Stopping(signal.SIGTERM)
        return play(task)

    stopped.pool.function = stopped_in_the_real_game
    with pytest.raises(leading.Stopping):
        stopped.generation(capsys)
    assert not (folder / stopped.run.files.best).exists() and not (folder / stopped.run.files.checkpoint).exists()
    again = Leader(folder, monkeypatch, *flags)  # the same command again: generation 1 replayed
    line = again.generation(capsys)
    assert "(new best), real game" in line
    score = again.state.evaluations[0].score
    assert round(again.state.best_score, 2) == score and again.state.best_real_score is not None
    assert json.loads((folder / again.run.files.best).read_text())[1] == again.state.best_score


def test_a_run_stopped_between_the_checkpoint_of_a_new_best_and_its_best_file_writes_it_on_resume(
        tmp_path, monkeypatch, capsys):
    """.best.json is written after the checkpoint that holds the new best (before, it came first: a stop or a full disk
    at the checkpoint left a best file the resumed state did not know, so the replayed generation's score equalled
    it and was no new best: the state kept an older best, and --retrain moved back to it)."""
    folder = world_model(tmp_path / "run")
    stopped = Leader(folder, monkeypatch, *RETRAIN)

    def stopped_before_the_best_file(plan):
        raise leading.Stopping(signal.SIGTERM)

    monkeypatch.setattr(leading, "write_best", stopped_before_the_best_file)
    with pytest.raises(leading.Stopping):
        stopped.generation(capsys)
    monkeypatch.undo()
    best = folder / stopped.run.files.best
    assert not best.exists() and stopped.checkpoint()[1]["best_score"] is not None
    _, saved = stopped.checkpoint()
    resumed = Leader(folder, monkeypatch, *RETRAIN, "--init_opt", stopped.run.files.checkpoint)
    monkeypatch.setattr(leading, "evaluate_mean", lambda *args: ("", False))  # no newer best in generation 2
    leading.lead(resumed.run, resumed.pool, 1)
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
    solutions = leader.run.optimizer.ask()
    mean = leader.run.optimizer.current_param()
    np.testing.assert_allclose(solutions[:2] - mean, mean - solutions[2:], atol=1e-15)  # mean + eps, mean - eps
    chunks = [slice(0, 2), slice(2, 4)]  # the two workers' shares, as lead splits a population of 2 x 2
    mirrored, _ = leading.evaluate(leader.pool, solutions, generation_seeds(leader.state, 4, 1, True), 25,
                                         chunks)
    assert mirrored[0, 0] == mirrored[2, 0] and mirrored[1, 0] == mirrored[3, 0]
    assert mirrored[0, 0] != mirrored[1, 0]  # another track, another reward
    fresh, _ = leading.evaluate(leader.pool, solutions, generation_seeds(leader.state, 4, 1, False), 25, chunks)
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
    solutions = leader.run.optimizer.ask()
    chunks = [slice(0, 2), slice(2, 4)]
    common, _ = leading.evaluate(leader.pool, solutions, generation_seeds(leader.state, 4, 2, False, True), 25,
                                       chunks)
    assert np.all(common == common[0]) and common[0, 0] != common[0, 1]
    fresh, _ = leading.evaluate(leader.pool, solutions, generation_seeds(leader.state, 4, 2, False), 25, chunks)
    assert len(set(fresh.ravel().tolist())) == 8


def test_common_seeds_train_on_and_a_resume_may_switch_them_on(tmp_path, monkeypatch, capsys):
    """05 with --common_seeds 1 uses num_episode seeds a generation and keeps the setting; a run that began without
    it (or a checkpoint from before the flag, whose settings lack it) may switch it on when resumed, with a note;
    --real_every too, on and off again, though a checkpoint holds it only while it is on."""
    first = Leader(world_model(tmp_path / "run"), monkeypatch, *COMMON)
    first.generation(capsys)
    assert first.state.next_seed == 111 + 4 * 2 and first.checkpoint()[1]["settings"]["common_seeds"] == 0
    checkpoint = first.run.files.checkpoint
    optimizer, data = load_optimizer(str(tmp_path / "run" / checkpoint))
    del data["settings"]["common_seeds"]  # as the checkpoints written before --common_seeds
    save_optimizer(str(tmp_path / "run" / checkpoint), optimizer, data)
    kept = Leader(tmp_path / "run", monkeypatch, *COMMON, "--init_opt", checkpoint)
    assert kept.run.flags.common_seeds == 0
    switched = Leader(tmp_path / "run", monkeypatch, *COMMON, "--common_seeds", 1, "--init_opt", checkpoint)
    out = capsys.readouterr().out
    assert "note: --common_seeds 1 from now on (this run had 0)" in out
    switched.generation(capsys)
    assert switched.state.next_seed == 111 + 4 * 2 + 2 and switched.checkpoint()[1]["settings"]["common_seeds"] == 1
    again = Leader(tmp_path / "run", monkeypatch, *COMMON, "--init_opt", checkpoint)  # the switch is kept
    assert again.run.flags.common_seeds == 1
    assert "real_every" not in switched.checkpoint()[1]["settings"]  # written only when set
    on = Leader(tmp_path / "run", monkeypatch, *COMMON, "--real_every", 1, "--init_opt", checkpoint)
    assert "note: --real_every 1 from now on (this run had 0)" in capsys.readouterr().out
    on.generation(capsys)
    assert on.checkpoint()[1]["settings"]["real_every"] == 1
    off = Leader(tmp_path / "run", monkeypatch, *COMMON, "--real_every", 0, "--init_opt", checkpoint)
    assert "note: --real_every 0 from now on (this run had 1)" in capsys.readouterr().out
    assert off.run.flags.real_every == 0 and Leader(tmp_path / "run", monkeypatch, *COMMON, "--init_opt",
                                                    checkpoint).run.flags.real_every == 1



# --- a resumed run's settings ------------------------------------------------------------------------------------

def test_a_resume_keeps_the_runs_settings_and_refuses_a_change_that_makes_another_run(tmp_path, monkeypatch, capsys):
    """Resumed with the env, the population and the checkpoint only, a dream run goes on in the dream at its
    temperature and episode length (before: in the real game, at the default tau, with 2100 steps)."""
    first = Leader(dreamy_doom_world_model(tmp_path / "run"), monkeypatch, *CAP, "--temperature", 1.3,
                   "--seed_start", 500)
    first.generation(capsys)
    population = ["doom_take_cover", "--num_worker", 2, "--num_worker_trial", 2, "--num_episode", 4]
    checkpoint = first.run.files.checkpoint
    resumed = Leader(tmp_path / "run", monkeypatch, *population, "--init_opt", checkpoint)
    assert (resumed.run.flags.dream_mode, resumed.run.settings.temperature, resumed.run.settings.max_length) == (1, 1.3, 300)
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


# --- what 05 says ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed_start, warned", [(None, True), (150, True), (211, False), (1000, False)])
def test_05_says_when_its_episodes_may_take_the_tracks_model_py_scores(tmp_path, monkeypatch, capsys, seed_start,
                                                                       warned):
    """model.py --final_mode scores seeds 111..210 by default, and 05's --seed_start is 111 by default (both as in the
    command lines users know): a run that will play some of those tracks says so."""
    folder = world_model(tmp_path / "run")
    flags = RETRAIN + ([] if seed_start is None else ["--seed_start", seed_start])
    leader = Leader(folder, monkeypatch, *flags)
    leading.lead(leader.run, leader.pool, 1)
    out = capsys.readouterr().out
    assert ("note: this run's episode seeds go on from" in out) == warned, out
    if warned:
        assert f"from {seed_start or 111}, so it may train on some of the tracks 111..210" in out


def test_a_checkpoint_records_its_blas_kernels_and_a_resume_on_other_ones_says_so(tmp_path, monkeypatch, capsys):
    first = Leader(world_model(tmp_path / "run"), monkeypatch, *RETRAIN)
    first.generation(capsys)
    path = first.run.files.checkpoint
    optimizer, state = load_optimizer(path)
    assert state["blas_kernel"] == "Haswell"  # the pinned kernels (tests/test_blas.py)
    resumed = Leader(tmp_path / "run", monkeypatch, *RETRAIN, "--init_opt", path)
    leading.lead(resumed.run, resumed.pool, 1)
    assert "note: this run's last generation ran" not in capsys.readouterr().out
    optimizer, state = load_optimizer(path)
    save_optimizer(path, optimizer, {**state, "blas_kernel": "Sandybridge"})  # as if run on another machine
    resumed = Leader(tmp_path / "run", monkeypatch, *RETRAIN, "--init_opt", path)
    leading.lead(resumed.run, resumed.pool, 1)
    assert ("note: this run's last generation ran OpenBLAS's Sandybridge kernels and this machine runs Haswell"
            in capsys.readouterr().out)
    assert load_optimizer(path)[1]["blas_kernel"] == "Haswell"  # the kernels of its last generation


def test_a_resumed_run_past_the_scoring_seeds_still_says_it_trained_on_some(tmp_path, monkeypatch, capsys):
    first = Leader(world_model(tmp_path / "run"), monkeypatch, *RETRAIN, "--seed_start", 205)
    first.generation(capsys)
    first.generation(capsys)  # 2 x (2 solutions + 2 evaluation episodes): seeds 205..212
    assert first.state.next_seed == 213
    resumed = Leader(tmp_path / "run", monkeypatch, *RETRAIN, "--init_opt", first.run.files.checkpoint)
    leading.lead(resumed.run, resumed.pool, 1)
    assert "seeds started at 205, so it trained on some of the tracks 111..210" in capsys.readouterr().out
