"""`make bench`: every benchmark of the project in one run, each printing its figures and side-by-side ratios.

    python -m benchmarks.run            (about 15 minutes on two cores)
    python -m benchmarks.run --quick    (a few minutes; smaller samples)

Run it on an otherwise idle machine: every figure is a rate, and other load lowers it.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(quick: bool = False) -> None:
    from benchmarks import bench_agent, bench_controller, bench_data, bench_dream, bench_env
    from benchmarks.machine import describe

    print(f"{describe()}; {'quick' if quick else 'full'} run")
    started = time.time()
    sections = [
        ("environment", lambda: bench_env.main(steps=150 if quick else 300, rounds=3 if quick else 5)),
        ("agent", lambda: bench_agent.main(quick)),
        ("controller training", lambda: bench_controller.main(quick)),
        ("dream", lambda: bench_dream.main(quick)),
        ("data stages", lambda: bench_data.main(quick)),
    ]
    for name, run in sections:
        section_started = time.time()
        print(flush=True)
        run()
        print(f"  ({name}: {time.time() - section_started:.0f} s)", flush=True)
    print(f"\nall benchmarks: {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    from benchmarks import quick_flag

    main(quick=quick_flag(__doc__.strip().splitlines()[0]))
