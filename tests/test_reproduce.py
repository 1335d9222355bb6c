"""reproduce.py: the tiny preset end to end to a packed agent, the same run stopped (SIGINT mid-stage, SIGTERM in
another stage, its scratch data lost) and resumed to the same agent, and bad input in one line."""

import dataclasses
import glob
import json
import os
import signal
import shlex
import subprocess
import sys
import types

import numpy as np
import pytest

from recipe import seeds
from recipe.presets import (CAR_RACING_FULL, CAR_RACING_TINY, DOOM_FULL, DOOM_FULL_1, DOOM_FULL_2, DOOM_FULL_3, RECIPES,
                            ControllerPhase, Restart, TrainV, recipe_for, recipe_key)
from recipe.run import Run, recipe_of
from shipping.manifest import SCORE_FIELDS
from tests.scripts import ROOT, alive, end_group, run, signal_pending, start, wait_for

TINY = ("car_racing", "--preset", "tiny")


def folder_of(root):
    return os.path.join(root, "car_racing", "seed0")


def read(path):
    with open(path) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def unstopped(tmp_path_factory):
    """The tiny preset of car_racing run once, without a stop."""
    root = str(tmp_path_factory.mktemp("reproduce"))
    result = run("reproduce.py", *TINY, "--root", root, cwd=root, timeout=900)
    return root, result


# --- the recipe as data ----------------------------------------------------------------------------------------------
def test_the_recipe_key_changes_with_every_number_and_only_with_them():
    assert recipe_key(CAR_RACING_TINY) == recipe_key(dataclasses.replace(CAR_RACING_TINY))
    longer = dataclasses.replace(CAR_RACING_TINY, scoring=dataclasses.replace(CAR_RACING_TINY.scoring, max_length=21))
    assert recipe_key(longer) != recipe_key(CAR_RACING_TINY)
    assert len({recipe_key(recipe) for recipe in RECIPES.values()}) == len(RECIPES)


def test_every_committed_run_follows_a_recipe_of_its_own_key():
    """A recipe changed while runs of it exist is retired, not edited: each committed run folder (state.json) still
    finds the recipe of its key, and a field added to a step later leaves the keys of the recipes before it as they
    were."""
    committed = glob.glob(os.path.join(ROOT, "runs", "reproduce", "*", "seed*", "state.json"))
    assert len(committed) >= 2  # CarRacing's seed 1 (under way) and Doom's (finished, on the retired recipe)
    for path in committed:
        state = read(path)
        recipe = recipe_of(os.path.join(ROOT, "runs", "reproduce"), state["env"], state["seed"], state["preset"])
        assert recipe_key(recipe) == state["recipe_key"], path
    assert recipe_key(DOOM_FULL_1) == "43af3e5261c7c4de" != recipe_key(DOOM_FULL)
    assert recipe_key(DOOM_FULL_2) == "3c4e391b4470a46e" != recipe_key(DOOM_FULL)
    assert recipe_for("doom_take_cover", "full", "43af3e5261c7c4de") is DOOM_FULL_1
    assert recipe_for("doom_take_cover", "full", "3c4e391b4470a46e") is DOOM_FULL_2
    assert recipe_key(DOOM_FULL_3) == "eb1182272efc9581" != recipe_key(DOOM_FULL)  # seed 3's, and real_every kept
    assert recipe_for("doom_take_cover", "full", "eb1182272efc9581") is DOOM_FULL_3  # out of its JSON while unset
    assert recipe_for("doom_take_cover", "full", "0123456789abcdef") is DOOM_FULL is recipe_for("doom_take_cover", "full")


def test_a_finished_run_of_a_retired_recipe_reports_with_it():
    result = run("reproduce.py", "doom_take_cover", "--seed", "1", cwd=ROOT)
    assert "follows an earlier full recipe (key 43af3e5261c7c4de), retired since" in result.stdout
    assert "is finished" in result.stdout and "seeds 111..: 813.51 +- 485.53 over 100 episodes" in result.stdout


