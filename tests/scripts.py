"""Running the project's scripts as users do: a subprocess from a scratch folder, headless, quiet TensorFlow; and
waiting for what a running script does by polling against a deadline, never by a fixed sleep (a guess that is too
short under load and wasted time when idle)."""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT = {**os.environ, "SDL_VIDEODRIVER": "dummy", "TF_CPP_MIN_LOG_LEVEL": "2"}


def command(script, *args):
    return [sys.executable, os.path.join(ROOT, script), *map(str, args)]


def run(script, *args, cwd, check=True, timeout=600):
    """Run a script of the repository from `cwd`; returns the CompletedProcess (stdout and stderr as text)."""
    result = subprocess.run(command(script, *args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=ENVIRONMENT)
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


def alive(process) -> bool:
    """Whether a psutil.Process still runs (a zombie, dead but not yet reaped, does not)."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
