"""The agents shipped in pretrained/ are the ones their manifests describe: every file is the packed one (sha256), the
manifest's score is the mean and std of its own 100 episode scores, and the agent replays the manifest's short seeded
episodes to the same scores (what model.py --pretrained plays on those seeds).

In-process and a few seconds an agent: part of make test-fast."""

import os

import numpy as np
import pytest

import pretrained

SHIPPED = pretrained.shipped()


def test_both_agents_are_shipped():
    assert SHIPPED == ["car_racing", "doom_take_cover"]  # so that the tests below cannot pass with nothing to check


@pytest.mark.parametrize("env_name", SHIPPED)
def test_every_shipped_file_is_the_packed_one_and_the_score_is_its_episodes(env_name):
    manifest = pretrained.verify(env_name)  # raises on any sha256 that differs, or a missing file
    assert set(manifest["sha256"]) == set(pretrained.shipped_files(env_name).values())
    scores = np.array(manifest["scores"])
    assert len(scores) == len(manifest["lengths"]) == manifest["episodes"] >= 100
    assert np.all(np.isfinite(scores))
    assert (manifest["mean"], manifest["std"]) == pytest.approx((scores.mean(), scores.std()), abs=1e-9)


@pytest.mark.parametrize("env_name", SHIPPED)
def test_the_shipped_agent_replays_its_manifests_episodes(env_name):
    check = pretrained.verify(env_name)["check"]
    results = pretrained.play_check(env_name, pretrained.PRETRAINED_DIR, check["seeds"])
    assert [seed for seed, _, _ in results] == check["seeds"]
    assert [reward for _, reward, _ in results] == pytest.approx(check["scores"], abs=1e-6)


def test_everything_in_pretrained_fits_the_60_mb_budget():
    total = sum(os.path.getsize(path) for path in pretrained.walk_files(pretrained.PRETRAINED_DIR))
    assert 0 < total <= pretrained.MAX_TOTAL_BYTES == 60 * 1024 * 1024
