"""Stage 05 and model.py as users run them: a real MPI launch, real CarRacing episodes, the NumPy agent.

The world model here has random weights of the right shapes (what is tested is the training machinery, not how
well the agent drives); episodes are short so that every launch takes seconds.
"""

import json
import os
import pickle
import shlex
import shutil
import signal
import sys

import numpy as np
import pytest

from benchmarks.weights import random_weights
from config import CAR_RACING
from es import load_optimizer
from npyio import save_npz
from parallel import Failure, Result, Stop, Task, decode, encode
from rnn.numpy_rnn import expected_rnn_shapes
from tests.scripts import ENVIRONMENT, ROOT, run, run_command, start, wait_for
from vae.numpy_vae import expected_vae_shapes

BASE = "car_racing.cma.1.4"  # <env>.<optimizer>.<num_episode>.<population>
TRAIN = ["car_racing", "--num_worker", 2, "--num_worker_trial", 2, "--max_length", 25, "--eval_steps", 2]



def world_model(folder):
    """./vae/car_racing.npz and ./rnn/car_racing.npz with random weights in `folder`."""
    save_npz(str(folder / "vae" / "car_racing.npz"), **random_weights(expected_vae_shapes(32), 1))
    save_npz(str(folder / "rnn" / "car_racing.npz"), **random_weights(expected_rnn_shapes(CAR_RACING), 2))
    return folder



def train(cwd, *extra, check=True):
    return run("05_train_controller.py", *TRAIN, *extra, cwd=cwd, check=check)


def history(folder):
    with open(folder / "log" / f"{BASE}.hist.json") as handle:
        return json.load(handle)


def best(folder):
    with open(folder / "controller" / f"{BASE}.best.json") as handle:
        return json.load(handle)


