"""Output folders (files.py) tried on the real scripts: a full disk and a read-only folder (a small tmpfs, where this
machine lets the test mount one), an output folder below a regular file (fails for root too), and two runs on one
set of files (issue 14, item 4).

Waits poll against a deadline; nothing sleeps for a fixed time to let something happen.
"""

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from cli import UserError
from files import save_json
from npyio import save_npy, save_npy_set
from tests.scripts import popen, run, start, wait_for
from tests.test_processes import ROLLOUTS, assert_one_line, frames_data, mounted_tmpfs, rnn_data, temporaries
from tests.test_training import BASE, TRAIN, world_model


# --- full, read-only and impossible output folders ------------------------------------------------------------------

@pytest.mark.slow
def test_01_on_a_full_disk_fails_with_one_line_and_removes_its_temporary_file(tmp_path):
    """Before: the memory-mapped batch file died with SIGBUS ("Bus error") and left its .tmp- file on the disk."""
    with mounted_tmpfs(tmp_path / "small", "1m") as disk:
        result = run("01_generate_data.py", "car_racing", "--total_episodes", 2, "--batch_size", 2, "--time_steps",
                     100, "--num_workers", 2, "--data_dir", disk, cwd=tmp_path, check=False, timeout=120)
        assert result.returncode == 1, result.stderr
        assert_one_line(result.stderr, f"error: cannot write to {disk}: the disk is full")
        assert temporaries(disk) == []
        assert not [name for name in os.listdir(disk) if name.endswith(".npy")]  # nothing half-written


@pytest.mark.slow
@pytest.mark.parametrize("script, setup, flag", [("02_train_vae.py", frames_data, "--vae_dir"),
                                                 ("04_train_rnn.py", rnn_data, "--rnn_dir")])
def test_02_04_on_a_full_disk_fail_with_one_line_before_training(tmp_path, script, setup, flag):
    """Before: Keras's HDF5 save met the full disk after the first file's training, and 02 segfaulted at exit."""
    setup(tmp_path)
    with mounted_tmpfs(tmp_path / "small", "1m") as disk:
        result = run(script, "--epochs", 1, "--verbose", 0, "--batch_size", 4, flag, disk, cwd=tmp_path,
                     check=False, timeout=300)
        assert result.returncode == 1, result.stderr
        assert_one_line(result.stderr, f"error: cannot write to {disk}: the disk is full (")
        assert "epoch 1" not in result.stdout  # refused before training
        assert temporaries(disk) == []


def test_save_helpers_name_the_folder_of_a_full_or_read_only_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "small", "64k") as disk:
        with pytest.raises(UserError, match=f"^cannot write to {disk}: the disk is full$"):
            save_npy(str(disk / "big.npy"), np.zeros(1_000_000, np.uint8))
        assert os.listdir(disk) == []  # the temporary file is gone
    with mounted_tmpfs(tmp_path / "read_only", "64k", read_only=True) as disk:
        with pytest.raises(UserError, match=f"^cannot write to {disk}: the file system is read-only$"):
            save_json(str(disk / "history.json"), [1, 2])


def test_a_set_of_files_on_a_full_disk_is_left_as_it_was(tmp_path):
    """03 rewrites a batch's six files (after V is retrained): the fourth meeting a full disk left the first three
    new beside three old, which 04 trained on without a word. Now none is replaced."""
    old = {str(tmp_path / f"{kind}.npy"): np.full(10, 1.0) for kind in ("mu", "logvar", "input")}
    for path, array in old.items():
        save_npy(path, array)
    new = dict(zip(old, (np.full(10, 2.0), np.full(10, 2.0), np.zeros(1_000_000, np.uint8))))
    with mounted_tmpfs(tmp_path / "small", "256k") as disk:
        moved = {str(disk / os.path.basename(path)): array for path, array in old.items()}
        for path, array in moved.items():
            save_npy(path, array)
        with pytest.raises(UserError, match=f"^cannot write to {disk}: the disk is full$"):
            save_npy_set(dict(zip(moved, new.values())))
        for path in moved:
            np.testing.assert_array_equal(np.load(path), np.full(10, 1.0))  # every file as it was
        assert sorted(os.listdir(disk)) == ["input.npy", "logvar.npy", "mu.npy"]  # no temporary file left
    save_npy_set(new)  # and where there is room, the set is written
    assert [float(np.load(path)[0]) for path in new] == [2.0, 2.0, 0.0]


@pytest.mark.slow
def test_a_read_only_output_folder_is_named_before_any_work(tmp_path):
    with mounted_tmpfs(tmp_path / "read_only", "64k", read_only=True) as disk:
        result = run("01_generate_data.py", *ROLLOUTS, "--data_dir", disk, cwd=tmp_path, check=False)
        assert result.returncode == 1
        assert_one_line(result.stderr, f"error: cannot write to {disk}: the file system is read-only")
        assert "rollouts:" not in result.stderr  # no progress bar: refused before the first episode