def test_a_stopped_encode_goes_on_after_the_batches_it_wrote(tmp_path):
    """An Encode step's batches written whole since its marker (this step, this command) are not encoded again; a
    batch with a file from before the marker (an earlier V's), another step's marker or a changed command start
    from the first batch."""
    run_ = Run(CAR_RACING_TINY, 0, str(tmp_path), 2)
    fresh = ["python", "03_generate_rnn_data.py", "--start_batch", "0", "--max_batch", "2"]
    os.makedirs(run_.data_dir)
    stale = os.path.join(run_.data_dir, "rnn_mu_car_racing_1.npy")
    np.save(stale, np.zeros(1))  # an earlier Encode's file, a minute older than this step's marker
    assert run_._encoded_before("z0", fresh, 0, 2) == 0  # no marker yet: written now
    minute_before = os.stat(os.path.join(run_.scratch, "encode.step.json")).st_mtime_ns - 60 * 10**9
    os.utime(stale, ns=(minute_before, minute_before))
    for batch in (0, 1):
        for kind in ("rnn_input", "rnn_mu", "rnn_logvar", "rnn_initial", "rnn_length", "rnn_done"):
            path = os.path.join(run_.data_dir, f"{kind}_car_racing_{batch}.npy")
            if path != stale:
                np.save(path, np.zeros(1))
    assert run_._encoded_before("z0", fresh, 0, 2) == 1  # batch 1 still has the earlier V's rnn_mu
    np.save(stale, np.zeros(1))
    assert run_._encoded_before("z0", fresh, 0, 2) == 2
    assert run_._encoded_before("z0", fresh, 0, 1) == 2  # every batch written: nothing left to run
    assert run_._encoded_before("z1", fresh, 0, 2) == 0  # another step: a fresh start, and its marker
    assert run_._encoded_before("z1", fresh[:-1] + ["3"], 0, 3) == 0  # another command


def test_v_goes_on_over_the_rounds_batches_in_dooms_recipe(tmp_path):
    """DOOM_FULL_2's V after each round trains on every round's batches so far (the random play's 75 are before)."""
    run_ = Run(DOOM_FULL_2, 5, str(tmp_path), 2)
    batches = {step.name: run_.v_batches(index, step) for index, step in enumerate(DOOM_FULL_2.steps)
               if isinstance(step, TrainV)}
    assert batches == {"v0": (0, 24), "v1": (75, 84), "v2": (75, 94), "v3": (75, 104)}
    with pytest.raises(ValueError, match="v9: since='round9' names no Collect step before it"):
        dataclasses.replace(DOOM_FULL_2, steps=DOOM_FULL_2.steps + (TrainV("v9", 1, 1e-4, 32, since="round9"),))


def test_seeds_of_runs_are_disjoint_and_below_2_31():
    used = set()
    for seed in (0, 1, seeds.MAX_SEED):
        block = [seeds.collect_seed(seed, k) for k in range(seeds.COLLECT_STEPS)] + \
                [seeds.phase_seed(seed, j, r) for j in range(seeds.PHASE_STEPS) for r in range(4)] + \
                [seeds.selection_seed(seed)]
        assert len(set(block)) == len(block) and not used & set(block)
        used |= set(block)
    assert max(used) + seeds.STEP_BLOCK < 2**31
    assert min(used) > seeds.UNTOUCHED_SEED + 99 > seeds.SCORING_SEED + 99
    with pytest.raises(ValueError):
        seeds.run_base(seeds.MAX_SEED + 1)


def test_the_restart_rule_fires_on_a_gain_below_15_in_50_generations(tmp_path):
    """CarRacing's rule: ten-generation averages 50 generations apart; 14.9 points restarts, 15.1 does not."""
    phase = CAR_RACING_FULL.phase("c2")
    assert phase.restart == Restart(window=10, span=50, min_gain=15.0)
    recipe_run = Run(CAR_RACING_FULL, 0, str(tmp_path), workers=2)

    def history(gain, generations=60):
        averages = [700.0] * 10 + [700.0 + gain] * (generations - 10)
        return types.SimpleNamespace(generation=generations,
                                     history=[types.SimpleNamespace(average=a) for a in averages])

    assert recipe_run._restart_due(phase, 0, history(14.9), phase.generations)
    assert not recipe_run._restart_due(phase, 0, history(15.1), phase.generations)
    assert not recipe_run._restart_due(phase, 0, history(0.0, 55), phase.generations)  # not at a tenth generation
    assert not recipe_run._restart_due(phase, 0, history(0.0, 50), phase.generations)  # too early to compare
    assert not recipe_run._restart_due(phase, 1, history(0.0), phase.generations)  # one restart at most


