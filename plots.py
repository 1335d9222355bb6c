"""Training curves as PNG files (matplotlib, no display needed), written whole."""

from __future__ import annotations

from typing import Mapping, Sequence

from utils import atomic_path


def save_curves(path: str, series: Mapping[str, Sequence[float]], xlabel: str, ylabel: str, title: str,
                x: Sequence[float] | None = None, log_y: bool = False) -> str:
    """Plot each named series against `x` (default 1, 2, ...) into one PNG at `path`; returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for name, values in series.items():
        xs = list(x) if x is not None else list(range(1, len(values) + 1))
        axes.plot(xs[: len(values)], list(values), label=name)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if log_y:
        axes.set_yscale("symlog")
    axes.grid(alpha=0.3)
    if len(series) > 1:
        axes.legend()
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return path
