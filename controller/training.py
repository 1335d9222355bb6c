"""The pieces of controller training (05) that are not MPI: file names, the resumable state, episode seeds, the
per-generation history, artifacts and the training-curve plot.

Files of one run, named as estool names them, <base> = <env>.<optimizer>.<num_episode>.<population> for the
paper's controller and <env>.<mode>.<optimizer>.<num_episode>.<population> for another --exp_mode (so runs of
different modes never overwrite each other):

    ./controller/<base>.es.pk     optimizer + state (es.save_optimizer: .npz + JSON, no pickle despite estool's
                                  name), rewritten whole every generation
    ./controller/<base>.best.json [params, score] of the best evaluated mean; replaced only by a better score
    ./log/<base>.json             [params, score]: the current mean (rounded to 4 decimals) and this generation's
                                  average reward
    ./log/<base>.hist.json        one row a generation: [generation, elapsed s, average, min, max, std of the
                                  population's rewards, rms sigma, mean episode length, max episode length]
    ./log/<base>.log.json         one row an evaluation: [generation, score, params evaluated]
    ./log/<base>.png              the training curve: population average, min-max band, evaluations

The state (TrainingState, stored as JSON data inside the .es.pk) is the one source of truth: history and evaluations
(HistoryRow, Evaluation) are stored in it, so the JSON files are rewritten from it and a resumed run appends to them
whatever happened to the files. Each class reads and writes its JSON (to_json, from_json) exactly as the lists and
dicts of earlier versions were written.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from config import CONTROLLER_DIR, LOG_DIR
from controller.settings import RunSettings
from files import atomic_path, save_json
from reading import finite_number, short_repr

STATE_FORMAT = 1
# The largest next episode seed a checkpoint may hold: seeds are int64 (np.arange), and a run needs room for its next
# generations (2^32 episodes; a long run plays a million). A run's own seeds start at most at MAX_SEED = 2^62.
MAX_NEXT_SEED = 2 ** 63 - 2 ** 32
PARAM_DECIMALS = 4  # estool rounds the evaluated and saved means to 4 decimals (smaller JSON, same agent)
MIRRORED_OPTIMIZERS = ("openes", "pepg", "ses")  # rows i and i + popsize/2 are mirror images (+eps, -eps)


@dataclasses.dataclass(frozen=True)
class TrainingFiles:
    base: str
    checkpoint: str
    best: str
    current: str
    history: str
    evaluations: str
    plot: str


def training_files(env_name: str, optimizer: str, num_episode: int, population: int,
                   controller_dir: str = CONTROLLER_DIR, log_dir: str = LOG_DIR,
                   exp_mode: str | None = None) -> TrainingFiles:
    """Paths of one run's files (see the module docstring); `exp_mode` None or the environment's paper mode
    keeps estool's base."""
    from config import get_config

    mode = "" if exp_mode in (None, get_config(env_name).exp_mode) else f"{exp_mode}."
    base = f"{env_name}.{mode}{optimizer}.{num_episode}.{population}"
    return TrainingFiles(base=base, checkpoint=f"{controller_dir}/{base}.es.pk", best=f"{controller_dir}/{base}.best.json",
                         current=f"{log_dir}/{base}.json", history=f"{log_dir}/{base}.hist.json",
                         evaluations=f"{log_dir}/{base}.log.json", plot=f"{log_dir}/{base}.png")


@dataclasses.dataclass
class HistoryRow:
    """One generation of .hist.json, estool's row [generation, elapsed s, average, min, max, std, rms sigma, mean
    length, max length] (rewards of the population, lengths of its episodes)."""

    generation: int
    elapsed_s: float
    average: float
    min: float
    max: float
    std: float
    rms_sigma: float
    mean_length: float
    max_length: int

    @classmethod
    def of(cls, generation: int, elapsed: float, rewards: np.ndarray, lengths: np.ndarray,
           rms_sigma: float) -> HistoryRow:
        """The row of one generation, rounded as estool rounds it."""
        return cls(int(generation), round(float(elapsed), 1), round(float(np.mean(rewards)), 2),
                   round(float(np.min(rewards)), 2), round(float(np.max(rewards)), 2),
                   round(float(np.std(rewards)), 2), round(float(rms_sigma), 6), round(float(np.mean(lengths)), 2),
                   int(np.max(lengths)))

    def to_json(self) -> list:
        return list(dataclasses.astuple(self))

    @classmethod
    def from_json(cls, row: list) -> HistoryRow:
        return cls(*row)