def test_a_phase_run_has_ended_once_its_phase_is_done_or_a_restart_followed_it(tmp_path):
    """An ended run's .es.pk is never read again (Run.trained reads its logs when it did not travel)."""
    recipe_run = Run(CAR_RACING_FULL, 0, str(tmp_path), workers=2)
    c1, c2 = CAR_RACING_FULL.phase("c1"), CAR_RACING_FULL.phase("c2")
    recipe_run.state.phases = {"c1": [{}], "c2": [{}, {}]}
    recipe_run.state.done = ["random", "v0", "z0", "m0", "c1"]
    assert recipe_run.ended(c1, 0) and recipe_run.ended(c2, 0) and not recipe_run.ended(c2, 1)
    recipe_run.state.done.append("c2")
    assert recipe_run.ended(c2, 1)


# --- the tiny preset ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_preset_runs_to_a_packed_agent_and_a_consistent_summary(unstopped):
    root, result = unstopped
    folder = folder_of(root)
    summary = read(os.path.join(folder, "summary.json"))
    assert (summary["env"], summary["seed"], summary["preset"]) == ("car_racing", 0, "tiny")
    assert summary["recipe_key"] == recipe_key(CAR_RACING_TINY)
    assert summary["v_step"] in ("XLA", "without XLA")  # what the run's first 02 chose, by timing
    for seeds_name, first_seed in (("seeds 111..", 111), ("seeds 10,000,000..", 10_000_000)):
        score = summary["scores"][seeds_name]
        assert score["first_seed"] == first_seed and score["episodes"] == 100 == len(score["scores"])
        assert score["mean"] == pytest.approx(np.mean(score["scores"]))
        assert score["std"] == pytest.approx(np.std(score["scores"]))
    # the chosen one is the highest selection mean of the top candidates, on the run's own seeds
    selection = summary["selection"]
    means = [candidate["selection_mean"] for candidate in selection["candidates"]]
    assert len(means) == 2 and selection["chosen"] == int(np.argmax(means))
    selection_file = os.path.join(folder, "selection", "candidate0.final.json")
    assert read(selection_file)["first_seed"] == seeds.selection_seed(0)
    # the restart rule fired (its tiny threshold is out of reach): c2 ran twice, the second from generation 2
    runs = summary["phases"]["c2"]
    assert [entry["population"] for entry in runs] == [4, 8] and runs[1]["start"] == 2
    assert [g for g, _ in runs[0]["average"] + runs[1]["average"]] == [1, 2, 3]
    # every run has ended: no optimizer checkpoint is left to commit, each is in scratch/ended/
    assert not glob.glob(os.path.join(folder, "phases", "*", "controller", "*.es.pk"))
    assert sorted(os.listdir(os.path.join(folder, "scratch", "ended"))) == ["c1.0", "c2.0", "c2.1"]
    assert set(summary["core_hours"]) >= {"01", "02", "03", "04", "05", "selection", "score", "pack"}
    # the packed folder is what pretrained.py reads, its manifest the final score and the command
    verified = run("pretrained.py", "verify", "car_racing", "--root", os.path.join(folder, "agent"), cwd=root)
    assert "every file matches" in verified.stdout
    manifest = read(os.path.join(folder, "agent", "car_racing", "manifest.json"))
    assert manifest["scores"] == summary["scores"]["seeds 111.."]["scores"]
    assert manifest["commands"] == ["python reproduce.py car_racing --seed 0 --preset tiny"]
    # ... beside the score on the untouched seeds, and the run that made it
    assert manifest["untouched"] == {key: summary["scores"]["seeds 10,000,000.."][key] for key in SCORE_FIELDS}
    assert manifest["run"] == folder  # absolute: outside the repository
    assert manifest["trained_in"] == "game"  # the chosen controller's phase plays the game
    # plots.py draws the runs of an env side by side
    picture = os.path.join(root, "runs.png")
    run("plots.py", "--reproduce", "car_racing", "--reproduce_root", root, "--out", picture, cwd=root)
    assert os.path.getsize(picture) > 0
    # a finished seed says so and prints its summary
    again = run("reproduce.py", *TINY, "--root", root, cwd=root)
    assert "is finished" in again.stdout and f"{summary['scores']['seeds 111..']['mean']:.2f}" in again.stdout
    status = run("reproduce.py", *TINY, "--root", root, "--status", cwd=root)
    assert "13 of 13 steps done" in status.stdout and "finished" in status.stdout


