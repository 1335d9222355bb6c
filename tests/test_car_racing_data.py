"""CarRacing's data for V and M: the frame crop (the dashboard cut) and stage 01's random data policy, against
known answers: hand-made frames, the exact schedule of the policy and the frequencies of its action categories."""

import numpy as np
import pytest
from PIL import Image

from envs import get_spec
from envs.car_racing import CROP_ROWS

SPEC = get_spec("car_racing")

GAS = np.array([0.0, 1.0, 0.0], dtype=np.float32)


# --- the crop: rows 0..83 kept, the dashboard (rows 84..95) cut, resized to 64x64 ---------------------------------

def striped_frame():
    """A 96x96 frame whose red channel is the row's index in the picture (rows 0..83) and whose dashboard rows
    84..95 are pure green, a color found nowhere above them."""
    frame = np.zeros((96, 96, 3), dtype=np.uint8)
    frame[:84, :, 0] = np.arange(84, dtype=np.uint8)[:, None]
    frame[84:] = (0, 255, 0)
    return frame


def test_the_crop_keeps_rows_0_to_83_and_cuts_the_dashboard():
    assert CROP_ROWS == 84
    frame = SPEC.process_frame(striped_frame())
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert not frame[..., 1].any()  # no trace of the dashboard's green: not one of its rows is kept
    # The rows run from the top (index 0) to the last picture row (83), all of them: a crop of fewer rows would end
    # lower (80 rows: ~79), one of more would mix green in. Bilinear smoothing moves the edge rows by a little.
    assert frame[0, :, 0].max() <= 1 and 81 <= frame[63, :, 0].min() <= 83
    assert np.all(np.diff(frame[:, 0, 0].astype(int)) >= 0)  # top to bottom, in order: not flipped
    # exactly PIL's bilinear resize of the top 84 rows (as the seed's imresize of obs[0:84, :, :])
    expected = np.asarray(Image.fromarray(striped_frame()[:84]).resize((64, 64), Image.BILINEAR))
    np.testing.assert_array_equal(frame, expected)


def test_the_last_picture_row_counts_and_the_dashboard_never_does():
    frame = striped_frame()
    changed = frame.copy()
    changed[83] = (255, 255, 255)  # the last kept row
    assert not np.array_equal(SPEC.process_frame(changed), SPEC.process_frame(frame))
    changed = frame.copy()
    changed[84:] = np.random.default_rng(0).integers(0, 256, (12, 96, 3), dtype=np.uint8)  # any dashboard at all
    np.testing.assert_array_equal(SPEC.process_frame(changed), SPEC.process_frame(frame))


def test_a_real_frames_dashboard_is_cut():
    """On the environment's own frame: the dashboard (speed, ABS and steering bars) does not reach V's input."""
    env = SPEC.make()
    observation, _ = env.reset(seed=3)
    for _ in range(30):
        observation, *_ = env.step(GAS)  # moving: the speed bar is drawn
    env.close()
    assert observation[84:].any()  # the dashboard is there in the 96x96 frame ...
    blank = observation.copy()
    blank[84:] = 0
    np.testing.assert_array_equal(SPEC.process_frame(observation), SPEC.process_frame(blank))


# --- the random data policy ---------------------------------------------------------------------------------------

def actions(seed, steps):
    policy = SPEC.random_policy(seed)
    return np.array([policy() for _ in range(steps)])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_full_gas_for_60_steps_then_a_new_random_action_every_5_steps(seed):
    played = actions(seed, 60 + 5 * 40)
    assert played.dtype == np.float32 and played.shape == (260, 3)
    assert np.all(played[:60] == GAS)
    # Step 60 is the first draw: never full gas again (a gas draw is in [0, 1), and the other categories have no gas).
    assert not np.array_equal(played[60], GAS)
    blocks = played[60:].reshape(40, 5, 3)
    assert np.all(blocks == blocks[:, :1])  # each draw is held for exactly its 5 steps ...
    changes = [not np.array_equal(a, b) for a, b in zip(blocks[:-1, 0], blocks[1:, 0])]
    assert sum(changes) >= 38  # ... and the next block is a new draw (the same only for "nothing" twice: 1%)


def test_the_same_seed_gives_the_same_actions_another_seed_others():
    np.testing.assert_array_equal(actions(7, 200), actions(7, 200))
    assert not np.array_equal(actions(7, 200), actions(8, 200))


def categories(draws):
    """Each draw's category, from its single non-zero entry and its sign (the amount is 0 with probability 0)."""
    steer, gas, brake = draws.T
    return np.select([~draws.any(axis=1), gas > 0, steer < 0, steer > 0, brake > 0],
                     ["nothing", "gas", "left", "right", "brake"], "other")


def test_action_categories_have_the_seed_articles_frequencies():
    """10% nothing, 40% gas, 30% steer left, 10% steer right, 10% brake, each amount uniform in [0, 1).

    Over N = 20,000 draws (400 episodes of 50 draws) a category's frequency has a standard deviation of
    sqrt(p (1 - p) / N): 0.0021 at 10%, 0.0032 at 30%, 0.0035 at 40%. The bound of 5 of those leaves a correct
    policy a chance below 1e-6 of failing (and the seeds are fixed, so the result never changes), while any
    misplaced threshold (categories off by 0.05 or more, e.g. 35/35 or the two steers swapped) is 14 or more
    deviations away. The same bound holds each category's mean amount at 1/2 (sd sqrt(1/12 / count))."""
    episodes, per_episode = 400, 50
    draws = np.concatenate([actions(seed, 60 + 5 * per_episode)[60::5] for seed in range(episodes)])
    count = len(draws)
    assert count == 20_000
    assert np.count_nonzero(draws, axis=1).max() <= 1  # one control at a time
    kinds = categories(draws)
    expected = {"nothing": 0.1, "gas": 0.4, "left": 0.3, "right": 0.1, "brake": 0.1}
    for kind, p in expected.items():
        frequency = np.mean(kinds == kind)
        assert abs(frequency - p) < 5 * np.sqrt(p * (1 - p) / count), (kind, frequency)
    assert set(kinds) == set(expected)
    amounts = {"gas": draws[:, 1], "left": -draws[:, 0], "right": draws[:, 0], "brake": draws[:, 2]}
    for kind, amount in amounts.items():
        chosen = amount[kinds == kind]
        assert chosen.min() >= 0 and chosen.max() < 1  # left steers by -amount: in (-1, 0]
        assert abs(chosen.mean() - 0.5) < 5 * np.sqrt(1 / 12 / len(chosen)), (kind, chosen.mean())
