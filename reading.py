"""Reading the files the project is given, bounded: every file is checked to be a regular file and no larger than
its kind's cap before a byte of it is parsed, and at most that many bytes are read.

A file may come from anyone, so size and time are bounded before any parser sees it: a FIFO, /dev/zero or a link to
a device is refused at once (opened with O_NONBLOCK, so a FIFO without a writer cannot hang the open, then checked
with fstat); JSON nested deeper than the parser can go is refused (json.loads raises RecursionError on it); an
.npy header that declares more data than its file holds is refused before NumPy allocates it; a zip member's
declared size and compression ratio are checked before it is decompressed. Every refusal is a UserError of one line
that names the file and says what to do (`fix`, given by the caller, who knows which command remakes it).

    read_json(path, limit, what, fix)      -> the parsed value
    read_npy(path, limit, fix, mmap=...)   -> an array (memory-mapped read-only with mmap)
    npy_shape(path, limit, fix)            -> (shape, dtype) from the header alone
    NpzArchive(path, limit, fix)           -> .names, .array(name): the members of an .npz, each checked
    check_file(path, limit, fix)           -> the size of a file another library opens (hashlib)
    check_h5(path, limit, fix)             -> None, after checking a Keras .weights.h5 file before Keras opens it
    finite_number(value)                   -> a number read from JSON as a finite float, or None
    short_repr(value)                      -> a value read from a file, cut short for an error line

Nothing here imports TensorFlow; NumPy is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from typing import IO, TYPE_CHECKING

from cli import UserError

if TYPE_CHECKING:
    import numpy as np

MiB = 1 << 20
GiB = 1 << 30
# The caps by kind, each far above what the project writes (in parentheses) and far below what would hurt.
PARAMS_JSON_BYTES = 16 * MiB  # a controller's [params, score] (25 KB for Doom's 1,088 parameters)
SMALL_JSON_BYTES = 16 * MiB  # a manifest, a .final.json (a few KB: 100 scores, the commands, the hashes)
LOG_JSON_BYTES = 256 * MiB  # .hist.json, .log.json, .history.json and a checkpoint's header: they grow with a run
# (150 KB after 300 generations; a .log.json row holds the evaluated parameters)
CHECKPOINT_BYTES = 1 * GiB  # 05's .es.pk (33 MB: CMA-ES's two n x n matrices for n = 1,440)
WEIGHTS_BYTES = 1 * GiB  # V's or M's .npz and Keras .weights.h5 (17 MB and 52 MB)
DATA_NPY_BYTES = 1 << 40  # an .npy of rollouts or encoded sequences (700 MB a batch): the user's own data, as large
# as their disk; what bounds it is that no header may declare more than its file holds
MAX_COMPRESSION_RATIO = 100  # a zip member's declared size over its stored size (float weights deflate ~1.1:1;
# a bomb of repeated bytes, ~1000:1)

_ZIP_MAGIC = b"PK\x03\x04"


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _size_words(size: int) -> str:
    return f"{size:,} bytes" if size < 10 * MiB else f"{size / MiB:,.0f} MB"


def open_regular(path: str, limit: int, fix: str) -> IO[bytes]:
    """`path` opened for reading in binary, after checking that it is a regular file of at most `limit` bytes."""
    try:
        # O_NONBLOCK: opening a FIFO for reading waits for a writer otherwise; on a regular file it changes nothing
        handle = open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK))
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; {fix}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a file; {fix}") from None
    except OSError as error:
        raise UserError(f"cannot read {path} ({error.strerror or error}); {fix}") from None
    try:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise UserError(f"{path} is {_kind_of(status.st_mode)}, not a regular file; {fix}")
        if status.st_size > limit:
            raise UserError(f"{path} is {_size_words(status.st_size)}, more than such a file can be "
                            f"({_size_words(limit)}); {fix}")
    except BaseException:
        handle.close()
        raise
    return handle


def check_file(path: str, limit: int, fix: str) -> int:
    """The size of `path` after checking it is a regular file of at most `limit` bytes: for a file another library
    opens by name (h5py, hashlib)."""
    with open_regular(path, limit, fix) as handle:
        return os.fstat(handle.fileno()).st_size


def check_h5(path: str, limit: int, fix: str) -> None:
    """Check a Keras .weights.h5 file before Keras reads it: a regular file of at most `limit` bytes whose datasets
    declare no more than `limit` bytes in all, nor MAX_COMPRESSION_RATIO times the file's size (HDF5 datasets may be
    compressed, and Keras reads each one whole)."""
    import h5py

    size = check_file(path, limit, fix)
    declared = []

    def count(name, item):
        if isinstance(item, h5py.Dataset):
            declared.append(item.size * item.dtype.itemsize)

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(count)
    except (OSError, ValueError, KeyError, RuntimeError) as error:  # h5py's errors on a foreign or damaged file
        raise UserError(f"{path} is corrupt or not a Keras weights file ({type(error).__name__}); {fix}") from None
    total = sum(declared)
    if total > min(limit, MAX_COMPRESSION_RATIO * max(size, 1)):
        raise UserError(f"{path} declares {_size_words(total)} of weights in a file of {_size_words(size)}; {fix}")


def read_bytes(path: str, limit: int, fix: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (one that grows while it is read is refused too)."""
    with open_regular(path, limit, fix) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as error:
            raise UserError(f"cannot read {path} ({error.strerror or error}); {fix}") from None
    if len(data) > limit:
        raise UserError(f"{path} grew past {_size_words(limit)} while it was read; {fix}")
    return data


