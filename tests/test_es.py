"""es.py: optimizers that reach known optima, weight decay that penalises, seeded asks, exact checkpoint round trips,
and checkpoint loading that refuses crafted pickles without running them."""

import io
import os
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import es
from utils import UserError

NUM_PARAMS = 10
OPTIMUM = np.linspace(-1.0, 1.0, NUM_PARAMS) + 0.25  # non-zero, so weight decay and x0 = 0 are not already there
CLASSES = {"cma": es.CMAES, "openes": es.OpenES, "pepg": es.PEPG, "ga": es.SimpleGA}


def sphere(solutions: np.ndarray) -> np.ndarray:
    """Rewards (popsize,) of -|x - OPTIMUM|^2: the maximum 0 is at OPTIMUM."""
    return -np.sum(np.square(solutions - OPTIMUM), axis=1)


def run(optimizer: es.EvolutionStrategy, generations: int, reward=sphere) -> es.EvolutionStrategy:
    for _ in range(generations):
        optimizer.tell(reward(optimizer.ask()))
    return optimizer


def squared_distance(optimizer: es.EvolutionStrategy) -> float:
    return float(np.sum(np.square(optimizer.current_param() - OPTIMUM)))


# ---- optimizers reach known optima ------------------------------------------------------------------------------

def test_cma_solves_the_sphere_to_1e_minus_6():
    optimizer = run(es.CMAES(NUM_PARAMS, popsize=12, sigma_init=0.5, weight_decay=0.0, seed=0), generations=200)
    assert np.max(np.abs(optimizer.current_param() - OPTIMUM)) < 1e-6
    assert np.max(np.abs(optimizer.best_param() - OPTIMUM)) < 1e-6
    assert -1e-12 < optimizer.result().best_reward <= 0.0
    assert optimizer.rms_stdev() < 1e-6  # the step size shrank with the distance


@pytest.mark.parametrize("name, settings, generations", [
    ("cma", {"sigma_init": 0.5}, 40),
    ("openes", {"learning_rate": 0.02}, 400),
    ("pepg", {"learning_rate": 0.02}, 400),
    ("ga", {"sigma_decay": 0.99}, 300),
])
def test_each_optimizer_gets_100_times_closer_on_the_sphere(name, settings, generations):
    optimizer = es.make_optimizer(name, NUM_PARAMS, 16, weight_decay=0.0, seed=0, **settings)
    start = squared_distance(optimizer)
    run(optimizer, generations)
    assert squared_distance(optimizer) < start / 100


# ---- weight decay -----------------------------------------------------------------------------------------------

def test_weight_decay_subtracts_the_mean_square_of_each_solution():
    solutions = np.array([[0.1, -0.1], [2.0, -2.0]])
    adjusted = es.apply_weight_decay(np.array([1.0, 1.0]), solutions, weight_decay=0.01)
    np.testing.assert_allclose(adjusted, [1.0 - 0.01 * 0.01, 1.0 - 0.01 * 4.0])
    assert adjusted[1] < adjusted[0]  # same reward, larger weights: ranked lower
    np.testing.assert_array_equal(es.apply_weight_decay(np.array([1.0, 1.0]), solutions, 0.0), [1.0, 1.0])


@pytest.mark.parametrize("name", list(CLASSES))
def test_weight_decay_shrinks_the_mean_under_a_flat_reward(name):
    x0 = np.full(NUM_PARAMS, 1.0)
    optimizer = es.make_optimizer(name, NUM_PARAMS, 16, weight_decay=0.1, seed=0, x0=x0, sigma_init=0.1)
    run(optimizer, 150, reward=lambda solutions: np.zeros(len(solutions)))
    assert np.linalg.norm(optimizer.current_param()) < 0.5 * np.linalg.norm(x0)


def test_negative_weight_decay_is_refused():
    with pytest.raises(ValueError, match="weight_decay"):
        es.OpenES(NUM_PARAMS, 16, weight_decay=-0.01)


