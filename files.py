"""Files and folders: whole-file writes (atomic_path: temporary file, then rename), an output folder's lock and
the temporary files a killed run left, a full disk or a read-only folder as one line naming it (storage_error),
and the project's own folder (repo_root).

Nothing here imports NumPy or TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import json
import os
import re
import shlex
import sys
import tempfile
from typing import Iterator, Sequence

from cli import UserError


# --- output folders: writable, locked, no stale temporary files ----------------------------------------------------

STORAGE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                  errno.EDQUOT: "the disk quota is exceeded", errno.EFBIG: "the file is too large for this system",
                  errno.ENOTDIR: "a part of the path is a file, not a folder"}
_STORAGE_TEXTS = ("No space left on device", "Read-only file system", "Disk quota exceeded")  # h5py's errors


def storage_error(error: BaseException, folder: str) -> UserError | None:
    """A UserError naming `folder` if `error` says the folder cannot take a file (full, read-only, forbidden)."""
    reason = STORAGE_ERRORS.get(getattr(error, "errno", None)) if isinstance(error, OSError) else None
    if reason is None:  # h5py wraps HDF5's errors, often without errno: look for the C library's words
        text = str(error)
        reason = next((t.lower() for t in _STORAGE_TEXTS if t in text), None)
    if reason is None and isinstance(error, OSError) and error.errno is None and _nearly_full(folder):
        reason = "the disk is full"  # a short write without errno (NumPy's tofile: "N requested and M written")
    if reason is None:
        return None
    return UserError(f"cannot write to {folder}: {reason}")


def _nearly_full(folder: str) -> bool:
    """Less than a MiB left for us in `folder`'s file system (asked after a write failed, before its file goes)."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1 << 20


def check_writable(folder: str) -> None:
    """Create `folder` if needed and write (and delete) a small file in it: a full disk, a read-only or forbidden
    folder is one line naming it before any long work starts, not an OSError at the first save."""
    try:
        os.makedirs(folder, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".tmp-probe-")
        try:
            os.write(handle, b"\0" * 4096)
            os.fsync(handle)
        finally:
            os.close(handle)
            os.remove(probe)
    except OSError as error:
        raise storage_error(error, folder) or UserError(f"cannot write to {folder}: {error}") from None


_HELD_LOCKS: dict[str, int] = {}  # lock path -> open descriptor, for the life of the process


def lock_outputs(folder: str, base: str, stale: Sequence[tuple[str, str]] = ()) -> str:
    """Hold an exclusive lock on the output files `folder/base*` until this process ends; returns the lock's path.

    A second run on the same files is refused at once with one line naming the first (pid and command line, which
    the holder writes into `<folder>/.<base>.lock`); the OS releases the lock when the holder dies, however it dies,
    so a killed run never blocks the next one. Writing the holder's line is also the folder's writability check.

    While the lock is held, files matching each (folder, regular expression) of `stale` are deleted: temporary files
    (atomic_path names them .tmp-<name>-XXXX) that a killed save of this same output left behind. No other run
    can be writing them, as only the lock holder writes these outputs.
    """
    import fcntl

    path = os.path.join(folder, f".{base}.lock")
    if path in _HELD_LOCKS:
        return path
    try:
        os.makedirs(folder, exist_ok=True)
        while True:
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(handle)
                os.close(handle)
                raise UserError(f"{os.path.join(folder, base)} is in use by another run ({holder}); wait for it to "
                                f"finish or stop it") from None
            try:  # a holder that was ending may have deleted the file we opened: lock the one at `path` instead
                if os.fstat(handle).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(handle)
        os.ftruncate(handle, 0)
        line = f"pid {os.getpid()}: {shlex.join([os.path.basename(sys.executable)] + sys.argv)}\n".encode()
        os.pwrite(handle, line, 0)
        os.fsync(handle)
    except OSError as error:
        raise storage_error(error, folder) or UserError(f"cannot write to {folder}: {error}") from None
    _HELD_LOCKS[path] = handle
    for directory, pattern in stale:
        remove_stale_temporaries(directory, pattern)
    return path


