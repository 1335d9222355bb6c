"""The optimizers' checkpoint (.es.pk): an .npz of float64 arrays and one JSON header, written whole
(save_optimizer) and rebuilt from checked values, never unpickled (load_optimizer); es.py's docstring describes
the file."""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np

from cli import UserError
from evolution.cmaes import CMAES
from evolution.ga import SimpleGA
from evolution.gradient import PEPG, Adam, OpenES
from evolution.strategy import EvolutionStrategy, _get
from files import atomic_path
from reading import CHECKPOINT_BYTES, LOG_JSON_BYTES, NpzArchive, finite_number, open_regular, parse_json, short_repr

FILE_FORMAT = "world-models-es-optimizer"  # marker inside every .es.pk file this module writes
FILE_VERSION = 3  # 1 was a pickle (refused since: a crafted pickle can run code); 2 and 3 are .npz + JSON
READABLE_VERSIONS = (2, 3)  # 3 added CMAES's TPA and active fields; a version-2 CMAES resumes as CSA, positive weights

_CLASSES = {cls.__name__: cls for cls in (CMAES, OpenES, PEPG, SimpleGA)}
_PARTS = {"adam": Adam}  # objects inside an optimizer, stored as "<part>.<field>" and rebuilt from their FIELDS
_HEADER = "header"  # the archive member holding the JSON text (as UTF-8 bytes in a uint8 array)
_ARRAY_PREFIX = "optimizer."  # archive members holding the optimizer's arrays, "optimizer.<field>"
_ARRAY_KINDS = ("vector", "positive vector", "matrix", "population", "half_population", "rows")
_NPY_HEADER_BYTES = 4096  # an .npy member's own header is far smaller
_ZIP_MAGIC = b"PK\x03\x04"


class _Invalid(Exception):
    """The file's contents do not make an optimizer state; the message says which field is wrong."""


def _put(optimizer: EvolutionStrategy, name: str, value) -> None:
    """Set the field `name` (one of our FIELDS, never a name from the file) on a rebuilt optimizer."""
    target = optimizer
    for part in name.split(".")[:-1]:
        if not hasattr(target, part):
            setattr(target, part, _PARTS[part].__new__(_PARTS[part]))
        target = getattr(target, part)
    setattr(target, name.split(".")[-1], value)


_MAX_COUNT = 1_000_000  # parameters or population of a stored optimizer: beyond any run, below a MemoryError