def frozen_04_part_way(process, folder, timeout=600.0):
    """04 training `m0` (the tiny preset's M: 3 epochs), frozen (SIGSTOP) with 1 or 2 epochs saved, so that a stop sent
    now lands part-way through the step however loaded the machine. 04 is frozen as soon as it is seen, then let run
    in slices of 20 ms of wall time (so at most 40 ms of CPU on 2 cores, less than one epoch with its saves and
    curve) until its history holds an epoch: it cannot reach its last epoch between two looks."""
    import time

    import psutil

    history = os.path.join(folder, "scratch", "rnn", "car_racing.history.json")

    def stage_frozen():
        for child in psutil.Process(process.pid).children(recursive=True):
            try:
                if any("04_train_rnn.py" in part for part in child.cmdline()):
                    child.suspend()
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    stage = wait_for(stage_frozen, timeout=timeout, what="04 training m0")
    deadline = time.time() + timeout
    while not (os.path.exists(history) and read(history)):  # written whole, so never read half-way
        assert time.time() < deadline and alive(stage), "04 saved no epoch of m0"
        stage.resume()
        time.sleep(0.02)
        stage.suspend()
    return stage


@pytest.mark.slow
def test_a_stopped_and_resumed_run_ends_with_the_same_agent(unstopped, tmp_path):
    """SIGTERM part-way through M's training (04 goes on from its last epoch), SIGINT in the middle of the first
    controller phase, SIGTERM in round 1's V training, the scratch folder and the ended phase's optimizer checkpoint
    lost (a new machine given what a pause carries), and the same command each time: the same V, M, controller,
    curves and scores as the unstopped run."""
    reference = folder_of(unstopped[0])
    jit = read(os.path.join(reference, "state.json"))["jit"]  # the step the unstopped run's 02 chose, by timing
    assert jit in ("on", "off")
    root = str(tmp_path)
    folder = folder_of(root)
    m_history = os.path.join(folder, "scratch", "rnn", "car_racing.history.json")
    stops = ((signal.SIGTERM, 143, "m0"),
             (signal.SIGINT, 130, lambda: glob.glob(os.path.join(folder, "phases", "c1.0", "controller", "*.es.pk"))),
             (signal.SIGTERM, 143, lambda: os.path.isdir(os.path.join(folder, "scratch", "vae"))
              and "round1" in read(os.path.join(folder, "state.json"))["done"]))
    outputs = []
    for signum, status, condition in stops:
        process = start("reproduce.py", *TINY, "--root", root, "--jit", jit, cwd=root)
        frozen = None
        if condition == "m0":
            frozen = frozen_04_part_way(process, folder)
        else:
            wait_for(condition, timeout=600, what=f"the point to send {signal.Signals(signum).name}")
        process.send_signal(signum)
        if frozen is not None:  # let 04 run only once reproduce.py has passed the stop on (else it may end m0 first)
            wait_for(lambda: signal_pending(frozen.pid, signum) or not alive(frozen), timeout=300,
                     what=f"reproduce.py to pass {signal.Signals(signum).name} on to 04")
            frozen.resume()  # the stage takes the stop reproduce.py passed on
        stdout, stderr = process.communicate(timeout=300)
        outputs.append(stdout)
        assert process.returncode == status, stderr
        assert (f"resume with: {shlex.quote(sys.executable)} reproduce.py car_racing --seed 0 --preset tiny "
                f"--root {root}") in stderr
        if frozen is not None:  # stopped part-way: 1 or 2 of its 3 epochs saved, the step not done
            epochs_saved = len(read(m_history))
            assert 1 <= epochs_saved < 3 and "m0" not in read(os.path.join(folder, "state.json"))["done"]
    # the next try of m0 went on from the epochs saved, not from the start
    assert f"04 (m0) goes on from its stopped try: {epochs_saved} of 3 epochs done" in outputs[1]
    # c1 has ended: its optimizer checkpoint went to scratch/ended/ (lost below with scratch/), its logs stay
    assert not glob.glob(os.path.join(folder, "phases", "*", "controller", "*.es.pk"))
    assert len(glob.glob(os.path.join(folder, "scratch", "ended", "c1.0", "*.es.pk"))) == 1
    status_now = run("reproduce.py", *TINY, "--root", root, "--status", cwd=root).stdout
    assert "now: v1" in status_now and "core-hours spent" in status_now
    import shutil

    shutil.rmtree(os.path.join(folder, "scratch"))  # 01's and 03's data are made again from their seeds
    # ... over what a stopped 01 leaves: round 1's batch (random play wrote batches 0 and 1) half there, a stale file
    # (before: "already exists", and the run could not go on)
    os.makedirs(os.path.join(folder, "scratch", "data"))
    with open(os.path.join(folder, "scratch", "data", "obs_data_car_racing_2.npy"), "wb") as handle:
        handle.write(b"left by a stopped 01")
    run("reproduce.py", *TINY, "--root", root, cwd=root, timeout=900)  # the run keeps its --jit (state.json)
    mine, theirs = read(os.path.join(folder, "summary.json")), read(os.path.join(reference, "summary.json"))
    assert mine["scores"] == theirs["scores"]
    assert mine["selection"] == theirs["selection"]
    assert mine["phases"] == theirs["phases"]  # c1's curves read from its logs, c2's from its checkpoints
    for path in glob.glob(os.path.join(reference, "models", "*", "*", "*.npz")) + \
            [os.path.join(reference, "candidates", "candidate0.json"),
             os.path.join(reference, "agent", "car_racing", "controller", "car_racing.best.json")]:
        with open(path, "rb") as handle, open(path.replace(reference, folder), "rb") as other:
            assert handle.read() == other.read(), path


