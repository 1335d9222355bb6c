"""Training curves and V's reconstructions as PNG files (no display needed), written whole; and controller runs side
by side in one PNG (what plots.py draws): each run 05's ./log/<base>.hist.json, its population average per generation
as a line and, where its .log.json lies beside it, the evaluated means as dots of the same colour. The files are read
as JSON data and checked (rows of finite numbers): a malformed one is refused with one line (a UserError).
"""

from __future__ import annotations

import math
import os
from typing import Mapping, NamedTuple, Sequence

from cli import UserError
from files import atomic_path
from reading import LOG_JSON_BYTES, finite_number, read_json, short_repr

# The official estool CarRacing run's population average, (generation, reward), as its training log reports it:
# population 64 x 16 episodes, 2342 s a generation on 64 cores.
OFFICIAL_CAR_RACING = ((1, -55), (7, 148), (12, 329), (17, 556), (27, 662), (37, 741), (52, 774), (101, 792),
                       (181, 830), (1800, 890))


def save_curves(path: str, series: Mapping[str, Sequence[float]], xlabel: str, ylabel: str, title: str,
                x: Sequence[float] | None = None, log_y: bool = False,
                points: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None) -> str:
    """Plot each named series against `x` (default 1, 2, ...) into one PNG at `path`; returns `path`. `points`:
    named (xs, ys) measured only now and then (held-out losses at the ends of epochs), drawn as dots joined by lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for name, values in series.items():
        xs = list(x) if x is not None else list(range(1, len(values) + 1))
        axes.plot(xs[: len(values)], list(values), label=name)
    for name, (xs, ys) in (points or {}).items():
        axes.plot(list(xs), list(ys), marker="o", label=name)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if log_y:
        axes.set_yscale("symlog")
    axes.grid(alpha=0.3)
    if len(series) + len(points or {}) > 1:
        axes.legend()
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return path


def save_reconstructions(path: str, frames, reconstructions, scale: int = 2) -> str:
    """Frames (N, 64, 64, 3) uint8 in the top row, V's reconstructions (N, 64, 64, 3) in [0, 1] below them,
    each enlarged `scale` times (nearest), as one PNG at `path`; returns `path`."""
    import numpy as np
    from PIL import Image

    top = np.concatenate(list(np.asarray(frames, dtype=np.uint8)), axis=1)
    bottom = np.concatenate(list(np.round(np.clip(np.asarray(reconstructions), 0.0, 1.0) * 255.0)
                                 .astype(np.uint8)), axis=1)
    grid = np.concatenate([top, bottom], axis=0).repeat(scale, axis=0).repeat(scale, axis=1)
    with atomic_path(path, suffix=".png") as temporary:
        Image.fromarray(grid).save(temporary, format="PNG")
    return path


# --- runs side by side (the command line) ----------------------------------------------------------------------------

def _read_rows(path: str, what: str, made: str) -> list:
    rows = read_json(path, LOG_JSON_BYTES, what, f"give the {made} 05 writes")
    if not isinstance(rows, list) or not all(isinstance(row, list) and len(row) >= 2 for row in rows):
        raise UserError(f"{path} is not {what} (05 writes {made}): that is a list of rows")
    return rows


def _number(path: str, row: int, value: object) -> float:
    number = finite_number(value)
    if number is None:
        raise UserError(f"{path}, row {row + 1}: {short_repr(value, 20)} is not a finite number")
    return number


def read_history(path: str) -> tuple[list[float], list[float]]:
    """(generations, population averages) of 05's .hist.json, whose rows are [generation, elapsed s, average, ...]."""
    rows = _read_rows(path, "a controller run's history", "./log/<base>.hist.json")
    if not rows:
        raise UserError(f"{path} has no generation yet")
    if not all(len(row) >= 3 for row in rows):
        raise UserError(f"{path} is not a controller run's history: its rows start [generation, elapsed s, average]")
    return ([_number(path, i, row[0]) for i, row in enumerate(rows)],
            [_number(path, i, row[2]) for i, row in enumerate(rows)])


Points = tuple[list[float], list[float]]