# ---- interface --------------------------------------------------------------------------------------------------

def test_optimizer_names_and_make_optimizer():
    assert es.OPTIMIZER_NAMES == ("cma", "ses", "pepg", "openes", "ga")
    assert type(es.make_optimizer("ses", 3, 4)) is es.PEPG
    for name, cls in CLASSES.items():
        assert type(es.make_optimizer(name, 3, 4)) is cls
    with pytest.raises(ValueError, match="cma, ses, pepg, openes, ga"):
        es.make_optimizer("adam", 3, 4)


@pytest.mark.parametrize("name", list(CLASSES))
def test_ask_result_and_best_are_reported_by_name(name):
    x0 = np.arange(NUM_PARAMS, dtype=float)
    optimizer = es.make_optimizer(name, NUM_PARAMS, 8, sigma_init=0.1, seed=0, x0=x0)
    np.testing.assert_allclose(optimizer.current_param(), x0)
    before = optimizer.result()
    assert before.best_reward == -np.inf and before.current_best_reward == -np.inf
    solutions = optimizer.ask()
    assert solutions.shape == (8, NUM_PARAMS) and solutions.dtype == np.float64
    rewards = np.arange(8.0)[::-1] * 10  # solution 0 is the best; weight decay does not change what is reported
    optimizer.tell(rewards)
    result = optimizer.result()
    assert result.best_reward == result.current_best_reward == 70.0
    np.testing.assert_array_equal(result.best_param, solutions[0])
    assert result.sigma.shape == (NUM_PARAMS,)
    assert optimizer.rms_stdev() == pytest.approx(np.sqrt(np.mean(result.sigma ** 2)))
    optimizer.ask()
    optimizer.tell(np.zeros(8))
    assert optimizer.result().current_best_reward == 0.0 and optimizer.result().best_reward == 70.0


@pytest.mark.parametrize("name", list(CLASSES))
def test_tell_checks_its_rewards(name):
    optimizer = es.make_optimizer(name, NUM_PARAMS, 8)
    with pytest.raises(ValueError, match="ask"):
        optimizer.tell(np.zeros(8))  # before any ask
    optimizer.ask()
    with pytest.raises(ValueError, match=r"shape \(7,\), expected \(8,\)"):
        optimizer.tell(np.zeros(7))
    with pytest.raises(ValueError, match="non-finite"):
        optimizer.tell(np.full(8, np.nan))
    optimizer.tell(np.zeros(8))
    with pytest.raises(ValueError, match="ask"):
        optimizer.tell(np.zeros(8))  # those solutions were already told


@pytest.mark.parametrize("name", ["openes", "pepg"])
def test_symmetric_sampling_needs_an_even_population(name):
    with pytest.raises(ValueError, match="even"):
        es.make_optimizer(name, NUM_PARAMS, 7)
    es.OpenES(NUM_PARAMS, 7, antithetic=False)  # plain sampling takes any size


def test_antithetic_openes_asks_mirrored_pairs():
    optimizer = es.OpenES(NUM_PARAMS, 6, x0=OPTIMUM)
    solutions = optimizer.ask()
    np.testing.assert_allclose(solutions[:3] + solutions[3:], np.tile(2 * OPTIMUM, (3, 1)))


# ---- seeding ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CLASSES))
def test_same_seed_same_asks_different_seed_different_asks(name):
    def asks(seed):
        optimizer = es.make_optimizer(name, NUM_PARAMS, 8, seed=seed)
        population = []
        for _ in range(3):
            population.append(optimizer.ask())
            optimizer.tell(sphere(population[-1]))
        return np.stack(population)

    np.testing.assert_array_equal(asks(5), asks(5))
    assert not np.array_equal(asks(5)[0], asks(6)[0])


def test_cma_leaves_numpys_global_generator_alone():
    np.random.seed(1)
    expected = np.random.random_sample(3)
    np.random.seed(1)
    run(es.CMAES(NUM_PARAMS, 8, seed=0), 3)
    np.testing.assert_array_equal(np.random.random_sample(3), expected)


