"""The worker pools: MPI for the controller training (05), with its launching, messages, the leader's queue and the
worker loop; forked processes on one machine for 01's rollouts and model.py's scores (ProcessPool, at the end).

As estool: rank 0 leads (asks the optimizer, hands out solutions, tells it the rewards) and ranks 1..n each run
whole episodes with the NumPy agent. Started without MPI, 05 runs

    mpiexec -np <num_worker + 1> <python> 05_train_controller.py <same arguments>

as its child (run_under_mpi), using the mpiexec beside sys.executable (the `mpich` wheel's; PATH otherwise), with
one BLAS thread per process, and stays to end the whole run on a stop.
Started by an MPI launcher with more than one process (several machines, a host file), it uses the ranks it got.

Messages are bytes, made and read by the pure functions `encode` and `decode` (no pickle):

    Task     leader -> worker   evaluate params on these episode seeds, each episode at most max_length steps
    Stop     leader -> worker   leave the loop and exit
    Result   worker -> leader   the reward and length of each episode of a task, and how long the worker took
    Failure  worker -> leader   the worker's error text; the leader stops the run with it

Faults never hang the run: a worker that raises sends a Failure (also when it cannot even load its weights) and the
leader ends everything with MPI_Abort and a non-zero status; a worker that dies outright (a signal, os._exit) makes
mpiexec end every process. Either side waits by polling with sleeps (MPICH's blocking receive spins a core); the
leader queues each worker's next task behind the one it plays, so its longer sleeps idle no worker.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import traceback
from typing import Callable, Iterator, Sequence

import numpy as np

from blas import BLAS_VARIABLES
from cli import UserError
from processes import MPI_SUPERVISOR_MARKER

CHILD_MARKER = "WORLD_MODELS_MPI_CHILD"  # set in the relaunched processes' environment
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
MESSAGE_TAG = 7
POLL_SECONDS = (0.0005, 0.005)  # first and longest sleep between polls while nothing has arrived
# The leader's longest sleep: its wake-ups (200 a second at 5 ms) took cores from the workers' episodes, and a
# worker's next task is queued before it finishes (Pool), so waking later delays no episode.
LEADER_POLL_SECONDS = 0.05


# --- messages ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Task:
    """Run the agent with each row of `params` (m, num_params) for one episode per seed in that row of `seeds`
    (m, k); `real` asks for the real environment when the run trains in a dream (dream-trained bests are also
    scored for real)."""
    task_id: int
    params: np.ndarray
    seeds: np.ndarray
    max_length: int
    real: bool = False

    def __eq__(self, other):
        return (isinstance(other, Task) and (self.task_id, self.max_length, self.real)
                == (other.task_id, other.max_length, other.real)
                and np.array_equal(self.params, other.params) and np.array_equal(self.seeds, other.seeds))


@dataclasses.dataclass(frozen=True)
class Result:
    """Total reward and steps of each episode of task `task_id`, (m, k) each, as the task's seeds; `worker_ns`: the
    nanoseconds the worker spent on the task (the leader's breakdown of a generation's time)."""
    task_id: int
    rewards: np.ndarray
    lengths: np.ndarray
    worker_ns: int = 0

    def __eq__(self, other):
        return (isinstance(other, Result) and (self.task_id, self.worker_ns) == (other.task_id, other.worker_ns)
                and np.array_equal(self.rewards, other.rewards) and np.array_equal(self.lengths, other.lengths))


@dataclasses.dataclass(frozen=True)
class Failure:
    """A worker's error: which rank, and the text to show the user."""
    rank: int
    text: str


@dataclasses.dataclass(frozen=True)
class Stop:
    """The leader is done: the worker leaves its loop."""


_KINDS = {Task: b"T", Result: b"R", Failure: b"F", Stop: b"S"}
_HEADER = struct.Struct("<qqqqq")  # five little-endian int64


