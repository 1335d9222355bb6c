"""es.py: optimizers that reach known optima, weight decay that penalises, seeded asks, exact checkpoint round trips,
and checkpoints that are data: hostile files (pickle gadgets, pickles inside the archive, injected fields, wrong
shapes, non-finite values) are refused without running anything."""

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

import es
from cli import UserError
from evolution.checkpoint import _state_of
from tests.scripts import run_command

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


def test_cma_trains_with_a_population_of_two():
    """What a two-core user types (--num_worker 2 --num_worker_trial 1): pycma failed in generation 2."""
    optimizer = es.make_optimizer("cma", NUM_PARAMS, 2, sigma_init=0.5, weight_decay=0.0, seed=0)
    start = squared_distance(optimizer)
    run(optimizer, 300)
    assert squared_distance(optimizer) < start / 100


def test_cma_strategy_constants_follow_the_tutorial():
    """Hansen's tutorial, table 1, for n = 867 (CarRacing's controller) and popsize 16, computed by hand:
    mu = 8, weights ln(8.5) - ln(i) normalised, mu_eff = 1 / sum(w^2)."""
    optimizer = es.CMAES(867, 16)
    raw = np.log(8.5) - np.log(np.arange(1, 9))
    weights = raw / raw.sum()
    assert optimizer.mu == 8
    np.testing.assert_allclose(optimizer.weights, weights)
    mu_eff = 1 / np.sum(weights ** 2)
    assert optimizer.mu_eff == pytest.approx(mu_eff)
    assert optimizer.c_sigma == pytest.approx((mu_eff + 2) / (867 + mu_eff + 5))
    assert optimizer.c_1 == pytest.approx(2 / (868.3 ** 2 + mu_eff))
    assert optimizer.chi_n == pytest.approx(np.sqrt(867) * (1 - 1 / 3468 + 1 / (21 * 867 ** 2)))
    assert optimizer.rms_stdev() == pytest.approx(0.1)  # sigma_init with C = I


def test_cma_chooses_tpa_and_active_updates_as_pycma_does():
    """pycma (what estool and the 2018 code ran) adapts the step size by TPA from 300 parameters on and updates C
    actively. For n = 867, popsize 16 the negative weights sum to -min(1 + c1/cmu, 1 + 2 mu_eff^- / (mu_eff + 2),
    (1 - c1 - cmu) / (n cmu)) = -(1 + c1/cmu) (the other two are ~2.5 and ~140), and TPA's damping is
    0.7 + 2 ln 867 (popsize < n)."""
    optimizer = es.CMAES(867, 16)
    assert optimizer.tpa and optimizer.active
    assert optimizer.describe() == "step size by TPA, active covariance update"
    raw = np.log(8.5) - np.log(np.arange(9, 17))  # ranks 9..16: all negative
    assert np.all(optimizer.negative_weights < 0)
    assert optimizer.negative_weights.sum() == pytest.approx(-(1 + optimizer.c_1 / optimizer.c_mu))
    np.testing.assert_allclose(optimizer.negative_weights / optimizer.negative_weights.sum(), raw / raw.sum())
    assert optimizer.tpa_damp == pytest.approx(0.7 + 2 * np.log(867))
    assert not es.CMAES(299, 16).tpa  # below pycma's TPA_dimension: CSA
    assert not es.CMAES(867, 3).tpa  # too small a population for a line test
    assert es.CMAES(10, 8, step_size="tpa").tpa and not es.CMAES(867, 16, step_size="csa").tpa
    assert not np.any(es.CMAES(867, 16, active=False).negative_weights)
    with pytest.raises(ValueError, match="at least 4"):
        es.CMAES(867, 3, step_size="tpa")
    with pytest.raises(ValueError, match="step_size"):
        es.CMAES(10, 8, step_size="msr")