# ---- checkpoints ------------------------------------------------------------------------------------------------

STATE = {"generation": 4, "best_score": np.float64(12.5), "seed_counter": np.int64(1234), "note": "resumed",
         "history": [[1, 0.5, -3.0], [2, 0.7, -2.0]], "eval_scores": np.array([1.0, 2.0], dtype=np.float32),
         "tried_seeds": {111, 112}, "shape": (2, 3), "done": np.bool_(False)}


def assert_state_equal(loaded: dict, saved: dict):
    assert loaded.keys() == saved.keys()
    for key, value in saved.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded[key], value)
        else:
            assert loaded[key] == value


@pytest.mark.parametrize("name", list(CLASSES))
def test_checkpoint_round_trip_is_exact(tmp_path, name):
    path = str(tmp_path / f"car_racing.{name}.1.8.es.pk")
    original = run(es.make_optimizer(name, NUM_PARAMS, 8, seed=3), 4)
    es.save_optimizer(path, original, STATE)
    loaded, state = es.load_optimizer(path)
    assert type(loaded) is type(original)
    assert_state_equal(state, STATE)
    for _ in range(2):  # the next asks agree bit for bit, and keep agreeing after the same tell
        asked, asked_after_load = original.ask(), loaded.ask()
        assert asked.tobytes() == asked_after_load.tobytes()
        original.tell(sphere(asked))
        loaded.tell(sphere(asked_after_load))
    for field in es.Result._fields:
        np.testing.assert_array_equal(getattr(loaded.result(), field), getattr(original.result(), field))


def test_checkpoint_loads_in_a_fresh_process(tmp_path):
    path = str(tmp_path / "car_racing.cma.1.8.es.pk")
    original = run(es.CMAES(NUM_PARAMS, 8, seed=3), 4)
    es.save_optimizer(path, original, {"generation": 4})
    script = ("import sys, numpy as np, es; optimizer, state = es.load_optimizer(sys.argv[1]); "
              "assert state == {'generation': 4}; np.save(sys.argv[2], optimizer.ask())")
    asked_path = str(tmp_path / "asked.npy")
    subprocess.run([sys.executable, "-c", script, path, asked_path], check=True, cwd=os.path.dirname(es.__file__))
    assert np.load(asked_path).tobytes() == original.ask().tobytes()


def test_saving_writes_one_whole_file_and_replaces_the_old_one(tmp_path):
    path = tmp_path / "run.ga.1.8.es.pk"
    optimizer = run(es.SimpleGA(NUM_PARAMS, 8), 2)
    es.save_optimizer(str(path), optimizer, {"generation": 2})
    run(optimizer, 1)
    es.save_optimizer(str(path), optimizer, {"generation": 3})
    assert os.listdir(tmp_path) == [path.name]  # no temporary files left beside it
    assert es.load_optimizer(str(path))[1] == {"generation": 3}


def test_a_state_the_loader_would_refuse_is_refused_at_save_and_the_old_file_kept(tmp_path):
    path = tmp_path / "run.openes.1.8.es.pk"
    optimizer = es.OpenES(NUM_PARAMS, 8)
    es.save_optimizer(str(path), optimizer, {"generation": 0})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="plain Python data"):
        es.save_optimizer(str(path), optimizer, {"generation": 1, "callback": os.getcwd})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


