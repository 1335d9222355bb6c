"""Environments and the frame preprocessing the world model sees.

`make_env(env_name, ...)` is the one way every script builds an environment. Observations stay as the environment
returns them (CarRacing: 96x96x3 uint8; DoomTakeCover: 240x320x3 uint8); `process_frame` turns one into the
64x64x3 uint8 frame the VAE encodes. `RandomPolicy` is the data-collection policy of stage 01.
"""

from __future__ import annotations

import math
import multiprocessing.util
import os

import gymnasium
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner from every worker process
import pygame  # noqa: E402
from gymnasium.envs.box2d import car_racing as _car_racing
from gymnasium.envs.box2d.car_dynamics import SIZE as CAR_SIZE
from gymnasium.envs.box2d.car_dynamics import WHEEL_R, WHEEL_W, WHEEL_WHITE
from gymnasium.envs.box2d.car_racing import (SCALE, STATE_H, STATE_W, VIDEO_H, VIDEO_W, WINDOW_H, WINDOW_W, ZOOM,
                                             CarRacing)
from PIL import Image
from pygame import gfxdraw

from config import FRAME_SIZE, get_config
from controller.controller import doom_move

CAR_RACING_CROP_ROWS = 84  # rows 0..84 of the 96x96 frame: the dashboard below is cut (paper, appendix A.1)

# --- FastCarRacing -------------------------------------------------------------------------------------------------

_TWO_PI = 2.0 * math.pi  # pygame's TWO_PI (2. * M_PI)
_HALF_PI = math.pi / 2.0  # pygame's M_PI_2
_VECTOR_EPSILON = 1e-6  # pygame's VECTOR_EPSILON, the default epsilon of a Vector2
_SCREEN_MARGIN = 8.0  # px: the background polygon must clear the screen by this much to be replaced by a fill
_SAFE_COORD = 16000.0  # px: below this SDL_gfx's 16.16 fixed-point scanline maths (int32) cannot overflow
_OFF_SCREEN = 3.0  # px: a polygon this far outside the window (after pygame's float -> int) draws no pixel


