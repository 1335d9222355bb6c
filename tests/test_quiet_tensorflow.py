"""The TensorFlow stages print no TensorFlow start-up log (`failed call to cuInit`, oneDNN's note, absl's warning)
unless --tf_log asks for it: 02 and 03 run at a tiny size, as a user would, from an environment that sets no
TF_CPP_MIN_LOG_LEVEL (the suite's other subprocesses get 2, which this build's absl logging ignores)."""

import os
import re

import pytest

from scripts import ENVIRONMENT, run

pytestmark = pytest.mark.slow  # trains V for a few minibatches in a subprocess

TENSORFLOW_LINE = re.compile(r"cuInit|oneDNN|absl|cuda drivers|cpu_feature_guard|TF_CPP_MIN_LOG_LEVEL|"
                             r"^[IWEF]\d{4} \d\d:\d\d:\d\d", flags=re.M)
USER_ENVIRONMENT = {key: value for key, value in ENVIRONMENT.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def test_02_and_03_start_tensorflow_without_its_log_unless_tf_log(tmp_path):
    run("01_generate_data.py", "car_racing", "--total_episodes", 1, "--batch_size", 1, "--time_steps", 10,
        "--num_worker", 1, cwd=tmp_path)
    trained = run("02_train_vae.py", "--new_model", "--epochs", 1, "--jit", "off", "--batch_size", 4, "--verbose", 2,
                  cwd=tmp_path, env=USER_ENVIRONMENT)
    assert TENSORFLOW_LINE.findall(trained.stderr) == []
    assert "epoch 1/1" in trained.stdout  # --verbose 2's lines are still there
    encoded = run("03_generate_rnn_data.py", cwd=tmp_path, env=USER_ENVIRONMENT)  # the Keras V 02 wrote
    assert TENSORFLOW_LINE.findall(encoded.stderr) == []
    assert os.path.exists(tmp_path / "data" / "rnn_mu_car_racing_0.npy")
    logged = run("03_generate_rnn_data.py", "--tf_log", cwd=tmp_path, env=USER_ENVIRONMENT)
    assert TENSORFLOW_LINE.findall(logged.stderr)  # the log the others hid (this build writes it at start-up)