def test_tpa_line_test_mirrors_the_last_mean_shift_at_a_sampled_length():
    optimizer = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.5, weight_decay=0.0, seed=2, step_size="tpa"), 3)
    shift = optimizer.mean_shift
    mean = optimizer.current_param()
    replay = np.random.Generator(np.random.PCG64())
    replay.bit_generator.state = optimizer.rng.bit_generator.state
    drawn_length = np.linalg.norm(replay.standard_normal((8, NUM_PARAMS))[0])  # the first row's N(0, I) draw
    solutions = optimizer.ask()
    ahead, behind = solutions[0] - mean, solutions[1] - mean
    mahalanobis = np.linalg.norm((optimizer.eigenbasis.T @ optimizer.steps[0]) / optimizer.eigenvalues_sqrt)
    assert mahalanobis == pytest.approx(drawn_length, rel=1e-12)
    np.testing.assert_array_equal(optimizer.steps[0], -optimizer.steps[1])
    np.testing.assert_allclose(ahead, -behind, rtol=1e-12, atol=1e-15)
    assert ahead @ shift / (np.linalg.norm(ahead) * np.linalg.norm(shift)) == pytest.approx(1.0)  # along the shift
    # The other rows are ordinary samples: none of them lies on the line.
    others = solutions[2:] - mean
    assert np.all(np.abs(others @ shift) / (np.linalg.norm(others, axis=1) * np.linalg.norm(shift)) < 0.999)


def test_tpa_step_size_change_computed_by_hand():
    """n = 10, popsize 8, d = 0.7 + 2 ln 10. Generation 1 has no line test (no mean shift yet): sigma stays.
    Generation 2: the one ahead is best, the one behind worst: z = (7 - 0) / 7 = 1, s = 0.3, sigma *= exp(0.3 / d).
    Generation 3, the other way round: z = -1, s = 0.7 * 0.3 - 0.3 = -0.09, sigma *= exp(-0.09 / d).
    Generation 4, the two tie in the middle: z = 0, s = 0.7 * -0.09, sigma *= exp(-0.063 / d)."""
    damp = 0.7 + 2 * np.log(10)
    optimizer = es.CMAES(NUM_PARAMS, 8, sigma_init=0.3, weight_decay=0.0, seed=0, step_size="tpa")
    optimizer.ask()
    optimizer.tell(np.arange(8.0))
    assert optimizer.sigma == 0.3
    expected = 0.3
    for rewards, s in [([9.0, -9.0, 1, 2, 3, 4, 5, 6], 0.3), ([-9.0, 9.0, 1, 2, 3, 4, 5, 6], -0.09),
                       ([3.5, 3.5, 1, 2, 3, 4, 5, 6], -0.063)]:
        optimizer.ask()
        optimizer.tell(np.array(rewards))
        expected *= np.exp(s / damp)
        assert optimizer.tpa_s == pytest.approx(s)
        assert optimizer.sigma == pytest.approx(expected, rel=1e-12)


def test_tpa_solves_the_sphere_and_grows_the_step_on_a_slope():
    optimizer = run(es.CMAES(NUM_PARAMS, 12, sigma_init=0.5, weight_decay=0.0, seed=0, step_size="tpa"), 250)
    assert np.max(np.abs(optimizer.current_param() - OPTIMUM)) < 1e-6
    assert optimizer.rms_stdev() < 1e-4
    slope = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.1, weight_decay=0.0, seed=0, step_size="tpa"), 60,
                reward=lambda solutions: solutions.sum(axis=1))
    assert slope.sigma > 1000 * 0.1  # the one ahead keeps winning: sigma grows by up to exp(1 / d) a generation


@pytest.mark.parametrize("seed", range(3))
def test_active_update_shrinks_the_variance_of_a_direction_that_only_hurts(seed):
    """Reward -1000 x_0^2, flat in the other nine: every large step in x_0 is among the worst. The active update
    subtracts those steps from C, so C's variance along x_0 falls well below the others'; with positive weights
    only it falls much less."""
    ratios = {}
    for active in (True, False):
        optimizer = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.1, weight_decay=0.0, seed=seed, step_size="csa",
                                 active=active, x0=np.ones(NUM_PARAMS)), 30,
                        reward=lambda solutions: -1000 * solutions[:, 0] ** 2)
        variances = np.diag(optimizer.cov)
        ratios[active] = variances[0] / variances[1:].mean()
    assert ratios[True] < 0.6 and ratios[True] < 0.7 * ratios[False]


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan"), float("inf")])
def test_a_step_size_that_is_not_positive_is_refused(name, sigma):
    with pytest.raises(ValueError, match="sigma_init must be a positive number"):
        es.make_optimizer(name, NUM_PARAMS, 8, sigma_init=sigma)


