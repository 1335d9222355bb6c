"""Small shared pieces: whole-file writes, readable errors for the command lines, checked loading of .npy files.

Nothing here imports TensorFlow, so rollout workers can use it, and NumPy is imported only inside the functions that
need it, so `prepare_blas()` still works after `import utils`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import functools
import json
import math
import os
import platform
import re
import shlex
import signal
import sys
import tempfile
import threading
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

if TYPE_CHECKING:
    import numpy as np


class UserError(Exception):
    """A problem the user can fix (a missing or corrupt input, a bad flag). Printed as one line, exit status 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (a `kill`, a scheduler ending the job). A KeyboardInterrupt, so that every clean-up written for
    Ctrl-C (temporary files removed, rollout workers stopped) runs for it too."""


_sigterm_received = False


def _raise_terminated(signum, frame) -> None:
    global _sigterm_received
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up of the first
    _sigterm_received = True
    raise Terminated()


class HelpWithDefaults(argparse.HelpFormatter):
    """--help with every flag's default: "(default: X)" follows a help text that does not name its default itself,
    for a flag whose default is a value (not None, "" or [], which each help text explains, nor a switch's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if (text == argparse.SUPPRESS or "default" in text.lower() or default is False or default in (None, "", [])
                or default == argparse.SUPPRESS):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