@pytest.mark.slow
@pytest.mark.parametrize("script, args, setup", [
    ("01_generate_data.py", ["car_racing", "--total_episodes", 1, "--data_dir"], None),
    ("02_train_vae.py", ["--vae_dir"], frames_data),
    ("04_train_rnn.py", ["--rnn_dir"], rnn_data),
    ("05_train_controller.py", [*TRAIN, "--log_dir"], world_model),
    ("model.py", ["car_racing", "--final_mode", "--num_episode", 1, "--max_length", 10, "--log_dir"], world_model),
])
def test_an_output_folder_that_cannot_exist_is_named_before_any_work(tmp_path, script, args, setup):
    """A folder below a regular file cannot be made, even by root (ENOTDIR): each stage says so in one line at the
    start (02 used to train for its first file and then fail with a traceback)."""
    if setup is not None:
        setup(tmp_path)
    (tmp_path / "blocker").write_text("a file, not a folder")
    started = time.time()
    result = run(script, *args, "blocker/out", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert_one_line(result.stderr, "error: cannot write to blocker/out: a part of the path is a file, not a folder")
    assert "parameters" not in result.stdout and "episode" not in result.stderr  # no model built, nothing played
    assert time.time() - started < 60


@pytest.mark.slow
def test_03_with_a_read_only_data_folder_is_named_before_loading_v(tmp_path):
    """03 reads and writes ./data: its inputs are there, but the folder takes no new file."""
    with mounted_tmpfs(tmp_path / "data", "4m") as disk:
        frames_data(tmp_path, episodes=2, steps=5)
        (tmp_path / "vae").mkdir()
        (tmp_path / "vae" / "car_racing.weights.h5").write_bytes(b"not read: the check comes first")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = run("03_generate_rnn_data.py", cwd=tmp_path, check=False, timeout=120)
        assert result.returncode == 1
        assert_one_line(result.stderr, "error: cannot write to ./data: the file system is read-only")


# --- one run per set of files ----------------------------------------------------------------------------------------

HOLD_LOCK = ("import sys, time; sys.path.insert(0, sys.argv[1]); import files; files.lock_outputs(sys.argv[2], "
             "sys.argv[3]); print('held', flush=True); time.sleep(120)")


@pytest.mark.slow
@pytest.mark.parametrize("script, args, setup, folder, base", [
    ("02_train_vae.py", [], frames_data, "vae", "car_racing"),
    ("03_generate_rnn_data.py", [], frames_data, "data", "rnn_data_car_racing"),
    ("04_train_rnn.py", [], rnn_data, "rnn", "car_racing"),
])
def test_a_second_run_of_02_03_04_on_the_same_files_is_refused_at_once(tmp_path, script, args, setup, folder, base):
    """The lock of each stage's outputs, held by another process (as a running stage holds it)."""
    import sys

    from tests.scripts import ROOT

    setup(tmp_path)
    if script.startswith("03"):
        (tmp_path / "vae").mkdir()
        (tmp_path / "vae" / "car_racing.weights.h5").write_bytes(b"not read: the lock comes first")
    holder = popen([sys.executable, "-c", HOLD_LOCK, ROOT, f"./{folder}", base], cwd=tmp_path,
                   stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        result = run(script, *args, cwd=tmp_path, check=False, timeout=120)
    finally:
        holder.kill()
        holder.communicate()
    assert result.returncode == 1
    assert_one_line(result.stderr, f"error: ./{folder}/{base} is in use by another run (pid {holder.pid}: ")
    assert "VAE for" not in result.stdout and "MDN-RNN for" not in result.stdout  # refused before any training



@pytest.mark.slow
def test_a_second_05_run_on_the_same_files_is_refused_naming_the_first(tmp_path):
    world_model(tmp_path)
    first = start("05_train_controller.py", *TRAIN, cwd=tmp_path)
    checkpoint = tmp_path / "controller" / f"{BASE}.es.pk"
    wait_for(lambda: checkpoint.exists() or first.poll() is not None, what="the first run's checkpoint")
    assert first.poll() is None, first.communicate()
    lock = (tmp_path / "controller" / f".{BASE}.lock").read_text()
    live = tmp_path / "controller" / f".tmp-{BASE}.es.pk-live"  # as if the first run were saving right now
    live.write_bytes(b"being written")
    try:
        second = run("05_train_controller.py", *TRAIN, "--generations", 1, cwd=tmp_path, check=False, timeout=120)
        assert second.returncode == 1
        assert_one_line(second.stderr, f"error: ./controller/{BASE} is in use by another run")
        assert lock.strip() in second.stderr and "05_train_controller.py car_racing" in lock  # pid and command
        assert live.exists()  # a refused run deletes nothing, not even what looks like a stale temporary file
        resumed = run("05_train_controller.py", *TRAIN, "--generations", 1, "--init_opt", checkpoint, cwd=tmp_path,
                      check=False, timeout=120)
        assert resumed.returncode == 1 and "in use by another run" in resumed.stderr  # nor can a resume join it
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    result = run("05_train_controller.py", *TRAIN, "--generations", 1, "--init_opt", checkpoint, cwd=tmp_path)
    assert "resuming" in result.stdout  # the lock died with the first run
    assert not live.exists()  # now that nobody writes it, the temporary file is stale: removed


@pytest.mark.slow
def test_a_killed_save_of_05_is_cleaned_up_by_the_next_run_of_its_base_only(tmp_path):
    world_model(tmp_path)
    (tmp_path / "controller").mkdir()
    (tmp_path / "log").mkdir()
    own = [tmp_path / "controller" / f".tmp-{BASE}.es.pk-abcd1234", tmp_path / "log" / f".tmp-{BASE}.png-x1y2.png"]
    other = [tmp_path / "controller" / f".tmp-{BASE}0.es.pk-abcd1234",  # population 40: another run's file
             tmp_path / "controller" / ".tmp-car_racing.cma.1.8.best.json-zz"]
    for path in own + other:
        path.write_bytes(b"x" * 1000)
    run("05_train_controller.py", *TRAIN, "--generations", 1, cwd=tmp_path)
    assert [path.exists() for path in own] == [False, False]
    assert [path.exists() for path in other] == [True, True]
