"""Every seed of a reproduce run, derived from its --seed N: disjoint between runs, steps and uses, and from the
seeds that score (111..210) or that nothing may touch (10,000,000..10,000,099), all below 2**31 (ViZDoom takes
uint32, NumPy's seeds int32 in places).

Run N owns the block [BASE + N * BLOCK, BASE + (N + 1) * BLOCK):

    + k * STEP_BLOCK              the k-th Collect step's episodes (01 --seed: episode i of batch b is seed + b x
                                  batch size + i; a few thousand episodes in all)
    + COLLECT_STEPS * STEP_BLOCK  + j * STEP_BLOCK: the j-th controller phase (05 --seed_start: its track and
                                  optimizer seeds), + r * RESTART_BLOCK for its r-th restart
    + SELECTION_OFFSET            the selection episodes of the candidates

02, 03 and 04 take N itself (their Keras and z draws), so two runs differ in every random number.
"""

from __future__ import annotations

BASE = 100_000_000  # far above the scoring seeds and the untouched ones
BLOCK = 10_000_000
STEP_BLOCK = 1_000_000  # a phase of 250 generations at 16 x 8 with evaluations uses about 3,000
RESTART_BLOCK = 250_000
COLLECT_STEPS = 4  # blocks 0..3 for Collect steps, 4..8 for controller phases, 9 for selection
PHASE_STEPS = 5
SELECTION_OFFSET = 9 * STEP_BLOCK
SCORING_SEED = 111  # model.py --final_mode's seeds 111..210
UNTOUCHED_SEED = 10_000_000  # seeds 10,000,000..10,000,099: nothing trains or chooses on them
MAX_SEED = (2**31 - BASE) // BLOCK - 1  # the last N whose whole block stays below 2**31


def run_base(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be 0..{MAX_SEED} (every derived seed stays below 2**31), got {seed}")
    return BASE + seed * BLOCK


def collect_seed(seed: int, index: int) -> int:
    """01's --seed for the index-th Collect step of run `seed`."""
    assert 0 <= index < COLLECT_STEPS
    return run_base(seed) + index * STEP_BLOCK


def phase_seed(seed: int, index: int, restart: int = 0) -> int:
    """05's --seed_start for the index-th controller phase (its restart-th restart) of run `seed`."""
    assert 0 <= index < PHASE_STEPS and 0 <= restart < STEP_BLOCK // RESTART_BLOCK
    return run_base(seed) + (COLLECT_STEPS + index) * STEP_BLOCK + restart * RESTART_BLOCK


def selection_seed(seed: int) -> int:
    """The first of the selection episodes' seeds (every candidate plays the same ones)."""
    return run_base(seed) + SELECTION_OFFSET