class ArgumentParser(argparse.ArgumentParser):
    """The scripts' command-line parser: a flag is taken only as spelled in --help (argparse's default takes any
    unambiguous prefix, so a typo such as 01's `--total_episode 4` would run as --total_episodes and write over a
    batch, and model.py's `--final` would start 100 episodes), and a command line it refuses is one line,
    `error: ...` with exit status 2, without the usage text. Its --help gives every flag's default
    (HelpWithDefaults). Its subcommands' parsers are of this class too."""

    def __init__(self, *args, allow_abbrev: bool = False, formatter_class=HelpWithDefaults, **kwargs):
        super().__init__(*args, allow_abbrev=allow_abbrev, formatter_class=formatter_class, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


class StoppedPartWay(KeyboardInterrupt):
    """A Ctrl-C or SIGTERM (`stop`) that came part-way through work whose result so far is worth a word (`done`,
    e.g. "after 72 of 100 episodes: 801.20 +- 90.03 over 72"): the script's last line says both."""

    def __init__(self, stop: KeyboardInterrupt, done: str):
        super().__init__(done)
        self.stop, self.done = stop, done


def exit_line(error: BaseException) -> tuple[str, int] | None:
    """The one line and exit status with which a script ends on `error`, or None if it is a bug (a traceback)."""
    if isinstance(error, StoppedPartWay):
        line, status = exit_line(error.stop)
        return f"{line} {error.done}", status
    if isinstance(error, UserError):
        return f"error: {error}", 1
    if isinstance(error, Terminated):
        return "terminated (SIGTERM)", 128 + signal.SIGTERM
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    return None


def run_cli(main: Callable[[], object]) -> None:
    """Run a script's main(): a UserError, Ctrl-C or SIGTERM prints one line to stderr and exits non-zero (1, 130,
    143), no traceback. SIGTERM is turned into an exception (Terminated) so that it unwinds like Ctrl-C: a save under
    way removes its temporary file, and no partial file is left."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # leave a handler or an inherited SIG_IGN alone
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main()
        if _sigterm_received:  # its exception was lost (raised where Python only prints it): still not a success
            raise Terminated()
    except (UserError, KeyboardInterrupt) as error:
        line, status = exit_line(error)
        print(line, file=sys.stderr)
        sys.exit(status)


def run_child(command: Sequence[str]) -> int:
    """Run a script of ours as a child process and return its exit status. A Ctrl-C or SIGTERM that reaches us
    reaches it too, and we wait for it to stop its own way (a 05 finishes its save and prints the command that
    resumes) before raising in turn; subprocess.run killed it after a quarter of a second. SIGTERM is passed on (a
    second one changes nothing: run_cli ignores it). SIGINT is passed on unless the child is in the terminal's
    foreground group: a Ctrl-C at the terminal reached it already, and a second one could cut its clean-up short."""
    import subprocess

    child = subprocess.Popen(command, preexec_fn=dies_with_this_process())
    try:
        return child.wait()
    except KeyboardInterrupt as stop:
        try:
            if isinstance(stop, Terminated):
                child.send_signal(signal.SIGTERM)
            elif not in_terminal_foreground(child.pid):
                child.send_signal(signal.SIGINT)
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


def python_command() -> str:
    """The Python running this process as a user types it in the current folder, quoted for the shell: relative
    where it lies below the folder (.venv/bin/python), else its absolute path. Never a bare `python`: the venv's
    Python is a link to the system's, and a `python` found on PATH may lack the project's packages."""
    python = os.path.abspath(sys.executable)
    relative = os.path.relpath(python)
    if relative.startswith(os.pardir):
        return shlex.quote(python)
    return shlex.quote(relative if os.sep in relative else os.path.join(os.curdir, relative))


def in_terminal_foreground(pid: int) -> bool:
    """Whether process `pid` is in the foreground process group of our controlling terminal (the group a Ctrl-C
    typed there goes to); False without a terminal."""
    try:
        terminal = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(terminal) == os.getpgid(pid)
    except OSError:
        return False
    finally:
        os.close(terminal)


# --- short sections that signals do not cut in two ------------------------------------------------------------------

_deferred: dict | None = None  # inside signals_deferred: the handlers of Ctrl-C and SIGTERM, set aside
_noted: list[int] = []  # the signals that came meanwhile
os.register_at_fork(after_in_child=_noted.clear)  # a forked worker's own, not the ones its parent noted


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM are only noted inside the block, and the first one is handled when it ends, from here.

    For short sections that must not be cut in two. Forking workers (parallel.ProcessPool): Python runs a handler at
    the next bytecode of the main thread, and right after fork() that can be inside the interpreter's at-fork
    callbacks (logging's lock release), where the exception it raises is printed as "ignored" and lost - 01 went on
    as if never signalled and exited 0. Saving files that belong together (V's or M's Keras and NumPy weights, 03's
    files of a batch): a stop between them would leave one new and one old. Blocking the signals would not do:
    another thread (tqdm's, BLAS's) receives them instead. Outside the main thread, or when a handler was set outside
    Python (it could not be put back), the block runs as it is.
    """
    global _deferred
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    if _deferred is not None or threading.current_thread() is not threading.main_thread() or None in kept.values():
        yield  # (nested: the outer block defers them already)
        return
    _noted.clear()
    for signum in kept:
        signal.signal(signum, lambda signum, frame: _noted.append(signum))
    _deferred = kept
    try:
        yield
    finally:
        _deferred = None
        _put_back(kept)


def resume_deferred_signals(keep: Sequence[int] = ()) -> None:
    """In a process forked inside signals_deferred: put back the handlers its parent set aside (except those of the
    signals in `keep`, which the new process has set itself) and handle the first signal it noted since."""
    global _deferred
    if _deferred is not None:
        handlers, _deferred = _deferred, None
        _put_back({signum: handler for signum, handler in handlers.items() if signum not in keep})


def _put_back(handlers: dict) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
    if _noted:
        signal.raise_signal(_noted[0])


# --- processes that end together ---------------------------------------------------------------------------------

_stop_signals: list[int] = []  # note_stop_signals: the Ctrl-C and SIGTERM that came, in order
MPI_SUPERVISOR_MARKER = "WORLD_MODELS_MPI_SUPERVISOR"  # in a rank of parallel.run_under_mpi: the pid that started it


def mpi_supervisor() -> int | None:
    """The process that started this process's mpiexec (parallel.run_under_mpi), if that is how it was started."""
    supervisor = os.environ.get(MPI_SUPERVISOR_MARKER, "")
    return int(supervisor) if supervisor.isdigit() else None


def note_stop_signals(forward_to: int | None = None) -> None:
    """Ctrl-C and SIGTERM are noted from now on, never raised: stop_signal() says which came first, and the code
    that can stop cleanly asks it (05's leader between two polls of its workers). The first one is also passed to
    process `forward_to` (05's first process, which started mpiexec: it stops the whole run, whichever of the run's
    processes was signalled).

    For every process of an MPI run, set as it starts: an exception raised wherever the signal lands (a worker
    importing NumPy, waiting in MPI's broadcast, the leader sending a task) would end that process alone, and the
    others would wait for it forever."""
    def note(signum, frame) -> None:
        _stop_signals.append(signum)
        if forward_to is not None and len(_stop_signals) == 1:
            with contextlib.suppress(OSError):
                os.kill(forward_to, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, note)


def stop_signal() -> int | None:
    """The first Ctrl-C or SIGTERM noted since note_stop_signals, or None."""
    return _stop_signals[0] if _stop_signals else None


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: this process gets SIGKILL when its parent dies, however the parent dies (SIGKILL too).

    Without it, rollout workers of a killed 01 or model.py keep playing for a minute or more as orphans. The kernel
    sends the signal when the parent *thread* that forked us ends; pools fork their workers from the main thread, which
    lives as long as the parent. The parent can die before prctl takes effect: then our parent is already another
    process (init or a subreaper), and we leave at once. Other systems get only that check.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def dies_with_this_process(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child gets `signum` (SIGKILL unless told) when this process dies,
    however it dies (a killed `pretrained.py play` would otherwise leave its model.py running; model.py's ffmpeg ends
    when its input closes; reproduce.py's stages get SIGTERM, to stop their own way). prctl is looked up here, before
    the fork: the child between fork and exec only calls it."""
    parent = os.getpid()
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl

    def in_child() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:  # we died before prctl took effect
            os._exit(1)

    return in_child


def exit_on_sigterm() -> None:
    """Worker initializer: SIGTERM (a pool stopping its workers early) exits through Python (SystemExit), so the
    worker's environment is closed (VizDoom's engine process would otherwise keep running)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))