@pytest.mark.parametrize("name", list(CLASSES))
def test_set_mean_moves_the_search(name):
    optimizer = run(es.make_optimizer(name, NUM_PARAMS, 8, seed=0), 2)
    optimizer.set_mean(OPTIMUM)
    np.testing.assert_array_equal(optimizer.current_param(), OPTIMUM)


def test_cma_leaves_numpys_global_generator_alone():
    np.random.seed(1)
    expected = np.random.random_sample(3)
    np.random.seed(1)
    run(es.CMAES(NUM_PARAMS, 8, seed=0), 3)
    np.testing.assert_array_equal(np.random.random_sample(3), expected)


# ---- checkpoints ------------------------------------------------------------------------------------------------

STATE = {"generation": 4, "best_score": 12.5, "next_seed": 1234, "note": "resumed", "best_params": None,
         "history": [[1, 0.5, -3.0], [2, 0.7, -2.0]], "nested": {"flags": [True, False, None], "tiny": 1e-300}}


def assert_same_optimizer(loaded: es.EvolutionStrategy, original: es.EvolutionStrategy):
    assert type(loaded) is type(original)
    for _ in range(2):  # the next asks agree bit for bit, and keep agreeing after the same tell
        asked, asked_after_load = original.ask(), loaded.ask()
        assert asked.tobytes() == asked_after_load.tobytes()
        original.tell(sphere(asked))
        loaded.tell(sphere(asked_after_load))
    for field in es.Result._fields:
        np.testing.assert_array_equal(getattr(loaded.result(), field), getattr(original.result(), field))
    np.testing.assert_array_equal(loaded.current_param(), original.current_param())


@pytest.mark.parametrize("name", list(CLASSES))
def test_checkpoint_round_trip_is_exact(tmp_path, name):
    path = str(tmp_path / f"car_racing.{name}.1.8.es.pk")
    original = run(es.make_optimizer(name, NUM_PARAMS, 8, seed=3), 4)
    es.save_optimizer(path, original, STATE)
    loaded, state = es.load_optimizer(path)
    assert state == STATE
    assert_same_optimizer(loaded, original)


@pytest.mark.parametrize("name", list(CLASSES))
def test_checkpoint_between_ask_and_tell_round_trips(tmp_path, name):
    """The pending population (and CMA-ES's steps, PEPG's perturbations, OpenES's noise) is part of the state."""
    path = str(tmp_path / "run.es.pk")
    original = run(es.make_optimizer(name, NUM_PARAMS, 8, seed=3), 2)
    asked = original.ask()
    es.save_optimizer(path, original, {})
    loaded, _ = es.load_optimizer(path)
    original.tell(sphere(asked))
    loaded.tell(sphere(asked))
    assert_same_optimizer(loaded, original)


def test_cma_checkpoint_keeps_the_eigendecomposition(tmp_path):
    """Past an eigendecomposition B and D differ from C's current eigenvectors: both are stored, so a resumed run
    samples exactly as the original does."""
    optimizer = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.5, seed=1), 29)  # B and D from generation 27's C
    assert optimizer.eigen_generation > 0 and optimizer.eigen_generation < optimizer.generation
    path = str(tmp_path / "run.es.pk")
    es.save_optimizer(path, optimizer, {})
    assert_same_optimizer(es.load_optimizer(path)[0], optimizer)


@pytest.mark.parametrize("between_ask_and_tell", [False, True])
def test_tpa_checkpoint_round_trip_is_exact(tmp_path, between_ask_and_tell):
    """TPA's state (its smoothed rank difference and the last mean shift, the next line test) is stored."""
    path = str(tmp_path / "run.es.pk")
    original = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.5, seed=3, step_size="tpa"), 5)
    assert original.tpa_s != 0 and original.mean_shift is not None
    asked = original.ask() if between_ask_and_tell else None
    es.save_optimizer(path, original, {})
    loaded, _ = es.load_optimizer(path)
    assert loaded.tpa and loaded.active and loaded.tpa_s == original.tpa_s
    if between_ask_and_tell:
        original.tell(sphere(asked))
        loaded.tell(sphere(asked))
    assert_same_optimizer(loaded, original)