def state(folder):
    return load_optimizer(str(folder / "controller" / f"{BASE}.es.pk"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two generations under mpiexec with two workers; returns the folder and the run's output."""
    folder = world_model(tmp_path_factory.mktemp("trained"))
    return folder, train(folder, "--generations", 2)


@pytest.mark.slow
def test_a_run_under_mpi_writes_every_file(trained):
    folder, result = trained
    assert "2 worker process(es)" in result.stdout and "population 4 (2 x 2)" in result.stdout
    assert sum(line.startswith("gen ") for line in result.stdout.splitlines()) == 2  # a line a generation
    assert sorted(os.listdir(folder / "controller")) == [f"{BASE}.best.json", f"{BASE}.es.pk"]
    assert sorted(os.listdir(folder / "log")) == sorted(f"{BASE}{suffix}" for suffix in
                                                        (".hist.json", ".json", ".log.json", ".png"))
    rows = history(folder)
    assert [row[0] for row in rows] == [1, 2] and all(len(row) == 9 for row in rows)
    assert all(row[8] == 25 for row in rows)  # --max_length caps every episode (CarRacing does not end sooner)
    params, score, about = best(folder)
    assert about == {"env": "car_racing", "exp_mode": "zh"}
    assert len(params) == 867 and np.isfinite(score)
    with open(folder / "log" / f"{BASE}.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    optimizer, saved = state(folder)
    assert saved["generation"] == 2 and optimizer.num_params == 867
    # 2 generations x 4 solutions x 1 episode, then one evaluation over 4 episodes (the population size)
    assert saved["next_seed"] == 111 + 2 * 4 + 4


@pytest.mark.slow
def test_resuming_continues_exactly_where_the_run_stopped(trained, tmp_path):
    """1 + 1 generations with a resume in between give the same generations as 2 in one go, and the history,
    the generation count and the seed counter continue."""
    folder, _ = trained
    world_model(tmp_path)
    train(tmp_path, "--generations", 1)
    resumed = train(tmp_path, "--generations", 1, "--init_opt", f"./controller/{BASE}.es.pk")
    assert "resuming" in resumed.stdout and "at generation 1" in resumed.stdout
    once, twice = history(folder), history(tmp_path)
    assert [row[0] for row in twice] == [1, 2]
    for a, b in zip(once, twice):
        assert a[2:] == b[2:]  # average, min, max, std, sigma, lengths: all but the elapsed time
    (one_optimizer, one_state), (two_optimizer, two_state) = state(folder), state(tmp_path)
    np.testing.assert_array_equal(one_optimizer.current_param(), two_optimizer.current_param())
    assert one_state["next_seed"] == two_state["next_seed"]
    assert best(folder) == best(tmp_path)


@pytest.mark.slow
def test_one_worker_trains_exactly_as_two(trained, tmp_path):
    """Episodes are handed out one at a time to whichever worker is free, so who plays which, and in what order,
    changes from run to run: the rewards must not. One worker playing the population alone gives the history,
    evaluations, best and optimizer of the two-worker run, bit for bit; --phase_times says where the time went."""
    folder, _ = trained
    world_model(tmp_path)
    alone = train(tmp_path, "--num_worker", 1, "--num_worker_trial", 4, "--generations", 2, "--phase_times",
                  "phases.json")
    assert "population 4 (1 x 4)" in alone.stdout
    assert [row[2:] for row in history(tmp_path)] == [row[2:] for row in history(folder)]
    assert ((tmp_path / "log" / f"{BASE}.log.json").read_text() == (folder / "log" / f"{BASE}.log.json").read_text())
    assert best(tmp_path) == best(folder)
    np.testing.assert_array_equal(state(tmp_path)[0].current_param(), state(folder)[0].current_param())
    phases = json.loads((tmp_path / "phases.json").read_text())
    assert [row["generation"] for row in phases] == [1, 2] and all(row["steps"] == 4 * 25 for row in phases)
    parts = ("ask", "episodes", "waiting", "messages", "update", "evaluation", "save")
    for row in phases:
        assert all(row[part] >= 0 for part in parts if part != "messages") and row["episodes"] > 0
        assert sum(row[part] for part in parts) == pytest.approx(row["total"], rel=1e-9)
    assert phases[0]["evaluation"] < 0.01 < phases[1]["evaluation"]  # --eval_steps 2: the mean scored in generation 2


@pytest.mark.slow
def test_resuming_twice_appends_and_never_lowers_the_best(trained, tmp_path):
    folder, _ = trained
    world_model(tmp_path)
    train(tmp_path, "--generations", 2)
    first_rows, (_, first_best, _) = history(tmp_path), best(tmp_path)
    seeds_before = state(tmp_path)[1]["next_seed"]
    for resume in range(2):
        train(tmp_path, "--generations", 2, "--init_opt", f"./controller/{BASE}.es.pk")
    rows = history(tmp_path)
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[:2] == first_rows  # appended, not rewritten
    saved = state(tmp_path)[1]
    assert saved["next_seed"] == seeds_before + 2 * (2 * 4 + 4)  # fresh seeds every generation and evaluation
    evaluations = json.loads((tmp_path / "log" / f"{BASE}.log.json").read_text())
    assert [row[0] for row in evaluations] == [2, 4, 6]
    _, best_score, _ = best(tmp_path)
    assert best_score == pytest.approx(max(row[1] for row in evaluations), abs=0.005) and best_score >= first_best


@pytest.mark.slow
def test_a_fresh_run_refuses_to_overwrite_an_earlier_one(trained):
    folder, _ = trained
    before = (folder / "controller" / f"{BASE}.es.pk").read_bytes()
    result = train(folder, "--generations", 1, check=False)
    assert result.returncode == 1 and "--init_opt" in result.stderr and "Traceback" not in result.stderr
    assert (folder / "controller" / f"{BASE}.es.pk").read_bytes() == before


@pytest.mark.slow
def test_sigterm_leaves_a_checkpoint_that_resumes(tmp_path):
    world_model(tmp_path)
    process = start("05_train_controller.py", *TRAIN, cwd=tmp_path)
    # The history gets its first row after the first checkpoint: from then on the signal lands in a later
    # generation, with a whole checkpoint of generation 1 or later on disk.
    rows = tmp_path / "log" / f"{BASE}.hist.json"
    wait_for(lambda: rows.exists() or process.poll() is not None, what="the first generation's history row")
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and "SIGTERM" in stderr and "--init_opt" in stderr  # 128 + SIGTERM, as documented
    assert stderr.strip().splitlines()[-1].startswith("SIGTERM received: stopped"), stderr  # MPICH's abort line silenced
    generation = state(tmp_path)[1]["generation"]
    assert generation >= 1
    train(tmp_path, "--generations", 1, "--init_opt", f"./controller/{BASE}.es.pk")
    assert [row[0] for row in history(tmp_path)] == list(range(1, generation + 2))


@pytest.mark.slow
def test_a_worker_that_fails_stops_the_run_with_its_error(tmp_path):
    world_model(tmp_path)
    path = tmp_path / "rnn" / "car_racing.npz"
    path.write_bytes(path.read_bytes()[:3000])  # truncated: only the workers load it
    result = train(tmp_path, "--generations", 1, check=False)
    assert result.returncode != 0
    assert "worker" in result.stderr and "car_racing.npz is corrupt" in result.stderr
    assert "04_train_rnn.py" in result.stderr  # the command that remakes it


@pytest.mark.slow
def test_a_stop_before_the_first_checkpoint_says_to_start_again(tmp_path):
    """Stopped in its first generation, a fresh run has no checkpoint: the printed command named one that did not
    exist."""
    world_model(tmp_path)
    output = tmp_path / "stdout.txt"
    with open(output, "w") as stdout:
        process = start("05_train_controller.py", *TRAIN[:5], "--max_length", 1000, cwd=tmp_path, stdout=stdout)
    wait_for(lambda: "checkpoint ./controller" in output.read_text() or process.poll() is not None,
             what="the first generation to start")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and not (tmp_path / "controller" / f"{BASE}.es.pk").exists()
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("SIGINT received: stopped; no generation was finished, nothing is saved; start again "
                           "with: "), stderr
    assert "--init_opt" not in line and line.endswith(" ".join(map(str, [*TRAIN[:5], "--max_length", 1000])))


@pytest.mark.slow
def test_a_worker_without_the_world_model_ends_the_run_with_its_error(tmp_path):
    """Workers on another machine, started by the user's mpiexec: one that could not build its player (a file
    missing there) left the run waiting forever; now its error ends the run. Here the workers run in a folder
    without the world model (mpiexec's -wdir), as on a machine where it was not copied."""
    from parallel import find_mpiexec

    leader, elsewhere = world_model(tmp_path / "leader"), tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = [sys.executable, os.path.join(ROOT, "05_train_controller.py"), *map(str, TRAIN), "--generations", "1"]
    launch = [find_mpiexec(), "-np", "1", "-wdir", str(leader), *script, ":", "-np", "2", "-wdir", str(elsewhere),
              *script]
    result = run_command(launch, env=ENVIRONMENT, timeout=120)
    assert result.returncode == 1
    assert "worker" in result.stderr and "./vae/car_racing.npz" in result.stderr, result.stderr


@pytest.mark.slow
def test_a_relaunch_whose_mpiexec_starts_singletons_is_refused(tmp_path):
    """An mpiexec of another MPI than mpi4py's (an Open MPI one on PATH) starts every process as an MPI world of
    one: each took itself for the leader, and all but one died on the lock. Here a process started as our relaunch
    would be, but without a launcher: a world of one where three were asked."""
    from parallel import CHILD_MARKER

    world_model(tmp_path)
    result = run("05_train_controller.py", *TRAIN, cwd=tmp_path, env={**ENVIRONMENT, CHILD_MARKER: "1"}, check=False,
                 timeout=120)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith(
        "error: mpiexec started 1 process(es) in the run's MPI world where 3 were asked"), result.stderr
    assert not (tmp_path / "controller").exists()


@pytest.mark.slow
def test_a_worker_that_dies_ends_the_run(tmp_path):
    import psutil

    world_model(tmp_path)
    output = tmp_path / "stdout.txt"  # a file, not a pipe: read while the run goes on
    with open(output, "w") as stdout:
        process = start("05_train_controller.py", *TRAIN[:5], "--max_length", 1000, cwd=tmp_path, stdout=stdout)

    def python_processes():  # mpiexec's three: the leader and two workers
        found = [p for p in psutil.Process(process.pid).children(recursive=True) if "python" in p.name()]
        return found if len(found) == 3 else None

    ranks = wait_for(python_processes, what="three python processes under mpiexec")
    # The leader prints the names of its files just before it hands out the first generation's episodes, each
    # 1000 steps long (seconds): from then on a worker is playing.
    wait_for(lambda: "checkpoint ./controller" in output.read_text() or process.poll() is not None,
             what="the first generation to start")
    assert process.poll() is None, process.communicate()
    worker = next(p for p in ranks if p.environ().get("PMI_RANK") not in (None, "0"))  # not the leader
    worker.kill()  # mid-episode
    process.communicate(timeout=60)  # no hang
    assert process.returncode != 0


@pytest.mark.slow
def test_missing_weights_are_named_before_any_launch(tmp_path):
    result = train(tmp_path, "--generations", 1, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "vae/car_racing.npz is missing" in result.stderr and "02_train_vae.py" in result.stderr


@pytest.mark.slow
def test_a_crafted_checkpoint_is_refused_without_running(tmp_path):
    world_model(tmp_path)
    marker = tmp_path / "owned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.es.pk").write_bytes(pickle.dumps({"format": "x", "optimizer": Exploit()}))
    result = train(tmp_path, "--generations", 1, "--init_opt", "evil.es.pk", check=False)
    assert result.returncode == 1 and "is a pickle" in result.stderr and "Traceback" not in result.stderr
    assert "--init_params evil.best.json" in result.stderr  # how to go on from an old run
    assert not marker.exists()


@pytest.mark.slow
def test_a_resume_with_another_num_episode_is_refused(trained):
    """The file base holds --num_episode: resuming with another value would write into another run's files."""
    folder, _ = trained
    result = train(folder, "--generations", 1, "--num_episode", 2, "--init_opt", f"./controller/{BASE}.es.pk",
                   check=False)
    assert result.returncode == 1 and "--num_episode" in result.stderr and "Traceback" not in result.stderr
    assert not (folder / "controller" / "car_racing.cma.2.4.es.pk").exists()


@pytest.mark.slow
def test_a_population_of_two_trains_with_cma(tmp_path):
    """--num_worker 2 --num_worker_trial 1, what a two-core user types (pycma crashed in generation 2)."""
    world_model(tmp_path)
    train(tmp_path, "--num_worker_trial", 1, "--generations", 3)
    with open(tmp_path / "log" / "car_racing.cma.1.2.hist.json") as handle:
        assert [row[0] for row in json.load(handle)] == [1, 2, 3]


@pytest.mark.slow
def test_init_params_starts_a_new_run_from_a_controller(tmp_path):
    world_model(tmp_path)
    start = np.round(np.random.default_rng(0).standard_normal(867) * 0.1, 4)
    (tmp_path / "start.best.json").write_text(json.dumps([start.tolist(), 12.0]))
    first = train(tmp_path, "--generations", 1, "--init_params", "start.best.json", "--sigma_init", 1e-9)
    with open(tmp_path / "log" / f"{BASE}.json") as handle:
        mean = json.load(handle)[0]
    np.testing.assert_array_equal(mean, start)  # one generation of steps of 1e-9 leaves the rounded mean there
    # the printed way to go on resumes from the checkpoint alone (before, it kept --init_params and was refused),
    # and names the script from the folder it ran in (before, its bare name: only right in the repository's root)
    command = shlex.split(first.stdout.split("resume with: ")[-1].strip())
    assert command[0] == sys.executable and "--init_params" not in command  # pasted, it runs this very Python
    assert os.path.realpath(tmp_path / command[1]) == os.path.join(ROOT, "05_train_controller.py")
    resumed = run_command([*command, "--generations", "1"], cwd=tmp_path, env=ENVIRONMENT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and [row[0] for row in history(tmp_path)] == [1, 2]
    result = train(tmp_path, "--generations", 1, "--init_params", "start.best.json", "--init_opt",
                   f"./controller/{BASE}.es.pk", check=False)
    assert result.returncode == 1 and "give one of them" in result.stderr


@pytest.mark.slow
def test_a_run_never_writes_over_another_runs_files(tmp_path):
    """A second seed in another --controller_dir but the same --log_dir would have rewritten the first's logs; a
    resume from a copy of a checkpoint would have written over the newer one of that base."""
    world_model(tmp_path)
    train(tmp_path, "--generations", 1, "--controller_dir", "./c1")
    result = train(tmp_path, "--generations", 1, "--controller_dir", "./c2", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: ./log/{BASE}.hist.json already exists")
    (tmp_path / "backup").mkdir()
    shutil.copy(tmp_path / "c1" / f"{BASE}.es.pk", tmp_path / "backup")
    train(tmp_path, "--generations", 1, "--controller_dir", "./c1", "--init_opt", f"./c1/{BASE}.es.pk")
    newer = (tmp_path / "c1" / f"{BASE}.es.pk").read_bytes()
    result = train(tmp_path, "--generations", 1, "--controller_dir", "./c1", "--init_opt", f"./backup/{BASE}.es.pk",
                   check=False)
    assert result.returncode == 1 and "would write over ./c1/" in result.stderr.strip().splitlines()[-1]
    assert (tmp_path / "c1" / f"{BASE}.es.pk").read_bytes() == newer
    train(tmp_path, "--generations", 1, "--controller_dir", "./c3", "--log_dir", "./log3", "--init_opt",
          f"./backup/{BASE}.es.pk")  # into a folder of its own, a copy resumes


@pytest.mark.slow
def test_exp_mode_z_hidden_trains_resumes_and_plays_without_the_flag(tmp_path):
    world_model(tmp_path)
    base = "car_racing.z_hidden.cma.1.4"  # the mode is in the base: runs of different modes never collide
    result = train(tmp_path, "--generations", 2, "--exp_mode", "z_hidden")
    assert "over 1443 parameters (controller z_hidden)" in result.stdout
    with open(tmp_path / "controller" / f"{base}.best.json") as handle:
        params, _, about = json.load(handle)
    assert len(params) == 1443 and about == {"env": "car_racing", "exp_mode": "z_hidden"}
    optimizer, saved = load_optimizer(str(tmp_path / "controller" / f"{base}.es.pk"))
    assert saved["exp_mode"] == "z_hidden" and optimizer.num_params == 1443
    resumed = train(tmp_path, "--generations", 1, "--init_opt", f"./controller/{base}.es.pk")  # no --exp_mode
    assert "over 1443 parameters (controller z_hidden)" in resumed.stdout and "at generation 2" in resumed.stdout
    refused = train(tmp_path, "--generations", 1, "--exp_mode", "zh", "--init_opt", f"./controller/{base}.es.pk",
                    check=False)
    assert refused.returncode == 1 and "--exp_mode" in refused.stderr and "Traceback" not in refused.stderr
    played = run("model.py", "car_racing", "--filename", f"./controller/{base}.best.json", "--max_length", 10,
                 cwd=tmp_path)
    assert "(z_hidden, 1443 parameters)" in played.stdout
    wrong = run("model.py", "car_racing", "--filename", f"./controller/{base}.best.json", "--exp_mode", "z",
                cwd=tmp_path, check=False)
    assert wrong.returncode == 1 and "mode z_hidden" in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.slow
def test_model_records_a_video_and_scores_the_best_controller(trained):
    import imageio_ffmpeg

    folder, _ = trained
    filename = f"./controller/{BASE}.best.json"
    result = run("model.py", "car_racing", "--filename", filename, "--record_video", "--max_length", 20, cwd=folder)
    video = folder / "video" / f"{BASE}.best.seed111.mp4"
    assert str(video.relative_to(folder)) in result.stdout
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    frames = [np.frombuffer(frame, np.uint8).reshape(400, 600, 3) for frame in reader]
    assert meta["size"] == (600, 400) and len(frames) == 21  # the reset frame and one a step, the window's size
    assert np.mean([frame.std() for frame in frames]) > 10  # the track, not a blank picture
    final = run("model.py", "car_racing", "--filename", filename, "--final_mode", "--num_episode", 3,
                "--max_length", 20, "--num_worker", 2, cwd=folder)
    with open(folder / "log" / f"{BASE}.best.final.json") as handle:
        scores = json.load(handle)
    assert scores["episodes"] == 3 and len(scores["scores"]) == 3
    assert f"mean {np.mean(scores['scores']):.2f} +- {np.std(scores['scores']):.2f}" in final.stdout
    # The same seed drives the same episode: model.py's first episode is the video's episode.
    recorded = float(result.stdout.split("seed 111: reward ")[1].split()[0])
    assert scores["scores"][0] == pytest.approx(recorded, abs=0.005)


def test_messages_survive_the_wire_bit_for_bit():
    rng = np.random.default_rng(0)
    task = Task(7, rng.standard_normal((2, 867)), rng.integers(0, 2**40, (2, 3)), 1000, real=True)
    assert decode(encode(task)) == task
    result = Result(7, rng.standard_normal((2, 3)), rng.integers(0, 1000, (2, 3)), worker_ns=2_345_678_901)
    assert decode(encode(result)) == result and decode(encode(result)).worker_ns == 2_345_678_901
    assert decode(encode(Failure(3, "boom ü"))) == Failure(3, "boom ü")
    assert isinstance(decode(encode(Stop())), Stop)
    with pytest.raises(ValueError):
        decode(b"X" + bytes(40))