def rollout_worker_start(parent_pid: int) -> None:
    """What every rollout worker (01, model.py) does first: die with its parent, leave cleanly on SIGTERM."""
    die_with_parent(parent_pid)
    exit_on_sigterm()


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


def check_room_for_model(model, folder: str) -> None:
    """A UserError naming `folder` unless its disk has room for one more save of a Keras model's files.

    Asked before training starts and before every save: HDF5 (under Keras's save_weights) that meets a full disk
    mid-write leaves its library broken, and the process then crashes at exit (a segfault after a traceback) however
    the error is handled. A save needs its weights about four times over (the .weights.h5 holds them with Adam's two
    moments, the .npz once more), and the old files stay until the new ones are whole.
    """
    import numpy as np

    weights = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    needed = 4 * weights + (1 << 20)
    try:
        stats = os.statvfs(folder)
    except OSError:
        return  # the folder is made, and any problem named, by the save itself
    free = stats.f_bavail * stats.f_frsize
    if free < needed:
        raise UserError(f"cannot write to {folder}: the disk is full ({free / 1e6:.1f} MB free, a save of the model "
                        f"needs about {needed / 1e6:.1f} MB)")


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
    (utils.atomic_path names them .tmp-<name>-XXXX) that a killed save of this same output left behind. No other run
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


def save_npy(path: str, array: np.ndarray) -> None:
    """Write one .npy file whole (temporary file, then rename)."""
    import numpy as np

    with atomic_path(path, suffix=".npy") as temporary:
        np.save(temporary, array)


def save_npy_set(files: dict[str, np.ndarray]) -> None:
    """Write several .npy files as one set: every array to its temporary file first, then the renames, all under
    signals_deferred. A full disk or a stop part-way leaves every file as it was, never some new beside some old
    (one rewrite of a batch's files after another, from a retrained V, would have mixed the two)."""
    import numpy as np

    with signals_deferred(), contextlib.ExitStack() as renames:  # the renames run as the stack unwinds
        for path, array in files.items():
            temporary = renames.enter_context(atomic_path(path, suffix=".npy"))
            np.save(temporary, array)


