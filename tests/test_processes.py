"""Processes that end together (issue 14, item 3), tried on the real scripts: SIGKILL and SIGTERM mid-run, signals
passed to a child, the rollout pools. Full disks, read-only folders and two runs on one set of files: test_files.py.

Waits poll against a deadline; nothing sleeps for a fixed time to let something happen.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import psutil
import pytest

from cli import UserError
from npyio import save_npy
from tests.scripts import ROOT, alive, popen, run, run_command, start, wait_for
from tests.test_training import world_model

ROLLOUTS = ["car_racing", "--total_episodes", 8, "--batch_size", 8, "--time_steps", 300, "--num_workers", 2]


def workers_of(process, count):
    """The python child processes of `process`, once there are `count` of them."""
    def found():
        children = [p for p in psutil.Process(process.pid).children() if "python" in p.name()]
        return children if len(children) >= count else None
    return wait_for(found, what=f"{count} worker processes")


@contextlib.contextmanager
def no_survivors(workers_found):
    """Kill (at the end of the test) whatever worker processes are still alive, so that a failing test leaves no
    orphans behind; `workers_found` is a list the test fills."""
    try:
        yield workers_found
    finally:
        for worker in workers_found:
            with contextlib.suppress(psutil.Error):
                worker.kill()


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith(".tmp-")) if os.path.isdir(folder) else []


def assert_one_line(result_stderr, expected):
    lines = [line for line in result_stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in result_stderr, result_stderr
    assert lines[-1] == expected or lines[-1].startswith(expected), result_stderr


@contextlib.contextmanager
def mounted_tmpfs(folder, size, read_only=False, noexec=False):
    """A tmpfs of `size` at `folder` (created), read-only or noexec if asked; skips the test where mounting is not
    allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "") + (",noexec" if noexec else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# --- workers die with their parent --------------------------------------------------------------------------------

@pytest.mark.slow
def test_01_workers_die_with_a_killed_parent_and_the_next_run_cleans_up(tmp_path):
    with no_survivors([]) as workers:
        check_01_workers_die_with_a_killed_parent(tmp_path, workers)


def check_01_workers_die_with_a_killed_parent(tmp_path, workers):
    process = start("01_generate_data.py", *ROLLOUTS, cwd=tmp_path)
    workers += workers_of(process, 2)
    data = tmp_path / "data"
    wait_for(lambda: temporaries(data), what="the batch's temporary file")  # the batch is being written
    # a second run on the same files is refused at once, naming the first
    second = run("01_generate_data.py", *ROLLOUTS, cwd=tmp_path, check=False)
    assert second.returncode == 1
    assert_one_line(second.stderr, "error: ./data/rollouts_car_racing is in use by another run")
    assert f"pid {process.pid}: python " in second.stderr and "01_generate_data.py car_racing" in second.stderr
    process.kill()
    process.wait()  # not communicate(): orphaned workers would hold its pipes open
    wait_for(lambda: not any(alive(w) for w in workers), timeout=10, what="the orphaned workers to die")
    process.communicate()
    left = temporaries(data)
    assert left  # the killed save's temporary file ...
    small = ["car_racing", "--total_episodes", 1, "--batch_size", 1, "--time_steps", 5, "--num_workers", 1]
    result = run("01_generate_data.py", *small, cwd=tmp_path)  # ... is no obstacle: the dead run's lock is gone
    assert "removed 1 temporary file(s)" in result.stderr
    assert temporaries(data) == []  # and its temporary file was removed
    assert not os.path.exists(data / ".rollouts_car_racing.lock")  # a run that ends removes its lock file


DOOM_ROLLOUTS = ["doom_take_cover", "--total_episodes", 400, "--batch_size", 40, "--num_workers", 2]


def engines_of(process, count):
    """The ViZDoom engine processes below `process` (each worker's game runs in one), once there are `count`."""
    def found():
        engines = [p for p in psutil.Process(process.pid).children(recursive=True) if p.name() == "vizdoom"]
        return engines if len(engines) >= count else None
    return wait_for(found, what=f"{count} ViZDoom engines")


@pytest.mark.slow
def test_doom_engines_die_with_a_killed_01(tmp_path):
    """A worker's engine is a process of its own that ignores SIGTERM: when the worker died by SIGKILL (its parent
    killed, the OOM killer), the engine went on running for good, adopted by init."""
    process = start("01_generate_data.py", *DOOM_ROLLOUTS, cwd=tmp_path)
    with no_survivors(engines_of(process, 2)) as engines:
        engines += workers_of(process, 2)
        process.kill()
        process.wait()
        wait_for(lambda: not any(alive(p) for p in engines), timeout=10, what="the workers and engines to die")
    process.communicate()


def test_a_crashed_doom_engine_is_one_line(tmp_path, monkeypatch):
    """The vizdoom package raised its own exceptions (a traceback from every rollout worker). The engine is killed
    between two steps: one killed during a step can leave the vizdoom package waiting for it for good (about 1 kill
    in 40 here; noted in docs/controller_training.md)."""
    from envs.doom import DoomTakeCover

    monkeypatch.chdir(tmp_path)
    env = DoomTakeCover()
    env.reset(seed=1)
    env.step(np.zeros(1, np.float32))
    engine = next(p for p in psutil.Process().children() if p.name() == "vizdoom")
    engine.kill()
    wait_for(lambda: not alive(engine), timeout=10, what="the engine to die")
    with pytest.raises(UserError, match=r"^the ViZDoom engine stopped \(crashed or killed: "):
        for _ in range(100):  # an episode that ends before the engine is missed needs a reset, which finds it
            if env.step(np.zeros(1, np.float32))[2]:
                env.reset(seed=2)
    env.close()


CHILD = """
import signal, sys, time
def stop(signum, frame):
    time.sleep(0.5)  # a 05 finishing its save
    open("stopped", "w").write(signal.Signals(signum).name)
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
open("started", "w").close()
time.sleep(60)
"""
PARENT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when the tests run in background
sys.path.insert(0, sys.argv[1])
from cli import run_cli
from processes import run_child
run_cli(lambda: run_child([sys.executable, "child.py"]))
"""


@pytest.mark.parametrize("signal_name, line, status", [("SIGTERM", "terminated (SIGTERM)", 143),
                                                        ("SIGINT", "interrupted", 130)])
def test_a_signal_to_a_script_is_passed_to_its_child_which_stops_its_own_way(tmp_path, signal_name, line, status):
    """sweep_temperature.py and pretrained.py play run 05 and model.py as children: subprocess.run killed the child
    a quarter of a second after a Ctrl-C, and at once on SIGTERM (05 lost its save and its resume line)."""
    (tmp_path / "child.py").write_text(CHILD)
    parent = popen([sys.executable, "-c", PARENT, ROOT], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / "started").exists(), what="the child to start")
    parent.send_signal(getattr(signal, signal_name))  # to the parent only, as `kill` does
    _, stderr = parent.communicate(timeout=30)
    assert (tmp_path / "stopped").read_text() == signal_name  # the child got the same signal and ended its own way
    assert parent.returncode == status and stderr.strip().splitlines()[-1] == line, stderr


COUNTING_CHILD = """
import signal, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # not ignored (a background shell ignores it): then blocked
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
open("started", "w").close()
count = 0
while signal.sigtimedwait([signal.SIGINT], 2 if count else 60) is not None:
    count += 1
    time.sleep(0.2)  # a clean-up, during which a second Ctrl-C would arrive
open("stopped", "w").write(str(count))
"""


def test_a_ctrl_c_at_the_terminal_reaches_the_child_once(tmp_path):
    """A Ctrl-C typed at a terminal goes to the whole foreground group, child included: the parent must not send the
    child a second one, which could cut short the clean-up of the first."""
    import pty

    (tmp_path / "child.py").write_text(COUNTING_CHILD)
    master, slave = pty.openpty()
    terminal = os.ttyname(slave)
    os.close(slave)
    # the parent leads a new session whose controlling terminal is the pty (opened without O_NOCTTY)
    parent = popen([sys.executable, "-c", PARENT, ROOT], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                   preexec_fn=lambda: os.close(os.open(terminal, os.O_RDWR)))
    wait_for(lambda: (tmp_path / "started").exists(), what="the child to start")
    os.write(master, b"\x03")  # Ctrl-C
    _, stderr = parent.communicate(timeout=30)
    os.close(master)
    assert (tmp_path / "stopped").read_text() == "1"
    assert parent.returncode == 130 and stderr.strip().splitlines()[-1] == "interrupted", stderr


def test_doom_runs_in_a_folder_that_cannot_run_its_engine_launcher(tmp_path, monkeypatch):
    """./_vizdoom/launch_engine.sh cannot run where the working folder is mounted noexec, and the vizdoom package
    crashes (SIGSEGV) on an engine path it cannot run: the engine is then started as the package starts it."""
    from envs.doom import DoomTakeCover

    with mounted_tmpfs(tmp_path / "noexec", "16m", noexec=True) as folder:
        monkeypatch.chdir(folder)
        env = DoomTakeCover()
        env.reset(seed=1)
        assert env.step(np.zeros(1, np.float32))[1] == 1.0
        engine = next(p for p in psutil.Process().children() if p.name() == "vizdoom")
        assert engine.exe().endswith("/vizdoom/vizdoom")
        env.close()
        monkeypatch.chdir(tmp_path)


@pytest.mark.slow
def test_model_py_workers_die_with_a_killed_parent(tmp_path):
    world_model(tmp_path)
    process = start("model.py", "car_racing", "--final_mode", "--num_episode", 8, "--num_worker", 2, cwd=tmp_path)
    with no_survivors(workers_of(process, 2)) as workers:
        process.kill()
        process.wait()
        wait_for(lambda: not any(alive(w) for w in workers), timeout=10, what="the orphaned workers to die")
    process.communicate()


def test_a_worker_whose_parent_is_already_gone_leaves_at_once():
    """The race die_with_parent closes: a worker that starts after its parent died must not run on as an orphan."""
    from processes import die_with_parent

    child = os.fork()
    if child == 0:
        die_with_parent(os.getppid() + 10**6)  # not our parent: as if it had died and we were adopted
        os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.WEXITSTATUS(status) == 1


# --- the rollout pool (parallel.ProcessPool) of 01 and model.py ------------------------------------------------

POOL_SCRIPT = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even if the tests run in background
from parallel import ProcessPool
from cli import UserError, run_cli

def started(name):
    open(os.path.join({folder!r}, name + "." + str(os.getpid())), "w").close()
    if "badstart" in sys.argv:
        raise UserError("the worker's start-up line")  # a file the worker reads as it starts is missing

def task(item):
    if item == "die":
        os._exit(3)  # a crash in a simulator's C++ code
    if item == "fail":
        raise UserError("the worker's own line")
    if item == "slow":
        time.sleep(600)
    return item * 2

def main():
    with ProcessPool(2, task, started, ("worker",)) as pool:
        for result in pool.imap(sys.argv[1:]):
            print(result, flush=True)
            if result == "stopstop":
                raise UserError("the parent stopped")

if sys.argv[1] in ("SIGTERM", "SIGINT"):  # that signal just as fork() returns, inside the at-fork callbacks
    os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), getattr(signal, sys.argv[1])))
run_cli(main)
"""


def test_the_in_process_pools_share_the_interface_and_check_before_each_item():
    from parallel import LocalPool, ProcessPool

    checks = []
    local = LocalPool(lambda item: item * 3, check=lambda: checks.append(len(checks)))
    assert local.run([1, 2, 5]) == [3, 6, 15] and checks == [0, 1, 2]
    started = []
    with ProcessPool(1, lambda item: item - 1, started.append, ("here",)) as single:  # one worker: this process
        assert started == ["here"] and list(single.imap(range(4))) == [-1, 0, 1, 2]


def pool_script(tmp_path, *items):
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         folder=str(tmp_path)))
    return run_command([sys.executable, str(script), *items], timeout=60, cwd=tmp_path)