def _rotate_like_pygame(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the points (x, y) by `angle` radians bit for bit as `pygame.math.Vector2(p).rotate_rad(angle)` does.

    pygame-ce reduces the angle with fmod to [0, 2 pi), special-cases (within 1e-6) multiples of 90 degrees, and
    otherwise computes `cos * x - sin * y, sin * x + cos * y` in float64 with libm's sin and cos: the same libm
    functions `math.sin`/`math.cos` call, and the same separately rounded products and sums NumPy computes.
    """
    angle = math.fmod(angle, _TWO_PI)
    if angle < 0:
        angle += _TWO_PI
    if math.fmod(angle + _VECTOR_EPSILON, _HALF_PI) < 2 * _VECTOR_EPSILON:
        quarter = int((angle + _VECTOR_EPSILON) / _HALF_PI)
        if quarter in (0, 4):
            return x, y
        if quarter == 1:
            return -y, x
        if quarter == 2:
            return -x, -y
        return y, -x
    sin, cos = math.sin(angle), math.cos(angle)
    return cos * x - sin * y, sin * x + cos * y


def _grass_polygons() -> np.ndarray:
    """CarRacing's 400 grass squares, (400, 4, 2) float64, in its drawing order and from its own float expressions."""
    dim = _car_racing.GRASS_DIM
    return np.array([[(dim * x + dim, dim * y + 0), (dim * x + 0, dim * y + 0), (dim * x + 0, dim * y + dim),
                      (dim * x + dim, dim * y + dim)] for x in range(-20, 20, 2) for y in range(-20, 20, 2)],
                    dtype=np.float64)


class FastCarRacing(CarRacing):
    """Gymnasium's CarRacing with the same pixels, rewards and physics, rendered several times faster.

    A drop-in subclass: same constructor, spaces, reset/step contract and Box2D world; only the non-"human"
    rendering is replaced (render_mode "human" goes through the stock `_render`). Observations and rgb_array frames
    are identical bit for bit to the stock ones because every pixel comes from the same pygame calls with the same
    float coordinates, in the same order; only the Python work around them is gone.

    What is cached, and why it stays exact:

    * Road geometry, per track. The playfield square, the 400 grass squares and the road polygons (tiles and kerbs)
      are stacked into one corner-major (2, 4, M) float64 array when a new track appears (detected by the identity
      of `road_poly`, a list `reset` replaces) and kept for the episode; they are the same Python floats the stock
      code builds every frame. Tile colours are not cached: the contact listener recolours tiles in place, so they
      are read (and truncated with `int` like the stock code) when drawn.
    * Car geometry, per `Car`: the fixture vertices as float32 (how Box2D stores them) and the body colours.
    * One 1000x800 window surface and one for its vertical flip, the smoothscale destinations, the rendered score
      text per label (the stock code loads the font file on every frame), the pixel value of the background colour.

    Per frame, all polygons are transformed with a few NumPy operations. `_rotate_like_pygame` replays
    Vector2.rotate_rad exactly (same fmod reduction, same special cases near multiples of 90 degrees, the same libm
    sin/cos, the same float64 operation order); `x * zoom + t` rounds the same twice; Box2D's `transform * vertex`
    is replayed in float32 as `(c * x - s * y) + p`. The coordinates reach pygame as Python floats (`tolist`), so
    its float -> int conversion sees the same numbers. Two kinds of call are skipped because they cannot change a
    pixel: polygons whose bounding box lies more than _OFF_SCREEN px outside the window (gfxdraw would clip all
    of it), and the playfield polygon when it contains the window with a margin and small enough coordinates for
    SDL_gfx's int32 scanline maths - its fill then paints every pixel the background colour and its outline is
    off-screen, so the window is filled with the pixel value gfxdraw writes for that colour (read from a probe
    surface). Otherwise the stock path is taken: black window, then the playfield polygon. The flip is a NumPy
    row copy into the persistent surface, and the pixels are read with one `tobytes` call.
    """

    _GRASS = _grass_polygons()
    _TEXT_CACHE: dict = {}  # score label -> its rendered text surface

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._geometry_source = None  # the road_poly list the cached geometry was built from
        self._geometry = None  # (2, 4, 1 + 400 + R) float64: playfield, grass squares, road polygons
        self._road_colors: list = []  # the colour objects of the road polygons (tile colours change in place)
        self._car_source = None  # the Car whose vertices are cached
        self._car_parts = None  # see _car_geometry
        self._window = None  # persistent WINDOW_W x WINDOW_H surfaces: drawing target and its vertical flip
        self._flipped = None
        self._scaled: dict = {}  # persistent smoothscale destinations by size
        self._fill_colors: dict = {}  # background colour -> pixel value gfxdraw writes for it

    # -- per-episode caches --------------------------------------------------------------------------------------

    def _road_geometry(self) -> np.ndarray:
        """(2, 4, M) float64: x and y of corner k of polygon m, for the playfield (m = 0), the 400 grass squares and
        the road polygons in drawing order; corner-major so per-polygon tests are element-wise over 4 rows."""
        if self._geometry_source is not self.road_poly:
            bounds = _car_racing.PLAYFIELD
            field = np.array([[(bounds, bounds), (bounds, -bounds), (-bounds, -bounds), (-bounds, bounds)]])
            road = np.array([[(p[0], p[1]) for p in poly] for poly, _ in self.road_poly], dtype=np.float64)
            polygons = np.concatenate([field, self._GRASS, road.reshape(-1, 4, 2)])  # (M, 4, 2)
            self._geometry = np.ascontiguousarray(polygons.transpose(2, 1, 0))
            self._road_colors = [color for _, color in self.road_poly]
            self._geometry_source = self.road_poly
        return self._geometry

    def _car_geometry(self):
        """The car's fixture vertices in `Car.draw` order: bodies, (K, 2) float32 local vertices (as Box2D stores
        them), the body index of each vertex, and per body its polygons as (colour, start, end) rows."""
        if self._car_source is not self.car:
            bodies = list(self.car.drawlist)
            local, owner, fixtures, start = [], [], [], 0
            for index, body in enumerate(bodies):
                color = [int(c * 255) for c in body.color]
                polygons = []
                for fixture in body.fixtures:
                    vertices = fixture.shape.vertices
                    local += vertices
                    owner += [index] * len(vertices)
                    polygons.append((color, start, start + len(vertices)))
                    start += len(vertices)
                fixtures.append(polygons)
            self._car_parts = (bodies, np.array(local, dtype=np.float32), np.array(owner), fixtures)
            self._car_source = self.car
        return self._car_parts

    # -- rendering -----------------------------------------------------------------------------------------------

    def _render(self, mode: str):
        """`CarRacing._render` for "state_pixels" and "rgb_array" with the cached geometry; "human" is stock."""
        if mode == "human":
            return super()._render(mode)
        assert mode in self.metadata["render_modes"]

        pygame.font.init()
        if self.clock is None:
            self.clock = pygame.time.Clock()
        if "t" not in self.__dict__:
            return  # reset() not called yet

        if self._window is None:
            self._window = pygame.Surface((WINDOW_W, WINDOW_H))
            self._flipped = pygame.Surface((WINDOW_W, WINDOW_H))

        assert self.car is not None
        # the stock camera computation, verbatim
        angle = -self.car.hull.angle
        zoom = 0.1 * SCALE * max(1 - self.t, 0) + ZOOM * SCALE * min(self.t, 1)
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        trans = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        trans = (WINDOW_W / 2 + trans[0], WINDOW_H / 4 + trans[1])

        self._draw_road(self._window, zoom, trans, angle)
        self._draw_car(self._window, zoom, trans, angle, mode not in ["state_pixels_list", "state_pixels"])
        self._flip_window()
        self.surf = self._flipped
        self._render_indicators(WINDOW_W, WINDOW_H)
        self._draw_score()

        if mode == "rgb_array":
            return self._create_image_array(self.surf, (VIDEO_W, VIDEO_H))
        if mode == "state_pixels":
            return self._create_image_array(self.surf, (STATE_W, STATE_H))
        return self.isopen

    def _draw_road(self, surface, zoom, trans, angle) -> None:
        """Background, grass and road: `CarRacing._render_road` with cached, vectorised geometry."""
        geometry = self._road_geometry()
        x, y = _rotate_like_pygame(geometry[0], geometry[1], angle)
        x = x * zoom + trans[0]  # (4, M): corner k of polygon m
        y = y * zoom + trans[1]

        # playfield, drawn without the visibility test
        field = np.stack([x[:, 0], y[:, 0]], axis=-1).tolist()
        if self._covers_window(field):
            surface.fill(self._fill_color(self.bg_color))
        else:
            surface.fill((0, 0, 0))  # what a fresh pygame.Surface holds
            gfxdraw.aapolygon(surface, field, self.bg_color)
            gfxdraw.filled_polygon(surface, field, self.bg_color)

        # the stock visibility test (a vertex near the window), then also drop polygons whose bounding box misses
        # the window by more than _OFF_SCREEN px: gfxdraw would clip every pixel of them, so drawing them is a no-op
        margin = _car_racing.MAX_SHAPE_DIM
        near = (x >= -margin) & (x <= WINDOW_W + margin) & (y >= -margin) & (y <= WINDOW_H + margin)
        visible = near[0] | near[1] | near[2] | near[3]
        visible &= np.maximum(np.maximum(x[0], x[1]), np.maximum(x[2], x[3])) >= -_OFF_SCREEN
        visible &= np.minimum(np.minimum(x[0], x[1]), np.minimum(x[2], x[3])) <= WINDOW_W + _OFF_SCREEN
        visible &= np.maximum(np.maximum(y[0], y[1]), np.maximum(y[2], y[3])) >= -_OFF_SCREEN
        visible &= np.minimum(np.minimum(y[0], y[1]), np.minimum(y[2], y[3])) <= WINDOW_H + _OFF_SCREEN
        visible[0] = False
        indices = np.flatnonzero(visible)
        points = np.stack([x[:, indices].T, y[:, indices].T], axis=-1).tolist()  # per polygon, 4 [x, y] lists
        first_road = 1 + len(self._GRASS)
        grass_color = self.grass_color
        road_colors = self._road_colors
        for index, poly in zip(indices.tolist(), points):
            if index < first_road:
                color = grass_color
            else:
                color = [int(c) for c in road_colors[index - first_road]]
            gfxdraw.aapolygon(surface, poly, color)
            gfxdraw.filled_polygon(surface, poly, color)

    @staticmethod
    def _covers_window(polygon: list) -> bool:
        """Whether the convex quadrilateral `polygon` ([x, y] rows) contains the window grown by _SCREEN_MARGIN on
        every side, with coordinates small enough for SDL_gfx's integer scanline maths (16.16 fixed point in int32):
        then its scanline fill paints every pixel and its anti-aliased outline lies wholly off-screen."""
        if any(abs(c) > _SAFE_COORD for point in polygon for c in point):
            return False
        lo, hi_x, hi_y = -_SCREEN_MARGIN, WINDOW_W + _SCREEN_MARGIN, WINDOW_H + _SCREEN_MARGIN
        signs = set()
        for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1]):
            for cx, cy in ((lo, lo), (hi_x, lo), (hi_x, hi_y), (lo, hi_y)):
                cross = (x1 - x0) * (cy - y0) - (y1 - y0) * (cx - x0)
                signs.add(cross > 0 if cross != 0 else None)
        return signs == {True} or signs == {False}

    def _fill_color(self, color) -> int:
        """The pixel value gfxdraw writes for `color` on a window-format surface (found once per colour)."""
        key = tuple(np.asarray(color).tolist())
        if key not in self._fill_colors:
            probe = pygame.Surface((4, 4), 0, self._window)
            gfxdraw.filled_polygon(probe, [(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0)], color)
            self._fill_colors[key] = probe.get_at_mapped((1, 1))
        return self._fill_colors[key]

    def _draw_car(self, surface, zoom, trans, angle, draw_particles) -> None:
        """`Car.draw`: Box2D's `transform * vertex` replayed in float32 for all bodies at once, then the camera."""
        car = self.car
        if draw_particles and car.particles:
            particles = list(car.particles)
            points = np.array([xy for p in particles for xy in p.poly], dtype=np.float64)
            px, py = _rotate_like_pygame(points[:, 0], points[:, 1], angle)
            flat = np.stack([px * zoom + trans[0], py * zoom + trans[1]], axis=-1).tolist()
            start = 0
            for p in particles:
                end = start + len(p.poly)
                pygame.draw.lines(surface, color=p.color, points=flat[start:end], width=2, closed=False)
                start = end

        bodies, local, owner, fixtures = self._car_geometry()
        frames = []  # per body: rotation cos, sin and position, float32 as Box2D holds them
        for body in bodies:
            transform = body.transform
            q, position = transform.q, transform.position
            frames.append((q.c, q.s, position[0], position[1]))
        # wheel stripes: the stock float64 corners, which Box2D rounds to float32 before transforming
        stripes, stripe_owner, stripe_of = [], [], {}
        for index, body in enumerate(bodies):
            if "phase" not in body.__dict__:
                continue
            a1 = body.phase
            a2 = body.phase + 1.2  # radians
            s1, s2, c1, c2 = math.sin(a1), math.sin(a2), math.cos(a1), math.cos(a2)
            if s1 > 0 and s2 > 0:
                continue
            if s1 > 0:
                c1 = np.sign(c1)
            if s2 > 0:
                c2 = np.sign(c2)
            stripe_of[index] = len(local) + 4 * len(stripes)
            stripes.append([(-WHEEL_W * CAR_SIZE, +WHEEL_R * c1 * CAR_SIZE),
                            (+WHEEL_W * CAR_SIZE, +WHEEL_R * c1 * CAR_SIZE),
                            (+WHEEL_W * CAR_SIZE, +WHEEL_R * c2 * CAR_SIZE),
                            (-WHEEL_W * CAR_SIZE, +WHEEL_R * c2 * CAR_SIZE)])
            stripe_owner += [index] * 4
        if stripes:
            local = np.concatenate([local, np.array(stripes, dtype=np.float64).reshape(-1, 2).astype(np.float32)])
            owner = np.concatenate([owner, np.array(stripe_owner)])
        frame = np.array(frames, dtype=np.float32)[owner]
        c, s = frame[:, 0], frame[:, 1]
        world_x = ((c * local[:, 0] - s * local[:, 1]) + frame[:, 2]).astype(np.float64)  # b2Mul(T, v), float32
        world_y = ((s * local[:, 0] + c * local[:, 1]) + frame[:, 3]).astype(np.float64)
        rx, ry = _rotate_like_pygame(world_x, world_y, angle)
        flat = np.stack([rx * zoom + trans[0], ry * zoom + trans[1]], axis=-1).tolist()
        for index, polygons in enumerate(fixtures):
            for color, start, end in polygons:
                pygame.draw.polygon(surface, color=color, points=flat[start:end])
            if index in stripe_of:
                start = stripe_of[index]
                pygame.draw.polygon(surface, color=WHEEL_WHITE, points=flat[start:start + 4])

    def _flip_window(self) -> None:
        """pygame.transform.flip(window, False, True), written into the persistent `_flipped` surface."""
        source = pygame.surfarray.pixels2d(self._window)
        target = pygame.surfarray.pixels2d(self._flipped)
        np.copyto(target.T, source.T[::-1])
        del source, target  # unlock both surfaces

    def _draw_score(self) -> None:
        """The stock score text. Rendered labels are kept (class-wide); a miss loads the font afresh like the stock
        code does every frame, since a Font kept across a pygame.quit() would point at freed FreeType faces."""
        label = f"{self.reward:04.0f}"
        text = self._TEXT_CACHE.get(label)
        if text is None:
            if len(self._TEXT_CACHE) >= 1024:
                self._TEXT_CACHE.clear()
            font = pygame.font.Font(pygame.font.get_default_font(), 42)
            text = self._TEXT_CACHE[label] = font.render(label, True, (255, 255, 255), (0, 0, 0))
        text_rect = text.get_rect()
        text_rect.center = (60, WINDOW_H - WINDOW_H * 2.5 / 40.0)
        self.surf.blit(text, text_rect)

    def _create_image_array(self, screen, size):
        scaled = self._scaled.get(size)
        if scaled is None:
            scaled = self._scaled[size] = pygame.transform.smoothscale(screen, size)
        else:
            pygame.transform.smoothscale(screen, size, scaled)
        pixels = np.frombuffer(pygame.image.tobytes(scaled, "RGB"), dtype=np.uint8)
        return pixels.reshape(size[1], size[0], 3).copy()


