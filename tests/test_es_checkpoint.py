"""es.py's checkpoints (evolution/checkpoint.py): exact round trips, and checkpoints that are data: hostile files
(pickle gadgets, pickles inside the archive, injected fields, wrong shapes, non-finite values) are refused without
running anything."""

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

import es
from cli import UserError
from evolution.checkpoint import _state_of
from tests.scripts import run_command
from tests.test_es import CLASSES, NUM_PARAMS, run, sphere

# ---- checkpoints ------------------------------------------------------------------------------------------------

STATE = {"generation": 4, "best_score": 12.5, "next_seed": 1234, "note": "resumed", "best_params": None,
         "history": [[1, 0.5, -3.0], [2, 0.7, -2.0]], "nested": {"flags": [True, False, None], "tiny": 1e-300}}


def assert_same_optimizer(loaded: es.EvolutionStrategy, original: es.EvolutionStrategy):
    assert type(loaded) is type(original)
    for _ in range(2):  # the next asks agree bit for bit, and keep agreeing after the same tell
        asked, asked_after_load = original.ask(), loaded.ask()
        assert asked.tobytes() == asked_after_load.tobytes()
        original.tell(sphere(asked))
        loaded.tell(sphere(asked_after_load))
    for field in es.Result._fields:
        np.testing.assert_array_equal(getattr(loaded.result(), field), getattr(original.result(), field))
    np.testing.assert_array_equal(loaded.current_param(), original.current_param())


@pytest.mark.parametrize("name", list(CLASSES))
def test_checkpoint_round_trip_is_exact(tmp_path, name):
    path = str(tmp_path / f"car_racing.{name}.1.8.es.pk")
    original = run(es.make_optimizer(name, NUM_PARAMS, 8, seed=3), 4)
    es.save_optimizer(path, original, STATE)
    loaded, state = es.load_optimizer(path)
    assert state == STATE
    assert_same_optimizer(loaded, original)


@pytest.mark.parametrize("name", list(CLASSES))
def test_checkpoint_between_ask_and_tell_round_trips(tmp_path, name):
    """The pending population (and CMA-ES's steps, PEPG's perturbations, OpenES's noise) is part of the state."""
    path = str(tmp_path / "run.es.pk")
    original = run(es.make_optimizer(name, NUM_PARAMS, 8, seed=3), 2)
    asked = original.ask()
    es.save_optimizer(path, original, {})
    loaded, _ = es.load_optimizer(path)
    original.tell(sphere(asked))
    loaded.tell(sphere(asked))
    assert_same_optimizer(loaded, original)


def test_cma_checkpoint_keeps_the_eigendecomposition(tmp_path):
    """Past an eigendecomposition B and D differ from C's current eigenvectors: both are stored, so a resumed run
    samples exactly as the original does."""
    optimizer = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.5, seed=1), 29)  # B and D from generation 27's C
    assert optimizer.eigen_generation > 0 and optimizer.eigen_generation < optimizer.generation
    path = str(tmp_path / "run.es.pk")
    es.save_optimizer(path, optimizer, {})
    assert_same_optimizer(es.load_optimizer(path)[0], optimizer)


@pytest.mark.parametrize("between_ask_and_tell", [False, True])
def test_tpa_checkpoint_round_trip_is_exact(tmp_path, between_ask_and_tell):
    """TPA's state (its smoothed rank difference and the last mean shift, the next line test) is stored."""
    path = str(tmp_path / "run.es.pk")
    original = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.5, seed=3, step_size="tpa"), 5)
    assert original.tpa_s != 0 and original.mean_shift is not None
    asked = original.ask() if between_ask_and_tell else None
    es.save_optimizer(path, original, {})
    loaded, _ = es.load_optimizer(path)
    assert loaded.tpa and loaded.active and loaded.tpa_s == original.tpa_s
    if between_ask_and_tell:
        original.tell(sphere(asked))
        loaded.tell(sphere(asked))
    assert_same_optimizer(loaded, original)