def _array_shape(kind: str, num_params: int, popsize: int, rows: int) -> tuple[int, ...]:
    return {"vector": (num_params,), "positive vector": (num_params,), "matrix": (num_params, num_params),
            "population": (popsize, num_params), "half_population": (popsize // 2, num_params),
            "rows": (rows, num_params)}[kind]


def _is_int(value) -> bool:
    return type(value) is int  # not bool, not float


def _checked_value(name: str, kind: str, value):
    """A JSON value of the optimizer's field `name`, checked against its kind."""
    if kind == "count":
        if not (_is_int(value) and 0 <= value < 2 ** 63):
            raise _Invalid(f"{name} must be a non-negative integer, got {short_repr(value)}")
        return value
    if kind == "bool":
        if type(value) is not bool:
            raise _Invalid(f"{name} must be true or false, got {value!r}")
        return value
    if kind == "reward":  # -inf (nothing told yet) is stored as null
        if value is None:
            return -math.inf
        kind = "float"
    if kind in ("float", "positive"):
        if finite_number(value) is None:
            raise _Invalid(f"{name} must be a finite number, got {short_repr(value)}")
        if kind == "positive" and not value > 0:
            raise _Invalid(f"{name} must be positive, got {value!r}")
        return float(value)
    if kind == "rng":
        return _checked_generator(name, value)
    raise AssertionError(f"unknown field kind {kind!r}")


def _checked_generator(name: str, value) -> np.random.Generator:
    """A PCG64 generator from its stored state: four integers, nothing else."""
    if not (isinstance(value, dict) and set(value) == {"bit_generator", "state", "has_uint32", "uinteger"}
            and value["bit_generator"] == "PCG64" and isinstance(value["state"], dict)
            and set(value["state"]) == {"state", "inc"}
            and all(_is_int(v) and 0 <= v < 2 ** 128 for v in value["state"].values())
            and value["has_uint32"] in (0, 1) and _is_int(value["has_uint32"])
            and _is_int(value["uinteger"]) and 0 <= value["uinteger"] < 2 ** 32):
        raise _Invalid(f"{name} is not the state of a PCG64 random generator")
    bit_generator = np.random.PCG64()
    bit_generator.state = value
    return np.random.Generator(bit_generator)


def _checked_array(name: str, kind: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if array.dtype != np.float64 or array.shape != shape:
        raise _Invalid(f"{name} is a {array.dtype} array of shape {array.shape}, expected float64 {shape}")
    if not np.all(np.isfinite(array)):
        raise _Invalid(f"{name} holds non-finite values")
    if kind == "positive vector" and not np.all(array > 0):
        raise _Invalid(f"{name} must be positive")
    return np.array(array)  # a writable copy


def _state_of(optimizer: EvolutionStrategy) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON values, arrays) of every field in the optimizer's FIELDS; a non-finite value raises ValueError."""
    values, arrays = {}, {}
    for name, kind in type(optimizer).FIELDS.items():
        value, kind = _get(optimizer, name), kind.rstrip("?")
        if value is None:
            continue
        if kind in _ARRAY_KINDS:
            array = np.asarray(value, dtype=np.float64)
            if not np.all(np.isfinite(array)):
                raise ValueError(f"the optimizer's {name} holds non-finite values; a checkpoint keeps finite numbers "
                                 f"only (the search diverged: lower --sigma_init?)")
            arrays[_ARRAY_PREFIX + name] = array
        elif kind == "rng":
            values[name] = value.bit_generator.state
        elif kind == "reward":
            values[name] = None if value == -math.inf else float(value)
        else:
            values[name] = value
    return values, arrays


def save_optimizer(path: str, optimizer: EvolutionStrategy, state: dict) -> None:
    """Write `optimizer` and the caller's `state` (JSON data) to the one file `path`, whole.

    The file is an uncompressed NumPy .npz archive: a member "header" with the JSON text {"format", "version",
    "optimizer": class name, "values": the optimizer's numbers and generator state, "state": `state`} and one
    float64 array "optimizer.<field>" per array field. It is written to a temporary file beside `path` and renamed
    onto it, so `path` always holds a complete state. A `state` that is not JSON data (or holds NaN or infinity)
    raises ValueError, and the previous file stays as it was.
    """
    if not isinstance(optimizer, EvolutionStrategy) or type(optimizer).__name__ not in _CLASSES:
        raise ValueError(f"save_optimizer needs an optimizer from make_optimizer, got {type(optimizer).__name__}")
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict of JSON data, got {type(state).__name__}")
    values, arrays = _state_of(optimizer)
    header = {"format": FILE_FORMAT, "version": FILE_VERSION, "optimizer": type(optimizer).__name__,
              "values": values, "state": state}
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"state for {path} is not JSON data ({error}); keep it to numbers, strings, lists, dicts, "
                         f"true/false and null") from None
    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(temporary, **{_HEADER: np.frombuffer(text.encode(), dtype=np.uint8)}, **arrays)


def _read_header(archive: NpzArchive, path: str) -> dict:
    if _HEADER not in archive.names:
        raise _Invalid("it has no header")
    if archive.member_size(_HEADER) > LOG_JSON_BYTES:
        raise _Invalid(f"its header is {archive.member_size(_HEADER)} bytes")
    array = archive.array(_HEADER)
    if array.dtype != np.uint8 or array.ndim != 1:
        raise _Invalid("its header is not JSON text")
    return parse_json(array.tobytes(), path, "an optimizer state (its header)", "resume from another file")