def parse_json(data: bytes, path: str, what: str, fix: str) -> object:
    """JSON text (UTF-8 bytes) -> its value; anything else, nesting too deep for the parser included, is one line."""
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:  # '[' * 100000: the parser recurses once a level
        raise UserError(f"{path} is not {what}: its JSON is nested too deeply; {fix}") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4,300 digits
        raise UserError(f"{path} is not JSON, so not {what} ({str(error)[:80]}); {fix}") from None


def read_json(path: str, limit: int, what: str, fix: str) -> object:
    """The value in the JSON file `path` (at most `limit` bytes); `what` names the kind of file in the error."""
    return parse_json(read_bytes(path, limit, fix), path, what, fix)


def _npy_header(handle: IO[bytes], size: int, path: str, fix: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, offset of the data) of the .npy file open in `handle` (`size` bytes from its
    current position), after checking that the declared data fits in those bytes: NumPy allocates the declared
    shape before it reads, and a header of a few bytes can ask for a terabyte."""
    import numpy as np

    start = handle.tell()
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]}, this project reads 1.0 and 2.0")
    except (ValueError, EOFError, OSError, SyntaxError) as error:
        raise UserError(f"{path} is corrupt or not a .npy file ({type(error).__name__}: {str(error)[:80]}); "
                        f"{fix}") from None
    if dtype.hasobject:
        raise UserError(f"{path} holds Python objects, which are never read (loading them could run code); {fix}")
    offset = handle.tell() - start
    count = 1
    for length in shape:
        count *= length
    if count * dtype.itemsize > size - offset:
        raise UserError(f"{path} declares a {dtype} array of shape {shape}, more than its {_size_words(size)} "
                        f"hold; {fix}")
    return shape, fortran_order, dtype, offset


def npy_shape(path: str, limit: int, fix: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of an .npy file, read from its header alone."""
    with open_regular(path, limit, fix) as handle:
        shape, _, dtype, _ = _npy_header(handle, os.fstat(handle.fileno()).st_size, path, fix)
    return shape, dtype


