"""Test set-up: one BLAS thread (as rollout workers run; two threads' small matrix products crawl when other
processes keep the cores busy), headless pygame, quiet TensorFlow. The project's modules import through its
editable install (make venv); pytest.ini puts the repository root on the path for tests.*."""

import os

from utils import single_thread_blas

single_thread_blas()  # before NumPy loads
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