def test_a_version_2_checkpoint_resumes_as_the_optimizer_that_wrote_it(tmp_path):
    """Version-2 files predate TPA and active updates (runs trained with CSA and positive weights, such as the
    shipped CarRacing checkpoints): they load without the new fields and resume exactly as that optimizer."""
    original = run(es.CMAES(NUM_PARAMS, 8, sigma_init=0.5, seed=3, step_size="csa", active=False), 3)
    values, arrays = _state_of(original)
    for name in ("tpa", "active", "tpa_s"):
        del values[name]
    header = {"format": es.FILE_FORMAT, "version": 2, "optimizer": "CMAES", "values": values, "state": {"g": 3}}
    path = tmp_path / "old.es.pk"
    path.write_bytes(_checkpoint(header, arrays))
    loaded, state = es.load_optimizer(str(path))
    assert state == {"g": 3} and not loaded.tpa and not loaded.active
    assert loaded.describe() == "step size by CSA, positive-weight covariance update"
    assert_same_optimizer(loaded, original)
    header["version"] = 3  # the same fields written as version 3 lack what version 3 requires
    path.write_bytes(_checkpoint(header, arrays))
    with pytest.raises(UserError, match="expected"):
        es.load_optimizer(str(path))


def test_checkpoint_loads_in_a_fresh_process(tmp_path):
    path = str(tmp_path / "car_racing.cma.1.8.es.pk")
    original = run(es.CMAES(NUM_PARAMS, 8, seed=3), 4)
    es.save_optimizer(path, original, {"generation": 4})
    script = ("import sys, numpy as np, es; optimizer, state = es.load_optimizer(sys.argv[1]); "
              "assert state == {'generation': 4}; np.save(sys.argv[2], optimizer.ask())")
    asked_path = str(tmp_path / "asked.npy")
    result = run_command([sys.executable, "-c", script, path, asked_path], cwd=os.path.dirname(es.__file__))
    assert result.returncode == 0, result.stderr
    assert np.load(asked_path).tobytes() == original.ask().tobytes()


def test_a_checkpoint_is_an_npz_of_float_arrays_and_json(tmp_path):
    path = str(tmp_path / "run.es.pk")
    es.save_optimizer(path, run(es.CMAES(NUM_PARAMS, 8), 2), {"generation": 2})
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
        assert header["format"] == es.FILE_FORMAT and header["optimizer"] == "CMAES"
        assert header["state"] == {"generation": 2}
        assert archive["optimizer.cov"].shape == (NUM_PARAMS, NUM_PARAMS)
        assert all(archive[key].dtype == np.float64 for key in archive.files if key != "header")


def test_saving_writes_one_whole_file_and_replaces_the_old_one(tmp_path):
    path = tmp_path / "run.ga.1.8.es.pk"
    optimizer = run(es.SimpleGA(NUM_PARAMS, 8), 2)
    es.save_optimizer(str(path), optimizer, {"generation": 2})
    run(optimizer, 1)
    es.save_optimizer(str(path), optimizer, {"generation": 3})
    assert os.listdir(tmp_path) == [path.name]  # no temporary files left beside it
    assert es.load_optimizer(str(path))[1] == {"generation": 3}


@pytest.mark.parametrize("state, message", [
    ({"generation": 1, "callback": os.getcwd}, "not JSON data"),
    ({"score": float("nan")}, "not JSON data"),
    ({"seeds": np.arange(3)}, "not JSON data"),
])
def test_a_state_that_is_not_json_data_is_refused_at_save_and_the_old_file_kept(tmp_path, state, message):
    path = tmp_path / "run.openes.1.8.es.pk"
    optimizer = es.OpenES(NUM_PARAMS, 8)
    es.save_optimizer(str(path), optimizer, {"generation": 0})
    before = path.read_bytes()
    with pytest.raises(ValueError, match=message):
        es.save_optimizer(str(path), optimizer, state)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_a_diverged_optimizer_is_refused_at_save(tmp_path):
    optimizer = es.CMAES(NUM_PARAMS, 8)
    optimizer.mean[3] = np.inf
    with pytest.raises(ValueError, match="mean holds non-finite values"):
        es.save_optimizer(str(tmp_path / "run.es.pk"), optimizer, {})
    assert os.listdir(tmp_path) == []


# ---- hostile checkpoints: refused, and nothing runs ----------------------------------------------------------------

class _Call:
    """Pickles as a call of `function(*arguments)`: what a malicious pickle would contain."""

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


def _generator_ctor_gadget(command: str) -> bytes:
    """NumPy's generator constructor calls the bit-generator "name" it is given: the gadget the old loader let in."""
    import numpy.random._pickle as numpy_pickle

    return pickle.dumps(_Call(getattr(numpy_pickle, "__generator_ctor"), _Call(os.system, command)))