def encode(message) -> bytes:
    """Message -> bytes: one kind letter, a header of five int64s, then raw little-endian arrays (float64 params
    and rewards, int64 seeds and lengths) or UTF-8 text. Floats travel bit for bit."""
    kind = _KINDS[type(message)]
    if isinstance(message, Task):
        seeds = np.atleast_2d(np.asarray(message.seeds, dtype="<i8"))
        params = np.atleast_2d(np.asarray(message.params, dtype="<f8"))
        if seeds.shape[0] != params.shape[0]:
            raise ValueError(f"a task needs one row of seeds per row of params, got {seeds.shape} and {params.shape}")
        header = _HEADER.pack(message.task_id, message.max_length, seeds.shape[0], seeds.shape[1], int(message.real))
        return kind + header + seeds.tobytes() + params.tobytes()
    if isinstance(message, Result):
        rewards = np.atleast_2d(np.asarray(message.rewards, dtype="<f8"))
        lengths = np.asarray(message.lengths, dtype="<i8").reshape(rewards.shape)
        return (kind + _HEADER.pack(message.task_id, rewards.shape[0], rewards.shape[1], message.worker_ns, 0)
                + rewards.tobytes() + lengths.tobytes())
    if isinstance(message, Failure):
        return kind + _HEADER.pack(message.rank, 0, 0, 0, 0) + message.text.encode("utf-8", errors="replace")
    return kind


def decode(payload: bytes):
    """bytes -> the message `encode` made (arrays are fresh copies, float64 / int64)."""
    kind, body = payload[:1], memoryview(payload)[1:]
    if kind == b"S":
        return Stop()
    first, second, rows, columns, flag = _HEADER.unpack_from(body)
    body = body[_HEADER.size:]
    if kind == b"T":
        count = rows * columns
        seeds = np.frombuffer(body, dtype="<i8", count=count).astype(np.int64).reshape(rows, columns)
        params = np.frombuffer(body, dtype="<f8", offset=8 * count).astype(np.float64).reshape(rows, -1)
        return Task(task_id=first, params=params, seeds=seeds, max_length=second, real=bool(flag))
    if kind == b"R":
        rows, columns, worker_ns = second, rows, columns
        count = rows * columns
        rewards = np.frombuffer(body, dtype="<f8", count=count).astype(np.float64).reshape(rows, columns)
        lengths = np.frombuffer(body, dtype="<i8", count=count, offset=8 * count).astype(np.int64).reshape(rows, columns)
        return Result(task_id=first, rewards=rewards, lengths=lengths, worker_ns=worker_ns)
    if kind == b"F":
        return Failure(rank=first, text=bytes(body).decode("utf-8"))
    raise ValueError(f"not a message of this protocol (kind byte {bytes(kind)!r})")


# --- launching --------------------------------------------------------------------------------------------------

def launched_by_mpi() -> bool:
    """True when an MPI launcher (ours or the user's) started this process."""
    return os.environ.get(CHILD_MARKER) == "1" or any(name in os.environ for name in LAUNCHER_VARIABLES)


