"""Training curves and V's reconstructions as PNG files (no display needed), written whole."""

from __future__ import annotations

from typing import Mapping, Sequence

from utils import atomic_path


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