def _read_holder(handle: int) -> str:
    text = os.pread(handle, 4096, 0).decode("utf-8", errors="replace").strip()
    return text or "its pid is not written yet"


def remove_stale_temporaries(folder: str, pattern: str) -> list[str]:
    """Delete the files of `folder` whose whole name matches the regular expression `pattern`; returns their names.
    Only call it while holding the lock of the outputs those temporary files belong to (lock_outputs)."""
    try:
        names = os.listdir(folder)
    except OSError:  # no such folder (nothing to remove), or one we cannot read: a later write names the problem
        return []
    removed = [name for name in names if re.fullmatch(pattern, name)]
    for name in removed:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, name))
    if removed:
        print(f"removed {len(removed)} temporary file(s) an interrupted run left in {folder}", file=sys.stderr)
    return removed


def temporaries_of(*names: str) -> str:
    """The regular expression of atomic_path's temporary files for output files named like any of `names` (regular
    expressions themselves, e.g. "car_racing[.].*"): .tmp-<name>-XXXX[suffix]."""
    return r"\.tmp-(?:" + "|".join(names) + r")-.+"


@atexit.register
def release_locks() -> None:
    """Delete and release our lock files at a normal exit (a killed process leaves the file, unlocked: harmless).
    Forked workers share the parent's descriptors but never delete them (they leave through os._exit)."""
    for path, handle in list(_HELD_LOCKS.items()):
        with contextlib.suppress(OSError):
            os.remove(path)
        with contextlib.suppress(OSError):
            os.close(handle)
        _HELD_LOCKS.pop(path, None)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure delete it.

    The rename is atomic on POSIX, so readers see either the old file or the whole new one, never a partial one; the
    new file is flushed to the disk first, so a machine that loses power mid-run does not either.
    `suffix` keeps an extension that a writer insists on (Keras wants names ending in `.weights.h5`). A full disk,
    a read-only or forbidden folder becomes a UserError naming the folder (the temporary file removed).
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path) + "-",
                                             suffix=suffix)
    except OSError as error:
        raise storage_error(error, directory) or error
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        yield temporary
        _flush_to_disk(temporary)  # before the rename: a machine that loses power keeps the old file or the new one
        os.replace(temporary, path)
        with contextlib.suppress(OSError):  # and the rename itself (some systems cannot open a folder)
            _flush_to_disk(directory)
    except BaseException as error:
        # translated before the temporary file is deleted: a full disk is seen as full only while it still is
        translated = storage_error(error, directory) if isinstance(error, Exception) else None
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        if translated is not None:
            raise translated from None
        raise


def _flush_to_disk(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def file_sha256(path: str, fix: str = "give a regular file", limit: int | None = None) -> str:
    """The sha256 of a regular file's bytes (at most `limit`, by default reading.WEIGHTS_BYTES), as hex; a FIFO, a
    device or a larger file is a UserError ending in `fix`."""
    import hashlib

    from reading import WEIGHTS_BYTES, open_regular

    digest = hashlib.sha256()
    with open_regular(path, WEIGHTS_BYTES if limit is None else limit, fix) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_json(path: str, value: object, indent: int | None = None) -> None:
    """Write one JSON file whole."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as handle:
            json.dump(value, handle, indent=indent)


def save_bytes(path: str, payload: bytes) -> None:
    """Write one binary file whole."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(payload)


def require_file(path: str, made_by: str) -> str:
    """Return `path` if it exists, else raise a UserError naming the command that makes it."""
    if not os.path.exists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    return path


@functools.lru_cache(maxsize=None)
def repo_root() -> str:
    """The folder this file lives in (the project's top level)."""
    return os.path.dirname(os.path.abspath(__file__))