def test_a_version_2_checkpoint_resumes_as_the_optimizer_that_wrote_it(tmp_path):
    """Version-2 files predate TPA and active updates (runs trained with CSA and positive weights, such as the
    shipped CarRacing checkpoints): they load without the new fields and resume exactly as that optimizer."""
    original = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.5, seed=3, step_size="csa", active=False), 3)
    values, arrays = _state_of(original)
    for name in ("tpa", "active", "tpa_s"):
        del values[name]
    header = {"format": es.FILE_FORMAT, "version": 2, "optimizer": "CMAES", "values": values, "state": {"g": 3}}
    path = tmp_path / "old.es.pk"
    path.write_bytes(_checkpoint(header, arrays))
    loaded, state = es.load_optimizer(str(path))
    assert state == {"g": 3} and not loaded.tpa and not loaded.active
    assert loaded.describe() == "step size by CSA, positive-weight covariance update"
    assert_same_optimizer(loaded, original)
    header["version"] = 3  # the same fields written as version 3 lack what version 3 requires
    path.write_bytes(_checkpoint(header, arrays))
    with pytest.raises(UserError, match="expected"):
        es.load_optimizer(str(path))


def test_checkpoint_loads_in_a_fresh_process(tmp_path):
    path = str(tmp_path / "car_racing.cma.1.8.es.pk")
    original = run(es.CMAES(NUM_PARAMS, 8, seed=3), 4)
    es.save_optimizer(path, original, {"generation": 4})
    script = ("import sys, numpy as np, es; optimizer, state = es.load_optimizer(sys.argv[1]); "
              "assert state == {'generation': 4}; np.save(sys.argv[2], optimizer.ask())")
    asked_path = str(tmp_path / "asked.npy")
    result = run_command([sys.executable, "-c", script, path, asked_path], cwd=os.path.dirname(es.__file__))
    assert result.returncode == 0, result.stderr
    assert np.load(asked_path).tobytes() == original.ask().tobytes()


def test_a_checkpoint_is_an_npz_of_float_arrays_and_json(tmp_path):
    path = str(tmp_path / "run.es.pk")
    es.save_optimizer(path, run(es.CMAES(NUM_PARAMS, 8), 2), {"generation": 2})
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
        assert header["format"] == es.FILE_FORMAT and header["optimizer"] == "CMAES"
        assert header["state"] == {"generation": 2}
        assert archive["optimizer.cov"].shape == (NUM_PARAMS, NUM_PARAMS)
        assert all(archive[key].dtype == np.float64 for key in archive.files if key != "header")


def test_saving_writes_one_whole_file_and_replaces_the_old_one(tmp_path):
    path = tmp_path / "run.ga.1.8.es.pk"
    optimizer = run(es.SimpleGA(NUM_PARAMS, 8), 2)
    es.save_optimizer(str(path), optimizer, {"generation": 2})
    run(optimizer, 1)
    es.save_optimizer(str(path), optimizer, {"generation": 3})
    assert os.listdir(tmp_path) == [path.name]  # no temporary files left beside it
    assert es.load_optimizer(str(path))[1] == {"generation": 3}


@pytest.mark.parametrize("state, message", [
    ({"generation": 1, "callback": os.getcwd}, "not JSON data"),
    ({"score": float("nan")}, "not JSON data"),
    ({"seeds": np.arange(3)}, "not JSON data"),
])
def test_a_state_that_is_not_json_data_is_refused_at_save_and_the_old_file_kept(tmp_path, state, message):
    path = tmp_path / "run.openes.1.8.es.pk"
    optimizer = es.OpenES(NUM_PARAMS, 8)
    es.save_optimizer(str(path), optimizer, {"generation": 0})
    before = path.read_bytes()
    with pytest.raises(ValueError, match=message):
        es.save_optimizer(str(path), optimizer, state)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_a_diverged_optimizer_is_refused_at_save(tmp_path):
    optimizer = es.CMAES(NUM_PARAMS, 8)
    optimizer.mean[3] = np.inf
    with pytest.raises(ValueError, match="mean holds non-finite values"):
        es.save_optimizer(str(tmp_path / "run.es.pk"), optimizer, {})
    assert os.listdir(tmp_path) == []


# ---- hostile checkpoints: refused, and nothing runs ----------------------------------------------------------------

class _Call:
    """Pickles as a call of `function(*arguments)`: what a malicious pickle would contain."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _dotted_global_pickle(module: str, name: str, argument: str) -> bytes:
    """Protocol-4 opcodes for `module.name(argument)`, where `name` may be dotted (pickle.dumps cannot write it)."""
    def text(value: str) -> bytes:
        return pickle.SHORT_BINUNICODE + bytes([len(value)]) + value.encode()

    return (pickle.PROTO + b"\x04" + text(module) + text(name) + pickle.STACK_GLOBAL + text(argument)
            + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)


def _generator_ctor_gadget(command: str) -> bytes:
    """NumPy's generator constructor calls the bit-generator "name" it is given: the gadget the old loader let in."""
    import numpy.random._pickle as numpy_pickle

    return pickle.dumps(_Call(getattr(numpy_pickle, "__generator_ctor"), _Call(os.system, command)))