# --- DoomTakeCover -------------------------------------------------------------------------------------------------

DOOM_SCENARIO = "take_cover.cfg"  # shipped with the vizdoom package: map, skill 4, living reward 1, no HUD
DOOM_RESOLUTION = "RES_320X240"  # the scenario's own screen size; the frame is cropped and resized to 64x64 anyway
DOOM_TICS_PER_SECOND = 35  # one environment step is one game tic (no frame skip), so 2100 steps are 60 s


class DoomTakeCover(gymnasium.Env):
    """VizDoom's Take Cover scenario (the paper's DoomTakeCover-v0) as a Gymnasium environment, without a window.

    Monsters on the far wall throw fireballs; the player can only strafe left or right and must survive.

    observation  the RGB screen, (240, 320, 3) uint8
    action       Box(-1, 1, (1,)) float32: a < -1/3 moves left, a > 1/3 moves right, otherwise the player stays
                 (controller.controller.doom_move, the mapping the dream uses too)
    reward       1 for every step (game tic) survived, the scenario's living reward, the last step included
    terminated   the player died; the game's own timeout is off: make_env caps episodes at 2100 steps (truncated)

    reset(seed=s) seeds ViZDoom's random generator with s before the new episode, so the same seed and the same
    actions give the same frames and rewards. The game runs on a DoomGame of the vizdoom package directly (not
    vizdoom's Gymnasium wrapper, whose dict observations and button spaces would need translating on every step).
    render_mode "rgb_array" returns the current screen; "human" shows it in a pygame window. Every observation and
    frame returned is a new array, never the env's own screen nor an earlier return (Gymnasium's env checker rule).

    pickle and copy.deepcopy give a new, independent env with its own engine, built from the same constructor
    arguments: the engine runs in another process and cannot be copied, so, as Gymnasium's CarRacing rebuilds its
    Box2D world (EzPickle), the copy starts afresh and is reset like a new env (the same seed gives the same episode).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": DOOM_TICS_PER_SECOND}

    def __init__(self, render_mode: str | None = None):
        import vizdoom

        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None, 'human' or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        game = vizdoom.DoomGame()
        game.load_config(os.path.join(vizdoom.scenarios_path, DOOM_SCENARIO))
        game.set_doom_config_path(os.devnull)  # ZDoom would otherwise write _vizdoom.ini into the working folder
        game.set_window_visible(False)
        game.set_screen_format(vizdoom.ScreenFormat.RGB24)
        game.set_screen_resolution(getattr(vizdoom.ScreenResolution, DOOM_RESOLUTION))
        game.set_episode_timeout(0)
        # The engine creates ./_vizdoom/ on start and fails when parallel workers race to create it: make it first.
        os.makedirs("_vizdoom", exist_ok=True)
        game.init()
        self.game = game
        # ViZDoom runs the game in a separate engine process that outlives its Python process unless the game is
        # closed; this closes it when the env is collected, at interpreter exit and when a multiprocessing worker
        # exits (multiprocessing runs these finalizers where atexit handlers are skipped).
        self._close_game = multiprocessing.util.Finalize(self, game.close, exitpriority=10)
        height, width = game.get_screen_height(), game.get_screen_width()
        self.observation_space = gymnasium.spaces.Box(0, 255, (height, width, 3), dtype=np.uint8)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        # MOVE_LEFT, MOVE_RIGHT buttons for the moves -1, 0, 1
        self._buttons = {-1: [1.0, 0.0], 0: [0.0, 0.0], 1: [0.0, 1.0]}
        self._screen = np.zeros((height, width, 3), dtype=np.uint8)
        self._window = None
        self._clock = None

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
        game_seed = int(seed) % 2**32 if seed is not None else int(self.np_random.integers(2**32))
        self.game.set_seed(game_seed)
        self.game.new_episode()
        self._screen = self.game.get_state().screen_buffer
        if self.render_mode == "human":
            self.render()
        return self._screen.copy(), {}  # a copy: a caller writing into it must not change the env's screen

    def step(self, action):
        move = int(doom_move(np.asarray(action).reshape(-1)[0]))
        reward = self.game.make_action(self._buttons[move], 1)
        terminated = self.game.is_episode_finished()
        if not terminated:  # after death there is no new screen: the last one stays the observation
            self._screen = self.game.get_state().screen_buffer
        if self.render_mode == "human":
            self.render()
        # a copy: after death the same screen is returned twice, and a caller may write into what it was given
        return self._screen.copy(), float(reward), terminated, False, {}

    def render(self):
        if self.render_mode == "rgb_array":
            return self._screen.copy()
        if self.render_mode == "human":
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
            pygame.display.quit()
            self._window = None


def process_frame(observation: np.ndarray, env_name: str = "car_racing") -> np.ndarray:
    """Crop and resize one observation to (64, 64, 3) uint8.

    CarRacing: rows 0..84 of the 96x96 frame, bilinear resize to 64x64.
    Doom: the top 5/6 of the frame (the status bar is cut), bilinear resize to 64x64.
    """
    if env_name == "car_racing":
        cropped = observation[:CAR_RACING_CROP_ROWS]
    else:
        cropped = observation[: observation.shape[0] * 5 // 6]
    image = Image.fromarray(np.ascontiguousarray(cropped)).resize((FRAME_SIZE, FRAME_SIZE), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def make_env(env_name: str = "car_racing", render_mode: str | None = None, fast: bool = True,
             max_episode_steps: int | None = None):
    """Build the real environment `env_name` ("car_racing" or "doom_take_cover").

    car_racing: Gymnasium's CarRacing-v3 (continuous actions [steer, gas, brake]), through `FastCarRacing` unless
    `fast` is False, capped at 1000 steps as Gymnasium registers it. `render_mode` is passed through ("human" opens a
    window; "rgb_array" gives 600x400 frames for videos; None renders only the 96x96 state).
    doom_take_cover: `DoomTakeCover` (VizDoom, no window unless render_mode is "human"), capped at 2100 steps.
    `max_episode_steps` overrides the cap (TimeLimit: the step that reaches it is truncated).
    """
    config = get_config(env_name)
    limit = max_episode_steps or config.max_episode_length
    if env_name == "car_racing":
        env_class = FastCarRacing if fast else CarRacing
        env = env_class(render_mode=render_mode)
        return gymnasium.wrappers.TimeLimit(env, max_episode_steps=limit)
    if env_name == "doom_take_cover":
        return gymnasium.wrappers.TimeLimit(DoomTakeCover(render_mode=render_mode), max_episode_steps=limit)
    raise ValueError(f"no real environment for {env_name!r}")


class RandomPolicy:
    """The data-collection policy of stage 01, seeded per episode.

    CarRacing (seed article): full gas [0, 1, 0] for the first 60 steps, then every 5 steps a new random action held
    for 5 steps: 10% nothing, 40% gas in [0, 1], 30% steer left in [-1, 0], 10% steer right in [0, 1], 10% brake in
    [0, 1].
    DoomTakeCover (paper, section 4.2): a random move, left (-1), stay (0) or right (1) with equal chances, held for
    a random 1 to 10 steps, then another. The action is that move itself, so the recorded actions are the moves the
    game made (-1.0, 0.0, 1.0), which is what M is trained on (controller.controller.model_action).
    """

    FULL_GAS_STEPS = 60
    HOLD_STEPS = 5
    DOOM_HOLD_STEPS = (1, 10)  # a Doom move is held for 1..10 steps, uniformly

    def __init__(self, env_name: str, seed: int):
        self.env_name = env_name
        self.rng = np.random.default_rng(seed)
        self.step_count = 0
        self.action = np.zeros(get_config(env_name).action_size, dtype=np.float32)
        self.hold_left = 0  # Doom: steps the current move is still held

    def __call__(self) -> np.ndarray:
        if self.env_name == "doom_take_cover":
            return self._doom()
        if self.step_count < self.FULL_GAS_STEPS:
            action = np.array([0.0, 1.0, 0.0], dtype=np.float32)
        elif (self.step_count - self.FULL_GAS_STEPS) % self.HOLD_STEPS == 0:
            action = self._draw()
        else:
            action = self.action
        self.step_count += 1
        self.action = action
        return action.copy()

    def _doom(self) -> np.ndarray:
        if self.hold_left == 0:
            self.action = np.array([self.rng.integers(-1, 2)], dtype=np.float32)
            self.hold_left = int(self.rng.integers(self.DOOM_HOLD_STEPS[0], self.DOOM_HOLD_STEPS[1] + 1))
        self.hold_left -= 1
        self.step_count += 1
        return self.action.copy()

    def _draw(self) -> np.ndarray:
        choice, amount = self.rng.random(), self.rng.random()
        if choice < 0.1:
            return np.array([0.0, 0.0, 0.0], dtype=np.float32)
        if choice < 0.5:
            return np.array([0.0, amount, 0.0], dtype=np.float32)
        if choice < 0.8:
            return np.array([-amount, 0.0, 0.0], dtype=np.float32)
        if choice < 0.9:
            return np.array([amount, 0.0, 0.0], dtype=np.float32)
        return np.array([0.0, 0.0, amount], dtype=np.float32)


def headless_video_driver() -> None:
    """Let pygame run without a display (CarRacing renders through pygame surfaces even with no window)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
