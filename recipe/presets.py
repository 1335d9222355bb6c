"""The recipes `reproduce.py` runs: every step and every number fixed in advance, as frozen dataclasses.

A recipe is a tuple of steps, run in order:

    Collect     stage 01: random play, or the controller a ControllerPhase chose, into new batch files
    TrainV      stage 02: a new V, or V going on from the last one (its NumPy copy, Adam afresh)
    Encode      stage 03: every batch so far through the current V
    TrainM      stage 04: a new M, or M going on from the last one
    ControllerPhase   stage 05: a fixed generation budget, with the restart rule where it has one

then the selection, the two final scores and the pack (Selection, Scoring). The rules and why are in
docs/reproduce.md; `recipe_key` is a hash of all of it, which guards a run's state folder. A recipe changed while
runs of it exist is kept in RETIRED, so that those runs go on with it (recipe_for).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

RECIPE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Collect:
    """Stage 01: `episodes` episodes of at most `time_steps` steps into batch files of `batch_size` episodes, after
    the batches of earlier Collect steps. `player`: None for the random policy, else the name of the ControllerPhase
    whose chosen controller plays (with that phase's V and M)."""
    name: str
    episodes: int
    time_steps: int
    batch_size: int
    player: str | None = None


@dataclasses.dataclass(frozen=True)
class TrainV:
    """Stage 02 on the first `batches` batch files (0: all collected so far), or with `since` (the name of a Collect
    step) on the batch files from that step's first to the last collected. `new`: fresh weights; else V goes on
    from the last TrainV's NumPy copy with Adam afresh."""
    name: str
    epochs: int
    learning_rate: float
    batch_size: int
    new: bool = True
    batches: int = 0
    steps_per_file: int = 0  # 0: every frame
    since: str | None = None


@dataclasses.dataclass(frozen=True)
class Encode:
    """Stage 03: every batch collected so far, through the last TrainV's V."""
    name: str


@dataclasses.dataclass(frozen=True)
class TrainM:
    """Stage 04 on every batch collected so far. `new`: fresh weights; else M goes on from the last TrainM's
    NumPy copy with Adam afresh."""
    name: str
    epochs: int
    batch_size: int
    new: bool = True


@dataclasses.dataclass(frozen=True)
class Restart:
    """The stall rule of a phase (IPOP-CMA-ES, docs/reproduce.md): once `span` + `window` generations are done,
    checked every `window` generations, if the average of the population average over the last `window`
    generations beats the same average `span` generations earlier by less than `min_gain`, the phase restarts
    from its best controller with `population_factor` times the population and step size `sigma`, on what is left
    of the phase's generation budget. At most `max_restarts` times."""
    window: int
    span: int
    min_gain: float
    population_factor: int = 2
    sigma: float = 0.05
    max_restarts: int = 1


@dataclasses.dataclass(frozen=True)
class ControllerPhase:
    """Stage 05 for a fixed budget of `generations` (the stopping rule). Population `population` (split over
    --workers: it must divide by them), `episodes` per solution, the mean evaluated every `eval_every`
    generations on `eval_episodes` fresh episodes. `start`: None (zeros) or the ControllerPhase whose best
    controller this phase starts from. Dream phases train in M's dream at `temperature` and play each new best (with
    `real_every`, each evaluated mean) `real_episodes` times in the real game."""
    name: str
    population: int
    episodes: int
    generations: int
    eval_every: int
    eval_episodes: int
    sigma: float = 0.1
    common_seeds: bool = False
    max_length: int = 0  # 0: the environment's
    start: str | None = None
    dream: bool = False
    temperature: float = 0.0
    real_episodes: int = 0
    restart: Restart | None = None
    real_every: bool = False  # dream phases: every evaluated mean plays the real episodes, not only new bests


@dataclasses.dataclass(frozen=True)
class Selection:
    """Honest selection: the candidates are the evaluated controllers of the phases `phases` (the rows of their
    .log.json: for a real-game phase ranked by their evaluation, for a dream phase by their real-game score); the
    top `top` each play `episodes` real episodes of at most `max_length` steps on the run's own selection seeds
    (the same seeds for each); the highest mean is chosen."""
    phases: tuple[str, ...]
    top: int
    episodes: int
    max_length: int = 0


@dataclasses.dataclass(frozen=True)
class Scoring:
    """The chosen controller's two scores, each played once: `episodes` real episodes on the scoring seeds
    111.. (model.py --final_mode) and as many on the untouched seeds 10,000,000.. ."""
    episodes: int = 100
    max_length: int = 0


@dataclasses.dataclass(frozen=True)
class Recipe:
    env: str
    preset: str
    steps: tuple
    selection: Selection
    scoring: Scoring

    def __post_init__(self):
        for index, step in enumerate(self.steps):
            if isinstance(step, TrainV) and step.since is not None and not any(
                    isinstance(earlier, Collect) and earlier.name == step.since for earlier in self.steps[:index]):
                raise ValueError(f"{step.name}: since={step.since!r} names no Collect step before it")

    def phase(self, name: str) -> ControllerPhase:
        return next(step for step in self.steps if isinstance(step, ControllerPhase) and step.name == name)

    def to_json(self) -> dict:
        return {"format": RECIPE_FORMAT, "env": self.env, "preset": self.preset,
                "steps": [{"kind": type(step).__name__, **_fields(step)} for step in self.steps],
                "selection": dataclasses.asdict(self.selection), "scoring": dataclasses.asdict(self.scoring)}


# Fields added after runs had begun, left out of a step's JSON (and so of the recipe key) while at these defaults:
# a run begun before a field existed keeps its key.
_LATER_FIELDS = {"since": None, "real_every": False}


def _fields(step) -> dict:
    return {name: value for name, value in dataclasses.asdict(step).items()
            if not (name in _LATER_FIELDS and value == _LATER_FIELDS[name])}


def recipe_key(recipe: Recipe) -> str:
    """A short hash of every setting of the recipe (not of the code's commit: a doc commit must not orphan a run)."""
    text = json.dumps(recipe.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- CarRacing ------------------------------------------------------------------------------------------------------
# The shipped agent's path (docs/results.md): a world model from 1,000 random episodes, a first controller at 16 x 4,
# one round of iterative training of V and M on that controller's 120 episodes, and C going on at 16 x 8 on shared
# tracks, with the restart rule that made the second seed reach 850.
CAR_RACING_FULL = Recipe(
    env="car_racing", preset="full",
    steps=(
        Collect("random", episodes=1000, time_steps=300, batch_size=100),
        TrainV("v0", epochs=1, learning_rate=3e-4, batch_size=100),
        Encode("z0"),
        TrainM("m0", epochs=20, batch_size=16),
        ControllerPhase("c1", population=16, episodes=4, generations=70, eval_every=10, eval_episodes=32),
        Collect("round1", episodes=120, time_steps=1000, batch_size=40, player="c1"),
        TrainV("v1", epochs=1, learning_rate=1e-4, batch_size=100, new=False),
        Encode("z1"),
        TrainM("m1", epochs=10, batch_size=16, new=False),
        ControllerPhase("c2", population=16, episodes=8, generations=240, eval_every=10, eval_episodes=32,
                        sigma=0.05, common_seeds=True, start="c1",
                        restart=Restart(window=10, span=50, min_gain=15.0)),
    ),
    selection=Selection(phases=("c2",), top=3, episodes=100),
    scoring=Scoring(episodes=100),
)

# The same schedule at toy sizes (the Makefile's demo): every step, a round of iterative training, a restart (the
# rule's threshold is out of reach at 60-step episodes, so it fires at its first check), selection, both scores.
CAR_RACING_TINY = Recipe(
    env="car_racing", preset="tiny",
    steps=(
        Collect("random", episodes=8, time_steps=60, batch_size=4),
        TrainV("v0", epochs=2, learning_rate=1e-4, batch_size=100),
        Encode("z0"),
        TrainM("m0", epochs=3, batch_size=100),
        ControllerPhase("c1", population=4, episodes=1, generations=2, eval_every=1, eval_episodes=2,
                        max_length=60),
        Collect("round1", episodes=4, time_steps=60, batch_size=4, player="c1"),
        TrainV("v1", epochs=1, learning_rate=1e-4, batch_size=100, new=False),
        Encode("z1"),
        TrainM("m1", epochs=1, batch_size=100, new=False),
        ControllerPhase("c2", population=4, episodes=2, generations=3, eval_every=1, eval_episodes=2, sigma=0.05,
                        common_seeds=True, max_length=60, start="c1",
                        restart=Restart(window=1, span=1, min_gain=1000.0)),
    ),
    selection=Selection(phases=("c2",), top=2, episodes=3, max_length=60),
    scoring=Scoring(episodes=100, max_length=20),
)

# --- DoomTakeCover --------------------------------------------------------------------------------------------------
# The path of the agents shipped until 2026-12-06 (docs/results.md): 3,000 random episodes, V on the first 1,000, M on
# all, a controller in the dream at 64 x 16 and tau 1.15, then rounds of iterative training: the chosen controller
# plays 400 real episodes, M goes on over everything, a fresh controller learns in the new dream. Three rounds, as the
# earlier run that scored 815.2. Two changes from those runs, for more and better-measured candidates
# (docs/reproduce.md): the dream evaluates every 5 generations, not 10, and each new best plays 32 real episodes, not
# 16 (a standard error of about 90, not 130); the top 8, not 3, play the selection's 100.
_DOOM_DREAM = dict(population=64, episodes=16, eval_every=5, eval_episodes=64, dream=True, temperature=1.15,
                   real_episodes=32)


def _doom_full(v_rounds: bool) -> Recipe:
    """Doom's full recipe until 2026-12-07; `v_rounds`: V goes on after every round too (DOOM_FULL_2), else only M
    (DOOM_FULL_1)."""
    steps = [Collect("random", episodes=3000, time_steps=2100, batch_size=40),
             TrainV("v0", epochs=2, learning_rate=1e-3, batch_size=32, batches=25, steps_per_file=300),
             Encode("z0"),
             TrainM("m0", epochs=8, batch_size=16),
             ControllerPhase("d0", generations=20, **_DOOM_DREAM)]
    m_epochs = (2, 2, 2) if v_rounds else (2, 1, 1)
    for round_index, (generations, epochs) in enumerate(zip((70, 100, 100), m_epochs), start=1):
        steps.append(Collect(f"round{round_index}", episodes=400, time_steps=2100, batch_size=40,
                             player=f"d{round_index - 1}"))
        if v_rounds:
            steps.append(TrainV(f"v{round_index}", epochs=1, learning_rate=1e-4, batch_size=32, new=False,
                                steps_per_file=300, since="round1"))
        steps += [Encode(f"z{round_index}"), TrainM(f"m{round_index}", epochs=epochs, batch_size=16, new=False),
                  ControllerPhase(f"d{round_index}", generations=generations, **_DOOM_DREAM)]
    return Recipe(env="doom_take_cover", preset="full", steps=tuple(steps),
                  selection=Selection(phases=("d1", "d2", "d3"), top=8, episodes=100), scoring=Scoring(episodes=100))


# Retired on 2026-12-06 (recipe key 43af3e5261c7c4de): the recipe of runs/reproduce/doom_take_cover/seed1, whose
# agent ships (813.5; 830.9 on the untouched seeds). A run folder begun under it resumes and reports with it.
DOOM_FULL_1 = _doom_full(v_rounds=False)

# Retired on 2026-12-07 (recipe key 3c4e391b4470a46e): as DOOM_FULL_1, with V going on after every round as well
# (one epoch at 1e-4 over every round's batches so far) and M two epochs each round. The recipe of
# runs/reproduce/doom_take_cover/seed2, paused in d1.
DOOM_FULL_2 = _doom_full(v_rounds=True)

# Retired on 2026-12-07 (recipe key eb1182272efc9581): the recipe of runs/reproduce/doom_take_cover/seed3 (732.8).
# From then on: the paper's scale of random play and no refit on the controller's own play before the first
# long dream (docs/reproduce.md). 10,000 random episodes (the paper's; 1,000 gave 342 and 3,000 about 740 with the
# same dream, docs/results.md); M 4 epochs over them; d0 100 generations, and d0's controllers are candidates: on
# seed 2's 3,000-episode world model d0's chosen controller (its generation 5) played 839.0 over 100 episodes,
# above every controller of seed 1's three rounds (681 to 798 on its selection episodes), while both seeds' first
# round's dream (d1) was exploited (its new bests lived 160 to 183 tics in the game). One round of iterative
# training stays, as a second pool of candidates: d0's chosen plays 400 episodes, M goes on one epoch over
# everything (V as it is, so that only the new batches are encoded), a fresh controller learns 100 generations.
_DOOM_WORLD_MODEL = (Collect("random", episodes=10000, time_steps=2100, batch_size=40),
                     TrainV("v0", epochs=2, learning_rate=1e-3, batch_size=32, batches=25, steps_per_file=300),
                     Encode("z0"),
                     TrainM("m0", epochs=4, batch_size=16))
DOOM_FULL_3 = Recipe(
    env="doom_take_cover", preset="full",
    steps=(*_DOOM_WORLD_MODEL,
           ControllerPhase("d0", generations=100, **_DOOM_DREAM),
           Collect("round1", episodes=400, time_steps=2100, batch_size=40, player="d0"),
           Encode("z1"),
           TrainM("m1", epochs=1, batch_size=16, new=False),
           ControllerPhase("d1", generations=100, **_DOOM_DREAM)),
    selection=Selection(phases=("d0", "d1"), top=8, episodes=100), scoring=Scoring(episodes=100))

# Since 2026-12-07: seed 3's world model (DOOM_FULL_3) with one long dream and no round (docs/reproduce.md). The
# round bought nothing in three runs; d0 resumed for 100 more generations after the fact (runs/README.md, d8) played
# 822 at generation 100, 864 at 125 and 919 at 150 on seeds 900,000.., its population average in the dream still
# rising (844 at 99, 900 to 930 from 105); the paper trained 934 generations. Every evaluated mean now plays its 32
# real episodes (real_every): in d0 no dream evaluation after generation 75 beat that one's lucky 1006, so the later,
# better trained means never became candidates. The selection's top 8 of the 60 play their 100 episodes.
DOOM_FULL = Recipe(
    env="doom_take_cover", preset="full",
    steps=(*_DOOM_WORLD_MODEL, ControllerPhase("d0", generations=300, real_every=True, **_DOOM_DREAM)),
    selection=Selection(phases=("d0",), top=8, episodes=100), scoring=Scoring(episodes=100))

_DOOM_TINY_DREAM = dict(population=4, episodes=2, eval_every=1, eval_episodes=4, dream=True, temperature=1.15,
                        real_episodes=2, max_length=100)
DOOM_TINY = Recipe(
    env="doom_take_cover", preset="tiny",
    steps=(
        Collect("random", episodes=4, time_steps=200, batch_size=4),
        TrainV("v0", epochs=1, learning_rate=1e-3, batch_size=32, steps_per_file=20),
        Encode("z0"),
        TrainM("m0", epochs=2, batch_size=100),
        ControllerPhase("d0", generations=2, **_DOOM_TINY_DREAM),
        Collect("round1", episodes=4, time_steps=200, batch_size=4, player="d0"),
        TrainV("v1", epochs=1, learning_rate=1e-4, batch_size=32, new=False, steps_per_file=20, since="round1"),
        Encode("z1"),
        TrainM("m1", epochs=1, batch_size=100, new=False),
        ControllerPhase("d1", generations=2, real_every=True, **_DOOM_TINY_DREAM),
    ),
    selection=Selection(phases=("d1",), top=2, episodes=2, max_length=100),
    scoring=Scoring(episodes=100, max_length=20),
)

RECIPES = {(recipe.env, recipe.preset): recipe for recipe in (CAR_RACING_FULL, CAR_RACING_TINY, DOOM_FULL, DOOM_TINY)}
RETIRED = (DOOM_FULL_1, DOOM_FULL_2, DOOM_FULL_3)  # recipes replaced while runs of them exist: they go on with theirs
ENVS = ("car_racing", "doom_take_cover")
PRESETS = ("full", "tiny")


def recipe_for(env: str, preset: str, key: str | None = None) -> Recipe:
    """The recipe a run of (env, preset) follows: the current one, or for a run folder whose state.json holds `key`,
    the retired recipe of that key (so that it resumes and reports as it began). An unknown key is the current
    recipe's (Run refuses the folder in one line)."""
    for recipe in RETIRED:
        if (recipe.env, recipe.preset) == (env, preset) and key == recipe_key(recipe):
            return recipe
    return RECIPES[(env, preset)]