def _archive(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npy_claiming(shape: tuple, dtype=np.float64) -> bytes:
    """An .npy file whose header declares `shape` but which holds 8 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(8)


def _valid_members(name="cma", **changes) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and arrays of a real checkpoint, to be tampered with."""
    optimizer = run(es.make_optimizer(name, NUM_PARAMS, 8, seed=0), 2)
    values, arrays = _state_of(optimizer)
    header = {"format": es.FILE_FORMAT, "version": es.FILE_VERSION, "optimizer": type(optimizer).__name__,
              "values": values, "state": {"generation": 2}}
    header.update(changes)
    return header, arrays


def _checkpoint(header: dict, arrays: dict[str, np.ndarray], extra: dict[str, bytes] | None = None,
                compression=zipfile.ZIP_STORED) -> bytes:
    members = {"header.npy": _npy(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))}
    members.update({f"{key}.npy": _npy(value) for key, value in arrays.items()})
    members.update(extra or {})
    return _archive(members, compression)


def _hostile_files(marker) -> dict[str, bytes]:
    touch = f"touch {marker}"
    call = _Call(os.system, touch)
    header, arrays = _valid_members()
    object_array = np.empty(1, dtype=object)
    object_array[0] = call

    def with_values(**changes):
        return _checkpoint({**header, "values": {**header["values"], **changes}}, arrays)

    return {
        # pickles, of every protocol: refused before a byte is unpickled
        "pickle: os.system": pickle.dumps(call),
        "pickle: builtins.eval": pickle.dumps(_Call(eval, f"open({str(marker)!r}, 'w').close()")),
        "pickle: subprocess.Popen": pickle.dumps(_Call(subprocess.Popen, ["touch", str(marker)])),
        "pickle: dotted name through es": _dotted_global_pickle("es", "os.system", touch),
        "pickle: protocol 0 os.system": pickle.dumps(call, protocol=0),
        "pickle: protocol 1 os.system": pickle.dumps(call, protocol=1),
        "pickle: numpy generator constructor": _generator_ctor_gadget(touch),
        "pickle: an old-format checkpoint": pickle.dumps({"format": es.FILE_FORMAT, "version": 1, "optimizer": call}),
        # pickles inside the archive: np.load with allow_pickle=False refuses object arrays
        "object array as the header": _archive({"header.npy": _npy(object_array)}),
        "object array as the mean": _checkpoint(header, {**arrays, "optimizer.mean": object_array}),
        # field and class injection
        "an unknown optimizer class": _checkpoint({**header, "optimizer": "os.system"}, arrays),
        "the abstract base class": _checkpoint({**header, "optimizer": "EvolutionStrategy"}, arrays),
        "an injected attribute": with_values(__class__="os.system"),
        "an injected method": with_values(_derive=1),
        "an injected array": _checkpoint(header, {**arrays, "optimizer.__dict__": np.zeros(3)}),
        "an archive member outside the fields": _checkpoint(header, arrays, {"../../evil.npy": b"x"}),
        "a missing array": _checkpoint(header, {k: v for k, v in arrays.items() if k != "optimizer.cov"}),
        "another bit generator": with_values(rng={"bit_generator": "MT19937", "state": {"key": [0], "pos": 0}}),
        "a generator state of strings": with_values(rng={**header["values"]["rng"], "has_uint32": "0"}),
        # wrong types, shapes and numbers
        "a string popsize": with_values(popsize="8"),
        "a boolean count": with_values(generation=True),
        "a population of one": with_values(popsize=1),
        "a negative step size": with_values(sigma=-0.5),
        "a NaN weight decay": _checkpoint({**header, "values": {**header["values"], "weight_decay": float("nan")}},
                                          arrays),
        "a float32 mean": _checkpoint(header, {**arrays, "optimizer.mean": arrays["optimizer.mean"].astype("f4")}),
        "a mean of the wrong shape": _checkpoint(header, {**arrays, "optimizer.mean": np.zeros(NUM_PARAMS + 1)}),
        "an infinite covariance": _checkpoint(header, {**arrays, "optimizer.cov": np.full((10, 10), np.inf)}),
        "a zero eigenvalue": _checkpoint(header, {**arrays, "optimizer.eigenvalues_sqrt": np.zeros(NUM_PARAMS)}),
        "an integer beyond float64": with_values(sigma=10 ** 400),
        "a huge population": with_values(popsize=2 ** 40),
        "a huge declared size": _checkpoint({**header, "values": {**header["values"], "num_params": 10 ** 9}},
                                            arrays),
        "a compressed member": _checkpoint(header, arrays, compression=zipfile.ZIP_DEFLATED),
        # a small member whose header asks for 800 GB: NumPy would allocate it before reading (MemoryError)
        "a header that declares a huge shape": _checkpoint(
            header, {k: v for k, v in arrays.items() if k != "optimizer.mean"},
            {"optimizer.mean.npy": _npy_claiming((10 ** 11,))}),
        "the header not an object": _checkpoint([1, 2], {}),  # type: ignore[arg-type]
        "a state that is not an object": _checkpoint({**header, "state": [1]}, arrays),
    }