@dataclasses.dataclass
class Evaluation:
    """One evaluation of the mean, a row of .log.json: [generation, score, params] and, for a new best of a dream
    run, its score in the real game as a fourth entry."""

    generation: int
    score: float
    params: list
    real_score: float | None = None

    def to_json(self) -> list:
        row = [self.generation, self.score, self.params]
        return row if self.real_score is None else [*row, self.real_score]

    @classmethod
    def from_json(cls, row: list) -> Evaluation:
        return cls(*row)


@dataclasses.dataclass
class TrainingState:
    """The resumable state of a run, stored as JSON in its .es.pk (to_json, from_json)."""

    format: int
    env: str
    optimizer: str
    population: int
    num_episode: int
    exp_mode: str  # with env, optimizer, population, num_episode: the file base
    generation: int = 0  # generations completed
    next_seed: int = 0  # episode seeds are next_seed, next_seed + 1, ...: never reused
    elapsed_s: float = 0.0  # training time of earlier runs of this state
    history: list[HistoryRow] = dataclasses.field(default_factory=list)
    evaluations: list[Evaluation] = dataclasses.field(default_factory=list)
    best_score: float | None = None  # of the best evaluation
    best_params: list | None = None
    cap_length: int | None = None  # --cap_time: the episode cap of the next generation
    best_real_score: float | None = None  # dream mode: the real-game score of the best (absent from the JSON if None)
    settings: RunSettings | None = None  # the run's other flags, kept by a resume; None in older checkpoints
    blas_kernel: str | None = None  # OpenBLAS's kernels of the last generation (blas.blas_kernel); None: unknown

    def to_json(self) -> dict:
        """The JSON data of the checkpoint: the fields in order, the rows as lists."""
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data.update(history=[row.to_json() for row in self.history],
                    evaluations=[row.to_json() for row in self.evaluations],
                    settings=None if self.settings is None else self.settings.to_json())
        for key in ("best_real_score", "settings", "blas_kernel"):
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_json(cls, data: dict, path: str) -> TrainingState:
        """The state read from the checkpoint `path`, its keys and types checked (a file may come from anyone): a
        wrong one is named in one line instead of failing somewhere in the first generation. Keys it does not know
        are left out."""
        from cli import UserError

        for key, types in _STATE_TYPES.items():
            value = data.get(key)
            if key not in data or isinstance(value, bool) or not isinstance(value, types):
                raise UserError(f"{path} holds no valid training state ({key!r} is {value!r}); "
                                "resume from another file")
        if data["format"] != STATE_FORMAT:
            raise UserError(f"{path} holds a training state of format {data['format']}, this code reads {STATE_FORMAT}")
        from config import EXP_MODES

        rows_ok = (_rows_ok(data["history"], data["evaluations"])
                   and (data["best_params"] is None or _numbers_row(data["best_params"], len(data["best_params"]))))
        numbers = [data["elapsed_s"]]
        numbers += [v for v in (data["best_score"], data.get("best_real_score")) if v is not None]
        numbers += data["best_params"] or []
        if (not rows_ok or not _rows_finite(data["history"], data["evaluations"])
                or not all(finite_number(v) is not None for v in numbers) or data["generation"] < 0
                or data["next_seed"] < 0 or (data["cap_length"] is not None and data["cap_length"] < 1)
                or data["exp_mode"] not in EXP_MODES):
            raise UserError(f"{path} holds a damaged training history; resume from another file")
        if not 0 <= data["next_seed"] <= MAX_NEXT_SEED:
            raise UserError(f"{path} holds the next episode seed {short_repr(data['next_seed'])}, outside 0.."
                            f"{MAX_NEXT_SEED} (2^63 - 2^32: seeds are int64, and a run must not run out of them); "
                            f"resume from another file")
        for key, least in (("population", 2), ("num_episode", 1), ("elapsed_s", 0)):
            if not data[key] >= least:
                raise UserError(f"{path} holds {key} {short_repr(data[key])}, less than {least}; resume from "
                                f"another file")
        settings = data.get("settings")
        if settings is not None:
            settings = RunSettings.from_json(settings, path)
        if not isinstance(data.get("blas_kernel"), (str, type(None))):
            raise UserError(f"{path} holds a damaged BLAS kernel name ({short_repr(data['blas_kernel'])}); resume "
                            f"from another file")
        return cls(**{**{key: data[key] for key in _STATE_TYPES}, "best_real_score": data.get("best_real_score"),
                      "history": [HistoryRow.from_json(row) for row in data["history"]],
                      "evaluations": [Evaluation.from_json(row) for row in data["evaluations"]],
                      "settings": settings, "blas_kernel": data.get("blas_kernel")})


def _numbers_row(row, length: int) -> bool:
    return isinstance(row, list) and len(row) == length and all(isinstance(v, (int, float)) for v in row)


