"""The flags that several stages share, declared once as settings fields: a folder flag (--data_dir, --vae_dir, ...)
--tf_log, and the batch range of stages 02, 03 and 04 (--env_name, --start_batch, --max_batch).

Light (no NumPy, no TensorFlow): a script parses its flags before either loads.
"""

from __future__ import annotations

import dataclasses
import os

from cli import UserError, check_flags, option
from config import CONFIGS


def tf_log_option():
    """The settings field of --tf_log (02, 03, 04); show_tf_log acts on it."""
    return option(False, "show TensorFlow's start-up log (CUDA, oneDNN and absl lines), hidden otherwise")


def show_tf_log(settings) -> None:
    """--tf_log: keras_setup.quiet_tensorflow() leaves TensorFlow's log alone below level 2 (TF not loaded yet)."""
    if settings.tf_log:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


def new_model_option(folder: str):
    """The settings field of --new_model of the stage that trains the model of ./<folder>/ (02: vae, 04: rnn)."""
    return option(False, f"start from fresh weights instead of ./{folder}/")


def init_from_option(model: str, folder: str):
    """The settings field of --init_from of the stage that trains `model` ("V" in vae, "M" in rnn)."""
    article = "an" if model == "M" else "a"
    return option(None, f"a new {model} (as --new_model) starting from the weights of DIR/<env>.npz, {article} "
                        f"{model}'s NumPy copy (e.g. pretrained/<env>/{folder}, the shipped one); Adam starts afresh",
                  metavar="DIR")


@dataclasses.dataclass(frozen=True)
class BatchRange:
    """The first flags of a stage that reads batch files start..max of one environment (02, 03, 04). Each stage
    declares its --seed (a help text of its own), --data_dir (folder_option) and --tf_log (tf_log_option) where its
    --help lists them."""

    env_name: str = option("car_racing", "the environment", choices=sorted(CONFIGS))
    start_batch: int = option(0, "first batch file of the range")
    max_batch: int = option(0, "last batch file of the range (inclusive)")

    def check_range(self) -> None:
        """Refuse a range that ends before it starts."""
        if self.max_batch < self.start_batch:
            raise UserError(f"--max_batch must be at least --start_batch ({self.start_batch}), got {self.max_batch}")


def check_seed_and_start(settings: BatchRange, at_least: dict[str, int] | None = None, **checks) -> None:
    """cli.check_flags on `settings`, with --start_batch at least 0 and --seed a seed besides what is asked."""
    check_flags(settings, at_least={**(at_least or {}), "start_batch": 0}, seeds=("seed",), **checks)
