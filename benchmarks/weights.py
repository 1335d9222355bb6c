"""Random weights of the paper's shapes, for the benchmarks and the tests (speed and plumbing do not depend on the
values)."""

from __future__ import annotations


def random_weights(shapes: dict, seed: int, scale: float = 1.0) -> dict:
    """float32 arrays of the given shapes (e.g. vae.numpy_vae.expected_vae_shapes), Gaussian and fan-in scaled so
    activations stay of order one: weights of the paper's shapes with random values, for benchmarks and tests."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {key: (rng.standard_normal(shape) * scale / np.sqrt(np.prod(shape[:-1]) if len(shape) > 1 else 10.0)
                  ).astype(np.float32) for key, shape in shapes.items()}
