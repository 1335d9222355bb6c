"""How well V sees what a shipped agent sees, tic by tic: play the agent in a plain Gymnasium loop and print V's
reconstruction error (the sum of squared errors of a frame, as V's loss counts it, pixels in [0, 1]) per span of tics.

    python examples/v_error_by_tic.py doom_take_cover --episodes 12 --first_seed 900000
    python examples/v_error_by_tic.py doom_take_cover --root runs/reproduce/doom_take_cover/seed1/agent   (a run's)

V learnt from stage 01's random play; an agent that lives longer sees what random play never reached (in
DoomTakeCover, the room filling with imps), and the error there says how much of it V can draw, and so pass on in z
(docs/reproduce.md cites this output for the shipped Doom agent).
"""

from blas import prepare_blas

prepare_blas()  # before NumPy loads: one BLAS thread and the kernels the shipped agents' scores were played with

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from cli import ArgumentParser  # noqa: E402  (argparse's, refusing abbreviated flags in one line)
from envs import get_spec  # noqa: E402
from pretrained import load_agent  # noqa: E402
from shipping.manifest import PRETRAINED_DIR  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description="V's reconstruction error per span of tics over a shipped agent's episodes.")
    parser.add_argument("env_name", choices=("car_racing", "doom_take_cover"), help="the shipped agent's environment")
    parser.add_argument("--episodes", type=int, default=12, help="episodes to play (default 12)")
    parser.add_argument("--first_seed", type=int, default=900_000,
                        help="the first episode's seed (default 900000, apart from the seeds scores are played on)")
    parser.add_argument("--span", type=int, default=300, help="tics per row of the table (default 300)")
    parser.add_argument("--max_length", type=int, default=0, help="steps per episode at most (default: the env's)")
    parser.add_argument("--root", default=PRETRAINED_DIR,
                        help="where the packed agent lives, <root>/<env>/ (default: pretrained/; a reproduce.py run's "
                             "agent/ folder plays that run's)")
    args = parser.parse_args(argv)
    for name in ("episodes", "span"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be 1 or more")
    if args.first_seed < 0 or args.max_length < 0:
        parser.error("--first_seed and --max_length take 0 or more")
    return args


def reconstruction_errors(vae, frames: np.ndarray) -> np.ndarray:
    """Per frame of uint8 frames (T, 64, 64, 3): the sum over pixels of (frame / 255 - V's reconstruction of its
    mean z) ** 2."""
    mu, _ = vae.encode(frames)
    return ((frames.astype(np.float32) / 255.0 - vae.decode(mu)) ** 2).sum(axis=(1, 2, 3))


def main(argv=None) -> None:
    args = parse_args(argv)
    spec = get_spec(args.env_name)
    env = gym.make(f"envs:{spec.gym_id}", **({"max_episode_steps": args.max_length} if args.max_length else {}))
    player = load_agent(args.env_name, root=args.root)
    by_span: dict[int, list[float]] = {}
    for seed in range(args.first_seed, args.first_seed + args.episodes):
        observation, _ = env.reset(seed=seed)
        player.reset(seed=seed)
        frames, done = [], False
        while not done:
            observation, _, terminated, truncated, _ = env.step(player.act(observation))
            frames.append(player.agent.frame.copy())  # the 64x64 frame V encoded for this act
            done = terminated or truncated
        errors = reconstruction_errors(player.agent.vae, np.stack(frames))
        for tic, error in enumerate(errors):
            by_span.setdefault(tic // args.span, []).append(float(error))
        print(f"seed {seed}: {len(frames)} tics, mean error {errors.mean():.2f}", flush=True)
    env.close()
    for span in sorted(by_span):
        errors = by_span[span]
        print(f"tics {span * args.span}-{(span + 1) * args.span - 1}: mean error {np.mean(errors):.2f} over "
              f"{len(errors)} frames")


if __name__ == "__main__":
    main()
