"""DoomTakeCover: VizDoom's Take Cover scenario (the paper's DoomTakeCover-v0), its frames, actions and data policy.

Observations are the 240x320x3 uint8 screen; the VAE sees its top 5/6 resized to 64x64. That is the official
crop (rows 0..400 of 480), which removed the status bar of the Gym Doom the paper used; the scenario here draws no
status bar, so it cuts floor. It is kept: the same preprocessing as the official code, and the shipped Doom V saw it.
The controller's single output a is the action; the game moves left for a < -1/3, right for a > 1/3, and M is
trained on that move, -1, 0 or 1 (`doom_move`), which is what the random policy of stage 01 records.
"""

from __future__ import annotations

import multiprocessing.util
import os
import shlex
import sys

import gymnasium
import numpy as np

from cli import UserError
from config import DOOM_TAKE_COVER
from envs.spec import EnvSpec
from files import atomic_path
from reading import read_bytes

SCENARIO = "take_cover.cfg"  # shipped with the vizdoom package: map, skill 4, living reward 1, no HUD
RESOLUTION = "RES_320X240"  # the scenario's own screen size; the frame is cropped and resized to 64x64 anyway
TICS_PER_SECOND = 35  # one environment step is one game tic (no frame skip), so 2100 steps are 60 s
ACTION_THRESHOLD = 1.0 / 3.0  # |a| above this moves the player (paper, appendix A.4)


def doom_move(output: np.ndarray) -> np.ndarray:
    """The move VizDoom makes for controller outputs a (any shape): -1 (a < -1/3, left), 1 (a > 1/3, right) or 0
    (stay), float32. The real environment (DoomTakeCover) and the dream (dream.py) both use this mapping."""
    output = np.asarray(output, dtype=np.float32)
    return np.where(output < -ACTION_THRESHOLD, np.float32(-1.0),
                    np.where(output > ACTION_THRESHOLD, np.float32(1.0), np.float32(0.0))).astype(np.float32)


# The engine's launcher: ViZDoom runs `vizdoom_path ARGS`; this one asks the kernel to SIGKILL the engine when the
# process that started it dies (PR_SET_PDEATHSIG survives exec), then becomes the engine. Without it, a Doom worker
# killed by SIGKILL (a killed 01 or model.py, whose workers die with it; the OOM killer; a pool ending a worker
# that hangs) left its engine running for good, adopted by init: the engine ignores SIGTERM and only close() ends
# it. If the starter is already gone when prctl takes effect, the launcher leaves at once. `--check` only tries
# that the script runs here (a folder mounted noexec cannot run it, and the vizdoom package crashes on an engine
# path it cannot run).
_LAUNCHER = """#!/bin/sh
[ "$1" = --check ] && exec {python} -I -S -c 'import ctypes; ctypes.CDLL(None).prctl'
exec {python} -I -S -c 'import ctypes, os, sys
ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])' "$PPID" {engine} "$@"
"""


_launchers: dict[tuple[str, str], str | None] = {}  # (engine, working folder) -> launcher: written and tried once


def _engine_launcher(engine: str) -> str | None:
    """The launcher script for `engine` (written whole in ./_vizdoom/, where the engine keeps its files), or None
    where it cannot run: no prctl (only Linux has it), a folder that cannot run scripts. Each process writes and
    tries it once per working folder, not for every env it builds."""
    key = (engine, os.getcwd())
    if key not in _launchers or (_launchers[key] is not None and not os.path.exists(_launchers[key])):
        _launchers[key] = _write_and_try_launcher(engine)
    return _launchers[key]