def _rows_ok(history, evaluations) -> bool:
    """History rows of 9 numbers; evaluation rows [generation, score, params] and maybe the real-game score."""
    def evaluation_ok(row):
        return (isinstance(row, list) and len(row) in (3, 4) and type(row[0]) is int
                and _numbers_row(row[1:2] + row[3:], len(row) - 2) and isinstance(row[2], list))

    return (isinstance(history, list) and isinstance(evaluations, list)
            and all(_numbers_row(row, 9) for row in history) and all(evaluation_ok(row) for row in evaluations))


def _rows_finite(history, evaluations) -> bool:
    """Every number of rows that passed _rows_ok is finite (a parameter included)."""
    numbers = [v for row in history for v in row]
    for row in evaluations:
        numbers += [*row[1:2], *row[3:], *row[2]]
    return all(finite_number(v) is not None for v in numbers)


@dataclasses.dataclass
class LoggedRun:
    """What a finished run's .hist.json and .log.json say: its history and evaluations as its checkpoint held them
    (write_logs writes both from the state), and the generations it completed. Enough to plot, report and choose
    from a run whose optimizer checkpoint did not travel."""

    generation: int
    history: list[HistoryRow]
    evaluations: list[Evaluation]


def read_logs(files: TrainingFiles) -> LoggedRun:
    """A run's history and evaluations from its .hist.json and .log.json, their rows checked as a checkpoint's are
    (the files may come from anyone); a missing or damaged file is a UserError naming it."""
    from cli import UserError
    from reading import LOG_JSON_BYTES, read_json

    fix = "copy the run's log folder again, or its .es.pk beside it"
    history = read_json(files.history, LOG_JSON_BYTES, "a training history (.hist.json)", fix)
    evaluations = read_json(files.evaluations, LOG_JSON_BYTES, "a training log (.log.json)", fix)
    if not _rows_ok(history, evaluations) or not _rows_finite(history, evaluations):
        raise UserError(f"{files.history} or {files.evaluations} holds a damaged training history; {fix}")
    if [row[0] for row in history] != list(range(1, len(history) + 1)):
        raise UserError(f"{files.history} does not hold one row a generation from generation 1; {fix}")
    return LoggedRun(len(history), [HistoryRow.from_json(row) for row in history],
                     [Evaluation.from_json(row) for row in evaluations])


_STATE_TYPES = {"format": int, "env": str, "optimizer": str, "population": int, "num_episode": int, "exp_mode": str,
                "generation": int, "next_seed": int, "elapsed_s": (int, float), "history": list, "evaluations": list,
                "best_score": (int, float, type(None)), "best_params": (list, type(None)),
                "cap_length": (int, type(None))}


def new_state(env_name: str, optimizer: str, population: int, num_episode: int, seed_start: int,
              exp_mode: str) -> TrainingState:
    """The state of a run that has done nothing yet."""
    return TrainingState(STATE_FORMAT, env_name, optimizer, population, num_episode, exp_mode,
                         next_seed=int(seed_start))


def take_seeds(state: TrainingState, count: int) -> np.ndarray:
    """The next `count` episode seeds (int64), advancing the state's counter; a UserError once int64 runs out (a run
    from a --seed_start of at most 2^62 would need 2^62 episodes to get there)."""
    from cli import UserError

    if state.next_seed + count > 2 ** 63:
        raise UserError("this run has used every episode seed up to 2^63 - 1 (int64); start a new run with a "
                        "smaller --seed_start")
    seeds = np.arange(state.next_seed, state.next_seed + count, dtype=np.int64)
    state.next_seed += count
    return seeds


