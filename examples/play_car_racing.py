"""Play the shipped CarRacing agent on WorldModels/CarRacing-v3 in a plain Gymnasium loop, and print its score.

    python examples/play_car_racing.py --seed 111       (model.py car_racing --pretrained --seed 111 scores the same)

The agent is an object (pretrained.load_agent): reset(seed) at the start of an episode, then act(observation) on
each raw 96x96x3 frame, returning the [steer, gas, brake] CarRacing takes.
"""

from blas import prepare_blas

prepare_blas()  # before NumPy loads: one BLAS thread and the kernels the shipped agent's scores were played with

import gymnasium as gym  # noqa: E402

from cli import ArgumentParser  # noqa: E402  (argparse's, refusing abbreviated flags in one line)
from pretrained import load_agent  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description="Play the shipped CarRacing agent for one seed.")
    parser.add_argument("--seed", type=int, default=111, help="the episode's seed (the track and the agent's noise)")
    parser.add_argument("--max_length", type=int, default=1000, help="steps at most (default CarRacing's 1000)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    env = gym.make("envs:WorldModels/CarRacing-v3", max_episode_steps=args.max_length)
    agent = load_agent("car_racing")

    observation, _ = env.reset(seed=args.seed)
    agent.reset(seed=args.seed)
    total, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, _ = env.step(agent.act(observation))
        total += reward
        done = terminated or truncated
    env.close()
    print(f"seed {args.seed}: score {total}")


if __name__ == "__main__":
    main()
