"""es.py: optimizers that reach known optima, weight decay that penalises, seeded asks (their checkpoints:
test_es_checkpoint.py)."""

import numpy as np
import pytest

import es

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