def read_npy(path: str, limit: int, fix: str, mmap: bool = False) -> np.ndarray:
    """The array in an .npy file of at most `limit` bytes: memory-mapped read-only with `mmap` (a 700 MB batch of
    frames costs nothing until its pages are touched), else read whole."""
    import numpy as np

    with open_regular(path, limit, fix) as handle:
        size = os.fstat(handle.fileno()).st_size
        if handle.read(4) == _ZIP_MAGIC:
            raise UserError(f"{path} is an .npz archive, not a .npy file; {fix}")
        handle.seek(0)
        shape, fortran_order, dtype, offset = _npy_header(handle, size, path, fix)
        order = "F" if fortran_order else "C"
        try:
            if mmap and size > offset:  # (mmap cannot map nothing: an empty array is read)
                return np.memmap(handle, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
            count = 1
            for length in shape:
                count *= length
            data = np.fromfile(handle, dtype=dtype, count=count)
        except (ValueError, OSError) as error:
            raise UserError(f"cannot read {path} ({type(error).__name__}: {str(error)[:80]}); {fix}") from None
        if data.size != count:
            raise UserError(f"{path} is truncated; {fix}")
        return data.reshape(shape, order=order)


class NpzArchive:
    """The members of an .npz archive (a zip of .npy files), opened bounded: the archive is a regular file of at
    most `limit` bytes, each member is stored or DEFLATED, declares no more than `limit` bytes in all and at most
    MAX_COMPRESSION_RATIO times its stored size, and its .npy header fits its declared size; all checked before a
    member is decompressed. zipfile then reads no more than the declared size.

        with NpzArchive(path, limit, fix) as archive:
            archive.names            # member names without ".npy", in the archive's order
            archive.array(name)      # (checked) ndarray
    """

    def __init__(self, path: str, limit: int, fix: str, stored_only: bool = False):
        self.path, self.fix = path, fix
        self.handle = open_regular(path, limit, fix)
        try:
            size = os.fstat(self.handle.fileno()).st_size
            try:
                self.zip = zipfile.ZipFile(self.handle)
                infos = self.zip.infolist()
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as error:
                raise UserError(f"{path} is corrupt: truncated, damaged or not an .npz archive "
                                f"({type(error).__name__}: {str(error)[:80]}); {fix}") from None
            total = 0
            allowed = (zipfile.ZIP_STORED,) if stored_only else (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
            for info in infos:
                if info.compress_type not in allowed:
                    how = "not stored as np.savez writes it" if stored_only else "neither stored nor DEFLATED"
                    raise UserError(f"{path}: member {info.filename!r} is compressed ({how}); {fix}")
                ratio_limit = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_COMPRESSION_RATIO
                if info.compress_size > size or info.file_size > ratio_limit * max(info.compress_size, 1):
                    raise UserError(f"{path}: member {info.filename!r} declares {_size_words(info.file_size)} "
                                    f"from {_size_words(info.compress_size)} stored in a file of "
                                    f"{_size_words(size)} (a zip bomb?); {fix}")
                total += info.file_size
            if total > limit:
                raise UserError(f"{path} unpacks to {_size_words(total)}, more than such a file can hold "
                                f"({_size_words(limit)}); {fix}")
        except BaseException:
            self.handle.close()
            raise
        self.members = {info.filename: info for info in infos}
        self.names = [name[:-len(".npy")] if name.endswith(".npy") else name for name in self.members]

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.zip.close()
        self.handle.close()

    def member_size(self, name: str) -> int:
        """The declared (uncompressed) size of member `name` (without ".npy")."""
        return self.members[name + ".npy"].file_size

    def array(self, name: str) -> np.ndarray:
        """The array of member `name` (without ".npy"), its header checked against its declared size first."""
        import numpy as np

        info = self.members.get(name + ".npy", self.members.get(name))
        if info is None:
            raise UserError(f"{self.path} has no member {name!r}; {self.fix}")
        where = f"{self.path} (member {name})"
        try:
            with self.zip.open(info) as member:
                _npy_header(member, info.file_size, where, self.fix)
            with self.zip.open(info) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        except UserError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as error:
            raise UserError(f"{where} is corrupt: truncated or damaged ({type(error).__name__}: {str(error)[:80]}); "
                            f"{self.fix}") from None



def finite_number(value: object) -> float | None:
    """A number read from JSON as a finite float, or None: NaN, infinity, an integer beyond float64 (JSON integers
    have no limit; float() would raise OverflowError), true/false, a string, a list or null."""
    if type(value) not in (int, float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def short_repr(value: object, limit: int = 40) -> str:
    """A value read from a file, for an error line, cut to `limit` characters (a crafted file may hold a
    4,000-digit integer)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
