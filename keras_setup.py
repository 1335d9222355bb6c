"""What a process sets before Keras loads: the TensorFlow backend, without its C++ start-up chatter."""

from __future__ import annotations

import os
import sys


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