def pool_workers(tmp_path):
    return [int(name.split(".")[1]) for name in os.listdir(tmp_path) if name.startswith("worker.")]


def test_process_pool_gives_results_in_order_and_starts_each_worker_once(tmp_path):
    result = pool_script(tmp_path, *"abcdef")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["aa", "bb", "cc", "dd", "ee", "ff"]
    assert len(pool_workers(tmp_path)) == 2


@pytest.mark.parametrize("items, line, status", [
    (["a", "fail", "b"], "error: the worker's own line", 1),  # a worker's UserError keeps its one line
    (["a", "die", "b"], "error: a rollout worker died", 1),  # a dead worker is an error, not a wait for ever
    (["stop", "slow", "slow"], "error: the parent stopped", 1),  # the parent's error stops episodes under way
    (["badstart", "a", "b"], "error: the worker's start-up line", 1),  # its start-up's UserError too (was a traceback)
])
def test_process_pool_ends_with_one_line_and_no_worker_left(tmp_path, items, line, status):
    result = pool_script(tmp_path, *items)
    assert result.returncode == status, result.stderr
    assert_one_line(result.stderr, line)
    # the second worker may be ended before it starts (the first one met the error at once): none left either way
    assert len(pool_workers(tmp_path)) in (1, 2)
    for pid in pool_workers(tmp_path):
        assert not our_worker_alive(pid, tmp_path / "pool.py"), result.stderr
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path / "pool.py") in (p.info["cmdline"] or [])
                and alive(p)]


