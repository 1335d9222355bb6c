"""Shipped agents: packing a trained agent, model.py --pretrained playing it with the manifest's score, and every
way the shipped files can be wrong (missing, altered, absent for an env, combined with --filename).

The agent packed here has random weights of the paper's shapes (what is tested is the shipping, not the driving)
and episodes of a few steps, so that its 100-episode score takes seconds."""

import json
import os

import numpy as np
import pytest

from benchmarks.weights import random_weights
from config import CAR_RACING
from controller.controller import random_params, save_params
from npyio import save_npy, save_npz
from rnn.numpy_rnn import expected_rnn_shapes
from shipping.card import model_card
from shipping.manifest import sha256, shipped_files, verify, walk_files
from shipping.pack import MAX_TOTAL_BYTES
from tests.scripts import run
from vae.numpy_vae import expected_vae_shapes

pytestmark = pytest.mark.slow  # every test runs the scripts as subprocesses: left out of make test-fast

SHORT = ["--max_length", 3, "--num_worker", 2]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A CarRacing run (random V, M, C; first frames) scored over 100 short episodes and packed into root/."""
    folder = tmp_path_factory.mktemp("run")
    save_npz(str(folder / "vae" / "car_racing.npz"), **random_weights(expected_vae_shapes(32), 1))
    save_npz(str(folder / "rnn" / "car_racing.npz"), **random_weights(expected_rnn_shapes(CAR_RACING), 2))
    initial = np.random.default_rng(3).standard_normal((300, 2, 32)).astype(np.float32)
    save_npy(str(folder / "data" / "rnn_initial_car_racing_0.npy"), initial)
    save_params(str(folder / "controller" / "car_racing.cma.1.4.best.json"), random_params(CAR_RACING, 4), 1.0,
                "car_racing", "zh")
    filename = "./controller/car_racing.cma.1.4.best.json"
    run("model.py", "car_racing", "--filename", filename, "--final_mode", *SHORT, cwd=folder)
    root = folder / "pretrained"
    result = run("pretrained.py", "pack", "car_racing", "--filename", filename, "--final",
                 "./log/car_racing.cma.1.4.best.final.json", "--command", "python 01_generate_data.py car_racing",
                 "--root", str(root), cwd=folder)
    assert "packed car_racing" in result.stdout
    return folder, root


def manifest(root):
    with open(root / "car_racing" / "manifest.json") as handle:
        return json.load(handle)


def test_the_pack_holds_every_file_with_its_sha256_and_the_score(packed):
    folder, root = packed
    shipped = manifest(root)
    with open(folder / "log" / "car_racing.cma.1.4.best.final.json") as handle:
        final = json.load(handle)
    assert (shipped["mean"], shipped["std"], shipped["first_seed"], shipped["episodes"]) == \
        (final["mean"], final["std"], 111, 100)
    assert shipped["commands"] == ["python 01_generate_data.py car_racing"]
    assert shipped["trained_in"] == "game"  # no command trains C with --dream_mode 1
    assert shipped["scores"] == final["scores"] and shipped["lengths"] == final["lengths"]
    assert shipped["check"]["seeds"] == [111, 112, 113] and shipped["check"]["max_length"] == 300
    assert shipped["blas_kernel"] == final["blas_kernel"] == "Haswell"  # OpenBLAS's kernels where both were played
    for relative in shipped_files("car_racing").values():
        assert shipped["sha256"][relative] == sha256(str(root / "car_racing" / relative))
    assert np.load(root / "car_racing" / "data" / "rnn_initial_car_racing_0.npy").shape == (200, 2, 32)
    assert (root / "car_racing" / "vae" / "car_racing.npz").read_bytes() == \
        (folder / "vae" / "car_racing.npz").read_bytes()  # float32 as trained, byte for byte


def test_the_pack_writes_the_model_card_from_its_manifest(packed):
    _, root = packed
    with open(root / "car_racing" / "README.md", encoding="utf-8") as handle:
        card = handle.read()
    assert card == model_card("car_racing", str(root))
    shipped = manifest(root)
    assert f'      value: "{shipped["mean"]:.2f} +/- {shipped["std"]:.2f}"\n' in card
    assert "```\npython 01_generate_data.py car_racing\n```" in card  # how it was trained: the manifest's commands


def test_the_manifest_and_card_say_where_c_was_trained(packed, tmp_path):
    """pack --trained_in dream (as reproduce.py passes for a controller of a dream phase) goes into the manifest and
    the card whatever the commands say; a manifest whose trained_in is neither dream nor game is refused."""
    folder, _ = packed
    root = tmp_path / "root"
    run("pretrained.py", "pack", "car_racing", "--filename", "./controller/car_racing.cma.1.4.best.json", "--final",
        "./log/car_racing.cma.1.4.best.final.json", "--command", "python reproduce.py car_racing --seed 3",
        "--trained_in", "dream", "--root", str(root), cwd=folder)
    assert manifest(root)["trained_in"] == "dream"
    with open(root / "car_racing" / "README.md", encoding="utf-8") as handle:
        assert "C trained only inside M's dream, never in the game." in handle.read()
    shipped = manifest(root)
    shipped["trained_in"] = "moon"
    with open(root / "car_racing" / "manifest.json", "w") as handle:
        json.dump(shipped, handle)
    result = run("pretrained.py", "verify", "car_racing", "--root", str(root), cwd=folder, check=False)
    assert result.returncode != 0 and "is not a manifest of a pretrained car_racing agent" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_pack_keeps_the_untouched_score_and_the_run(packed, tmp_path):
    """pack --untouched: a second 100-episode score of the same files on other seeds goes into the manifest and the
    card beside the first; --run names the run that made the agent, linked from the card."""
    folder, _ = packed
    filename = "./controller/car_racing.cma.1.4.best.json"
    run("model.py", "car_racing", "--filename", filename, "--final_mode", *SHORT, "--seed", 10_000_000, "--log_dir",
        "./untouched", cwd=folder)
    root = tmp_path / "root"
    run("pretrained.py", "pack", "car_racing", "--filename", filename, "--final",
        "./log/car_racing.cma.1.4.best.final.json", "--untouched", "./untouched/car_racing.cma.1.4.best.final.json",
        "--run", str(folder), "--command", "python reproduce.py car_racing --seed 3", "--root", str(root), cwd=folder)
    shipped = manifest(root)
    with open(folder / "untouched" / "car_racing.cma.1.4.best.final.json") as handle:
        untouched = json.load(handle)
    assert shipped["untouched"] == {key: untouched[key] for key in
                                    ("first_seed", "episodes", "max_length", "mean", "std", "scores", "lengths")}
    assert shipped["untouched"]["first_seed"] == 10_000_000 and shipped["first_seed"] == 111
    assert shipped["run"] == str(folder)  # outside the repository: absolute
    verify("car_racing", str(root))
    with open(root / "car_racing" / "README.md", encoding="utf-8") as handle:
        card = handle.read()
    assert (f"On 100 episodes that nothing trained or chose on (seeds 10000000 to 10000099, at most 3 steps each): "
            f"**{untouched['mean']:.2f} ± {untouched['std']:.2f}**") in card
    assert f"[`{folder}`]({os.path.relpath(folder, root / 'car_racing')})" in card
    assert "C trained only inside M's dream" not in card and shipped["trained_in"] == "game"  # CarRacing's recipe
    # packed outside pretrained/: its commands play this folder, and docs/'s still (the shipped agent's) is not shown
    assert f"--pretrained --pretrained_dir {root} --final_mode --seed 10000000` plays them again" in card
    assert f'load_agent("car_racing", root="{root}")' in card and "No still of this agent" in card


@pytest.mark.parametrize("change, message", [
    (lambda untouched: untouched, "plays seeds 111..210, which overlap"),  # the --final file itself
    (lambda untouched: {**untouched, "sha256": {**untouched["sha256"], "vae": "0" * 64}},
     "is not a score of the files"),
    (lambda untouched: {**untouched, "blas_kernel": "Sandybridge"}, "with OpenBLAS's Sandybridge kernels"),
    (lambda untouched: {**untouched, "episodes": 99}, "is not a 100-episode score"),
])
def test_an_untouched_score_of_other_files_or_the_same_seeds_is_refused(packed, tmp_path, change, message):
    folder, _ = packed
    with open(folder / "log" / "car_racing.cma.1.4.best.final.json") as handle:
        final = json.load(handle)
    (tmp_path / "other.final.json").write_text(json.dumps(change(final)))
    result = run("pretrained.py", "pack", "car_racing", "--filename", "./controller/car_racing.cma.1.4.best.json",
                 "--final", "./log/car_racing.cma.1.4.best.final.json", "--untouched", str(tmp_path / "other.final.json"),
                 "--root", str(tmp_path / "root"), cwd=folder, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "root").exists()


def test_pretrained_final_mode_prints_the_manifests_score(packed, tmp_path):
    _, root = packed
    shipped = manifest(root)
    result = run("model.py", "car_racing", "--pretrained", "--pretrained_dir", root, "--final_mode", *SHORT,
                 cwd=tmp_path)  # anywhere: nothing is read from the working directory
    assert f"mean {shipped['mean']:.2f} +- {shipped['std']:.2f}" in result.stdout
    assert "over 100 episodes from seed 111 of at most 3 steps" in result.stdout  # the manifest's episode length
    with open(tmp_path / "log" / "pretrained.car_racing.final.json") as handle:
        assert json.load(handle)["mean"] == shipped["mean"]  # same seeds, same episodes


def test_a_manifest_played_with_other_blas_kernels_is_said(packed, tmp_path):
    """Scores recorded on a machine whose OpenBLAS ran other kernels (a user's own OPENBLAS_CORETYPE, a CPU without
    AVX2) need not replay here: model.py says so before playing."""
    import shutil

    _, root = packed
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shipped = manifest(copy)
    (copy / "car_racing" / "manifest.json").write_text(json.dumps({**shipped, "blas_kernel": "Sandybridge"}))
    result = run("model.py", "car_racing", "--pretrained", "--pretrained_dir", copy, "--num_episode", 1, *SHORT,
                 cwd=tmp_path)
    assert ("note: those episodes were played with OpenBLAS's Sandybridge kernels and this machine runs Haswell"
            in result.stdout)
    result = run("model.py", "car_racing", "--pretrained", "--pretrained_dir", root, "--num_episode", 1, *SHORT,
                 cwd=tmp_path)
    assert "note:" not in result.stdout


def test_pretrained_plays_in_the_dream_and_records(packed, tmp_path):
    _, root = packed
    result = run("model.py", "car_racing", "--pretrained", "--pretrained_dir", root, "--dream_mode",
                 "--record_video", "--max_length", 5, cwd=tmp_path)
    assert os.path.getsize(tmp_path / "video" / "pretrained.car_racing.dream.seed111.mp4") > 0
    assert "video" in result.stdout


def test_the_manifests_check_is_what_model_py_plays(packed, tmp_path):
    """The short episodes recorded at packing (tests/test_shipped.py replays them for the real shipped agents) are
    the ones a user gets from model.py --pretrained on the same seeds."""
    _, root = packed
    check = manifest(root)["check"]
    run("model.py", "car_racing", "--pretrained", "--pretrained_dir", root, "--final_mode", "--num_episode", 3,
        "--max_length", check["max_length"], "--num_worker", 2, cwd=tmp_path)
    with open(tmp_path / "log" / "pretrained.car_racing.final.json") as handle:
        assert json.load(handle)["scores"] == check["scores"]


def test_make_play_records_each_shipped_agent_in_its_game_and_dream(packed, tmp_path):
    _, root = packed
    result = run("pretrained.py", "play", "--root", root, "--max_length", 30, "--stills", tmp_path / "docs",
                 cwd=tmp_path)
    videos = ["pretrained.car_racing.seed111.mp4", "pretrained.car_racing.dream.seed111.mp4"]
    assert [line.split()[-1] for line in result.stdout.splitlines() if line.startswith("video ")] == \
        [f"./video/{name}" for name in videos]
    import imageio.v2 as imageio

    for video, still in zip(videos, ["pretrained.car_racing.png", "pretrained.car_racing.dream.png"]):
        frames = imageio.mimread(tmp_path / "video" / video, memtest=False)
        assert len(frames) == 31  # the reset's frame and one a step
        np.testing.assert_array_equal(imageio.imread(tmp_path / "docs" / still), frames[10])


def refused(tmp_path, *args):
    result = run("model.py", "car_racing", *args, *SHORT, cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    return result.stderr


def test_an_altered_or_missing_file_is_refused(packed, tmp_path):
    _, root = packed
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(root, copy)
    controller = copy / "car_racing" / "controller" / "car_racing.best.json"
    params, score, about = json.loads(controller.read_text())
    params[0] += 1.0
    controller.write_text(json.dumps([params, score, about]))
    assert "car_racing.best.json is not the shipped file (sha256 differs" in \
        refused(tmp_path, "--pretrained", "--pretrained_dir", copy)
    (copy / "car_racing" / "rnn" / "car_racing.npz").unlink()
    controller.unlink()
    assert "is missing" in refused(tmp_path, "--pretrained", "--pretrained_dir", copy)


def test_a_dream_without_first_frames_is_one_line_before_any_worker_starts(packed, tmp_path):
    """Before: each worker's start-up failed with a traceback (the pool's failed initializer), then the parent said a
    worker had died."""
    folder, _ = packed
    result = run("model.py", "car_racing", "--filename", "./controller/car_racing.cma.1.4.best.json", "--dream_mode",
                 "--final_mode", "--num_episode", 2, "--data_dir", tmp_path / "nothing", *SHORT, cwd=folder,
                 check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: no first frames for the dream")


def test_nothing_shipped_and_pretrained_with_filename_are_refused(packed, tmp_path):
    _, root = packed
    message = refused(tmp_path, "--pretrained", "--pretrained_dir", tmp_path / "empty")
    assert "no pretrained car_racing agent" in message
    message = refused(tmp_path, "--pretrained", "--pretrained_dir", root, "--filename", "x.best.json")
    assert "leave out --filename" in message
    message = refused(tmp_path, "--pretrained", "--pretrained_dir", root, "--rnn_dir", "my_rnn")  # was ignored
    assert "leave out --rnn_dir" in message


def test_a_manifest_with_a_missing_or_mistyped_field_is_one_line(packed, tmp_path):
    _, root = packed
    import shutil

    for change in ({"mean": "720"}, {"first_seed": None}, {"max_length": 0}, {"sha256": ["a"]}, {"run": 3}):
        copy = tmp_path / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(root, copy)
        (copy / "car_racing" / "manifest.json").write_text(json.dumps({**manifest(root), **change}))
        assert "is not a manifest of a pretrained car_racing agent" in \
            refused(tmp_path, "--pretrained", "--pretrained_dir", copy)


def test_a_pack_over_the_budget_is_refused_and_changes_nothing(packed, tmp_path):
    """Packing again over a shipped agent: over the 60 MB budget it is one line, and the shipped agent is untouched
    (the files are staged, checked and measured before anything is moved in)."""
    folder, root = packed
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    before = {path: open(path, "rb").read() for path in walk_files(str(copy))}
    with open(copy / "car_racing" / "training.bin", "wb") as handle:  # another file of the budget, sparse
        handle.truncate(MAX_TOTAL_BYTES - sum(len(data) for data in before.values()) // 2)
    result = run("pretrained.py", "pack", "car_racing", "--filename", "./controller/car_racing.cma.1.4.best.json",
                 "--final", "./log/car_racing.cma.1.4.best.final.json", "--root", str(copy), cwd=folder, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "over the 60 MB budget; nothing was changed" in result.stderr
    (copy / "car_racing" / "training.bin").unlink()
    assert {path: open(path, "rb").read() for path in walk_files(str(copy))} == before
    verify("car_racing", str(copy))


@pytest.mark.parametrize("flags, message", [
    (["--vae_dir", "./nothing"], "nothing/car_racing.npz is missing; make it with: python 02_train_vae.py"),
    (["--data_dir", "./nothing"], "rnn_initial_car_racing_0.npy is missing; make it with: python 03_generate"),
])
def test_a_pack_with_a_missing_file_is_one_line(packed, tmp_path, flags, message):
    folder, _ = packed
    result = run("pretrained.py", "pack", "car_racing", "--filename", "./controller/car_racing.cma.1.4.best.json",
                 "--final", "./log/car_racing.cma.1.4.best.final.json", "--root", str(tmp_path / "root"), *flags,
                 cwd=folder, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda final: "[1, 2", "is not JSON, so not a .final.json"),
    (lambda final: [final], "is not a 100-episode score of car_racing"),
    (lambda final: {**final, "episodes": "100"}, "is not a 100-episode score of car_racing"),
    (lambda final: {**final, "mean": 10 ** 400}, "is damaged"),
    (lambda final: {**final, "scores": final["scores"][:99]}, "is damaged"),
    (lambda final: {**final, "lengths": [*final["lengths"][:99], 2.5]}, "is damaged"),
    (lambda final: {**final, "max_length": 0}, "does not say how long its episodes could be"),
    # an edited score (before: packed as the agent's)
    (lambda final: {**final, "mean": final["mean"] + 100}, "contradicts itself: its mean"),
    (lambda final: {**final, "std": 0.0}, "contradicts itself: its std 0.00 is not that of its 100 scores"),
    # a score of something else than the files packed (before: written into the manifest as theirs)
    (lambda final: {**final, "random_policy": True}, "is the score of stage 01's random policy"),
    (lambda final: {**final, "filename": None}, "is the score of a random controller"),
    (lambda final: {**final, "sha256": {**final["sha256"], "controller": "0" * 64}}, "score of another controller"),
    (lambda final: {**final, "sha256": {**final["sha256"], "rnn": "0" * 64}}, "is the score of another M"),
    (lambda final: {key: value for key, value in final.items() if key != "sha256"}, "does not record which V, M"),
    (lambda final: {**final, "blas_kernel": 3}, "its blas_kernel is not a name"),
    (lambda final: {key: value for key, value in final.items() if key != "blas_kernel"},
     "does not say which BLAS kernels played it"),
    # played with other BLAS kernels than the pack's check episodes would be: the manifest would not replay
    (lambda final: {**final, "blas_kernel": "Sandybridge"}, "was played with OpenBLAS's Sandybridge kernels"),
])
def test_a_damaged_final_score_is_refused_before_packing(packed, tmp_path, damage, message):
    folder, _ = packed
    with open(folder / "log" / "car_racing.cma.1.4.best.final.json") as handle:
        changed = damage(json.load(handle))
    (tmp_path / "bad.final.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    result = run("pretrained.py", "pack", "car_racing", "--filename", "./controller/car_racing.cma.1.4.best.json",
                 "--final", str(tmp_path / "bad.final.json"), "--root", str(tmp_path / "root"), cwd=folder,
                 check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "root").exists()


def untouched_of(shipped):
    """A manifest's own score as if it were an untouched one, on seeds 10,000,000.."""
    return {**{key: shipped[key] for key in ("episodes", "max_length", "mean", "std", "scores", "lengths")},
            "first_seed": 10_000_000}


