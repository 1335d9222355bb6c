"""Every file the project reads is bounded before it is parsed (issue 31, items 2, 3, 4 and 9): a FIFO, a device or
an oversized file is refused before a byte is read, JSON nested past the parser's depth is one line, an .npy header
or a zip member that declares more than its file holds is refused before anything is allocated or decompressed, and
checkpoint values that would fail later are refused at load. The readers are tested directly, then the scripts as
users run them, for one line and a non-zero exit."""

import contextlib
import io
import json
import os
import threading
import zipfile

import numpy as np
import pytest

import es
import reading
from cli import UserError
from controller import leader as leading
from controller.training import MAX_NEXT_SEED, new_state, take_seeds
from tests.scripts import ROOT, run
from tests.test_controller_training import RETRAIN, Leader
from tests.test_es import NUM_PARAMS
from tests.test_es_checkpoint import _archive, _checkpoint, _npy, _npy_claiming, _valid_members
from tests.test_finite_and_flags import refused
from tests.test_training_state import DREAM_STATE, damaged, load_state
from tests.test_training import world_model

NESTED = "[" * 100_000 + "]" * 100_000  # deeper than json.loads can go: a RecursionError before the fix


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


@contextlib.contextmanager
def fifo_at(path, unblock_after=30.0):
    """A FIFO at `path`, with no writer. A reader that opens it and waits for a writer (the bug) is released after
    `unblock_after` seconds by a writer that closes at once (the reader sees an empty file), so the test fails
    instead of hanging: at the end of the block, the FIFO must not have had a reader waiting on it."""
    os.mkfifo(path)
    waited = threading.Event()

    def release():
        with contextlib.suppress(OSError):  # ENXIO: nobody is waiting on it, as it should be
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            waited.set()

    timer = threading.Timer(unblock_after, release)
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()
    assert not waited.is_set(), f"{path} was opened and waited on for a writer"


def _header_checkpoint(header_bytes: bytes, compression=zipfile.ZIP_STORED) -> bytes:
    """An .es.pk archive whose header member holds `header_bytes` as its JSON text."""
    return _archive({"header.npy": _npy(np.frombuffer(header_bytes, dtype=np.uint8))}, compression)


# --- the readers -----------------------------------------------------------------------------------------------------

def test_nested_json_is_one_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(NESTED)
    assert "nested too deeply" in _error(reading.read_json, str(path), reading.PARAMS_JSON_BYTES, "a file", "fix it")


def test_what_is_not_a_regular_file_is_refused_without_reading(tmp_path):
    device, folder = tmp_path / "zero", tmp_path / "folder"
    device.symlink_to("/dev/zero")  # endless bytes
    folder.mkdir()
    with fifo_at(tmp_path / "fifo") as fifo:  # no writer: a plain open() would wait for one for ever
        assert "is a FIFO (named pipe), not a regular file; fix it" in _error(reading.read_bytes, str(fifo), 100,
                                                                              "fix it")
    assert "is a character device, not a regular file" in _error(reading.read_bytes, str(device), 100, "fix it")
    assert "is a folder" in _error(reading.read_bytes, str(folder), 100, "fix it")
    assert "does not exist" in _error(reading.read_bytes, str(tmp_path / "nowhere"), 100, "fix it")


def test_a_file_over_its_kinds_cap_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "0, " * 100 + "0]")
    assert "303 bytes, more than such a file can be (100 bytes)" in _error(reading.read_json, str(path), 100, "x", "y")
    assert reading.read_json(str(path), 303, "x", "y") == [0] * 101


def test_an_npy_header_that_declares_a_terabyte_is_refused_before_allocation(tmp_path):
    path = tmp_path / "claims.npy"
    path.write_bytes(_npy_claiming((10 ** 12,), np.uint8))  # 8 bytes of data
    for mmap in (False, True):
        assert "declares a uint8 array of shape (1000000000000,), more than its" in _error(
            reading.read_npy, str(path), reading.DATA_NPY_BYTES, "remake it", mmap=mmap)


def test_an_npy_file_round_trips_read_whole_and_mapped(tmp_path):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "a.npy", array)
    for mmap in (False, True):
        np.testing.assert_array_equal(reading.read_npy(str(tmp_path / "a.npy"), 1 << 20, "", mmap=mmap), array)
    assert reading.npy_shape(str(tmp_path / "a.npy"), 1 << 20, "") == ((2, 3, 4), np.dtype(np.float32))


