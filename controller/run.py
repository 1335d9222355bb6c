"""A run of controller training (05), settled before its first generation (TrainingRun): a new run, or a resumed one
whose checkpoint is read and checked against the command line; its settings resolved, its files named and claimed,
its optimizer and state ready. With the command line that resumes it (resume_command) and the line a stopped run
ends with (stopped_line). The generations themselves: controller/leader.py.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
from typing import Sequence

from cli import UserError, to_argv
from controller.settings import EvaluatorSettings, RunSettings, TrainingFlags

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "05_train_controller.py")


class TrainingRun:
    """Everything settled before the first generation: the flags (a resume's kept settings in them), file names,
    the optimizer and its state. `given`: the flags the command line gave (a resume keeps the checkpoint's setting
    of every other one); `argv`: the command line, for the commands that resume or restart the run (default: the
    flags' own, cli.to_argv).

    With `lock` the run's files are claimed (files.lock_outputs on <controller_dir>/<base>, so a second run on the
    same files is refused naming this one; a killed run's temporary files of this base are removed) and the log
    folder is checked to take files. Rank 0 takes the lock for the whole run. The check before the MPI launch takes
    it too, to refuse at once, and lets it go when it execs mpiexec (the descriptor closes on exec); a run that
    starts in that gap is refused by rank 0 instead.
    """

    def __init__(self, flags: TrainingFlags, given: frozenset[str] = frozenset(), argv: Sequence[str] | None = None,
                 lock: bool = False):
        from config import get_config
        from controller.controller import load_params
        from controller.training import new_state

        self.argv = list(to_argv(flags) if argv is None else argv)
        self.config = config = get_config(flags.env_name)
        self.population = flags.population
        optimizer, state = self.resume(flags) if flags.init_opt else (None, None)
        if state is not None and state.settings is not None:
            flags = self.keep_settings(flags, given, state.settings)
        self.flags = flags
        self.settings = settings = RunSettings.of(flags)
        self.check_inputs()
        if state is not None:
            self.optimizer, self.state = optimizer, state
            if self.state.settings is not None:  # the kept ones, with any this resume changed; a checkpoint from
                self.state.settings = settings  # before settings were kept has none (a default is not its own)
            self.exp_mode = self.state.exp_mode
            self.files = self.training_files()
            self.claim(lock)
            self.refuse_to_replace(flags.init_opt)
        else:
            from es import make_optimizer

            start = None
            self.exp_mode = flags.exp_mode or config.exp_mode
            if flags.init_params:
                start, _, self.exp_mode = load_params(flags.init_params, config, flags.exp_mode)
            self.files = self.training_files()
            self.claim(lock)
            self.refuse_to_overwrite()
            try:
                self.optimizer = make_optimizer(flags.optimizer, self.param_count, self.population,
                                                sigma_init=flags.sigma_init, sigma_decay=flags.sigma_decay,
                                                weight_decay=flags.weight_decay, antithetic=bool(flags.antithetic),
                                                seed=flags.seed_start, x0=start)
            except ValueError as error:
                raise UserError(str(error)) from None
            self.state = new_state(config.name, flags.optimizer, self.population, flags.num_episode,
                                   flags.seed_start, self.exp_mode)
            self.state.settings = settings

    def keep_settings(self, flags: TrainingFlags, given: frozenset[str], stored: RunSettings) -> TrainingFlags:
        """A resumed run plays on as it started: a setting left off the command line is the checkpoint's (before, a
        dream run resumed without --dream_mode 1 went on in the real game, and one without --max_length or
        --eval_episodes shifted every later seed). Given with another value, a setting of how the run goes on
        (episode length, evaluations, --cap_time, --retrain, --common_seeds, --real_every) is taken with a note; one
        that makes it another run (the dream and its temperature, the seeds, the optimizer's own settings, held in the
        checkpoint) is refused. Returns the flags with the kept settings."""
        asked, kept, refused = RunSettings.of(flags).values(), {}, []
        for key, value in stored.values().items():
            if key not in given or asked[key] == value:
                kept[key] = value
            elif RunSettings.changeable(key):
                print(f"note: --{key} {asked[key]:g} from now on (this run had {value:g})", flush=True)
            else:
                refused.append((key, asked[key], value))
        if refused:
            asking = " ".join(f"--{key} {value:g}" for key, value, _ in refused)
            had = " ".join(f"--{key} {value:g}" for key, _, value in refused)
            raise UserError(f"{flags.init_opt} was trained with {had}, this resume asks for {asking}: a resumed run "
                            f"keeps these (leave the flags out, or start a new run)")
        return dataclasses.replace(flags, **kept)

    @property
    def param_count(self) -> int:
        from config import controller_shape

        return controller_shape(self.config, self.exp_mode).param_count

    def claim(self, lock: bool) -> None:
        """With `lock`: hold <controller_dir>/<base> for this run (a second run is refused naming this one) and remove
        the temporary files a killed run of this base left; the log folder must take files."""
        if not lock:
            return
        import re

        from files import check_writable, lock_outputs, temporaries_of

        stale = temporaries_of(re.escape(self.files.base) + r"\..+")
        check_writable(self.flags.log_dir)
        # both folders: two runs of one base in different --controller_dir with the same --log_dir would rewrite
        # each other's logs every generation
        for folder in (self.flags.controller_dir, self.flags.log_dir):
            lock_outputs(folder, self.files.base, [(folder, stale)])

    def training_files(self):
        from controller.training import training_files

        return training_files(self.config.name, self.flags.optimizer, self.flags.num_episode, self.population,
                              self.flags.controller_dir, self.flags.log_dir, self.exp_mode)

    def check_inputs(self) -> None:
        """A missing weight or data file is named with the command that makes it, before anything starts."""
        from config import MAKES_RNN_DATA
        from controller.agent import check_weight_files

        flags = self.flags
        # the real game needs V and M (the Evaluator reads them at once); the dream M, and V for the real-game
        # scoring of each new best: read now, so that a bad V is not found generations later
        check_weight_files(self.config, flags.vae_dir, flags.rnn_dir, read=bool(flags.dream_mode))
        if flags.dream_mode:
            import glob

            pattern = os.path.join(flags.data_dir, f"rnn_initial_{self.config.name}_*.npy")
            if not glob.glob(pattern):
                raise UserError(f"no {pattern} (the dream starts from stored first frames); make them with: "
                                f"{MAKES_RNN_DATA.format(env=self.config.name)}")

    def resume(self, flags: TrainingFlags):
        """The optimizer and state of the checkpoint --init_opt, checked against the command line."""
        from controller.training import TrainingState
        from es import load_optimizer

        path = flags.init_opt
        optimizer, data = load_optimizer(path)
        state = TrainingState.from_json(data, path)
        # The file base is made of these: a resume with another value would write into another run's files.
        expected = {"env": self.config.name, "optimizer": flags.optimizer, "population": self.population,
                    "num_episode": flags.num_episode, "exp_mode": flags.exp_mode or state.exp_mode}
        for key, value in expected.items():
            if getattr(state, key) != value:
                flag = {"env": "the environment", "optimizer": "-o", "population":
                        "--num_worker x --num_worker_trial", "num_episode": "--num_episode",
                        "exp_mode": "--exp_mode (or leave it out)"}[key]
                raise UserError(f"{path} was trained with {key} {getattr(state, key)!r}, this run asks for {value!r}; "
                                f"set {flag} to match")
        from config import controller_shape

        from es import optimizer_class

        if type(optimizer) is not optimizer_class(state.optimizer):
            raise UserError(f"{path} holds a {type(optimizer).__name__} optimizer but says it is {state.optimizer!r}; "
                            f"resume from another file")
        count = controller_shape(self.config, state.exp_mode).param_count
        if state.best_params is not None and len(state.best_params) != count:
            raise UserError(f"{path} holds a best controller of {len(state.best_params)} parameters, its "
                            f"{state.exp_mode} controller has {count}; resume from another file")
        if optimizer.num_params != count or optimizer.popsize != self.population:
            raise UserError(f"{path} searches {optimizer.num_params} parameters with a population of "
                            f"{optimizer.popsize}; {self.config.name}'s {state.exp_mode} controller has {count}, "
                            f"this run's population is {self.population}")
        return optimizer, state

    def refuse_to_overwrite(self) -> None:
        """A fresh run never replaces another run's checkpoint, best controller or training history."""
        for path in (self.files.checkpoint, self.files.best, self.files.history):
            if os.path.exists(path):
                raise UserError(f"{path} already exists (an earlier run); resume it with --init_opt "
                                f"{self.files.checkpoint}, or move the old files away to start afresh")

    def refuse_to_replace(self, path: str) -> None:
        """A resume from a copy (--init_opt backup/<base>.es.pk) never writes over another checkpoint of its base."""
        target = self.files.checkpoint
        if os.path.exists(target) and not os.path.samefile(path, target):
            raise UserError(f"resuming {path} would write over {target}, another checkpoint of this run's files; "
                            f"resume that one (--init_opt {target}), or give another --controller_dir")

    def evaluator_settings(self) -> EvaluatorSettings:
        """What a worker needs to play episodes, settled here (a resume's checkpoint read, the flags checked)."""
        flags = self.flags
        return EvaluatorSettings(flags.env_name, self.settings.max_length, bool(flags.dream_mode),
                                 self.settings.temperature, flags.vae_dir, flags.rnn_dir, flags.data_dir, self.exp_mode)

    def command(self, arguments) -> str:
        """The command line that runs 05 with `arguments`, from the current folder and with this Python, quoted for
        the shell: it works when pasted whatever the paths hold."""
        from processes import python_command

        return " ".join([python_command(), shlex.join([os.path.relpath(SCRIPT), *arguments])])

    def resume_command(self) -> str:
        kept, skip_value = [], False
        for argument in self.argv:  # a resume starts from the checkpoint alone: no --init_opt, --init_params
            if skip_value:
                skip_value = False
                continue
            if argument.split("=", 1)[0] in ("--init_opt", "--init_params"):
                skip_value = "=" not in argument
                continue
            kept.append(argument)
        return self.command([*kept, "--init_opt", self.files.checkpoint])

    def resume_hint(self) -> str:
        """How to go on after a stop: from the last checkpoint, or, before the first one, the same command again."""
        if os.path.exists(self.files.checkpoint):
            return f"the last whole checkpoint is {self.files.checkpoint}; resume with: {self.resume_command()}"
        return f"no generation was finished, nothing is saved; start again with: {self.command(self.argv)}"


class Stopping(Exception):
    """A signal asked the run to stop (its number: `signal_number`)."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


def stopped_line(signal_number: int, run: TrainingRun) -> str:
    """The line a stopped run ends with: which signal, and how to go on."""
    return f"\n{signal.Signals(signal_number).name} received: stopped; {run.resume_hint()}"