def _archive(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npy_claiming(shape: tuple, dtype=np.float64) -> bytes:
    """An .npy file whose header declares `shape` but which holds 8 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(8)


def _valid_members(name="cma", **changes) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and arrays of a real checkpoint, to be tampered with."""
    optimizer = run(es.make_optimizer(name, NUM_PARAMS, 8, seed=0), 2)
    values, arrays = _state_of(optimizer)
    header = {"format": es.FILE_FORMAT, "version": es.FILE_VERSION, "optimizer": type(optimizer).__name__,
              "values": values, "state": {"generation": 2}}
    header.update(changes)
    return header, arrays


def _checkpoint(header: dict, arrays: dict[str, np.ndarray], extra: dict[str, bytes] | None = None,
                compression=zipfile.ZIP_STORED) -> bytes:
    members = {"header.npy": _npy(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))}
    members.update({f"{key}.npy": _npy(value) for key, value in arrays.items()})
    members.update(extra or {})
    return _archive(members, compression)


def _hostile_files(marker) -> dict[str, bytes]:
    touch = f"touch {marker}"
    call = _Call(os.system, touch)
    header, arrays = _valid_members()
    object_array = np.empty(1, dtype=object)
    object_array[0] = call

    def with_values(**changes):
        return _checkpoint({**header, "values": {**header["values"], **changes}}, arrays)

    return {
        # pickles, of every protocol: refused before a byte is unpickled
        "pickle: os.system": pickle.dumps(call),
        "pickle: builtins.eval": pickle.dumps(_Call(eval, f"open({str(marker)!r}, 'w').close()")),
        "pickle: subprocess.Popen": pickle.dumps(_Call(subprocess.Popen, ["touch", str(marker)])),
        "pickle: dotted name through es": _dotted_global_pickle("es", "os.system", touch),
        "pickle: protocol 0 os.system": pickle.dumps(call, protocol=0),
        "pickle: protocol 1 os.system": pickle.dumps(call, protocol=1),
        "pickle: numpy generator constructor": _generator_ctor_gadget(touch),
        "pickle: an old-format checkpoint": pickle.dumps({"format": es.FILE_FORMAT, "version": 1, "optimizer": call}),
        # pickles inside the archive: np.load with allow_pickle=False refuses object arrays
        "object array as the header": _archive({"header.npy": _npy(object_array)}),
        "object array as the mean": _checkpoint(header, {**arrays, "optimizer.mean": object_array}),
        # field and class injection
        "an unknown optimizer class": _checkpoint({**header, "optimizer": "os.system"}, arrays),
        "the abstract base class": _checkpoint({**header, "optimizer": "EvolutionStrategy"}, arrays),
        "an injected attribute": with_values(__class__="os.system"),
        "an injected method": with_values(_derive=1),
        "an injected array": _checkpoint(header, {**arrays, "optimizer.__dict__": np.zeros(3)}),
        "an archive member outside the fields": _checkpoint(header, arrays, {"../../evil.npy": b"x"}),
        "a missing array": _checkpoint(header, {k: v for k, v in arrays.items() if k != "optimizer.cov"}),
        "another bit generator": with_values(rng={"bit_generator": "MT19937", "state": {"key": [0], "pos": 0}}),
        "a generator state of strings": with_values(rng={**header["values"]["rng"], "has_uint32": "0"}),
        # wrong types, shapes and numbers
        "a string popsize": with_values(popsize="8"),
        "a boolean count": with_values(generation=True),
        "a population of one": with_values(popsize=1),
        "a negative step size": with_values(sigma=-0.5),
        "a NaN weight decay": _checkpoint({**header, "values": {**header["values"], "weight_decay": float("nan")}},
                                          arrays),
        "a float32 mean": _checkpoint(header, {**arrays, "optimizer.mean": arrays["optimizer.mean"].astype("f4")}),
        "a mean of the wrong shape": _checkpoint(header, {**arrays, "optimizer.mean": np.zeros(NUM_PARAMS + 1)}),
        "an infinite covariance": _checkpoint(header, {**arrays, "optimizer.cov": np.full((10, 10), np.inf)}),
        "a zero eigenvalue": _checkpoint(header, {**arrays, "optimizer.eigenvalues_sqrt": np.zeros(NUM_PARAMS)}),
        "an integer beyond float64": with_values(sigma=10 ** 400),
        "a huge population": with_values(popsize=2 ** 40),
        "a huge declared size": _checkpoint({**header, "values": {**header["values"], "num_params": 10 ** 9}},
                                            arrays),
        "a compressed member": _checkpoint(header, arrays, compression=zipfile.ZIP_DEFLATED),
        # a small member whose header asks for 800 GB: NumPy would allocate it before reading (MemoryError)
        "a header that declares a huge shape": _checkpoint(
            header, {k: v for k, v in arrays.items() if k != "optimizer.mean"},
            {"optimizer.mean.npy": _npy_claiming((10 ** 11,))}),
        "the header not an object": _checkpoint([1, 2], {}),  # type: ignore[arg-type]
        "a state that is not an object": _checkpoint({**header, "state": [1]}, arrays),
    }