def _rebuild(path: str) -> tuple[EvolutionStrategy, dict]:
    """Read and check everything; raises _Invalid with what is wrong. Nothing from the file is called or imported:
    the class comes from a fixed table, the fields from that class's own FIELDS, the values are numbers. The
    archive is read bounded (reading.NpzArchive): np.savez stores its members, so a compressed one is refused."""
    with NpzArchive(path, CHECKPOINT_BYTES, "delete it or resume from another file", stored_only=True) as archive:
        members = {name + ".npy": name for name in archive.names}
        header = _read_header(archive, path)
        if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
            raise _Invalid(f"it has no {FILE_FORMAT!r} marker")
        if header.get("version") not in READABLE_VERSIONS:
            raise _Invalid(f"it is format version {header.get('version')!r}; this code reads versions "
                           f"{', '.join(map(str, READABLE_VERSIONS))}")
        if set(header) != {"format", "version", "optimizer", "values", "state"}:
            raise _Invalid(f"its header has the keys {sorted(header)}")
        cls = _CLASSES.get(header["optimizer"]) if isinstance(header["optimizer"], str) else None
        if cls is None:
            raise _Invalid(f"it names the optimizer {header['optimizer']!r}; known: {', '.join(_CLASSES)}")
        values, state = header["values"], header["state"]
        if not isinstance(values, dict) or not isinstance(state, dict):
            raise _Invalid("its values or state are not objects")
        if header["version"] == 2:  # fields added since: the values of the optimizer that wrote the file
            values = {**getattr(cls, "VERSION_2_DEFAULTS", {}), **values}

        kinds = {name: kind.rstrip("?") for name, kind in cls.FIELDS.items()}
        array_names = {name for name, kind in kinds.items() if kind in _ARRAY_KINDS}
        optional = {name for name, kind in cls.FIELDS.items() if kind.endswith("?")}
        expected = set(kinds) - array_names
        if set(values) != expected:
            raise _Invalid(f"its {cls.__name__} values are {sorted(values)}, expected {sorted(expected)}")
        stored = {name[len(_ARRAY_PREFIX):-len(".npy")] for name in members if name.startswith(_ARRAY_PREFIX)}
        unknown = set(members) - {_HEADER + ".npy"} - {_ARRAY_PREFIX + name + ".npy" for name in array_names}
        if unknown or not (array_names - optional) <= stored:
            raise _Invalid(f"its arrays are {sorted(stored)}, expected {sorted(array_names)}")

        optimizer = cls.__new__(cls)
        for name in sorted(values):
            _put(optimizer, name, _checked_value(name, kinds[name], values[name]))
        if not (1 <= optimizer.num_params <= _MAX_COUNT and 2 <= optimizer.popsize <= _MAX_COUNT):
            raise _Invalid(f"num_params {optimizer.num_params} or popsize {optimizer.popsize} is out of range (1 and 2 "
                           f"to {_MAX_COUNT:,})")
        for name in sorted(array_names):
            if name not in stored:
                _put(optimizer, name, None)
                continue
            size = archive.member_size(_ARRAY_PREFIX + name)
            largest = _array_shape(kinds[name], optimizer.num_params, optimizer.popsize, rows=optimizer.popsize)
            if size > 8 * int(np.prod(largest)) + _NPY_HEADER_BYTES:  # checked before reading
                raise _Invalid(f"{name} is {size} bytes, more than a float64 {largest} array")
            array = archive.array(_ARRAY_PREFIX + name)  # its .npy header checked against its size first
            shape = largest
            if kinds[name] == "rows" and array.ndim == 2 and 1 <= array.shape[0] <= optimizer.popsize:
                shape = (array.shape[0], optimizer.num_params)  # SimpleGA's elite: 1..popsize rows
            _put(optimizer, name, _checked_array(name, kinds[name], array, shape))
    problem = optimizer._problem()
    if problem:
        raise _Invalid(problem)
    optimizer._derive()
    return optimizer, state


def load_optimizer(path: str) -> tuple[EvolutionStrategy, dict]:
    """Read (optimizer, state) from a file `save_optimizer` wrote.

    A missing, truncated or corrupt file, a file of anything else, or one whose fields are missing, unknown, of the
    wrong type or shape, or not finite raises a one-line UserError naming `path`. Nothing in the file is executed:
    it is read as a zip of .npy arrays (allow_pickle=False) and JSON. A pickle (what this project's checkpoints
    were before version 2) is refused without being unpickled.
    """
    if not os.path.exists(path):
        raise UserError(f"{path} is missing: no optimizer state to resume from")
    with open_regular(path, CHECKPOINT_BYTES, "resume from another file") as handle:
        magic = handle.read(4)
    if magic != _ZIP_MAGIC:
        if magic[:1] == b"\x80" and path.endswith(".es.pk"):  # a pickle of protocol 2 or later
            best = path[: -len(".es.pk")] + ".best.json"
            raise UserError(f"{path} is a pickle, the checkpoint format of older versions of this project; it is not "
                            f"read because a crafted pickle can run code. Go on from that run's best controller: "
                            f"start a new run with --init_params {best}")
        raise UserError(f"{path} is not an optimizer state written by this project (not an .npz archive)")
    try:
        return _rebuild(path)
    except _Invalid as invalid:
        raise UserError(f"{path} is not a valid optimizer state: {invalid}; refusing to load it") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:  # truncated or damaged archive
        raise UserError(f"{path} is truncated or corrupt ({type(error).__name__}: {error}); "
                        f"delete it or resume from another file") from None
