"""Signals and processes: child processes that end with ours (run_child, dies_with_this_process, die_with_parent),
short sections that Ctrl-C and SIGTERM do not cut in two (signals_deferred), the stop signals of an MPI run
(note_stop_signals, stop_signal), the Python command a printed command line names (python_command), and a wait for a
child that does not wake while it runs (QuietWait).

Nothing here imports NumPy or TensorFlow, so rollout workers can use it.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
from typing import Callable, Iterator, Sequence

from cli import Terminated


def run_child(command: Sequence[str], cwd: str | None = None, pass_fds: Sequence[int] = (),
              death_signal: int = signal.SIGKILL, grace_seconds: float = 60, cpu: TreeCpu | None = None) -> int:
    """Run a script of ours as a child process and return its exit status. A Ctrl-C or SIGTERM that reaches us
    reaches it too, and we wait (up to `grace_seconds`) for it to stop its own way (a 05 finishes its save and prints
    the command that resumes) before raising in turn; subprocess.run killed it after a quarter of a second. SIGTERM is
    passed on (a second one changes nothing: run_cli ignores it). SIGINT is passed on unless the child is in the
    terminal's foreground group: a Ctrl-C at the terminal reached it already, and a second one could cut its clean-up
    short. If we die, however we die, the child gets `death_signal` (dies_with_this_process). `cpu`, if given, samples
    the CPU time of the child and its descendants while it runs."""
    import subprocess

    child = subprocess.Popen(list(command), cwd=cwd, pass_fds=tuple(pass_fds),
                             preexec_fn=dies_with_this_process(death_signal))
    if cpu is not None:
        cpu.start()
    try:
        return child.wait()
    except KeyboardInterrupt as stop:
        try:
            if isinstance(stop, Terminated):
                child.send_signal(signal.SIGTERM)
            elif not in_terminal_foreground(child.pid):
                child.send_signal(signal.SIGINT)
            child.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
    finally:
        if cpu is not None:
            cpu.stop()


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


class QuietWait:
    """Waits for a child process without waking while it runs (Linux): select() on a pidfd, readable when the child
    ends, and on the pipe signal.set_wakeup_fd writes to when a signal arrives. Popen.wait(timeout) polls instead,
    about 80 times a second, each wake-up taking a core from a rank that plays an episode. Elsewhere it falls back to
    that. Main thread only (set_wakeup_fd); close() puts the earlier wakeup fd back."""

    def __init__(self, child: subprocess.Popen):
        self.child, self.fds, self.previous = child, None, -1
        try:
            pidfd = os.pidfd_open(child.pid)
        except (AttributeError, OSError):  # not Linux 5.3+, or the child is gone already
            return
        read, write = os.pipe()
        for fd in (read, write):
            os.set_blocking(fd, False)
        self.previous = signal.set_wakeup_fd(write)
        self.fds = (pidfd, read, write)

    def wait(self, timeout: float) -> int | None:
        """The child's exit status once it has ended, or None after `timeout` seconds or a signal."""
        if self.fds is None:
            try:
                return self.child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        select.select(self.fds[:2], [], [], timeout)
        try:
            os.read(self.fds[1], 4096)  # the signals' bytes: their handlers have run
        except BlockingIOError:
            pass
        return self.child.poll()

    def close(self) -> None:
        if self.fds is not None:
            signal.set_wakeup_fd(self.previous)
            for fd in self.fds:
                os.close(fd)
            self.fds = None


class TreeCpu:
    """The CPU seconds (user + system) of every process below this one, sampled every `interval` seconds by a thread
    between start() and stop(): a process's own time at the last sample it was seen alive, summed over processes. getrusage's
    RUSAGE_CHILDREN counts a descendant only once it is waited for, all the way up; the ranks of an MPI run that a
    stop aborts are killed by mpiexec and never reach it, so a stopped 05 counted only its parent's few seconds.
    What a process spent after its last sample is missed (at most `interval` seconds of it)."""

    def __init__(self, interval: float = 5.0):
        import psutil

        self._psutil, self.interval = psutil, interval
        self._seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-cpu", daemon=True)

    def start(self) -> None:
        """Start sampling; call it after forking the children (a thread alive at a fork can leave a lock taken in
        the child, where Popen's preexec_fn runs Python)."""
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(self._seen.values())

    def sample(self) -> None:
        psutil = self._psutil
        try:
            processes = psutil.Process().children(recursive=True)
        except psutil.Error:
            return
        for process in processes:
            try:
                with process.oneshot():
                    times, started = process.cpu_times(), process.create_time()
            except psutil.Error:  # gone meanwhile
                continue
            self._seen[(process.pid, started)] = times.user + times.system

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return
