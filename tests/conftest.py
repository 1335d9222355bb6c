"""Test set-up: import the project's modules from the repository root, one BLAS thread (as rollout workers run;
two threads' small matrix products crawl when other processes keep the cores busy), headless pygame, quiet
TensorFlow."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils import single_thread_blas  # noqa: E402

single_thread_blas()  # before NumPy loads
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