@pytest.mark.slow
def test_doom_tiny_preset_runs_to_a_packed_agent(tmp_path):
    """Random play, V, M, a controller in the dream, a round of iterative training (the chosen controller's real
    episodes, M going on, a fresh controller in the new dream), selection on real episodes, both scores, the pack."""
    root = str(tmp_path)
    run("reproduce.py", "doom_take_cover", "--preset", "tiny", "--root", root, cwd=root, timeout=900)
    folder = os.path.join(root, "doom_take_cover", "seed0")
    summary = read(os.path.join(folder, "summary.json"))
    assert list(summary["phases"]) == ["d0", "d1"]
    # the controller that played round 1's data is d0's dream best with the highest real-game score
    chosen, evaluations = read(os.path.join(folder, "state.json"))["results"]["d0"], summary["phases"]["d0"][0]
    assert chosen["rank_score"] == max(row[2] for row in evaluations["evaluations"] if len(row) == 3)
    # both phases ended: their real-game scores above came from their logs, their checkpoints are in scratch/ended/
    assert not glob.glob(os.path.join(folder, "phases", "*", "controller", "*.es.pk"))
    assert sorted(os.listdir(os.path.join(folder, "scratch", "ended"))) == ["d0.0", "d1.0"]
    for candidate in summary["selection"]["candidates"]:
        assert (candidate["phase"], candidate["vae"], candidate["rnn"]) == ("d1", "v1", "m1")  # V went on too
    assert [len(row) for row in summary["phases"]["d1"][0]["evaluations"]] == [3, 3]  # d1 plays every mean: real_every
    score = summary["scores"]["seeds 111.."]
    assert score["episodes"] == 100 and score["mean"] == pytest.approx(np.mean(score["scores"]))
    run("pretrained.py", "verify", "doom_take_cover", "--root", os.path.join(folder, "agent"), cwd=root)
    with open(os.path.join(folder, "agent", "doom_take_cover", "README.md"), encoding="utf-8") as handle:
        assert "C trained only inside M's dream, never in the game." in handle.read()  # d1 is a dream phase
    assert read(os.path.join(folder, "agent", "doom_take_cover", "manifest.json"))["trained_in"] == "dream"


# --- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, named", [(("cartpole",), "unknown ENV 'cartpole'"),
                                         (("car_racing", "--preset", "huge"), "--preset 'huge' is unknown"),
                                         (("car_racing", "--seed", str(seeds.MAX_SEED + 1)),
                                          f"--seed must be 0..{seeds.MAX_SEED}")])