def _read_log(path: str) -> tuple[Points, Points]:
    """((generations, scores), (generations, real-game means)) of 05's .log.json, read once: rows are [generation,
    score, params(, real score)], the fourth entry a dream run's real-game score of that generation's new best (05
    --dream_mode 1 plays each in the game); none in a real-game run."""
    rows = _read_rows(path, "a controller run's evaluations", "./log/<base>.log.json")
    scored = [(i, row) for i, row in enumerate(rows) if len(row) >= 4 and row[3] is not None]
    return (([_number(path, i, row[0]) for i, row in enumerate(rows)],
             [_number(path, i, row[1]) for i, row in enumerate(rows)]),
            ([_number(path, i, row[0]) for i, row in scored], [_number(path, i, row[3]) for i, row in scored]))


def read_evaluations(path: str) -> Points:
    """(generations, scores) of 05's .log.json."""
    return _read_log(path)[0]


class Run(NamedTuple):
    """A controller run to draw: its label, its .hist.json, and the generations before its first (a restart's)."""

    label: str
    history: str
    after: int = 0


def parse_run(text: str) -> Run:
    """'[LABEL=]PATH[+N]' -> (label, path, N); the label defaults to the file's base (<base>.hist.json). '+N' draws a
    run that went on from another's generation N (a restart from its best) after it: its generation g at N + g."""
    spec, plus, after = text.rpartition("+")
    if not plus or not after.isdigit() or os.path.exists(text):
        spec, after = text, "0"
    label, separator, path = spec.partition("=")
    if not separator or not label or os.path.exists(spec):  # a file whose own name holds an "="
        path = spec
        label = os.path.basename(spec).removesuffix(".json").removesuffix(".hist")
    if not path.endswith(".hist.json"):
        raise UserError(f"{path} is not a .hist.json file (05's ./log/<base>.hist.json)")
    return Run(label, path, int(after))


def read_run(history: str, after: int = 0) -> tuple[Points, Points, Points]:
    """((generations, averages), (generations, evaluated means), (generations, real-game means)) of a run's
    .hist.json and the .log.json beside it (none: no points), its generations counted on from `after`."""
    evaluations = history.removesuffix(".hist.json") + ".log.json"
    generations, averages = read_history(history)
    (evaluated, scores), (checked, real) = _read_log(evaluations) if os.path.exists(evaluations) else (([], []),
                                                                                                      ([], []))
    return (([after + g for g in generations], averages), ([after + g for g in evaluated], scores),
            ([after + g for g in checked], real))


def save_runs(path: str, runs: Sequence[Run], official: bool = False, title: str = "") -> str:
    """One PNG at `path` of each (label, .hist.json, generations before) run's population average, evaluated means
    and (a dream run's) real-game scores of the means it played there; returns `path`. Every file is read and
    checked before anything is drawn."""
    curves = [(label, *read_run(history, after)) for label, history, after in runs]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    last = max(max(generations) for _, (generations, _), _, _ in curves)
    for index, (label, (generations, averages), (evaluated, scores), (checked, real)) in enumerate(curves):
        color = f"C{index}"
        axes.plot(generations, averages, color=color, label=label)
        axes.plot(evaluated, scores, "o", color=color)
        axes.plot(checked, real, "x", color=color, markersize=8, markeredgewidth=2)
    # one legend entry a run (its colour), then one a kind of mark, in grey
    kinds = [("-", "population average"), ("o", "mean evaluated")]
    if any(checked for *_, (checked, _) in curves):
        kinds.append(("x", "mean in the real game"))
    for style, text in kinds:
        axes.plot([], [], style, color="0.45", markeredgewidth=2 if style == "x" else None, label=text)
    if official:
        beyond = next(i for i, (generation, _) in enumerate(OFFICIAL_CAR_RACING + ((math.inf, 0),))
                      if generation > last)
        shown = OFFICIAL_CAR_RACING[:beyond + 1]  # up to the first point past our last generation, cut at the edge
        axes.plot(*zip(*shown), "k--", marker="s", markersize=4, label="official run (pop. 64 x 16 episodes)")
        axes.set_xlim(0, last * 1.03 + 1)
    axes.set_xlabel("generation")
    axes.set_ylabel("reward per episode")
    axes.set_title(title or "controller training")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return path
