"""Stopped work (issue 31, items 1, 5, 6 and 7), tried on the real scripts: a stop sent to any process of a 05 run,
at any moment, ends every process of it with the documented line; children die with a killed parent; a stopped
score says the episodes played so far; no script takes an abbreviated flag; the commands printed to paste run the
Python that printed them.

Waits poll against a deadline (tests.scripts.wait_for); what a test starts is killed when it ends (conftest)."""

import json
import os
import re
import signal
import sys

import numpy as np
import psutil
import pytest

from tests.scripts import ROOT, alive, run, run_command, start, wait_for
from tests.test_training import TRAIN, world_model

SLOW_TRAIN = [*TRAIN[:5], "--max_length", 1000]  # the first generation's episodes take seconds: a stop lands in them


def run_tree(process):
    """The processes below `process`: mpiexec, its proxy and the ranks (found through psutil, as the ranks lead
    sessions of their own)."""
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def ranks_of(process):
    """The three python ranks under mpiexec, once they are there."""
    def found():
        ranks = [p for p in run_tree(process) if "python" in p.name()]
        return ranks if len(ranks) == 3 else None
    return wait_for(found, what="three python ranks under mpiexec")


def rank(ranks, leader):
    return next(p for p in ranks if (p.environ().get("PMI_RANK") == "0") == leader)


# --- a stop at any moment ends every process of a 05 run ----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("target, signal_name, moment", [
    ("the command", "SIGINT", "first generation"),  # the failure of issue 31: a worker caught it, the leader went on
    ("the command", "SIGTERM", "start"),  # the workers may still be importing, before MPI is set up
    ("a worker", "SIGINT", "first generation"),  # before: ignored, the run went on
    ("a worker", "SIGINT", "start"),
    ("the leader", "SIGTERM", "first generation"),
])
def test_a_stop_at_any_moment_ends_every_process_of_the_run(tmp_path, target, signal_name, moment):
    world_model(tmp_path)
    output = tmp_path / "stdout.txt"  # a file, not a pipe: read while the run goes on
    with open(output, "w") as stdout:
        process = start("05_train_controller.py", *SLOW_TRAIN, cwd=tmp_path, stdout=stdout)
    ranks = ranks_of(process)
    # the leader's first line, once it has its plan; its files' line, just before the first generation's episodes
    # are handed out
    seen = {"start": "05: car_racing", "first generation": "checkpoint ./controller"}[moment]
    wait_for(lambda: seen in output.read_text() or process.poll() is not None, what=f"05's line {seen!r}")
    tree = run_tree(process)
    assert process.poll() is None and len(tree) >= 5, process.communicate()  # mpiexec, its proxy, three ranks
    victim = {"the command": process, "a worker": rank(ranks, leader=False),
              "the leader": rank(ranks, leader=True)}[target]
    victim.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=120)
    number = getattr(signal, signal_name)
    assert process.returncode == 128 + number, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"{signal_name} received: stopped; "), stderr
    assert "start again with: " in stderr and "--init_opt" not in stderr  # nothing was saved
    wait_for(lambda: not any(alive(p) for p in tree), timeout=30, what="every process of the run to end")


@pytest.mark.slow
def test_a_killed_05_takes_its_mpiexec_and_ranks_with_it(tmp_path):
    world_model(tmp_path)
    process = start("05_train_controller.py", *SLOW_TRAIN, cwd=tmp_path)
    ranks_of(process)
    tree = run_tree(process)
    process.kill()
    process.wait()
    wait_for(lambda: not any(alive(p) for p in tree), timeout=30, what="mpiexec and the ranks to die")


# --- make play: children die with their parent, and the next run removes a killed one's temporary file -----------

@pytest.mark.slow
def test_a_killed_pretrained_play_takes_model_py_with_it(tmp_path):
    """`make play` killed with SIGKILL left model.py (and its ffmpeg) running."""
    process = start("pretrained.py", "play", "--video_dir", tmp_path / "video", cwd=tmp_path)

    def model_py():
        found = [p for p in run_tree(process) if "model.py" in " ".join(p.cmdline())]
        return found or None

    children = wait_for(model_py, what="model.py under pretrained.py play")
    process.kill()
    process.wait()
    wait_for(lambda: not any(alive(p) for p in children), timeout=10, what="model.py to die with its parent")


@pytest.mark.slow
def test_recording_removes_the_temporary_video_a_killed_run_left(tmp_path):
    video = tmp_path / "video"
    video.mkdir()
    left = video / ".tmp-pretrained.car_racing.seed111.mp4-k1ll3d.mp4"  # as atomic_path names it
    other = video / ".tmp-mine.seed111.mp4-k1ll3d.mp4"  # another agent's: not this run's to remove
    for path in (left, other):
        path.write_bytes(b"half an mp4")
    result = run("model.py", "car_racing", "--pretrained", "--record_video", "--max_length", 3, cwd=tmp_path)
    assert "removed 1 temporary file(s) an interrupted run left in ./video" in result.stderr
    assert sorted(os.listdir(video)) == [other.name, "pretrained.car_racing.seed111.mp4"]


