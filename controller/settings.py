"""The settings of controller training (05), each declared once, as typed fields of frozen dataclasses:

    TrainingFlags      05's command line: every flag with its default and help (cli.option), checked on its own in
                       __post_init__; `command_line_parser()` parses a command line into one
    RunSettings        the settings a run keeps in its checkpoint (under "settings"), resolved (max_length 1000, not
                       -1); each field says its test, whether a resume may change it and its value in checkpoints
                       written before it was kept (field metadata)
    EvaluatorSettings  what a worker needs to play episodes, sent to the MPI workers as plain JSON data

The file base's own settings (env, optimizer, population, num_episode, exp_mode) are fields of the run's state
(controller.training.TrainingState).
"""

from __future__ import annotations

import dataclasses
import math

from cli import MAX_SEED, SettingsParser, UserError, check_flags, option
from config import (CONFIGS, EXP_MODES, FIRST_SEED, RNN_DIR, VAE_DIR, DATA_DIR, dream_mode_option, folder_option,
                    get_config)
from es import OPTIMIZER_NAMES
from reading import finite_number, short_repr

DESCRIPTION = "Train the controller (C) with an evolution strategy on MPI workers."


@dataclasses.dataclass(frozen=True)
class TrainingFlags:
    """05's command line, parsed (command_line_parser): typed, checked, never changed (a resume that keeps a
    checkpoint's settings makes a changed copy, dataclasses.replace, checked again)."""

    env_name: str = option(help="the environment", positional=True, choices=sorted(CONFIGS))
    optimizer: str = option("cma", "the evolution strategy (es.py): cma is the paper's CMA-ES, ses estool's name for "
                            "pepg", flags=("-o",), choices=OPTIMIZER_NAMES)
    init_opt: str = option("", "an .es.pk checkpoint to resume from (default: none, a new run)")
    exp_mode: str | None = option(None, "what the controller sees (the official EXP_MODE): z, z_hidden, zc, zh, zch; "
                                  "default the paper's (car_racing zh, doom_take_cover zch); a resumed run keeps its "
                                  "own", choices=EXP_MODES)
    init_params: str = option("", "a fresh run's search starts at these parameters (a .best.json; default: zeros)")
    num_episode: int = option(1, "episodes per solution and generation", flags=("-e",))
    num_worker: int = option(4, "worker processes (MPI ranks 1..n)", flags=("-n",))
    num_worker_trial: int = option(1, "solutions per worker: population = num_worker x num_worker_trial (real "
                                   "episodes are handed out one a task as workers free up; the dream's, this "
                                   "many solutions a task)", flags=("-t",))
    eval_steps: int = option(25, "evaluate the mean every this many generations")
    eval_episodes: int = option(0, "episodes of each evaluation (default: the population size, as estool)")
    max_length: int = option(-1, "steps per episode at most (default: the environment's, 1000 or 2100)")
    antithetic: int = option(1, "mirrored pairs share their tracks (openes, pepg, ses)", choices=(0, 1))
    common_seeds: int = option(0, "1: every solution of a generation plays the same --num_episode episodes (tracks), "
                               "so the ranking compares controllers, not tracks (estool and the paper: each its own)",
                               choices=(0, 1))
    cap_time: int = option(0, "cap episodes at twice the previous generation's mean length", choices=(0, 1))
    retrain: int = option(0, "after an evaluation that is not a new best, move the mean back to the best",
                          choices=(0, 1))
    seed_start: int = option(FIRST_SEED, "first episode seed (and optimizer seed)", flags=("-s",))
    sigma_init: float = option(0.1, "initial step size (official code: 0.1)")
    sigma_decay: float = option(0.999, "step-size decay (not used by cma)")
    weight_decay: float = option(0.01, "L2 penalty on the weights, subtracted from the rewards the optimizer sees")
    generations: int = option(0, "stop after this many generations of this run (default: run until stopped)")
    dream_mode: int = dream_mode_option("1: evaluate the population inside the world model's dream (doom_take_cover)")
    temperature: float | None = option(None, "dream temperature tau (default: the paper's 1.15 for Doom)")
    real_episodes: int = option(32, "dream mode: real-game episodes scoring each new best (with --real_every 1, each "
                                "evaluated mean)")
    real_every: int = option(0, "dream mode, 1: score every evaluated mean in the real game (--real_episodes "
                             "episodes), not only each new best in the dream", choices=(0, 1))
    phase_times: str | None = option(None, "write where each generation's time went (episodes, waiting for the last "
                                     "one, messages, the leader's update and save) to FILE as JSON, rewritten every "
                                     "generation (benchmarks.bench_controller reads it)", metavar="FILE")
    controller_dir: str = folder_option("controller")
    log_dir: str = folder_option("log")
    vae_dir: str = folder_option("vae")
    rnn_dir: str = folder_option("rnn")
    data_dir: str = folder_option("data")

    def __post_init__(self):
        """The checks of the flags on their own, one line each (a UserError)."""
        for flag in ("num_episode", "num_worker", "num_worker_trial", "eval_steps", "real_episodes"):
            if getattr(self, flag) < 1:
                raise UserError(f"--{flag} must be at least 1, got {getattr(self, flag)}")
        # tau divides M's logits (0 would play the most likely mixture while the log shows 0), a zero or negative
        # sigma never moves CMA-ES, a negative decay rewards large weights, and NaN passes every `<` test
        check_flags(self, at_least={"eval_episodes": 0, "generations": 0}, positive=("sigma_init", "temperature"),
                    non_negative=("weight_decay",), seeds=("seed_start",))
        if not (math.isfinite(self.sigma_decay) and 0 < self.sigma_decay <= 1):
            raise UserError(f"--sigma_decay must be above 0 and at most 1, got {self.sigma_decay}")
        if self.max_length == 0 or self.max_length < -1:
            raise UserError(f"--max_length must be at least 1 (or -1: the environment's), got {self.max_length}")
        if self.population < 2:
            raise UserError("the population (num_worker x num_worker_trial) needs at least 2 solutions")
        if self.init_opt and self.init_params:
            raise UserError("--init_opt resumes a run, --init_params starts a new one: give one of them")
        config = get_config(self.env_name)
        if self.dream_mode and not config.use_done:
            raise UserError(f"--dream_mode trains inside a world model that predicts the episode's end; {config.name}'s "
                            f"does not (use doom_take_cover; model.py car_racing --dream_mode shows a CarRacing dream)")

    @property
    def population(self) -> int:
        return self.num_worker * self.num_worker_trial