HOSTILE = list(_hostile_files("marker"))


@pytest.mark.parametrize("attack", HOSTILE)
def test_hostile_checkpoints_are_refused_without_running(tmp_path, attack, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.chdir(tmp_path)  # a relative path in a gadget would land here
    path = tmp_path / "evil.es.pk"
    path.write_bytes(_hostile_files(marker)[attack])
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UserError) as error:
        es.load_optimizer(str(path))
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert not marker.exists()
    assert sorted(os.listdir(tmp_path)) == before  # nothing extracted or written


def test_the_gadgets_are_real(tmp_path):
    """The control: a plain unpickler runs them (so the test above can fail)."""
    marker = tmp_path / "marker"
    pickle.loads(_hostile_files(marker)["pickle: os.system"])
    assert marker.exists()
    marker.unlink()
    with pytest.raises(Exception):  # the generator constructor calls os.system, then fails on its result
        pickle.loads(_generator_ctor_gadget(f"touch {marker}"))
    assert marker.exists()


def test_an_old_pickle_checkpoint_is_refused_with_the_way_to_go_on(tmp_path):
    path = tmp_path / "car_racing.cma.4.32.es.pk"
    path.write_bytes(pickle.dumps({"format": es.FILE_FORMAT, "version": 1}))
    with pytest.raises(UserError, match="is a pickle, the checkpoint format of older versions") as error:
        es.load_optimizer(str(path))
    assert f"--init_params {tmp_path / 'car_racing.cma.4.32.best.json'}" in str(error.value)


def test_calling_an_archive_extractor_through_pickle_is_refused(tmp_path):
    """A crafted old checkpoint extracted a tar archive into the working directory through pycma's utilities."""
    archive, marker, target = tmp_path / "archive.tar.gz", "marker", tmp_path / "extracted"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo(marker), io.BytesIO(b""))
    crafted = pickle.dumps(_Call(shutil.unpack_archive, str(archive), str(target)))
    pickle.loads(crafted)  # the control: a plain unpickler extracts it
    assert (target / marker).exists()
    shutil.rmtree(target)
    path = tmp_path / "evil.es.pk"
    path.write_bytes(crafted)
    with pytest.raises(UserError):
        es.load_optimizer(str(path))
    assert not target.exists()


def _truncated(tmp_path) -> bytes:
    path = str(tmp_path / "whole.es.pk")
    es.save_optimizer(path, run(es.CMAES(NUM_PARAMS, 8), 2), {"generation": 2})
    data = open(path, "rb").read()
    os.remove(path)
    return data[: len(data) // 2]


@pytest.mark.parametrize("contents, message", [
    ("truncated", "is corrupt: truncated"),
    ("random bytes", "not an optimizer state"),
    ("empty", "not an optimizer state"),
    ("a zip of something else", "no header"),
    ("a header without the marker", "marker"),
    ("another version", "format version 999"),
])
def test_bad_files_give_a_user_error_naming_the_file(tmp_path, contents, message):
    header, arrays = _valid_members()
    data = {
        "truncated": lambda: _truncated(tmp_path),
        "random bytes": lambda: np.random.default_rng(0).bytes(4096),
        "empty": lambda: b"",
        "a zip of something else": lambda: _archive({"readme.txt": b"hello"}),
        "a header without the marker": lambda: _checkpoint({**header, "format": "other"}, arrays),
        "another version": lambda: _checkpoint({**header, "version": 999}, arrays),
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