HOSTILE = list(_hostile_files("marker"))


@pytest.mark.parametrize("attack", HOSTILE)
def test_hostile_checkpoints_are_refused_without_running(tmp_path, attack, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.chdir(tmp_path)  # a relative path in a gadget would land here
    path = tmp_path / "evil.es.pk"
    path.write_bytes(_hostile_files(marker)[attack])
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UserError) as error:
        es.load_optimizer(str(path))
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert not marker.exists()
    assert sorted(os.listdir(tmp_path)) == before  # nothing extracted or written


def test_the_gadgets_are_real(tmp_path):
    """The control: a plain unpickler runs them (so the test above can fail)."""
    marker = tmp_path / "marker"
    pickle.loads(_hostile_files(marker)["pickle: os.system"])
    assert marker.exists()
    marker.unlink()
    with pytest.raises(Exception):  # the generator constructor calls os.system, then fails on its result
        pickle.loads(_generator_ctor_gadget(f"touch {marker}"))
    assert marker.exists()


def test_an_old_pickle_checkpoint_is_refused_with_the_way_to_go_on(tmp_path):
    path = tmp_path / "car_racing.cma.4.32.es.pk"
    path.write_bytes(pickle.dumps({"format": es.FILE_FORMAT, "version": 1}))
    with pytest.raises(UserError, match="is a pickle, the checkpoint format of older versions") as error:
        es.load_optimizer(str(path))
    assert f"--init_params {tmp_path / 'car_racing.cma.4.32.best.json'}" in str(error.value)


def test_calling_an_archive_extractor_through_pickle_is_refused(tmp_path):
    """A crafted old checkpoint extracted a tar archive into the working directory through pycma's utilities."""
    archive, marker, target = tmp_path / "archive.tar.gz", "marker", tmp_path / "extracted"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo(marker), io.BytesIO(b""))
    crafted = pickle.dumps(_Call(shutil.unpack_archive, str(archive), str(target)))
    pickle.loads(crafted)  # the control: a plain unpickler extracts it
    assert (target / marker).exists()
    shutil.rmtree(target)
    path = tmp_path / "evil.es.pk"
    path.write_bytes(crafted)
    with pytest.raises(UserError):
        es.load_optimizer(str(path))
    assert not target.exists()


def _truncated(tmp_path) -> bytes:
    path = str(tmp_path / "whole.es.pk")
    es.save_optimizer(path, run(es.CMAES(NUM_PARAMS, 8), 2), {"generation": 2})
    data = open(path, "rb").read()
    os.remove(path)
    return data[: len(data) // 2]


@pytest.mark.parametrize("contents, message", [
    ("truncated", "is corrupt: truncated"),
    ("random bytes", "not an optimizer state"),
    ("empty", "not an optimizer state"),
    ("a zip of something else", "no header"),
    ("a header without the marker", "marker"),
    ("another version", "format version 999"),
])
def test_bad_files_give_a_user_error_naming_the_file(tmp_path, contents, message):
    header, arrays = _valid_members()
    data = {
        "truncated": lambda: _truncated(tmp_path),
        "random bytes": lambda: np.random.default_rng(0).bytes(4096),
        "empty": lambda: b"",
        "a zip of something else": lambda: _archive({"readme.txt": b"hello"}),
        "a header without the marker": lambda: _checkpoint({**header, "format": "other"}, arrays),
        "another version": lambda: _checkpoint({**header, "version": 999}, arrays),
    }[contents]()
    path = tmp_path / "bad.es.pk"
    path.write_bytes(data)
    with pytest.raises(UserError, match=message) as error:
        es.load_optimizer(str(path))
    assert str(path) in str(error.value)


def test_a_missing_file_gives_a_user_error_naming_it(tmp_path):
    path = str(tmp_path / "nowhere.es.pk")
    with pytest.raises(UserError, match="missing") as error:
        es.load_optimizer(path)
    assert path in str(error.value)
