"""FastCarRacing: Gymnasium's CarRacing rendered several times faster, pixel for pixel the same.

Only the renderer lives here; envs.car_racing builds the environment (the spec's `make`, with `fast` True) and holds
what the pipeline knows about CarRacing (crop, action mappings, random policy).
"""

from __future__ import annotations

import math
import os

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner from every worker process
import pygame
from gymnasium.envs.box2d import car_racing as _car_racing
from gymnasium.envs.box2d.car_dynamics import SIZE as CAR_SIZE
from gymnasium.envs.box2d.car_dynamics import WHEEL_R, WHEEL_W, WHEEL_WHITE
from gymnasium.envs.box2d.car_racing import (SCALE, STATE_H, STATE_W, VIDEO_H, VIDEO_W, WINDOW_H, WINDOW_W, ZOOM,
                                             CarRacing)
from pygame import gfxdraw

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