def test_a_zip_bomb_member_is_refused_before_it_is_decompressed(tmp_path):
    """20 MB of whitespace deflates to 20 KB (1000:1): refused from its declared sizes, nothing inflated."""
    path = tmp_path / "bomb.npz"
    path.write_bytes(_archive({"w.npy": _npy(np.zeros(1, np.float32))[:-4] + b" " * 20_000_000},
                              zipfile.ZIP_DEFLATED))
    assert path.stat().st_size < 100_000
    message = _error(reading.NpzArchive, str(path), reading.WEIGHTS_BYTES, "remake it")
    assert "member 'w.npy' declares 19 MB from" in message and "(a zip bomb?); remake it" in message


def test_an_npz_of_compressed_weights_still_loads(tmp_path):
    """np.savez_compressed's members (float weights deflate about 1.1:1) are not bombs."""
    weights = {"a": np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)}
    np.savez_compressed(tmp_path / "w.npz", **weights)
    with reading.NpzArchive(str(tmp_path / "w.npz"), reading.WEIGHTS_BYTES, "") as archive:
        np.testing.assert_array_equal(archive.array("a"), weights["a"])


def test_keras_weights_that_declare_gigabytes_in_kilobytes_are_refused(tmp_path):
    """HDF5 fills a dataset's unwritten chunks with its fill value: 4 GB of float32 in a file of a few KB, which
    Keras's load_weights would read whole."""
    import h5py

    path = tmp_path / "car_racing.weights.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", shape=(10 ** 9,), dtype="f4", chunks=True, compression="gzip")
    assert path.stat().st_size < 100_000
    message = _error(reading.check_h5, str(path), reading.WEIGHTS_BYTES, "remake it")
    assert "declares 3,815 MB of weights in a file of" in message and message.endswith("; remake it")


# --- 05's checkpoint -------------------------------------------------------------------------------------------------

def _load(tmp_path, data: bytes) -> str:
    path = tmp_path / "run.es.pk"
    path.write_bytes(data)
    message = _error(es.load_optimizer, str(path))
    assert message.startswith(str(path))
    return message


def test_a_checkpoint_with_a_nested_header_is_one_line(tmp_path):
    assert "nested too deeply" in _load(tmp_path, _header_checkpoint(NESTED.encode()))


def test_a_checkpoint_whose_header_declares_a_terabyte_is_refused(tmp_path):
    """Before: numpy's _ArrayMemoryError (a traceback) from the header's declared shape."""
    header = _npy_claiming((10 ** 12,), np.uint8)
    assert "declares a uint8 array of shape (1000000000000,)" in _load(tmp_path, _archive({"header.npy": header}))


def test_a_checkpoint_with_a_deflated_header_of_whitespace_is_refused(tmp_path):
    """Before: inflated (900 MB took 2.8 GB and 33 s) and accepted. np.savez stores every member."""
    header, arrays = _valid_members()
    text = json.dumps(header).encode() + b" " * 20_000_000
    data = _checkpoint(header, arrays)
    with zipfile.ZipFile(io.BytesIO(data)) as original:
        members = {name: original.read(name) for name in original.namelist()}
    members["header.npy"] = _npy(np.frombuffer(text, dtype=np.uint8))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, member in members.items():
            archive.writestr(name, member, zipfile.ZIP_DEFLATED if name == "header.npy" else zipfile.ZIP_STORED)
    assert len(buffer.getvalue()) < 200_000
    assert "member 'header.npy' is compressed" in _load(tmp_path, buffer.getvalue())


def test_a_fifo_as_a_checkpoint_is_refused_at_once(tmp_path):
    with fifo_at(tmp_path / "run.es.pk") as fifo:
        assert "is a FIFO (named pipe), not a regular file" in _error(es.load_optimizer, str(fifo))


def _with_values(name="cma", **changes) -> bytes:
    header, arrays = _valid_members(name)
    return _checkpoint({**header, "values": {**header["values"], **changes}}, arrays)


def _with_arrays(**changes) -> bytes:
    header, arrays = _valid_members()
    return _checkpoint(header, {**arrays, **{f"optimizer.{key}": value for key, value in changes.items()}})


