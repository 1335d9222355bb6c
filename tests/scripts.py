"""Running the project's scripts as users do: a subprocess from a scratch folder, headless, quiet TensorFlow."""

import os
import subprocess
import sys

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