@pytest.mark.parametrize("change, message", [
    (lambda shipped: {"mean": 999.0}, "its mean 999.00 is not that of its 100 scores"),
    (lambda shipped: {"scores": shipped["scores"][:-1]}, "its scores are not 100 finite numbers"),
    (lambda shipped: {"lengths": [*shipped["lengths"][:-1], 4]}, "its lengths are not 100 episode lengths from 1 to 3"),
    (lambda shipped: {"max_length": 5000}, "its max_length 5000 is beyond car_racing's 1000 steps"),
    (lambda shipped: {"check": {**shipped["check"], "seeds": [5, 6, 7]}}, "its check is not short episodes of its"),
    (lambda shipped: {"untouched": {**untouched_of(shipped), "mean": 999.0}},
     "its untouched score (seeds 10000000..10000099): its mean 999.00 is not that of its 100 scores"),
    (lambda shipped: {"untouched": {**untouched_of(shipped), "first_seed": 150}},
     "its untouched score's seeds 150..249 overlap its score's 111..210"),
    (lambda shipped: {"untouched": {**untouched_of(shipped), "max_length": 5000}}, "its untouched score is not"),
])
def test_a_manifest_that_contradicts_itself_is_refused_in_one_line(packed, tmp_path, change, message):
    """Before: `verify` said "every file matches" for a manifest whose mean was 999 and whose scores averaged far
    less, and model.py --pretrained printed that mean as the agent's score."""
    import shutil

    _, root = packed
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shipped = manifest(root)
    (copy / "car_racing" / "manifest.json").write_text(json.dumps({**shipped, **change(shipped)}))
    result = run("pretrained.py", "verify", "car_racing", "--root", copy, cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {copy}/car_racing/manifest.json contradicts itself: ") and message in line, line
    assert "contradicts itself" in refused(tmp_path, "--pretrained", "--pretrained_dir", copy)


def test_verify_replay_plays_the_check_episodes_and_finds_a_changed_score(packed, tmp_path):
    import shutil

    _, root = packed
    result = run("pretrained.py", "verify", "car_racing", "--root", root, "--replay", cwd=tmp_path)
    assert "car_racing: 3 check episodes of at most 300 steps replayed: every score equals the manifest's" in \
        result.stdout
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shipped = manifest(root)
    scores = [*shipped["check"]["scores"]]
    scores[1] += 1e-9  # the last bits are the claim too
    (copy / "car_racing" / "manifest.json").write_text(json.dumps({**shipped, "check": {**shipped["check"],
                                                                                         "scores": scores}}))
    result = run("pretrained.py", "verify", "car_racing", "--root", copy, "--replay", cwd=tmp_path, check=False)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith(
        f"error: the check episode of seed 112 scores {shipped['check']['scores'][1]!r} here, the manifest says "
        f"{scores[1]!r}"), result.stderr
