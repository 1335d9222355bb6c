"""Running the project's scripts as users do: a subprocess from a scratch folder, headless, quiet TensorFlow; and
waiting for what a running script does by polling against a deadline, never by a fixed sleep (a guess that is too
short under load and wasted time when idle)."""

import contextlib
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT = {**os.environ, "SDL_VIDEODRIVER": "dummy", "TF_CPP_MIN_LOG_LEVEL": "2"}


def command(script, *args):
    return [sys.executable, os.path.join(ROOT, script), *map(str, args)]


_started: list[subprocess.Popen] = []  # every process a test started: conftest ends their groups after each test


def popen(arguments, preexec_fn=None, **options) -> subprocess.Popen:
    """subprocess.Popen(arguments, **options) leading a process group of its own, which is killed whole when the
    test ends, however it ends (conftest: end_started): a failing test leaves nothing running. Ctrl-C has its
    default action in it, as at a terminal (a shell running the suite in the background ignores it)."""
    def prepare():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    process = subprocess.Popen(arguments, start_new_session=True, preexec_fn=prepare, **options)
    _started.append(process)
    return process


def start(script, *args, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=None) -> subprocess.Popen:
    """Start a script of the repository from `cwd`, as `run` does, without waiting for it (see popen)."""
    return popen(command(script, *args), cwd=cwd, env=ENVIRONMENT if env is None else env, stdout=stdout,
                 stderr=stderr, text=True)


def end_group(process: subprocess.Popen) -> None:
    """Kill every process left in the group `process` leads (MPI ranks, in sessions of their own, die with their
    mpiexec), and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        process.communicate(timeout=30)
    if process in _started:  # ended: its number may be another process's later
        _started.remove(process)


def end_started() -> None:
    while _started:
        end_group(_started.pop())


def run_command(arguments, timeout=600, input=None, **options) -> subprocess.CompletedProcess:
    """subprocess.run(arguments, capture_output=True, text=True, ...) in a process group of its own (see popen),
    killed whole once it returns or times out."""
    process = popen(arguments, stdin=subprocess.PIPE if input is not None else None, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, **options)
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    finally:
        end_group(process)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run(script, *args, cwd, check=True, timeout=600, env=None):
    """Run a script of the repository from `cwd`; returns the CompletedProcess (stdout and stderr as text)."""
    result = run_command(command(script, *args), timeout=timeout, cwd=cwd, env=ENVIRONMENT if env is None else env)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def wait_for(condition, timeout=120.0, what="the condition"):
    """Poll `condition()` until it returns something true, and return that; fail after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def signal_pending(pid: int, signum: int) -> bool:
    """Whether signal `signum` waits, not yet handled, for process `pid` (a stopped process's signals wait until it
    is let run): its bit in the process-wide or the main thread's pending set of /proc/<pid>/status. False once the
    process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except (FileNotFoundError, ProcessLookupError):
        return False
    bit = 1 << (signum - 1)
    return any(int(fields[name].strip(), 16) & bit for name in ("ShdPnd", "SigPnd"))


def alive(process) -> bool:
    """Whether a psutil.Process still runs (a zombie, dead but not yet reaped, does not)."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