def _write_and_try_launcher(engine: str) -> str | None:
    import subprocess

    if not sys.platform.startswith("linux"):
        return None
    text = _LAUNCHER.format(python=shlex.quote(os.path.realpath(sys.executable)), engine=shlex.quote(engine))
    path = os.path.join("_vizdoom", "launch_engine.sh")
    try:
        current = read_bytes(path, 1 << 16, "") == text.encode() and os.access(path, os.X_OK)
    except UserError:  # absent, unreadable, or not a regular file: written anew
        current = False
    if not current:
        with atomic_path(path, suffix=".sh") as temporary:  # parallel workers each write the same text: the last wins
            with open(temporary, "w") as handle:
                handle.write(text)
            os.chmod(temporary, 0o755)
    try:
        runs = subprocess.run([path, "--check"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        runs = False
    return path if runs else None


def _engine_errors() -> tuple[type[Exception], ...]:
    """What the vizdoom package raises when its engine process is gone or fails."""
    import vizdoom

    return (vizdoom.ViZDoomErrorException, vizdoom.ViZDoomUnexpectedExitException,
            vizdoom.ViZDoomIsNotRunningException, vizdoom.SharedMemoryException, vizdoom.MessageQueueException)


def _engine_stopped(error: Exception) -> UserError:
    return UserError(f"the ViZDoom engine stopped (crashed or killed: {type(error).__name__}: {error}); run the "
                     f"command again")


def _pygame():
    """pygame, imported when a window is first needed (render_mode "human"), without its banner."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    return pygame


class DoomTakeCover(gymnasium.Env):
    """VizDoom's Take Cover scenario (the paper's DoomTakeCover-v0) as a Gymnasium environment, without a window.

    Monsters on the far wall throw fireballs; the player can only strafe left or right and must survive.

    observation  the RGB screen, (240, 320, 3) uint8
    action       Box(-1, 1, (1,)) float32: a < -1/3 moves left, a > 1/3 moves right, otherwise the player stays
                 (doom_move, the mapping the dream uses too)
    reward       1 for every step (game tic) survived, the scenario's living reward, the last step included
    terminated   the player died; the game's own timeout is off: the spec's make caps episodes at 2100 steps
                 (truncated)

    reset(seed=s) seeds ViZDoom's random generator with s before the new episode, so the same seed and the same
    actions give the same frames and rewards. The game runs on a DoomGame of the vizdoom package directly (not
    vizdoom's Gymnasium wrapper, whose dict observations and button spaces would need translating on every step).
    render_mode "rgb_array" returns the current screen; "human" shows it in a pygame window. Every observation and
    frame returned is a new array, never the env's own screen nor an earlier return (Gymnasium's env checker rule).

    pickle and copy.deepcopy give a new, independent env with its own engine, built from the same constructor
    arguments: the engine runs in another process and cannot be copied, so, as Gymnasium's CarRacing rebuilds its
    Box2D world (EzPickle), the copy starts afresh and is reset like a new env (the same seed gives the same episode).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": TICS_PER_SECOND}

    def __init__(self, render_mode: str | None = None):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None, 'human' or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        game = self._start_engine()
        height, width = game.get_screen_height(), game.get_screen_width()
        self.observation_space = gymnasium.spaces.Box(0, 255, (height, width, 3), dtype=np.uint8)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        # MOVE_LEFT, MOVE_RIGHT buttons for the moves -1, 0, 1
        self._buttons = {-1: [1.0, 0.0], 0: [0.0, 0.0], 1: [0.0, 1.0]}
        self._screen = np.zeros((height, width, 3), dtype=np.uint8)
        self._window = None
        self._clock = None

    def _start_engine(self):
        """Start ViZDoom's engine on the scenario: in the constructor, and in reset() after close() (Gymnasium's env
        tests reset a closed env, and expect it to work)."""
        import vizdoom

        game = vizdoom.DoomGame()
        game.load_config(os.path.join(vizdoom.scenarios_path, SCENARIO))
        game.set_doom_config_path(os.devnull)  # ZDoom would otherwise write _vizdoom.ini into the working folder
        game.set_window_visible(False)
        game.set_screen_format(vizdoom.ScreenFormat.RGB24)
        game.set_screen_resolution(getattr(vizdoom.ScreenResolution, RESOLUTION))
        game.set_episode_timeout(0)
        # The engine creates ./_vizdoom/ on start and fails when parallel workers race to create it: make it first.
        os.makedirs("_vizdoom", exist_ok=True)
        engine = os.path.join(os.path.dirname(vizdoom.__file__), "vizdoom")
        launcher = _engine_launcher(engine) if os.path.isfile(engine) else None
        if launcher is not None:  # else the engine itself, as the vizdoom package starts it
            game.set_vizdoom_path(launcher)
        game.init()
        self.game = game
        # ViZDoom runs the game in a separate engine process that outlives its Python process unless the game is
        # closed; this closes it when the env is collected, at interpreter exit and when a multiprocessing worker
        # exits (multiprocessing runs these finalizers where atexit handlers are skipped).
        self._close_game = multiprocessing.util.Finalize(self, game.close, exitpriority=10)
        return game

    def __getstate__(self) -> dict:
        """Only the constructor arguments: see the class docstring on copies."""
        return {"render_mode": self.render_mode}

    def __setstate__(self, state: dict) -> None:
        # __init__ runs on this very object, not EzPickle's way (build another env and take over its __dict__):
        # the engine's close-on-collect finalizer is tied to the object that built it, so it would close the copy's
        # engine as soon as that other env was collected.
        self.__init__(**state)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new episode; ViZDoom is seeded with `seed`, or without one with a draw from `np_random`."""
        super().reset(seed=seed)
        if self.game is None:  # closed: a new engine
            self._start_engine()
        game_seed = int(seed) % 2**32 if seed is not None else int(self.np_random.integers(2**32))
        try:
            self.game.set_seed(game_seed)
            self.game.new_episode()
            self._screen = self.game.get_state().screen_buffer
        except _engine_errors() as error:
            raise _engine_stopped(error) from None
        if self.render_mode == "human":
            self.render()
        return self._screen.copy(), {}  # a copy: a caller writing into it must not change the env's screen

    def step(self, action):
        move = int(doom_move(np.asarray(action).reshape(-1)[0]))
        try:
            reward = self.game.make_action(self._buttons[move], 1)
            terminated = self.game.is_episode_finished()
            if not terminated:  # after death there is no new screen: the last one stays the observation
                self._screen = self.game.get_state().screen_buffer
        except _engine_errors() as error:
            raise _engine_stopped(error) from None
        if self.render_mode == "human":
            self.render()
        # a copy: after death the same screen is returned twice, and a caller may write into what it was given
        return self._screen.copy(), float(reward), terminated, False, {}

    def render(self):
        if self.render_mode == "rgb_array":
            return self._screen.copy()
        if self.render_mode == "human":
            pygame = _pygame()
            if self._window is None:
                pygame.display.init()  # the display only: pygame.init() would open the sound card too
                pygame.display.set_caption("DoomTakeCover")
                self._window = pygame.display.set_mode((2 * self._screen.shape[1], 2 * self._screen.shape[0]))
                self._clock = pygame.time.Clock()
            surface = pygame.surfarray.make_surface(self._screen.transpose(1, 0, 2))
            self._window.blit(pygame.transform.scale(surface, self._window.get_size()), (0, 0))
            pygame.event.pump()
            pygame.display.flip()
            self._clock.tick(self.metadata["render_fps"])
        return None

    def close(self):
        if self.game is not None:
            self._close_game()
            self.game = None
        if self._window is not None:
            _pygame().display.quit()
            self._window = None


class RandomPolicy:
    """The data-collection policy of stage 01 (paper, section 4.2), seeded per episode: a random move, left (-1),
    stay (0) or right (1) with equal chances, held for a random 1 to 10 steps, then another. The action is that move
    itself, so the recorded actions are the moves the game made (-1.0, 0.0, 1.0), which is what M is trained on
    (`model_action`)."""

    HOLD_STEPS = (1, 10)  # a move is held for 1..10 steps, uniformly

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.step_count = 0
        self.action = np.zeros(DOOM_TAKE_COVER.action_size, dtype=np.float32)
        self.hold_left = 0  # steps the current move is still held

    def __call__(self) -> np.ndarray:
        if self.hold_left == 0:
            self.action = np.array([self.rng.integers(-1, 2)], dtype=np.float32)
            self.hold_left = int(self.rng.integers(self.HOLD_STEPS[0], self.HOLD_STEPS[1] + 1))
        self.hold_left -= 1
        self.step_count += 1
        return self.action.copy()


class DoomTakeCoverSpec(EnvSpec):
    """DoomTakeCover. The action is the controller's output a itself, in Box(-1, 1, (1,)); M sees the move the game
    made, doom_move(a). Capped at 2100 steps (60 s of game time)."""

    config = DOOM_TAKE_COVER
    video_fps = TICS_PER_SECOND
    observation_shape = (240, 320, 3)  # the screen at RESOLUTION
    gym_id = "WorldModels/DoomTakeCover-v0"
    against_the_paper = ("The paper scored 1092 ± 556 on Gym's DoomTakeCover-v0 (solved: above 750); this is "
                         "ViZDoom's take_cover scenario of the vizdoom wheel, where random play survives longer (308.8 "
                         "± 154.9 tics against the paper's 210 ± 108): the scores are not strictly comparable.")

    def make_unwrapped(self, render_mode: str | None, fast: bool) -> gymnasium.Env:
        """DoomTakeCover (no window unless render_mode is "human"); `fast` does not apply: there is one renderer."""
        return DoomTakeCover(render_mode=render_mode)

    def crop(self, observation: np.ndarray) -> np.ndarray:
        return observation[: observation.shape[0] * 5 // 6]

    def to_env_action(self, output: np.ndarray) -> np.ndarray:
        return np.asarray(output, dtype=np.float32)

    def to_env_actions(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs, dtype=np.float32)

    def model_action(self, env_action: np.ndarray) -> np.ndarray:
        return doom_move(env_action)

    def action_space(self) -> gymnasium.spaces.Box:
        return gymnasium.spaces.Box(-1.0, 1.0, (self.config.action_size,), dtype=np.float32)

    def random_policy(self, seed: int) -> RandomPolicy:
        return RandomPolicy(seed)


SPEC = DoomTakeCoverSpec()