def test_bad_input_is_one_line(tmp_path, args, named):
    result = run("reproduce.py", *args, "--root", str(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0 and named in result.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("change, named", [({"recipe_key": "0123456789abcdef"}, "another recipe"),
                                           ({"env": "doom_take_cover"}, "holds a run of doom_take_cover")])
def test_a_state_folder_of_another_recipe_or_env_is_refused(tmp_path, change, named):
    folder = folder_of(str(tmp_path))
    os.makedirs(folder)
    state = {"recipe_key": recipe_key(CAR_RACING_TINY), "env": "car_racing", "preset": "tiny", "seed": 0, **change}
    with open(os.path.join(folder, "state.json"), "w") as handle:
        json.dump(state, handle)
    for extra in ((), ("--status",)):
        result = run("reproduce.py", *TINY, "--root", str(tmp_path), *extra, cwd=tmp_path, check=False)
        assert result.returncode == 1 and result.stderr.strip().count("\n") == 0 and named in result.stderr
    assert sorted(os.listdir(folder)) == ["state.json"]


def test_the_commit_record_marks_changed_code_but_not_a_runs_own_files(tmp_path, monkeypatch):
    import recipe.run

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                       capture_output=True)

    (tmp_path / "runs").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "runs" / "state.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    monkeypatch.setattr(recipe.run, "repo_root", lambda: str(tmp_path))
    head = recipe.run.git_commit()
    assert len(head) == 40
    (tmp_path / "runs" / "state.json").write_text('{"done": ["random"]}\n')  # the run's own committed state
    assert recipe.run.git_commit() == head
    (tmp_path / "code.py").write_text("a = 2\n")
    assert recipe.run.git_commit() == head + "+changes"


def test_a_jit_other_than_the_one_the_run_trains_with_is_refused(tmp_path):
    recipe_run = Run(CAR_RACING_TINY, 0, str(tmp_path), workers=2)
    recipe_run.state.jit = "on"
    os.makedirs(recipe_run.folder)
    recipe_run.save()
    result = run("reproduce.py", *TINY, "--root", str(tmp_path), "--jit", "off", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "give --jit on or leave --jit out" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert read(os.path.join(recipe_run.folder, "state.json"))["jit"] == "on"  # nothing changed


@pytest.mark.slow
def test_a_read_only_folder_or_a_full_disk_is_one_line_and_loses_nothing(tmp_path):
    from tests.test_processes import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "read_only", "64k", read_only=True) as disk:
        result = run("reproduce.py", *TINY, "--root", str(disk / "runs"), cwd=tmp_path, check=False)
        assert result.returncode == 1 and result.stderr.splitlines() == [
            f"error: cannot write to {disk}/runs/car_racing/seed0: the file system is read-only"], result.stderr
    with mounted_tmpfs(tmp_path / "small", "1m") as disk:  # room for state.json, not for 01's first batch
        root = str(disk / "runs")
        state = os.path.join(folder_of(root), "state.json")
        result = run("reproduce.py", *TINY, "--root", root, cwd=tmp_path, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert f"error: cannot write to {folder_of(root)}/scratch/data: the disk is full" in lines  # 01's line
        assert lines[-1] == ("error: 01 (random) failed (exit status 1; its error is above); after fixing the cause, "
                             f"resume with: {shlex.quote(sys.executable)} reproduce.py car_racing --seed 0 --preset "
                             f"tiny --root {root}")
        assert read(state)["done"] == []
        # room again: the same command goes on, and gets past the step that failed
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        process = start("reproduce.py", *TINY, "--root", root, cwd=tmp_path, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: "random" in read(state)["done"], timeout=600, what="01 done after the disk had room")
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=300)
            finally:
                end_group(process)  # whatever of it is left, when the test fails
        assert process.returncode == 130


def test_a_population_the_workers_do_not_divide_is_refused_before_any_stage(tmp_path):
    result = run("reproduce.py", *TINY, "--root", str(tmp_path), "--workers", "3", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "--workers 3" in result.stderr and result.stderr.strip().count("\n") == 0
    assert not os.path.exists(os.path.join(folder_of(str(tmp_path)), "scratch"))


def test_every_controller_phase_of_the_full_presets_fits_two_workers():
    for recipe in RECIPES.values():
        assert all(step.population % 2 == 0 for step in recipe.steps if isinstance(step, ControllerPhase))