@pytest.mark.parametrize("data, message", [
    # before: a generation was played, then the save failed on a NaN (the generation lost)
    (lambda: _with_arrays(cov=-np.eye(NUM_PARAMS)), "cov is not positive definite"),
    (lambda: _with_arrays(cov=np.eye(NUM_PARAMS) + np.triu(np.ones((NUM_PARAMS, NUM_PARAMS)), 1)),
     "cov is not symmetric"),
    (lambda: _with_arrays(eigenbasis=2 * np.eye(NUM_PARAMS)), "eigenbasis is not orthonormal"),
    (lambda: _with_values(tpa_s=1e300), "tpa_s must be from -1 to 1"),
    (lambda: _with_values(weight_decay=-0.5), "weight_decay must be 0 or more"),
    (lambda: _with_values("openes", **{"adam.beta1": 1.0}), "adam.beta1 must be from 0 to below 1"),
    (lambda: _with_values("openes", sigma_decay=0.0), "sigma_decay must be above 0 and at most 1"),
    (lambda: _with_values("ga", sigma_limit=-1.0), "sigma_limit must be 0 or more"),
    (lambda: _with_values("pepg", sigma_max_change=1.0), "sigma_max_change must be from 0 to below 1"),
])
def test_checkpoint_values_that_would_fail_later_are_refused_at_load(tmp_path, data, message):
    assert message in _load(tmp_path, data())


def test_every_stored_checkpoint_still_loads():
    """The ranges hold for what real runs wrote (runs/: CMA-ES after up to 182 generations)."""
    import glob

    paths = sorted(glob.glob(f"{ROOT}/runs/**/*.es.pk", recursive=True))
    assert len(paths) >= 5
    for path in paths:
        optimizer, state = es.load_optimizer(path)
        assert optimizer._problem() is None and state["generation"] >= 1


@pytest.mark.parametrize("next_seed", [2 ** 64 + 5, 2 ** 63 - 2, MAX_NEXT_SEED + 1])
def test_a_next_seed_past_what_seeds_may_take_is_refused_at_load(next_seed):
    """2**64 + 5 was an OverflowError traceback in the first generation; 2**63 - 2 wrapped to negative seeds that
    reached Gymnasium."""
    with pytest.raises(UserError, match=r"holds the next episode seed .*, outside 0\.\.9223372032559808512"):
        load_state(damaged(next_seed=next_seed))
    assert load_state(damaged(next_seed=MAX_NEXT_SEED)).next_seed == MAX_NEXT_SEED


def test_every_seed_a_run_takes_is_a_valid_one():
    state = new_state("car_racing", "cma", 4, 1, 2 ** 63 - 3, "zh")  # past MAX_NEXT_SEED: only by 2^32 episodes
    assert take_seeds(state, 3).tolist() == [2 ** 63 - 3, 2 ** 63 - 2, 2 ** 63 - 1]
    with pytest.raises(UserError, match="has used every episode seed"):
        take_seeds(state, 1)


@pytest.mark.parametrize("key, value", [("population", 1), ("num_episode", 0), ("elapsed_s", -1.0)])
def test_state_counts_out_of_range_are_refused(key, value):
    with pytest.raises(UserError, match=f"holds {key} .*, less than"):
        load_state(damaged(**{key: value}))
    assert DREAM_STATE[key] != value


def test_a_resume_of_a_checkpoint_without_a_kernel_record_says_it_may_not_replay(tmp_path, monkeypatch, capsys):
    """Checkpoints written before the kernels were recorded (runs/car_racing/table1/z) went on in silence."""
    first = Leader(world_model(tmp_path / "run"), monkeypatch, *RETRAIN)
    first.generation(capsys)
    path = first.run.files.checkpoint
    optimizer, state = es.load_optimizer(path)
    del state["blas_kernel"]  # as an older version wrote it
    es.save_optimizer(path, optimizer, state)
    resumed = Leader(tmp_path / "run", monkeypatch, *RETRAIN, "--init_opt", path)
    leading.lead(resumed.run, resumed.pool, 1)
    assert (f"note: {path} does not say which BLAS kernels its generations ran (older versions did not record them) "
            f"and this machine runs Haswell: the run goes on, but may not replay as it would have with the kernels "
            f"of the machine that wrote it" in capsys.readouterr().out)
    assert es.load_optimizer(path)[1]["blas_kernel"] == "Haswell"  # recorded from now on