@pytest.mark.parametrize("signal_name, line, status", [("SIGTERM", "terminated (SIGTERM)", 143),
                                                        ("SIGINT", "interrupted", 130)])
def test_process_pool_ends_on_a_signal_that_comes_while_it_forks(tmp_path, signal_name, line, status):
    """Before: the handler's exception was raised inside the at-fork callbacks, printed as ignored and lost; the run
    went on and exited 0 (test_sigterm_gives_one_line_exit_143_and_no_temporary_file[01] failed now and then)."""
    result = pool_script(tmp_path, signal_name, "b", "c")
    assert result.returncode == status, result.stderr
    assert_one_line(result.stderr, line)
    assert result.stdout == ""
    for pid in pool_workers(tmp_path):
        assert not our_worker_alive(pid, tmp_path / "pool.py"), result.stderr


LOST_SIGTERM_SCRIPT = """
import gc, os, signal, sys
sys.path.insert(0, {root!r})
from cli import run_cli

class SignalledWhileCollected:
    def __del__(self):  # an exception raised here is only printed ("Exception ignored in ...")
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))

def main():
    SignalledWhileCollected()
    gc.collect()
    print("finished", flush=True)

run_cli(main)
"""


def test_a_sigterm_whose_exception_python_lost_still_ends_the_script_with_143(tmp_path):
    """A backstop for handlers run where Python drops their exception (a __del__, a weakref or at-fork callback)."""
    script = tmp_path / "lost.py"
    script.write_text(LOST_SIGTERM_SCRIPT.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    result = run_command([sys.executable, str(script)], timeout=60)
    assert "Exception ignored in" in result.stderr  # the handler did run where its exception is lost
    assert result.stdout == "finished\n"
    assert result.returncode == 143, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "terminated (SIGTERM)"


WRAPPED_STOP_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even if the tests run in background
from cli import run_cli

def main():
    import Box2D

    try:  # the signal handled inside a constructor and a C function, as a Box2D step or a TensorFlow cast meets it
        body = Box2D.b2BodyDef.__new__(Box2D.b2BodyDef)  # its constructor cut short: finalizing it fails
        if sys.argv[1] != "none":
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        sum(range(1000))
    except KeyboardInterrupt as stop:
        if sys.argv[2] == "wrapped":  # what CPython raises when a C function returns a result with the error set
            raise SystemError("<built-in method __array__> returned a result with an exception set") from stop
        if sys.argv[2] == "cleanup_bug":
            raise ValueError("a bug in the clean-up")
        raise
    raise SystemError("a bug of ours")

run_cli(main)
"""


def wrapped_stop_script(tmp_path, *arguments):
    script = tmp_path / "wrapped.py"
    script.write_text(WRAPPED_STOP_SCRIPT.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return run_command([sys.executable, str(script), *arguments], timeout=60)


@pytest.mark.parametrize("signal_name, line, status", [("SIGTERM", "terminated (SIGTERM)", 143),
                                                        ("SIGINT", "interrupted", 130)])
@pytest.mark.parametrize("how", ["wrapped", "plain"])
def test_a_stop_that_c_code_wrapped_or_that_left_a_half_built_object_still_ends_in_one_line(
        tmp_path, signal_name, line, status, how):
    """Before (CI, under load): SIGTERM in 03 while TensorFlow converted an array gave a SystemError traceback and
    exit 1; Ctrl-C in model.py inside a Box2D constructor printed the object's failed finalizer after "interrupted"."""
    result = wrapped_stop_script(tmp_path, signal_name, how)
    assert result.returncode == status, result.stderr
    assert_one_line(result.stderr, line)
    assert "Exception ignored" not in result.stderr


@pytest.mark.parametrize("signal_name, how, error", [("none", "plain", "SystemError: a bug of ours"),
                                                      ("SIGTERM", "cleanup_bug", "ValueError: a bug in the clean-up")])
def test_an_error_that_no_stop_caused_is_still_a_traceback(tmp_path, signal_name, how, error):
    """Neither a bug nor one raised while a stop is handled (its __context__, not its __cause__) passes for a stop."""
    result = wrapped_stop_script(tmp_path, signal_name, how)
    assert result.returncode == 1 and "Traceback" in result.stderr and error in result.stderr, result.stderr


def our_worker_alive(pid, script) -> bool:
    """Whether `pid` is still a live process of `script` (not a later process that was given the same number)."""
    try:
        process = psutil.Process(pid)
        return alive(process) and str(script) in process.cmdline()
    except psutil.Error:
        return False


# --- SIGTERM: one line, exit 143, no temporary file ------------------------------------------------------------------

def frames_data(folder, episodes=4, steps=50):
    """Stage 01's four files of batch 0, with noise frames (02 and 03 only need their shapes)."""
    rng = np.random.default_rng(0)
    save_npy(str(folder / "data" / "obs_data_car_racing_0.npy"),
             rng.integers(0, 255, (episodes, steps, 64, 64, 3), dtype=np.uint8))
    save_npy(str(folder / "data" / "length_data_car_racing_0.npy"), np.full(episodes, steps, np.int32))
    save_npy(str(folder / "data" / "action_data_car_racing_0.npy"), np.zeros((episodes, steps, 3), np.float32))
    save_npy(str(folder / "data" / "done_data_car_racing_0.npy"), np.zeros((episodes, steps), bool))


def rnn_data(folder, episodes=8, steps=50):
    """Stage 03's files of batch 0 that 04 reads."""
    rng = np.random.default_rng(0)
    for kind, shape in (("rnn_mu", (episodes, steps, 32)), ("rnn_logvar", (episodes, steps, 32)),
                        ("rnn_input", (episodes, steps, 35))):
        save_npy(str(folder / "data" / f"{kind}_car_racing_0.npy"), rng.standard_normal(shape).astype(np.float32))
    save_npy(str(folder / "data" / "rnn_length_car_racing_0.npy"), np.full(episodes, steps, np.int32))
    save_npy(str(folder / "data" / "rnn_done_car_racing_0.npy"), np.zeros((episodes, steps), bool))


def encoding_inputs(folder, batches=10):
    """03's inputs: V's Keras weights (fresh, untrained) and `batches` batch files of frames (links to one)."""
    from config import CAR_RACING
    from vae.arch import make_vae

    frames_data(folder, episodes=4, steps=250)
    (folder / "vae").mkdir()
    make_vae(CAR_RACING).save_weights(str(folder / "vae" / "car_racing.weights.h5"))
    for batch in range(1, batches):
        for kind in ("obs_data", "length_data", "action_data", "done_data"):
            os.symlink(f"{kind}_car_racing_0.npy", folder / "data" / f"{kind}_car_racing_{batch}.npy")


STAGES = {  # script, arguments, set-up, output folder, the file whose arrival says the stage is under way
    "01": ("01_generate_data.py", ROLLOUTS, None, "data", None),
    "02": ("02_train_vae.py", ["--epochs", 1000, "--verbose", 0, "--batch_size", 4], frames_data, "vae",
           "vae/car_racing.weights.h5"),
    "03": ("03_generate_rnn_data.py", ["--max_batch", 9], encoding_inputs, "data", "data/rnn_done_car_racing_0.npy"),
    "04": ("04_train_rnn.py", ["--epochs", 1000, "--verbose", 0, "--batch_size", 4], rnn_data, "rnn",
           "rnn/car_racing.weights.h5"),
    "model": ("model.py", ["car_racing", "--final_mode", "--num_episode", 8, "--num_worker", 2], world_model, "log",
              None),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_sigterm_gives_one_line_exit_143_and_no_temporary_file(tmp_path, stage):
    script, args, setup, output, started = STAGES[stage]
    if setup is not None:
        setup(tmp_path)
    process = start(script, *args, cwd=tmp_path)
    with no_survivors([]) as workers:
        if started is None:  # 01 and model.py: once their rollout workers run
            workers += workers_of(process, 2)
        else:  # 02, 03 and 04: once the first file is saved, so the signal lands inside training or a save
            wait_for(lambda: (tmp_path / started).exists() or process.poll() is not None, what=started)
            assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        wait_for(lambda: not any(alive(w) for w in workers), timeout=10, what="the workers to end")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert_one_line(stderr, "terminated (SIGTERM)")
    assert temporaries(tmp_path / output) == []


def test_a_ctrl_c_as_01_lands_a_batch_waits_for_its_four_files(tmp_path, monkeypatch):
    """A batch's frame file and its action, length and done files land together: Ctrl-C as the first small file is
    being written (the frames already in) is handled once all four are in place, not between them (before, the frame
    file was left alone, and 02 and 03 stopped at the missing files)."""
    import rollouts
    from parallel import ProcessPool
    from tqdm import tqdm

    save = np.save  # the frames are written into their file directly; np.save writes the three small files

    def interrupted(path, array):
        os.kill(os.getpid(), signal.SIGINT)
        save(path, array)

    monkeypatch.setattr(rollouts.np, "save", interrupted)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if run in background
    try:
        with pytest.raises(KeyboardInterrupt):  # one worker: the episode is played in this process
            with ProcessPool(1, rollouts.rollout) as pool, tqdm(total=1, disable=True) as progress:
                rollouts.write_batch(pool, [rollouts.RolloutTask("car_racing", 0, 5, False, None)], 0, str(tmp_path),
                                     progress)
    finally:
        signal.signal(signal.SIGINT, before)
    assert sorted(name for name in os.listdir(tmp_path) if name.endswith(".npy")) == [
        f"{kind}_data_car_racing_0.npy" for kind in ("action", "done", "length", "obs")]
    assert temporaries(tmp_path) == []
    assert np.load(tmp_path / "length_data_car_racing_0.npy").tolist() == [5]
    assert np.load(tmp_path / "obs_data_car_racing_0.npy").shape == (1, 5, 64, 64, 3)


def test_quiet_wait_returns_on_the_childs_end_on_a_signal_and_on_its_timeout():
    """QuietWait (05's parent waiting on mpiexec): the exit status once the child ends, None at once when a signal
    arrives (its handler has run), None after the timeout; it never answers before one of those."""
    import time

    from processes import QuietWait
    from tests.scripts import popen

    child = popen([sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(3)"], stdin=subprocess.PIPE)
    arrived = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: arrived.append(signum))
    waiter = QuietWait(child)
    try:
        started = time.monotonic()
        assert waiter.wait(0.3) is None and time.monotonic() - started >= 0.29  # the timeout
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        started = time.monotonic()
        assert waiter.wait(60) is None and arrived == [signal.SIGUSR1]  # the signal, long before the timeout
        assert time.monotonic() - started < 30
        child.stdin.close()
        assert waiter.wait(60) == 3  # the child's end
    finally:
        waiter.close()
        signal.signal(signal.SIGUSR1, previous)
        child.kill()
        child.wait()
    assert signal.set_wakeup_fd(-1) == -1  # close() put the earlier wakeup fd back


# A child that starts a grandchild burning a known CPU time and leaves without waiting for it (once told to, by the
# file argv[3]): the grandchild is never waited for by anyone below us, as the ranks of an MPI run a stop aborts.
_BURNER = """
import os, sys, time
start = time.process_time()
while time.process_time() - start < 1.0:
    pass
with open(sys.argv[1] + '.tmp', 'w') as out:
    out.write(str(os.getpid()))
os.replace(sys.argv[1] + '.tmp', sys.argv[1])
time.sleep(300)
"""
_LEAVER = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]])
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
os._exit(0)
"""


def test_run_stage_counts_descendants_nobody_waited_for(tmp_path):
    """recipe.run.run_stage counts the CPU time of a grandchild that burnt 1.0 s and was never waited for: getrusage
    alone (RUSAGE_CHILDREN) misses it, which made a stopped 05 count only its parent's seconds."""
    import resource

    from processes import TreeCpu
    from recipe.run import run_stage

    marker, leave = tmp_path / "burnt", tmp_path / "leave"
    tree, counted = TreeCpu(interval=0.05), []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    stage = threading.Thread(target=lambda: counted.append(run_stage(
        [sys.executable, "-c", _LEAVER, _BURNER, str(marker), str(leave)], str(tmp_path), counted.append, tree)))
    stage.start()
    try:
        wait_for(lambda: tree.seconds >= 1.0, what="a sample of the grandchild's 1.0 s")
        leave.touch()
        stage.join(timeout=120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        assert waited < 1.0, waited  # what getrusage alone would have counted: the leaving child only
        seconds, status = counted
        assert status == 0 and seconds == tree.seconds and 1.0 <= seconds < 1.0 + waited + 0.5
    finally:
        leave.touch()
        wait_for(marker.exists, what="the grandchild's pid")
        os.kill(int(marker.read_text()), signal.SIGKILL)