def generation_seeds(state: TrainingState, population: int, num_episode: int, mirrored: bool,
                     common: bool = False) -> np.ndarray:
    """Episode seeds of one generation, (population, num_episode).

    Every solution gets fresh tracks; with `mirrored` (antithetic sampling by an optimizer whose rows i and
    i + population/2 are +eps and -eps) both halves of a pair drive the same tracks, as estool does, so the
    difference of their rewards measures the perturbation rather than the luck of the track. With `common`
    (--common_seeds 1) every solution drives the same num_episode tracks, fresh each generation: the ranking
    compares the controllers on one set of tracks (common random numbers) rather than each on its own.
    """
    if common:
        return np.tile(take_seeds(state, num_episode), (population, 1))
    if mirrored and population % 2 == 0:
        half = take_seeds(state, population // 2 * num_episode).reshape(population // 2, num_episode)
        return np.concatenate([half, half])
    return take_seeds(state, population * num_episode).reshape(population, num_episode)


def generation_phases(task_times, workers: int, started: float, asked: float, played: float, told: float,
                      evaluated: float, saved: float) -> dict[str, float]:
    """Where a generation's wall time went, in seconds, from the leader's clock (time.perf_counter) at the ends of its
    stages and the TaskTime of every task of the population (parallel.py); averages are over the `workers` ranks:

        ask        the optimizer's ask and the episode seeds
        episodes   a worker's time on episodes
        waiting    a worker idle at the end, from its last result to the last result of all
        messages   the rest of the population's time: tasks and results on their way, the polls, the handing out
        update     the optimizer's tell
        evaluation the evaluation of the mean, when one is due (its episodes included)
        save       checkpoint, best controller, logs and curve

    ask + episodes + waiting + messages + update + evaluation + save = total, the generation's wall time.
    """
    last_result: dict[int, float] = {}  # of each rank that had a task
    for task in task_times:
        last_result[task.rank] = max(task.received, last_result.get(task.rank, task.received))
    ranks = max(workers, len(last_result))
    idle = ranks - len(last_result)  # more workers than tasks: some idle throughout
    episodes = sum(task.busy for task in task_times) / ranks
    waiting = (sum(played - end for end in last_result.values()) + idle * (played - asked)) / ranks
    return {"total": saved - started, "ask": asked - started, "episodes": episodes, "waiting": waiting,
            "messages": played - asked - episodes - waiting, "update": told - played, "evaluation": evaluated - told,
            "save": saved - evaluated}


def progress_line(row: HistoryRow, seconds: float) -> str:
    """One line a generation, from its history row and its wall time."""
    return (f"gen {row.generation:4d}  avg {row.average:8.2f}  min {row.min:8.2f}  max {row.max:8.2f}  "
            f"std {row.std:7.2f}  sigma {row.rms_sigma:.4f}  len {row.mean_length:.0f}/{row.max_length}  "
            f"{seconds:5.1f}s  total {row.elapsed_s / 60:.1f} min")


def best_score_on_disk(path: str) -> float | None:
    """The score in an existing .best.json (None when absent or unreadable): a new best must beat it."""
    from cli import UserError
    from reading import PARAMS_JSON_BYTES, read_json

    if not os.path.lexists(path):
        return None
    try:
        value = read_json(path, PARAMS_JSON_BYTES, "a .best.json", "move it away")
    except UserError:  # unreadable: the checkpoint's best is written over it
        return None
    return finite_number(value[1]) if isinstance(value, list) and len(value) > 1 else None


def rounded(params: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(params, dtype=np.float64), PARAM_DECIMALS)


def write_logs(files: TrainingFiles, state: TrainingState, current_params: np.ndarray, average: float) -> None:
    """Rewrite ./log/<base>.json, .hist.json, .log.json and .png from the state, each file whole. <base>.json is a
    parameter file as .best.json is ([params, average, {"env", "exp_mode"}]): its mode travels with it (zc and zh
    have as many parameters, so a file without one would be read as the paper's mode)."""
    save_json(files.current, [rounded(current_params).tolist(), float(average),
                              {"env": state.env, "exp_mode": state.exp_mode}])
    save_json(files.history, [row.to_json() for row in state.history])
    save_json(files.evaluations, [row.to_json() for row in state.evaluations])
    save_plot(files.plot, state, files.base)


def evaluation_points(evaluations: list[Evaluation]) -> dict[str, np.ndarray]:
    """The plotted points, (generation, score) rows: every evaluated mean and, for the means of a dream run played in
    the real game (its new bests, or every one with --real_every 1), their score there."""
    points = {"mean evaluated": [[row.generation, row.score] for row in evaluations],
              "mean in the real game": [[row.generation, row.real_score] for row in evaluations
                                        if row.real_score is not None]}
    return {label: np.asarray(rows, dtype=np.float64) for label, rows in points.items() if rows}


def save_plot(path: str, state: TrainingState, title: str) -> None:
    """The training curve as PNG (matplotlib Agg, no display): population average with its min-max band, the
    evaluated means as points and, in dream mode, the real-game scores of the new bests as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def column(name: str) -> np.ndarray:
        return np.asarray([getattr(row, name) for row in state.history], dtype=np.float64)

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    axes.fill_between(column("generation"), column("min"), column("max"), alpha=0.2, label="population min-max")
    axes.plot(column("generation"), column("average"), label="population average")
    for (label, points), marker in zip(evaluation_points(state.evaluations).items(), ("o", "x")):
        axes.plot(points[:, 0], points[:, 1], marker, label=label, markeredgewidth=2)
    axes.set_xlabel("generation")
    axes.set_ylabel("reward per episode")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