def find_mpiexec() -> str:
    """The mpiexec beside the running Python (the mpich wheel puts it there), else the first on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        raise UserError("no mpiexec found beside Python or on PATH; install the MPI wheel (pip install mpich) "
                        "or an MPI distribution")
    return found


STOP_GRACE_SECONDS = 30.0  # after a stop, how long the run has to end its own way before it is killed


def run_under_mpi(num_processes: int, script: str, arguments: Sequence[str],
                  stopped_line: Callable[[int], str]) -> int:
    """Run `mpiexec -np num_processes python script arguments` as a child and return the status to exit with.

    This process stays the run's one handle: Ctrl-C or SIGTERM here is passed to mpiexec, which passes it to every
    rank, and the leader ends the run (its line, then MPI_Abort with 130 or 143). Every rank passes a signal it gets to
    this process (processes.note_stop_signals), so signalling any process of the run stops it all. If the run has not
    ended STOP_GRACE_SECONDS after the signal (a rank stuck in a blocking MPI call), mpiexec is killed, its proxies
    kill every rank, and `stopped_line(signal)` is printed here. mpiexec and its ranks die with this process.

    Every process gets one BLAS thread and unbuffered output; Open MPI, if that is what PATH offers, is told that
    running as root and more processes than cores are fine (MPICH's hydra allows both anyway).
    """
    from processes import QuietWait, dies_with_this_process

    mpiexec = find_mpiexec()
    command = [mpiexec, "-np", str(num_processes)]
    if _is_open_mpi(mpiexec):
        command += ["--allow-run-as-root", "--oversubscribe"]
    command += [sys.executable, os.path.abspath(script), *arguments]
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    environment.update({CHILD_MARKER: "1", MPI_SUPERVISOR_MARKER: str(os.getpid())})
    environment.update({name: "1" for name in BLAS_VARIABLES})
    sys.stdout.flush()
    sys.stderr.flush()
    signals: list[int] = []
    handlers = {signum: signal.signal(signum, lambda signum, frame: signals.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    waiter = None
    try:
        child = subprocess.Popen(command, env=environment, preexec_fn=dies_with_this_process())
        waiter = QuietWait(child)
        deadline = None
        while True:
            status = waiter.wait(1.0)
            if status is not None:
                break
            if signals and deadline is None:  # the first only: the ranks pass theirs back here
                child.send_signal(signals[0])
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            elif deadline is not None and time.monotonic() > deadline:
                child.kill()
    finally:
        if waiter is not None:
            waiter.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if status < 0:  # mpiexec itself died of a signal
        status = 128 - status
    if signals and status not in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # the leader did not say why
        print(stopped_line(signals[0]), file=sys.stderr, flush=True)
        status = 128 + signals[0]
    return status


def _is_open_mpi(mpiexec: str) -> bool:
    try:
        version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "Open MPI" in version or "OpenRTE" in version


def note_rank_signals() -> None:
    """In a process of an MPI run, as early as it can: Ctrl-C and SIGTERM are noted (processes.stop_signal), never
    raised, and passed to the process that started mpiexec if that was run_under_mpi."""
    from processes import mpi_supervisor, note_stop_signals

    note_stop_signals(mpi_supervisor())


def world():
    """MPI.COMM_WORLD (importing mpi4py initialises MPI: only call this in processes an MPI launcher started)."""
    return _mpi().COMM_WORLD


def abort(code: int) -> None:
    """End every process of the run now (MPI_Abort); mpiexec exits with `code`.

    The last lines this process printed (why it stops, how to resume) travel through mpiexec's I/O forwarding;
    MPI_Abort ends the forwarding processes too, so they get a moment to pass those lines on first. MPICH's own
    "Abort(1) on node 0 ... application called MPI_Abort" is silenced: our line, printed before, says why."""
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(0.5)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
    world().Abort(code)


# --- both sides -------------------------------------------------------------------------------------------------

def _mpi():
    """The mpi4py.MPI module, imported on first use (importing it initialises MPI)."""
    from mpi4py import MPI

    return MPI


def _send(comm, destination: int, message) -> None:
    comm.Send([encode(message), _mpi().BYTE], dest=destination, tag=MESSAGE_TAG)


def _send_later(comm, destination: int, message):
    """Start sending `message` without waiting for the receiver (a busy worker takes it after its episode); ->
    (request, buffer), the buffer to be kept until the request completes."""
    buffer = encode(message)
    return comm.Isend([buffer, _mpi().BYTE], dest=destination, tag=MESSAGE_TAG), buffer


def _poll(comm, source: int | None = None, give_up: Callable[[], None] | None = None,
          longest: float = POLL_SECONDS[1]):
    """Wait for the next message from rank `source` (None: any rank) with short sleeps, doubling up to `longest`;
    -> (rank, message). `give_up` is called between polls and may raise to stop waiting."""
    MPI = _mpi()
    source = MPI.ANY_SOURCE if source is None else source
    status = MPI.Status()
    pause = POLL_SECONDS[0]
    while not comm.Iprobe(source=source, tag=MESSAGE_TAG, status=status):
        if give_up is not None:
            give_up()
        time.sleep(pause)
        pause = min(pause * 2, longest)
    sender = status.Get_source()
    buffer = bytearray(status.Get_count(MPI.BYTE))
    comm.Recv([buffer, MPI.BYTE], source=sender, tag=MESSAGE_TAG)
    return sender, decode(bytes(buffer))


# --- the one interface of the pools -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TaskTime:
    """One task as the leader saw it: the worker's rank, when the task went and its result came (the leader's
    time.perf_counter), and the seconds the worker spent on it."""
    rank: int
    sent: float
    received: float
    busy: float


class WorkerPool(abc.ABC):
    """What every pool of the project offers: `imap(items)` yields the pool's function applied to each item, in the
    order of the items, each as soon as it and those before it are ready; `run(items)` is the list of them; `close()`
    ends the workers. The function is fixed when the pool is made (a callable for LocalPool and ProcessPool; on MPI,
    the evaluator each worker builds on its own rank), so that only data travels between processes.

        LocalPool     this process (05 on a single rank)
        ProcessPool   forked processes of this machine (01's rollouts, model.py's scores)
        Pool          MPI ranks, on one machine or several (05's episodes)

    The pools of 05 (LocalPool and Pool) keep a TaskTime of every task of their last imap in `task_times`."""

    task_times: Sequence[TaskTime] = ()

    @abc.abstractmethod
    def imap(self, items: Sequence) -> Iterator:
        """The function's result for each item, in order."""

    def run(self, items: Sequence) -> list:
        return list(self.imap(items))

    def close(self) -> None:
        """Nothing to end."""

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind, error, trace) -> None:
        self.close()