def save_npz(path: str, **arrays: np.ndarray) -> None:
    """Write one uncompressed .npz file whole."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(temporary, **arrays)


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


def load_npy(path: str, made_by: str, mmap: bool = True, ndim: int | None = None,
             trailing_shape: Sequence[int] | None = None, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Open a .npy file, checking it exists, parses, and has the expected rank, trailing shape and dtype.

    `made_by` is the command that writes the file; it is named when the file is missing. With `mmap` the array is
    memory-mapped read-only, so a 700 MB frame file costs no memory until its pages are touched.
    """
    import numpy as np

    from reading import DATA_NPY_BYTES, read_npy

    if not os.path.lexists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    array = read_npy(path, DATA_NPY_BYTES, f"delete it and run again: {made_by}", mmap)
    if not array.flags.c_contiguous:  # only a foreign file: readers such as 02's read frames as raw C-order bytes
        raise UserError(f"{path} is stored in Fortran order; this project reads and writes C order: "
                        f"remake it with: {made_by}")
    if ndim is not None and array.ndim != ndim:
        raise UserError(f"{path} has shape {array.shape}, expected {ndim} dimensions; remake it with: {made_by}")
    if trailing_shape is not None and tuple(array.shape[-len(trailing_shape):]) != tuple(trailing_shape):
        raise UserError(f"{path} has shape {array.shape}, expected (..., {', '.join(map(str, trailing_shape))}); "
                        f"remake it with: {made_by}")
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise UserError(f"{path} has dtype {array.dtype}, expected {np.dtype(dtype)}; remake it with: {made_by}")
    require_finite(array, path, made_by)
    return array


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


def all_finite(array: np.ndarray, chunk_elements: int = 1 << 24) -> bool:
    """True if no element of a float array is NaN or infinite (other dtypes: always True). A memory-mapped array
    is checked a slab of its first axis at a time, so the check never holds more than a slab's mask in memory."""
    import numpy as np

    if array.dtype.kind not in "fc":
        return True
    if array.ndim == 0 or array.size <= chunk_elements:
        return bool(np.isfinite(array).all())
    rows = max(1, chunk_elements // max(1, array.size // len(array)))
    return all(bool(np.isfinite(array[start:start + rows]).all()) for start in range(0, len(array), rows))


def require_finite(array: np.ndarray, path: str, made_by: str, what: str = "") -> None:
    """A UserError naming `path` (and `what` inside it) if a float array holds NaN or infinite values: they would
    train to NaN weights or end every episode at once, and such a file is never worth running on."""
    if not all_finite(array):
        raise UserError(f"{path}{': ' + what if what else ''} holds NaN or infinite values; "
                        f"remake it with: {made_by}")


def check_lengths(lengths: np.ndarray, time_steps: int, path: str, made_by: str) -> None:
    """Episode lengths (episodes,) must be integers in 1..time_steps: a length of 0 or a negative one records no
    frame (all-zero lengths leave nothing to train on), and one beyond the file's steps reads past its end."""
    if lengths.dtype.kind not in "iu":
        raise UserError(f"{path} has dtype {lengths.dtype}, expected integer episode lengths; remake it with: "
                        f"{made_by}")
    if len(lengths) == 0:  # only a foreign file: 01 writes at least one episode a batch
        raise UserError(f"{path} holds no episodes; remake it with: {made_by}")
    if not (lengths.min() >= 1 and lengths.max() <= time_steps):
        raise UserError(f"{path} has episode lengths from {lengths.min()} to {lengths.max()}, expected 1.."
                        f"{time_steps}; remake it with: {made_by}")


def new_or_resumed(kind: str, weights_path: str, history_path: str, new_model: bool, make: Callable[[], object],
                   load: Callable[[], object]) -> tuple[object, list]:
    """The model and history a training script starts from: new (--new_model or nothing saved) or the saved one.

    A resumed model keeps its weights and Adam state and continues its history, so the epoch count goes on. The
    history is read first: one that does not parse as a list is named before the model is built, so a resume never
    silently restarts the count.
    """
    if new_model or not os.path.exists(weights_path):
        if not new_model:
            print(f"no saved {kind} at {weights_path}: starting a new model")
        return make(), []
    from reading import LOG_JSON_BYTES, read_json

    history = []
    if os.path.lexists(history_path):
        try:
            history = read_json(history_path, LOG_JSON_BYTES, "a training history", "")
        except UserError:  # unreadable, not a regular file, too large, truncated or not JSON
            history = None
    if not isinstance(history, list):
        raise UserError(f"{history_path} is corrupt (not a training history); delete it to resume {weights_path} "
                        f"with a fresh epoch count, or pass --new_model to start over")
    model = load()
    print(f"resuming from {weights_path} (weights and Adam state)")
    return model, history


def refuse_the_other_models_folder(folder: str, env_name: str, flag: str) -> None:
    """02 and 04 name their files alike (<env>.weights.h5, .npz, .history.json): a UserError if `folder` (the one
    given with `flag`, --vae_dir or --rnn_dir) holds the other model's, which this run would overwrite or fail on."""
    from reading import WEIGHTS_BYTES, NpzArchive

    ours, theirs, prefix = (("V", "M", "lstm/") if flag == "--vae_dir" else ("M", "V", "enc_conv0/"))
    path = os.path.join(folder, f"{env_name}.npz")
    if not os.path.lexists(path):
        return
    try:
        with NpzArchive(path, WEIGHTS_BYTES, "") as archive:
            names = archive.names
    except UserError:  # not an archive: the loaders name a damaged file themselves
        return
    if any(name.startswith(prefix) for name in names):
        raise UserError(f"{folder} holds {theirs}'s files ({path} is {theirs}, not {ours}): {ours} would write over "
                        f"them; give {ours} a folder of its own with {flag}")


def require_file(path: str, made_by: str) -> str:
    """Return `path` if it exists, else raise a UserError naming the command that makes it."""
    if not os.path.exists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    return path


# The thread-count variables of every BLAS/OpenMP runtime NumPy may load: the one list (rollout workers, model.py,
# MPI children, benchmarks and tests all set them through here).
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                  "NUMEXPR_NUM_THREADS")