# --- the scripts, as users run them ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("make", ["nested", "fifo"])
def test_model_py_refuses_a_nested_or_fifo_controller_in_one_line(tmp_path, make):
    path = tmp_path / "c.best.json"
    if make == "nested":
        path.write_text(NESTED)
    else:
        os.mkfifo(path)
    result = run("model.py", "car_racing", "--filename", path, cwd=tmp_path, check=False, timeout=120)
    refused(result, str(path), "nested too deeply" if make == "nested" else "is a FIFO", "05_train_controller.py")


@pytest.mark.slow
@pytest.mark.parametrize("flag, make, phrase", [
    ("--init_params", "nested", "nested too deeply"),
    ("--init_opt", "fifo", "is a FIFO (named pipe), not a regular file"),
    ("--init_opt", "nested header", "nested too deeply"),
])
def test_05_refuses_a_nested_or_fifo_start_in_one_line(tmp_path, flag, make, phrase):
    world_model(tmp_path)
    path = tmp_path / "start"
    if make == "nested":
        path.write_text(NESTED)
    elif make == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(_header_checkpoint(NESTED.encode()))
    result = run("05_train_controller.py", *RETRAIN, flag, path, cwd=tmp_path, check=False, timeout=120)
    refused(result, str(path), phrase)


def _shipped_copy(tmp_path, manifest=None):
    """pretrained/car_racing/ as links to the shipped files, in tmp_path/root (its manifest copied or replaced)."""
    source, folder = os.path.join(ROOT, "pretrained", "car_racing"), tmp_path / "root" / "car_racing"
    for relative in ("vae/car_racing.npz", "rnn/car_racing.npz", "controller/car_racing.best.json",
                     "data/rnn_initial_car_racing_0.npy"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).symlink_to(os.path.join(source, relative))
    with open(os.path.join(source, "manifest.json")) as handle:
        (folder / "manifest.json").write_text(manifest if manifest is not None else handle.read())
    return folder


@pytest.mark.slow
def test_pretrained_verify_refuses_a_controller_linked_to_dev_zero(tmp_path):
    folder = _shipped_copy(tmp_path)
    assert run("pretrained.py", "verify", "car_racing", "--root", tmp_path / "root", cwd=tmp_path).returncode == 0
    controller = folder / "controller" / "car_racing.best.json"
    controller.unlink()
    controller.symlink_to("/dev/zero")  # before: hashed for ever
    refused(run("pretrained.py", "verify", "car_racing", "--root", tmp_path / "root", cwd=tmp_path, check=False,
                timeout=120), str(controller), "is a character device, not a regular file; git checkout it again")


@pytest.mark.slow
def test_pretrained_verify_and_pack_refuse_nested_json_in_one_line(tmp_path):
    _shipped_copy(tmp_path, manifest=NESTED)
    refused(run("pretrained.py", "verify", "car_racing", "--root", tmp_path / "root", cwd=tmp_path, check=False,
                timeout=120), "manifest.json is not a manifest of a pretrained car_racing agent", "nested too deeply")
    (tmp_path / "d.final.json").write_text(NESTED)
    refused(run("pretrained.py", "pack", "car_racing", "--filename", "c.best.json", "--final", "d.final.json",
                "--root", tmp_path / "packed", cwd=tmp_path, check=False, timeout=120),
            "d.final.json is not a .final.json: its JSON is nested too deeply")
    assert not (tmp_path / "packed").exists()


def test_a_fifo_in_place_of_dooms_engine_launcher_is_written_over(tmp_path, monkeypatch):
    """The launcher script envs/doom.py writes into ./_vizdoom and reads back to see if it is current."""
    import vizdoom

    from envs.doom import _write_and_try_launcher

    monkeypatch.chdir(tmp_path)
    (tmp_path / "_vizdoom").mkdir()
    with fifo_at(tmp_path / "_vizdoom" / "launch_engine.sh"):
        launcher = _write_and_try_launcher(os.path.join(os.path.dirname(vizdoom.__file__), "vizdoom"))
    assert launcher == os.path.join("_vizdoom", "launch_engine.sh") and os.path.isfile(launcher)