# --- the leader -------------------------------------------------------------------------------------------------

class WorkerFailed(Exception):
    """A worker reported an error; the run cannot go on."""


class Pool(WorkerPool):
    """The leader's view of the workers: ranks 1..size-1, each given its next task before it finishes the one it
    plays while more tasks wait than there are workers (no worker waits for the leader's poll); the last ones go one
    at a time to whichever worker is free. `check` is called between polls (05 raises from it to stop)."""

    def __init__(self, comm, check: Callable[[], None] | None = None):
        self.comm = comm
        self.workers = list(range(1, comm.Get_size()))
        self.check = check

    def imap(self, tasks: Sequence[Task]) -> Iterator[Result]:
        """Evaluate every task; results in the order of `tasks`. A Failure raises WorkerFailed. Read it to the end
        (run does): the workers of tasks not yet yielded are still busy."""
        waiting, results, done, self.task_times = list(reversed(tasks)), {}, 0, []
        handed: dict[int, list[float]] = {rank: [] for rank in self.workers}  # when each rank's tasks went, in order
        sends = []  # (request, buffer) of each task on its way: the buffer must outlive the send
        while done < len(tasks):
            for depth in (1, 2):  # a task for each free worker, then one queued behind each while many wait
                for rank in self.workers:
                    if waiting and len(handed[rank]) < depth and (depth == 1 or len(waiting) > len(self.workers)):
                        sends.append(_send_later(self.comm, rank, waiting.pop()))
                        handed[rank].append(time.perf_counter())
            sender, message = _poll(self.comm, None, self.check, LEADER_POLL_SECONDS)
            if isinstance(message, Failure):
                raise WorkerFailed(f"worker {message.rank} failed: {message.text.strip()}")
            self.task_times.append(TaskTime(sender, handed[sender].pop(0), time.perf_counter(),
                                            message.worker_ns / 1e9))
            results[message.task_id] = message
            sends = [send for send in sends if not send[0].Test()]
            while done < len(tasks) and tasks[done].task_id in results:
                yield results.pop(tasks[done].task_id)
                done += 1
        _mpi().Request.Waitall([request for request, _ in sends])  # every task was received: they are done

    def close(self) -> None:
        """Tell every worker to leave its loop (they are all idle between calls to run)."""
        for rank in self.workers:
            _send(self.comm, rank, Stop())