# OpenBLAS picks its kernels by CPU, and kernels add in different orders: the same controller's actions differ in
# the last bits with OpenBLAS's SkylakeX kernels (AVX-512, its choice on some CPUs) and its Haswell ones (AVX2), and
# a CarRacing episode grows that into another score (145.3 against 142.4 for one short episode of a shipped agent).
# Pinned to the AVX2 + FMA kernels, which every x86-64 CPU since 2013 runs, an episode scores the same on every such
# machine.
BLAS_KERNEL = "Haswell"
PINNED_MARKER = "WORLD_MODELS_PINNED_BLAS"  # says OPENBLAS_CORETYPE was set here, not by the user


def runs_avx2_fma() -> bool:
    """Whether this is an x86-64 CPU with AVX2 and FMA (Linux: /proc/cpuinfo; elsewhere, unknown: False)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return {"avx2", "fma"} <= set(line.partition(":")[2].split())
    except OSError:
        pass
    return False


def prepare_blas(one_thread: bool = True) -> None:
    """Call before importing NumPy. Every BLAS/OpenMP runtime gets one thread (the agent's matrices are small, and
    one thread a process is fastest when every core runs a worker; one_thread=False leaves the counts alone), and
    OpenBLAS the kernels of BLAS_KERNEL where the CPU runs them, so that a seeded episode scores the same on every
    such machine. A kernel the user set wins; one pinned by a parent process (an MPI launch reaching other hosts) is
    decided again for this CPU."""
    if one_thread:
        for variable in BLAS_VARIABLES:
            os.environ.setdefault(variable, "1")
    if os.environ.get(PINNED_MARKER) and os.environ.get("OPENBLAS_CORETYPE") == os.environ[PINNED_MARKER]:
        del os.environ["OPENBLAS_CORETYPE"]
    if not os.environ.get("OPENBLAS_CORETYPE") and runs_avx2_fma():
        os.environ["OPENBLAS_CORETYPE"] = os.environ[PINNED_MARKER] = BLAS_KERNEL


@functools.cache
def blas_kernel() -> str | None:
    """The kernels NumPy's OpenBLAS runs in this process ("Haswell", "SkylakeX", ...), None where that is unknown
    (fixed once NumPy has loaded: looked up once a process)."""
    import ctypes
    import glob

    import numpy

    libraries = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libraries, "libscipy_openblas*.so")):
        try:
            library = ctypes.CDLL(path)
            for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
                function = getattr(library, name, None)
                if function is not None:
                    function.restype = ctypes.c_char_p
                    return function().decode()
        except (OSError, AttributeError, UnicodeDecodeError):  # a build without the symbol, a NULL answer
            return None
    return None


def quiet_tensorflow() -> None:
    """Load TensorFlow without its C++ start-up chatter (`failed call to cuInit`, `oneDNN custom operations`, `Could
    not find cuda drivers`, absl's `All log messages before absl::InitializeLog()`); call before importing keras or
    tensorflow. TensorFlow's absl logging writes these lines whatever TF_CPP_MIN_LOG_LEVEL says, so the import and
    the device lookup that prints the cuInit line run with file descriptor 2 pointed at /dev/null; an error in them
    is still raised, after stderr is back. TF_CPP_MIN_LOG_LEVEL set below 2 (02, 03 and 04's --tf_log set 0)
    leaves the log as TensorFlow writes it."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or (level.isdigit() and int(level) < 2):
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        import tensorflow

        tensorflow.config.list_physical_devices()  # CUDA's cuInit, here rather than at the first operation
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def batch_range_files(kind: str, env_name: str, start_batch: int, max_batch: int, made_by: str,
                      data_dir: str) -> list[tuple[int, str]]:
    """(batch, path) of the batch files start..max (inclusive). Every one must exist: a UserError names the missing
    batches and `made_by` (a file silently skipped would train on less than the user asked for; a range with a gap
    on purpose is two runs, one a side)."""
    from config import DATA_DIR, data_file

    if start_batch < 0:
        raise UserError(f"--start_batch must be 0 or more, got {start_batch}")
    if max_batch < start_batch:
        raise UserError(f"--max_batch {max_batch} is below --start_batch {start_batch}")
    paths = [(b, data_file(kind, env_name, b, data_dir)) for b in range(start_batch, max_batch + 1)]
    missing = [b for b, p in paths if not os.path.exists(p)]
    if len(missing) == len(paths):
        raise UserError(f"no {kind} files for batches {start_batch}..{max_batch} in {data_dir} "
                        f"(looked for {paths[0][1]}); make them with: {made_by}")
    if missing:
        import re

        first, last = missing[0], missing[0]
        while last + 1 in missing:
            last += 1
        # the command for the first run of missing batches, in this data folder
        command = re.sub(r"--max_batch \d+", f"--max_batch {last}",
                         re.sub(r"--start_batch \d+", f"--start_batch {first}", made_by))
        if os.path.normpath(data_dir) != os.path.normpath(DATA_DIR):
            command += f" --data_dir {shlex.quote(data_dir)}"
        if "--total_episodes" in command:  # 01 writes as many batches as its episodes fill: only the missing ones,
            # of the size of the batches beside them (the seeds follow batch x batch_size), else it writes over those
            size = batch_episodes(next(path for b, path in paths if b not in missing))
            if size is None:
                command += " (--total_episodes: the missing batches' episodes, with the --batch_size that made them)"
            else:
                command = re.sub(r"--total_episodes \d+", f"--total_episodes {(last - first + 1) * size} "
                                 f"--batch_size {size}", command)
            command += " and the flags that made the batches beside them (--controller, --seed, --time_steps)"
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise UserError(f"batches {number_ranges(missing)} of {start_batch}..{max_batch} are missing "
                        f"({data_file(kind, env_name, first, data_dir)}{more}); make them with: {command}; or run "
                        f"the ranges on either side of the gap one after the other")
    return paths


def batch_episodes(path: str) -> int | None:
    """The number of episodes in a batch file (its first dimension), from its header; None if it cannot be read."""
    from reading import DATA_NPY_BYTES, npy_shape

    try:
        shape, _ = npy_shape(path, DATA_NPY_BYTES, "")
        return int(shape[0])
    except (UserError, IndexError):  # any unreadable file: the caller names no size
        return None


def number_ranges(numbers: Sequence[int]) -> str:
    """[3, 5, 6, 7, 9] -> '3, 5..7, 9'."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)


MAX_SEED = 2 ** 62  # a seed flag's largest value: a run's seeds count up from it and are kept as int64


def check_flags(args, at_least: dict[str, int] | None = None, positive: Sequence[str] = (),
                non_negative: Sequence[str] = (), seeds: Sequence[str] = ()) -> None:
    """Refuse out-of-range flags before any work, one line each. at_least: {flag: minimum} for integers; positive
    and non_negative: float flags that must be finite and > 0 (or >= 0); argparse reads "nan" and "inf" as floats,
    and a NaN compares False with everything, so it would pass a plain `< 0` test; seeds: integer flags from 0 to
    MAX_SEED (NumPy takes no negative seed, and one past int64 overflowed deep in a run). A None (unset) flag
    passes."""
    for name, minimum in (at_least or {}).items():
        value = getattr(args, name)
        if value is not None and value < minimum:
            raise UserError(f"--{name} must be at least {minimum}, got {value}")
    for name in seeds:
        value = getattr(args, name)
        if value is not None and not 0 <= value <= MAX_SEED:
            raise UserError(f"--{name} must be from 0 to {MAX_SEED} (2^62), got {value}")
    for names, low, words in ((positive, "above", "above 0"), (non_negative, "from", "0 or more")):
        for name in names:
            value = getattr(args, name)
            if value is None:
                continue
            if not math.isfinite(value) or value < 0 or (low == "above" and value == 0):
                raise UserError(f"--{name} must be a finite number {words}, got {value}")


def check_init_from(init_from: str | None, out_dir: str, out_flag: str, model: str) -> None:
    """--init_from DIR starts a new model from DIR's NumPy copy and writes it to `out_dir`: the same folder would
    overwrite what it starts from, so it is refused (`model`: "V" or "M")."""
    if init_from is not None and os.path.realpath(init_from) == os.path.realpath(out_dir):
        raise UserError(f"--init_from {init_from} is the {out_flag} the new {model} is written to; give another "
                        f"{out_flag} (or leave --init_from out to resume that {model})")


def save_model_files(model, kind: str, weights_path: str, numpy_path: str,
                     history: tuple[str, list] | None = None) -> None:
    """Write a Keras model's weights with its optimizer's state (`weights_path`, .weights.h5) and their NumPy copy
    for the rollout workers (`numpy_path`, .npz), each whole, and the training history (path, rows) that counts
    them. A Ctrl-C or SIGTERM waits until all are written, so they never disagree (03 encodes with the first, 05
    plays with the second, a resume goes on from the history's count)."""
    require_finite_before_save(model, kind, weights_path)
    check_room_for_model(model, os.path.dirname(weights_path))  # before HDF5 can meet a full disk
    with signals_deferred():
        with atomic_path(weights_path, suffix=".weights.h5") as temporary:
            model.save_weights(temporary)
        save_npz(numpy_path, **model.numpy_weights())
        if history is not None:
            save_json(history[0], history[1], indent=1)


def nonfinite_variables(model) -> list[str]:
    """Names of a Keras model's weights and optimizer variables (Adam's moments) holding NaN or infinite values."""
    import numpy as np

    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    return [getattr(v, "path", v.name) for v in variables if not np.all(np.isfinite(np.asarray(v.numpy())))]


def require_finite_model(model, path: str, made_by: str) -> None:
    """After loading `path` into a Keras model: a UserError naming the file if any weight is NaN or infinite (a
    run that diverged; resuming from it would train NaN into every later file)."""
    bad = nonfinite_variables(model)
    if bad:
        raise UserError(f"{path} holds NaN or infinite values ({len(bad)} variables, e.g. {bad[0]}); delete it and "
                        f"run: {made_by}")


def require_finite_before_save(model, kind: str, path: str) -> None:
    """Before a training script overwrites `path`: refuse to save weights that hold NaN or infinite values, so the
    file on disk keeps the last good weights."""
    bad = nonfinite_variables(model)
    if bad:
        raise UserError(f"{kind}'s weights became NaN or infinite in training ({len(bad)} variables, e.g. {bad[0]}); "
                        f"not saved, {path} keeps the last good weights; try a lower --learning_rate")


@functools.lru_cache(maxsize=None)
def repo_root() -> str:
    """The folder this file lives in (the project's top level)."""
    return os.path.dirname(os.path.abspath(__file__))


def random_weights(shapes: dict, seed: int, scale: float = 1.0) -> dict:
    """float32 arrays of the given shapes (e.g. vae.numpy_vae.expected_vae_shapes), Gaussian and fan-in scaled so
    activations stay of order one: weights of the paper's shapes with random values, for benchmarks and tests."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {key: (rng.standard_normal(shape) * scale / np.sqrt(np.prod(shape[:-1]) if len(shape) > 1 else 10.0)
                  ).astype(np.float32) for key, shape in shapes.items()}