def command_line_parser() -> SettingsParser:
    """05's parser: `.parse(argv)` is a TrainingFlags, `.given(argv)` the flags the command line gave."""
    return SettingsParser(TrainingFlags, description=DESCRIPTION)


def setting(test, changeable: bool = False, older=dataclasses.MISSING, written_if_set: bool = False):
    """A RunSettings field: `test` of a stored value, whether a resume that gives the flag with another value may
    change it (how the run goes on) or is refused (another run), and its value in checkpoints written before it was
    kept (their run's behaviour; none: a checkpoint without it is damaged). `written_if_set`: the checkpoint holds
    it only when it is not `older`, so that the checkpoints of runs that do not use it stay as they were."""
    return dataclasses.field(default=older if written_if_set else dataclasses.MISSING,
                             metadata={"test": test, "changeable": changeable, "older": older,
                                       "written_if_set": written_if_set})


def _zero_or_one(value) -> bool:
    return value in (0, 1)


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The flags of 05 that a resumed run keeps, resolved, as its checkpoint holds them (to_json, from_json: the
    same keys in the same order, integers as integers)."""

    dream_mode: int = setting(_zero_or_one)
    antithetic: int = setting(_zero_or_one)
    cap_time: int = setting(_zero_or_one, changeable=True)
    retrain: int = setting(_zero_or_one, changeable=True)
    max_length: int = setting(lambda v: v >= 1, changeable=True)
    eval_steps: int = setting(lambda v: v >= 1, changeable=True)
    eval_episodes: int = setting(lambda v: v >= 1, changeable=True)
    real_episodes: int = setting(lambda v: v >= 1, changeable=True)
    seed_start: int = setting(lambda v: 0 <= v <= MAX_SEED)
    temperature: float = setting(lambda v: v > 0)
    sigma_init: float = setting(lambda v: v > 0)
    sigma_decay: float = setting(lambda v: 0 < v <= 1)
    weight_decay: float = setting(lambda v: v >= 0)
    common_seeds: int = setting(_zero_or_one, changeable=True, older=0)  # before it was kept: the old behaviour
    real_every: int = setting(_zero_or_one, changeable=True, older=0, written_if_set=True)

    @classmethod
    def of(cls, flags: TrainingFlags) -> RunSettings:
        """The flags' settings, resolved: the environment's episode length (not -1), the population's evaluation
        episodes (not 0), the environment's temperature (not None)."""
        config = get_config(flags.env_name)
        resolved = {"max_length": flags.max_length if flags.max_length > 0 else config.max_episode_length,
                    "eval_episodes": flags.eval_episodes or flags.population,
                    "temperature": config.dream_temperature if flags.temperature is None else flags.temperature}
        return cls(**{field.name: resolved.get(field.name, getattr(flags, field.name))
                      for field in dataclasses.fields(cls)})

    @staticmethod
    def changeable(name: str) -> bool:
        """Whether a resume may give the setting `name` another value."""
        return _field(name).metadata["changeable"]

    def values(self) -> dict:
        """Every setting by name."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def to_json(self) -> dict:
        values = self.values()
        return {field.name: values[field.name] for field in dataclasses.fields(self)
                if not (field.metadata["written_if_set"] and values[field.name] == field.metadata["older"])}

    @classmethod
    def from_json(cls, data: object, path: str) -> RunSettings:
        """The settings a checkpoint `path` holds, every key with a value of its type that passes its test (a
        setting kept only by later versions takes its older value); a UserError in one line otherwise."""
        fields = dataclasses.fields(cls)
        if isinstance(data, dict):
            data = {**{f.name: f.metadata["older"] for f in fields if f.metadata["older"] is not dataclasses.MISSING},
                    **data}
        if not isinstance(data, dict) or set(data) != {field.name for field in fields} or not all(
                _stored_ok(data[field.name], field) for field in fields):
            raise UserError(f"{path} holds damaged run settings ({short_repr(data)}); resume from another file")
        return cls(**data)


def _field(name: str) -> dataclasses.Field:
    return next(field for field in dataclasses.fields(RunSettings) if field.name == name)


def _stored_ok(value, field: dataclasses.Field) -> bool:
    """A stored setting of the field's type (an int exactly; a float, or an int, that is finite) passing its test."""
    if field.type in (int, "int"):
        if type(value) is not int:
            return False
    elif finite_number(value) is None:
        return False
    return bool(field.metadata["test"](value))


@dataclasses.dataclass(frozen=True)
class EvaluatorSettings:
    """What a worker needs to play episodes (controller.evaluate.Evaluator), settled by rank 0 (a resume's
    checkpoint read, the flags checked) and sent to the workers as JSON data (to_json, from_json): they read no
    checkpoint and check no output of their own (on another machine neither need be there)."""

    env_name: str
    max_length: int
    dream_mode: bool = False
    temperature: float | None = None
    vae_dir: str = VAE_DIR
    rnn_dir: str = RNN_DIR
    data_dir: str = DATA_DIR
    exp_mode: str | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> EvaluatorSettings:
        return cls(**data)

    def make_evaluator(self):
        """A worker's episode player."""
        from controller.evaluate import Evaluator

        return Evaluator(get_config(self.env_name), self.max_length, dream_mode=self.dream_mode,
                         temperature=self.temperature, vae_dir=self.vae_dir, rnn_dir=self.rnn_dir,
                         data_dir=self.data_dir, exp_mode=self.exp_mode)