# --- a stopped score says what was played ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("signal_name, line, status", [("SIGINT", "interrupted", 130),
                                                        ("SIGTERM", "terminated (SIGTERM)", 143)])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_stopped_final_mode_says_the_score_of_the_episodes_played(tmp_path, signal_name, line, status, workers):
    """Before: Ctrl-C after 72 of 100 --final_mode episodes printed only "interrupted"."""
    world_model(tmp_path)
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as stderr:
        process = start("model.py", "car_racing", "--final_mode", "--num_episode", 20, "--num_worker", workers,
                        "--max_length", 1000, cwd=tmp_path, stderr=stderr)
    wait_for(lambda: re.search(r" [1-9]/20 ", errors.read_text()) or process.poll() is not None,
             what="the first episode's score on the progress bar")
    assert process.poll() is None, errors.read_text()
    process.send_signal(getattr(signal, signal_name))
    process.wait(timeout=60)
    last = errors.read_text().replace("\r", "\n").strip().splitlines()[-1]
    match = re.fullmatch(rf"{re.escape(line)} after (\d+) of 20 episodes: (-?\d+\.\d\d) \+- (\d+\.\d\d) over \1", last)
    assert process.returncode == status and match, errors.read_text()
    played = int(match.group(1))
    assert 1 <= played < 20
    # the episodes played are the first seeds', and the line is their score (model.py scores them the same)
    again = run("model.py", "car_racing", "--final_mode", "--num_episode", played, "--num_worker", 2,
                "--max_length", 1000, "--log_dir", "again", cwd=tmp_path)
    scores = np.array(json.loads((tmp_path / "again" / "random.car_racing.final.json").read_text())["scores"])
    assert (match.group(2), match.group(3)) == (f"{scores.mean():.2f}", f"{scores.std():.2f}"), again.stdout


# --- no abbreviations -------------------------------------------------------------------------------------------------

ABBREVIATED = [
    ("01_generate_data.py", ["car_racing", "--total_episode", 4]),  # issue 31: ran as --total_episodes
    ("02_train_vae.py", ["--new_mod"]),
    ("03_generate_rnn_data.py", ["--max_bat", 3]),
    ("04_train_rnn.py", ["--epoch", 1]),
    ("05_train_controller.py", ["car_racing", "--generation", 1]),
    ("05_train_controller.py", ["car_racing", "--init_p", "x.best.json"]),
    ("model.py", ["car_racing", "--final"]),  # issue 31: started a 100-episode run
    ("pretrained.py", ["verify", "car_racing", "--repl"]),
    ("pretrained.py", ["play", "--max_len", 3]),
    ("pretrained.py", ["pack", "car_racing", "--filename", "c.json", "--fin", "f.json"]),
    ("plots.py", ["run.hist.json", "--offic"]),
    ("sweep_temperature.py", ["doom_take_cover", "--temperature", 1.0]),
    ("reproduce.py", ["car_racing", "--pre", "tiny"]),
    ("examples/play_car_racing.py", ["--max_len", 3]),
]


@pytest.mark.slow
@pytest.mark.parametrize("script, args", ABBREVIATED, ids=[f"{s[:2]}{a[-1]}" for s, a in ABBREVIATED])
def test_no_script_takes_an_abbreviated_flag(tmp_path, script, args):
    result = run(script, *args, cwd=tmp_path, check=False, timeout=120)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    [line] = result.stderr.splitlines()  # one line, without argparse's usage text
    assert line.startswith("error: ") and line.endswith(" --help)"), line
    assert str(args[-1]) in line or "required: --final" in line  # (pack: --final is missing, --fin not taken)
    assert sorted(os.listdir(tmp_path)) == []  # nothing was made


@pytest.mark.slow
@pytest.mark.parametrize("module", ["benchmarks.run", "benchmarks.bench_agent", "benchmarks.bench_env"])
def test_no_benchmark_takes_an_abbreviated_or_unknown_flag(module):
    """Before: `--quick` was looked up in sys.argv, and `--qui` ran the full benchmark (a quarter of an hour)."""
    result = run_command([sys.executable, "-m", module, "--qui"], cwd=ROOT, timeout=120)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.splitlines() == [f"error: unrecognized arguments: --qui (see: {module.split('.')[1]}.py "
                                          f"--help)"]


@pytest.mark.slow
def test_01_writes_over_a_batch_only_when_told_to(tmp_path):
    """Before: a second run with the same --start_batch overwrote batch 0 without a word (its encoded rnn_* files,
    made from it, went stale)."""
    small = ["car_racing", "--total_episodes", 1, "--time_steps", 5, "--num_workers", 1]
    run("01_generate_data.py", *small, "--seed", 1, cwd=tmp_path)
    frames = tmp_path / "data" / "obs_data_car_racing_0.npy"
    before = frames.read_bytes()
    result = run("01_generate_data.py", *small, "--seed", 2, cwd=tmp_path, check=False)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "error: ./data/obs_data_car_racing_0.npy already exists (an earlier run's batch 0); pass --overwrite to write "
        "over it, or give another --start_batch or --data_dir"], result.stderr
    assert frames.read_bytes() == before
    run("01_generate_data.py", *small, "--seed", 2, "--overwrite", cwd=tmp_path)
    assert frames.read_bytes() != before  # another seed: another track


# --- printed commands run the Python that printed them ----------------------------------------------------------------

def test_printed_commands_name_this_python_as_typed_from_here(tmp_path, monkeypatch):
    """Before: 05 printed `python ...` when PATH's python was the venv's through a link (it is a link to the
    system's): pasted, it ran without the project's packages."""
    from processes import python_command

    venv = os.path.dirname(os.path.dirname(sys.executable))  # .../.venv
    monkeypatch.chdir(os.path.dirname(venv))
    assert python_command() == os.path.join(os.path.basename(venv), "bin", os.path.basename(sys.executable))
    monkeypatch.chdir(os.path.dirname(sys.executable))
    assert python_command() == os.path.join(".", os.path.basename(sys.executable))
    monkeypatch.chdir(tmp_path)
    assert python_command() == sys.executable