class _Call:
    """Pickles as a call of `function(*arguments)`: what a malicious .es.pk file would contain."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _dotted_global_pickle(module: str, name: str, argument: str) -> bytes:
    """Protocol-4 opcodes for `module.name(argument)`, where `name` may be dotted (pickle.dumps cannot write it)."""
    def text(value: str) -> bytes:
        return pickle.SHORT_BINUNICODE + bytes([len(value)]) + value.encode()

    return (pickle.PROTO + b"\x04" + text(module) + text(name) + pickle.STACK_GLOBAL + text(argument)
            + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "subprocess.Popen", "dotted name through es",
                                    "protocol 0 os.system"])
def test_crafted_pickles_are_refused_without_running(tmp_path, attack):
    marker = tmp_path / "marker"
    payloads = {
        "os.system": lambda: pickle.dumps(_Call(os.system, f"touch {marker}")),
        "builtins.eval": lambda: pickle.dumps(_Call(eval, f"open({str(marker)!r}, 'w').close()")),
        "subprocess.Popen": lambda: pickle.dumps(_Call(subprocess.Popen, ["touch", str(marker)])),
        "dotted name through es": lambda: _dotted_global_pickle("es", "os.system", f"touch {marker}"),
        "protocol 0 os.system": lambda: pickle.dumps(_Call(os.system, f"touch {marker}"), protocol=0),
    }
    path = tmp_path / "evil.es.pk"
    path.write_bytes(payloads[attack]())
    with pytest.raises(UserError, match="is not an optimizer state written by this project") as error:
        es.load_optimizer(str(path))
    assert str(path) in str(error.value)
    assert not marker.exists()


def test_calling_an_admitted_cma_function_is_refused(tmp_path):
    """pycma's functions may be stored in its state but never called while loading: this one extracts an archive."""
    archive, marker, target = tmp_path / "archive.tar.gz", "marker", tmp_path / "extracted"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(marker)
        tar.addfile(info, io.BytesIO(b""))
    import cma.utilities.utils

    crafted = pickle.dumps(_Call(cma.utilities.utils.extract_targz, str(archive), None, str(target)))
    pickle.loads(crafted)  # the control: a plain unpickler runs it
    assert (target / marker).exists()
    (target / marker).unlink()

    path = tmp_path / "evil.es.pk"
    path.write_bytes(crafted)
    with pytest.raises(UserError, match="not an optimizer state written by this project"):
        es.load_optimizer(str(path))
    assert not (target / marker).exists()
    path.write_bytes(pickle.dumps(_Call(es.CMAES, NUM_PARAMS, 8)))  # nor may our own classes be called
    with pytest.raises(UserError, match="a call to CMAES"):
        es.load_optimizer(str(path))


def _truncated(tmp_path) -> bytes:
    path = str(tmp_path / "whole.es.pk")
    es.save_optimizer(path, run(es.CMAES(NUM_PARAMS, 8), 2), {"generation": 2})
    data = open(path, "rb").read()
    os.remove(path)
    return data[: len(data) // 2]


@pytest.mark.parametrize("contents, message", [
    ("truncated", "truncated or corrupt"),
    ("random bytes", "truncated or corrupt|not an optimizer state"),
    ("empty", "truncated or corrupt"),
    ("a pickled list", "not an optimizer state written by this project"),
    ("a dict without the marker", "not an optimizer state written by this project"),
    ("another version", "format version 999"),
])
def test_bad_files_give_a_user_error_naming_the_file(tmp_path, contents, message):
    data = {
        "truncated": lambda: _truncated(tmp_path),
        "random bytes": lambda: np.random.default_rng(0).bytes(4096),
        "empty": lambda: b"",
        "a pickled list": lambda: pickle.dumps([1, 2, 3]),
        "a dict without the marker": lambda: pickle.dumps({"optimizer": None, "state": {}}),
        "another version": lambda: pickle.dumps({"format": es.FILE_FORMAT, "version": 999}),
    }[contents]()
    path = tmp_path / "bad.es.pk"
    path.write_bytes(data)
    with pytest.raises(UserError, match=message) as error:
        es.load_optimizer(str(path))
    assert str(path) in str(error.value)


def test_a_missing_file_gives_a_user_error_naming_it(tmp_path):
    path = str(tmp_path / "nowhere.es.pk")
    with pytest.raises(UserError, match="missing") as error:
        es.load_optimizer(path)
    assert path in str(error.value)
