"""Watching and recording a trained agent: its episodes one by one in this process, shown in a window (--render_mode)
and/or written as MP4s (--record_video), for model.py.

Import it after `blas.prepare_blas()`: it loads NumPy (through scoring).
"""

from __future__ import annotations

import os
import sys
import time

from cli import UserError, stop_within
from scoring import EpisodeScore, ModelSettings, Play, Session, stopped_after


class Recorder:
    """Collects the frames of one episode (env.render() in rgb_array mode), shows them in a window when asked, and
    writes them as an MP4 whole (temporary file, then rename)."""

    def __init__(self, env, show: bool, record: bool):
        self.env, self.show, self.record = env, show, record
        self.frames = []
        self.screen = None

    def __call__(self) -> None:
        frame = self.env.render()
        if frame is None:
            return
        if frame.shape[0] < 256:  # a dream frame is V's 64x64 decoding: enlarge it (nearest) to be watchable
            scale = 256 // frame.shape[0]
            frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)
        if self.record:
            self.frames.append(frame)
        if self.show:
            self._display(frame)

    def _display(self, frame) -> None:
        import pygame

        if self.screen is None:
            pygame.display.init()
            self.screen = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
        pygame.event.pump()
        pygame.surfarray.blit_array(self.screen, frame.swapaxes(0, 1))
        pygame.display.flip()

    def save(self, path: str, fps: int) -> None:
        import imageio.v2 as imageio

        from files import atomic_path

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path, suffix=".mp4") as temporary:
            with imageio.get_writer(temporary, format="FFMPEG", fps=fps, codec="libx264", quality=7,
                                    macro_block_size=2, ffmpeg_log_level="error") as writer:
                for frame in self.frames:
                    writer.append_data(frame)
        self.frames = []


def watch(play: Play, settings: ModelSettings) -> list[EpisodeScore]:
    """Run the episodes of `settings` one by one in this process, shown (--render_mode) and/or recorded
    (--record_video), a line each."""
    from envs import get_spec, headless_video_driver

    if settings.render_mode and not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        raise UserError("--render_mode needs a display; run under xvfb-run -a, or use --record_video alone")
    if not settings.render_mode:
        headless_video_driver()
    need_frames = settings.render_mode or settings.record_video
    session = Session(play, render="rgb_array" if need_frames else None)
    recorder = Recorder(session.env, show=settings.render_mode, record=settings.record_video)
    seeds, results = settings.seeds, []
    try:
        for seed in seeds:
            started = time.time()
            reward, steps, _ = session.episode(seed, on_frame=recorder if need_frames else None)
            results.append(EpisodeScore(seed, reward, steps))
            line = f"seed {seed}: reward {reward:.2f} in {steps} steps ({steps / (time.time() - started):.0f} steps/s)"
            if settings.record_video:
                where = "dream." if settings.dream_mode else ""
                path = os.path.join(settings.video_dir, f"{settings.name}.{where}seed{seed}.mp4")
                recorder.save(path, get_spec(settings.env_name).video_fps)  # the simulator's own rate
                line += f"; video {path}"
            print(line, flush=True)
    except (Exception, KeyboardInterrupt) as error:
        if (stop := stop_within(error)) is None:
            raise
        raise (stopped_after(stop, results, len(seeds)) if len(seeds) > 1 else stop) from None
    finally:
        session.close()
    return results