def task_runner(evaluator: Callable[[Task], tuple[np.ndarray, np.ndarray]]) -> Callable[[Task], Result]:
    """The function of a pool of tasks: the evaluator's rewards and lengths of a task as its Result."""
    def run(task: Task) -> Result:
        started = time.perf_counter_ns()
        rewards, lengths = evaluator(task)
        return Result(task.task_id, np.asarray(rewards), np.asarray(lengths), time.perf_counter_ns() - started)
    return run


# --- a worker ---------------------------------------------------------------------------------------------------

def serve(comm, make_evaluator: Callable[[], Callable[[Task], tuple[np.ndarray, np.ndarray]]]) -> None:
    """A worker's life: build the evaluator, then answer tasks until Stop.

    Any error (building included) goes to the leader as a Failure with its text; UserErrors (a missing or corrupt
    weight file) as their one line, anything else with its traceback. Signals are the leader's business: mpiexec
    forwards Ctrl-C and SIGTERM to every process, and the leader ends the run, so a worker only notes them and passes
    them to the process that started mpiexec, if we did (note_rank_signals).
    """
    note_rank_signals()
    rank = comm.Get_rank()
    evaluator = None
    try:
        evaluator = task_runner(make_evaluator())
    except Exception as error:
        _send(comm, 0, Failure(rank, _describe(error)))
    while True:
        _, message = _poll(comm, 0)
        if isinstance(message, Stop):
            return
        if evaluator is None:
            continue  # already reported; the leader is ending the run
        try:
            _send(comm, 0, evaluator(message))
        except Exception as error:
            _send(comm, 0, Failure(rank, _describe(error)))


def _describe(error: BaseException) -> str:
    if isinstance(error, UserError):
        return str(error)
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).strip()


class LocalPool(WorkerPool):
    """The pools' interface in this process: `function` applied to each item here (05 started on a single rank; a
    ProcessPool of one worker). `check` is called before each item (05 raises from it when a signal asks it to
    stop)."""

    def __init__(self, function: Callable, check: Callable[[], None] | None = None):
        self.function = function
        self.check = check

    def imap(self, items: Sequence) -> Iterator:
        self.task_times = []
        for item in items:
            if self.check is not None:
                self.check()
            sent = time.perf_counter()
            result = self.function(item)
            received = time.perf_counter()
            self.task_times.append(TaskTime(0, sent, received, received - sent))  # this process is the worker
            yield result


# --- forked rollout processes on this machine (01 and model.py) ------------------------------------------------

class WorkerDied(UserError):
    """A rollout worker died outright (a crash in a simulator's C++ code, the kernel's OOM killer)."""


class _QuietOnceEnding:
    """A pool worker's stderr that goes silent once the parent ends the pool on an error: the parent prints the one
    line that says why, and a worker stopped while it waited on the task queue (the queue closed under it: EOFError
    in multiprocessing's reader) would otherwise add a traceback of its own."""

    def __init__(self, stream, ending):
        self._stream, self._ending = stream, ending

    def write(self, text: str) -> int:
        return len(text) if self._ending.value else self._stream.write(text)

    def flush(self) -> None:
        if not self._ending.value:
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


_START_ERROR: UserError | None = None  # a worker's: its initializer's one-line error, raised with its first task


def _process_start(parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple, ending) -> None:
    global _START_ERROR
    from processes import resume_deferred_signals, rollout_worker_start

    try:
        rollout_worker_start(parent_pid)
        sys.stderr = _QuietOnceEnding(sys.stderr, ending)
        # forked while the parent deferred Ctrl-C and SIGTERM (ProcessPool.imap): ours to handle again, SIGTERM with
        # the handler rollout_worker_start just set
        resume_deferred_signals(keep=(signal.SIGTERM,))
        if initializer is not None:
            try:
                initializer(*initargs)
            except UserError as error:
                # (a missing or malformed file the worker reads): the executor would print it as a failed initializer
                # with a traceback and break the pool; handed to the parent with the first task, it is one line
                _START_ERROR = error
    except (SystemExit, KeyboardInterrupt):
        # Stopped while starting (the pool ending on SIGTERM or Ctrl-C, at any point of this function): the executor
        # would print this as a failed initializer with a traceback. Leave quietly, through Python, so that what was
        # opened is still closed.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not interrupt the leaving
        sys.stderr = open(os.devnull, "w")
        raise


