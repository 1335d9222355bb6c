"""The agents shipped in pretrained/ are the ones their manifests describe: every file is the packed one (sha256), the
manifest's score is the mean and std of its own 100 episode scores, the agent replays the manifest's short seeded
episodes to the same scores (what model.py --pretrained plays on those seeds), and each model card is the one its
manifest makes.

In-process and a few seconds an agent: part of make test-fast."""

import glob
import os
import re

import numpy as np
import pytest

from files import repo_root
from shipping.card import CARD, model_card
from shipping.manifest import MANIFEST, PRETRAINED_DIR, shipped, shipped_files, verify, walk_files
from shipping.pack import MAX_TOTAL_BYTES, play_check

SHIPPED = shipped()


def test_both_agents_are_shipped():
    assert SHIPPED == ["car_racing", "doom_take_cover"]  # so that the tests below cannot pass with nothing to check


@pytest.mark.parametrize("env_name", SHIPPED)
def test_every_shipped_file_is_the_packed_one_and_the_score_is_its_episodes(env_name):
    manifest = verify(env_name)  # raises on any sha256 that differs, or a missing file
    assert set(manifest["sha256"]) == set(shipped_files(env_name).values())
    scores = np.array(manifest["scores"])
    assert len(scores) == len(manifest["lengths"]) == manifest["episodes"] >= 100
    assert np.all(np.isfinite(scores))
    assert (manifest["mean"], manifest["std"]) == pytest.approx((scores.mean(), scores.std()), abs=1e-9)


@pytest.mark.parametrize("env_name", SHIPPED)
def test_the_shipped_agent_replays_its_manifests_episodes(env_name):
    check = verify(env_name)["check"]
    results = play_check(env_name, PRETRAINED_DIR, check["seeds"])
    assert [seed for seed, _, _ in results] == check["seeds"]
    assert [reward for _, reward, _ in results] == pytest.approx(check["scores"], abs=1e-6)


@pytest.mark.parametrize("env_name, env_id, metric", [
    ("car_racing", "WorldModels/CarRacing-v3", "855.81 +/- 82.41"),
    ("doom_take_cover", "WorldModels/DoomTakeCover-v0", "813.51 +/- 485.53")])
def test_each_model_card_is_the_one_its_manifest_makes(env_name, env_id, metric):
    """pretrained/<env>/README.md is what `pretrained.py card` writes from the committed manifest (so the two never
    disagree), with the front matter of a published RL agent: its env id and the 100-episode mean_reward."""
    with open(os.path.join(PRETRAINED_DIR, env_name, CARD), encoding="utf-8") as handle:
        card = handle.read()
    assert card == model_card(env_name)
    front_matter = card.split("---\n")[1].splitlines()
    assert front_matter[:6] == ["library_name: keras", "tags:", "- reinforcement-learning", "- world-models",
                                f"- {env_name}", f"- {env_id}"]
    assert f"      name: {env_id}" in front_matter and f'      value: "{metric}"' in front_matter
    assert f"python model.py {env_name} --pretrained --final_mode" in card


# Every agent folder in the repository with a card: the shipped ones, an agent shipped before, a run's packed agent.
CARD_ROOTS = sorted({os.path.dirname(os.path.dirname(path)) for path in
                     glob.glob(os.path.join(repo_root(), "**", MANIFEST), recursive=True)
                     if os.sep + "tests" + os.sep not in path and os.sep + ".venv" + os.sep not in path})


def test_the_cards_found_are_those_committed():
    names = [os.path.relpath(root, repo_root()) for root in CARD_ROOTS]
    assert {"pretrained", "runs/doom_take_cover/shipped_2026-11-30", "runs/reproduce/doom_take_cover/seed1/agent"} \
        <= set(names)


@pytest.mark.parametrize("root", CARD_ROOTS, ids=lambda root: os.path.relpath(root, repo_root()))
def test_every_card_is_its_manifests_and_its_links_and_commands_reach_its_agent(root):
    """Each card anywhere in the repository is the one its manifest makes; every relative link in it reaches a
    file; its commands play the agent of its own folder (--pretrained_dir, load_agent's root=) unless that folder is
    pretrained/; it shows docs/'s still only for the files that still was drawn from (the shipped ones)."""
    for env_name in sorted(os.listdir(root)):
        folder = os.path.join(root, env_name)
        if not os.path.isfile(os.path.join(folder, MANIFEST)):
            continue
        with open(os.path.join(folder, CARD), encoding="utf-8") as handle:
            card = handle.read()
        assert card == model_card(env_name, root)
        for target in re.findall(r"\]\(([^)]+)\)", card):
            if "://" not in target:
                assert os.path.exists(os.path.join(folder, target)), target
        named = os.path.relpath(root, repo_root())
        plays = f"python model.py {env_name} --pretrained --final_mode" if named == "pretrained" else \
            f"python model.py {env_name} --pretrained --pretrained_dir {named} --final_mode"
        assert plays in card and (named == "pretrained") == ("root=" not in card)
        same_as_shipped = verify(env_name)["sha256"] == verify(env_name, root)["sha256"]
        assert (f"docs/pretrained.{env_name}.png)" in card) == same_as_shipped


@pytest.mark.parametrize("command, dream_only", [
    ("python reproduce.py doom_take_cover --seed 1", True),  # every phase of Doom's recipe is in the dream
    ("python reproduce.py doom_take_cover --seed 0 --preset tiny", True),
    ("python reproduce.py car_racing --seed 1", False),
    ("python 05_train_controller.py doom_take_cover --dream_mode 1 --num_worker 2   # stopped at generation 18", True),
    ("python 05_train_controller.py car_racing --num_worker 2", False),
    ("python reproduce.py", False), ("python reproduce.py doom_take_cover --preset huge", False),
    ("python 'unclosed", False)])
def test_the_card_says_c_trained_only_in_the_dream_from_the_command(command, dream_only):
    from shipping.card import trains_only_in_the_dream

    assert trains_only_in_the_dream(command) is dream_only


def test_everything_in_pretrained_fits_the_60_mb_budget():
    total = sum(os.path.getsize(path) for path in walk_files(PRETRAINED_DIR))
    assert 0 < total <= MAX_TOTAL_BYTES == 60 * 1024 * 1024


def test_pretrained_gives_new_settings_and_leaves_the_parsed_ones_as_they_were():
    """model.py --pretrained points a copy of its settings at the shipped files (before: it rewrote the parsed
    arguments in place); the parsed ones are frozen, and to_argv gives their command line back."""
    import dataclasses

    from cli import to_argv
    from scoring import ModelSettings
    from shipping.agents import use_pretrained

    parsed = ModelSettings("car_racing", pretrained=True, dream_mode=True, max_length=30)
    shipped_settings, lines = use_pretrained(parsed)
    folder = os.path.join(PRETRAINED_DIR, "car_racing")
    assert parsed.filename == "" and parsed.vae_dir == "./vae"
    assert shipped_settings == dataclasses.replace(
        parsed, filename=os.path.join(folder, shipped_files("car_racing")["controller"]),
        vae_dir=os.path.join(folder, "vae"), rnn_dir=os.path.join(folder, "rnn"), data_dir=os.path.join(folder, "data"))
    assert shipped_settings.name == "pretrained.car_racing" and lines[0].startswith("pretrained car_racing agent")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.filename = "mine.best.json"
    assert to_argv(parsed) == ["car_racing", "--max_length", "30", "--dream_mode", "1", "--pretrained"]