def _in_worker(function: Callable, item):
    if _START_ERROR is not None:
        raise _START_ERROR
    return function(item)


class ProcessPool(WorkerPool):
    """`workers` forked processes that each run `initializer(*initargs)` once, then `function` on the items given to
    imap; with one worker, everything runs in this process instead (a LocalPool). As a context manager:

        with ProcessPool(2, play, start_session, (args,)) as pool:
            for result in pool.imap(seeds):    # play(seed) for each seed, in order, as soon as each is ready
                ...

    A worker dies with this process (SIGKILL included) and leaves through Python on SIGTERM, closing its
    environment (VizDoom runs its own game process). A normal end lets the workers finish and exit. Any other end
    (an error, Ctrl-C, SIGTERM) stops the episodes under way, waits at most a few seconds for the workers, kills
    what is left, and then, for an error that ends the script with one line (a UserError, Ctrl-C, SIGTERM), prints
    that line and leaves at once with its status: a worker killed mid-task can leave the pool's queues locked, and
    Python's exit handlers would then wait on them forever. From then on the workers print nothing (their stderr
    goes quiet), so that the line stays the only one. Every file written before is whole (atomic writes); the
    locks of the run are released.

    A concurrent.futures executor rather than multiprocessing.Pool: a worker that dies breaks the executor with an
    error (WorkerDied here) instead of being replaced while the parent waits forever for its lost task, and an
    interrupt inside multiprocessing.Pool's constructor leaves a pool that respawns workers while Python exits.
    """

    def __init__(self, workers: int, function: Callable, initializer: Callable[..., None] | None = None,
                 initargs: tuple = ()):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.function = function
        self.executor = None
        if workers > 1:
            context = multiprocessing.get_context("fork")
            self.ending = context.Value("b", 0, lock=False)  # shared with the workers: 1 once an error ends the pool
            self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_process_start,
                                                initargs=(os.getpid(), initializer, initargs, self.ending))
        elif initializer is not None:
            initializer(*initargs)

    def imap(self, items: Sequence) -> Iterator:
        """A worker's exception is raised here (a UserError keeps its one line), a dead worker raises WorkerDied."""
        if self.executor is None:
            yield from LocalPool(self.function).imap(items)
            return
        from concurrent.futures.process import BrokenProcessPool

        from processes import signals_deferred

        try:
            # map submits every item, and the first submit forks the workers: a signal then would be lost (see
            # processes.signals_deferred)
            with signals_deferred():
                results = self.executor.map(functools.partial(_in_worker, self.function), items)
            yield from results
        except BrokenProcessPool:
            raise WorkerDied("a rollout worker died (its error, if any, is printed above)") from None

    def close(self) -> None:
        """Let the workers finish and exit, closing their environments."""
        if self.executor is not None:
            executor, self.executor = self.executor, None
            executor.shutdown(wait=True)

    def __exit__(self, kind, error, trace) -> None:
        if self.executor is None or error is None:
            self.close()
            return
        from cli import exit_line
        from files import release_locks

        executor, self.executor = self.executor, None
        self.ending.value = 1  # the workers stop printing: this process prints the one line
        running = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in running:  # stop the episodes under way (SIGTERM: they close their environments)
            if process.is_alive():
                process.terminate()
        for process in running:  # one stuck on a queue lock its killed sibling held does not get that far
            process.join(timeout=3)
            if process.is_alive():
                process.kill()
        ending = exit_line(error)
        if ending is not None:
            line, status = ending
            print(line, file=sys.stderr, flush=True)
            sys.stdout.flush()
            release_locks()
            os._exit(status)
