"""The generations of a controller training run (05) on rank 0, the leader: each asks the optimizer for a population,
hands out its episodes to the workers (a rollout pool), tells the optimizer their rewards and writes every file
(controller/training.py lists them); every --eval_steps generations it scores the mean on fresh seeds and keeps a new
best. run_leader is rank 0 under MPI: any way out that is not a clean finish ends every process. The run it leads is
settled before (controller/run.py, TrainingRun).
"""

from __future__ import annotations

import math
import sys
import time

from cli import UserError
from controller.run import Stopping, TrainingRun, stopped_line
from controller.settings import TrainingFlags


def split_rows(count: int, parts: int) -> list[slice]:
    """`count` rows in at most `parts` contiguous chunks of nearly equal size."""
    parts = max(1, min(parts, count))
    bounds = [round(i * count / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def evaluate(pool, params, seeds, max_length: int, chunks: list[slice] | None = None, real: bool = False):
    """Rewards and lengths (rows, k) of every row of params (rows, n) on its row of seeds (rows, k).

    Without `chunks`, every episode is a task of its own, handed to the next free worker: an episode's reward depends
    on its parameters and seed only, never on the worker or what it played before, and small tasks keep every worker
    busy until the last few episodes. With `chunks` (row slices), each is one task: the dream rolls a task's episodes
    out as one batch, and a batch of other rows would round its matrix products differently (dream.py)."""
    import numpy as np

    from parallel import Task

    if chunks is None:
        rows, columns = seeds.shape
        tasks = [Task(row * columns + column, params[row:row + 1], seeds[row:row + 1, column:column + 1], max_length,
                      real) for row in range(rows) for column in range(columns)]
        results = pool.run(tasks)
        return (np.array([r.rewards[0, 0] for r in results]).reshape(rows, columns),
                np.array([r.lengths[0, 0] for r in results]).reshape(rows, columns))
    tasks = [Task(index, params[part], seeds[part], max_length, real) for index, part in enumerate(chunks)]
    results = pool.run(tasks)
    return (np.concatenate([np.atleast_2d(r.rewards) for r in results]),
            np.concatenate([np.atleast_2d(r.lengths) for r in results]))


def lead(run: TrainingRun, pool, workers: int) -> None:
    """Rank 0: the generations, the evaluations and every file, until --generations or a signal."""
    import numpy as np

    from blas import blas_kernel
    from config import FINAL_EPISODES, FIRST_SEED
    from controller.training import (MIRRORED_OPTIMIZERS, HistoryRow, generation_phases, generation_seeds,
                                     progress_line, write_logs)
    from es import save_optimizer
    from files import save_json

    flags, config, state, optimizer, files = run.flags, run.config, run.state, run.optimizer, run.files
    mirrored = bool(flags.antithetic) and flags.optimizer in MIRRORED_OPTIMIZERS
    common = bool(flags.common_seeds)
    # the dream's batches: num_worker_trial solutions a task; real episodes: one a task (evaluate)
    trial_chunks = ([slice(i, i + flags.num_worker_trial) for i in range(0, run.population, flags.num_worker_trial)]
                    if flags.dream_mode else None)
    where = "dream at tau %.2f" % run.settings.temperature if flags.dream_mode else "real environment"
    same = " (the same ones for every solution)" if common else ""
    variant = optimizer.describe()
    print(f"05: {config.name}, {flags.optimizer}{f' ({variant})' if variant else ''} over {run.param_count} "
          f"parameters (controller {run.exp_mode}), "
          f"population {run.population} ({flags.num_worker} x {flags.num_worker_trial}), {flags.num_episode} "
          f"episode(s) of at most {run.settings.max_length} steps each{same}, {where}, {workers} worker process(es)", flush=True)
    kernel = blas_kernel()
    if state.generation:
        best = state.best_score
        print(f"resuming {flags.init_opt} at generation {state.generation} (best so far "
              f"{'none' if best is None else f'{best:.2f}'})", flush=True)
        if state.blas_kernel is None:  # written before checkpoints recorded them (or by a machine without OpenBLAS)
            print(f"note: {flags.init_opt} does not say which BLAS kernels its generations ran (older versions did "
                  f"not record them) and this machine runs {kernel or 'another BLAS'}: the run goes on, but may not "
                  f"replay as it would have with the kernels of the machine that wrote it (README: the same numbers "
                  f"on every machine)", flush=True)
        elif state.blas_kernel != kernel:
            print(f"note: this run's last generation ran OpenBLAS's {state.blas_kernel} kernels and this machine runs "
                  f"{kernel or 'another BLAS'}: the run goes on, but not as it would have there (README: the same "
                  f"numbers on every machine)", flush=True)
        from controller.training import best_score_on_disk

        on_disk = best_score_on_disk(files.best)
        if state.best_params is not None and (on_disk is None or on_disk < best):
            write_best(run)  # the run stopped after saving the checkpoint of a new best, before its .best.json
            print(f"{files.best} written again from the checkpoint (it held "
                  f"{'nothing' if on_disk is None else f'{on_disk:.2f}'})", flush=True)
    print(f"checkpoint {files.checkpoint}, best {files.best}, logs {files.history}, curve {files.plot}", flush=True)
    scored = range(FIRST_SEED, FIRST_SEED + FINAL_EPISODES)  # model.py --final_mode's episodes by default
    what = "tracks" if config.name == "car_racing" else "episodes"  # a seed is a track, or a Doom episode
    first = state.next_seed if state.settings is None else state.settings.seed_start
    if state.next_seed <= scored[-1]:
        print(f"note: this run's episode seeds go on from {state.next_seed}, so it may train on some of the {what} "
              f"{scored[0]}..{scored[-1]} that model.py --final_mode scores by default; for a score on unseen {what}, "
              f"train with --seed_start 1000 (as docs/results.md does) or score with another --seed", flush=True)
    elif first <= scored[-1]:  # a resumed run that is past them
        print(f"note: this run's episode seeds started at {first}, so it trained on some of the {what} "
              f"{scored[0]}..{scored[-1]} that model.py --final_mode scores by default; for a score on unseen {what}, "
              f"score with another --seed", flush=True)

    done_this_run = 0
    phases = []  # --phase_times: this run's generations
    while flags.generations <= 0 or done_this_run < flags.generations:
        pool.check()
        started, clock = time.time(), {"started": time.perf_counter()}
        solutions = optimizer.ask()
        seeds = generation_seeds(state, run.population, flags.num_episode, mirrored, common)
        # the cap binds only while --cap_time is on (a resume without it plays full episodes again)
        max_length = min(state.cap_length, run.settings.max_length) if flags.cap_time and state.cap_length else run.settings.max_length
        clock["asked"] = time.perf_counter()
        rewards, lengths = evaluate(pool, solutions, seeds, max_length, trial_chunks)
        clock["played"], task_times = time.perf_counter(), pool.task_times
        fitness = rewards.mean(axis=1)
        if not np.all(np.isfinite(fitness)):  # the optimizer must never rank a NaN or an infinity
            raise UserError(f"generation {state.generation + 1}: {int(np.sum(~np.isfinite(fitness)))} solutions "
                            f"scored NaN or infinity; nothing of this generation was saved")
        optimizer.tell(fitness)
        state.generation += 1
        generation = state.generation
        state.cap_length = 2 * int(np.mean(lengths) + 1.0) if flags.cap_time else None
        evaluation_line, new_best = "", False
        clock["told"] = time.perf_counter()
        if generation % flags.eval_steps == 0:
            evaluation_line, new_best = evaluate_mean(run, pool, workers, generation)
        clock["evaluated"] = time.perf_counter()
        state.elapsed_s += time.time() - started
        row = HistoryRow.of(generation, state.elapsed_s, fitness, lengths, optimizer.rms_stdev())
        state.history.append(row)
        state.blas_kernel = kernel
        save_optimizer(files.checkpoint, optimizer, state.to_json())
        if new_best:
            write_best(run)  # after the checkpoint that holds it: a stop between the two is mended on resume
        write_logs(files, state, optimizer.current_param(), float(np.mean(fitness)))
        clock["saved"] = time.perf_counter()
        if flags.phase_times:
            phases.append({"generation": generation, "steps": int(lengths.sum()),
                           **generation_phases(task_times, workers, **clock)})
            save_json(flags.phase_times, phases, indent=1)
        print(progress_line(row, time.time() - started) + evaluation_line, flush=True)
        done_this_run += 1
    pool.close()
    print(f"stopped after generation {state.generation}; resume with: {run.resume_command()}", flush=True)


def write_best(run: TrainingRun) -> None:
    """The state's best controller into .best.json."""
    import numpy as np

    from controller.controller import save_params

    state = run.state
    save_params(run.files.best, np.asarray(state.best_params), state.best_score, run.config.name, run.exp_mode)


def evaluate_mean(run: TrainingRun, pool, workers: int, generation: int) -> tuple[str, bool]:
    """Score the optimizer's current mean on fresh seeds; make it the state's best when it beats every earlier score
    (the caller writes .best.json once the checkpoint holds it). In dream mode a new best (with --real_every 1, every
    evaluated mean) is also scored in the real game. Returns the text for the progress line and whether there is a
    new best."""
    import numpy as np

    from controller.training import Evaluation, best_score_on_disk, rounded, take_seeds

    flags, state, files = run.flags, run.state, run.files
    params = rounded(run.optimizer.current_param())
    count = run.settings.eval_episodes
    seeds = take_seeds(state, count).reshape(count, 1)
    rows = np.repeat(params[None], count, axis=0)
    rewards, _ = evaluate(pool, rows, seeds, run.settings.max_length, split_rows(count, workers) if flags.dream_mode else None)
    score = float(rewards.mean())
    if not math.isfinite(score):  # never a best: a NaN compares False and inf beats every real score forever
        raise UserError(f"generation {generation}: the evaluation of the mean scored {score} (not finite); it was not "
                        f"recorded as a best")
    earlier = [s for s in (state.best_score, best_score_on_disk(files.best)) if s is not None]
    record = Evaluation(generation, round(score, 2), params.tolist())
    text = f"  eval {score:.2f}"
    new_best = not earlier or score > max(earlier)
    if new_best:
        text += " (new best)"
    real_mean = None
    if flags.dream_mode and (new_best or run.settings.real_every):
        # scored in the real game (minutes) before anything is written: a run stopped meanwhile replays this
        # generation on resume and plays the same episodes
        count = flags.real_episodes
        seeds = take_seeds(state, count).reshape(count, 1)
        real, _ = evaluate(pool, np.repeat(params[None], count, axis=0), seeds, run.settings.max_length, real=True)
        if not np.isfinite(real.mean()):
            raise UserError(f"generation {generation}: the evaluated mean scored {real.mean()} in the real game "
                            f"(not finite)")
        real_mean = float(real.mean())
        record.real_score = round(real_mean, 2)
        text += f", real game {real_mean:.2f} +- {real.std():.2f} over {count}"
    if new_best:
        state.best_real_score = real_mean
        state.best_score, state.best_params = score, params.tolist()
    elif flags.retrain and state.best_params is not None:
        run.optimizer.set_mean(np.asarray(state.best_params, dtype=np.float64))
        text += " (mean moved back to the best)"
    state.evaluations.append(record)
    return text, new_best


def run_leader(flags: TrainingFlags, given: frozenset[str], argv: list[str], comm) -> None:
    """Rank 0 under MPI, leading the run of `flags` (TrainingRun's arguments): any way out that is not a clean finish
    ends every process (MPI_Abort), never a hang."""
    from parallel import LocalPool, Pool, WorkerFailed, abort, task_runner

    from processes import stop_signal

    def check():  # the signals were noted since this process started (parallel.note_rank_signals)
        if stop_signal() is not None:
            raise Stopping(stop_signal())

    try:
        run = TrainingRun(flags, given, argv, lock=True)
        check()
        workers = comm.Get_size() - 1
        if workers > 0:
            comm.bcast(run.evaluator_settings().to_json(), root=0)  # plain data: EvaluatorSettings.from_json there
            pool = Pool(comm, check)
        else:
            pool = LocalPool(task_runner(run.evaluator_settings().make_evaluator()), check)
        lead(run, pool, max(workers, 1))
    except Stopping as stopping:
        print(stopped_line(stopping.signal_number, run), file=sys.stderr, flush=True)
        abort(128 + stopping.signal_number)  # 130 for Ctrl-C, 143 for SIGTERM
    except WorkerFailed as failure:
        print(f"error: {failure}", file=sys.stderr, flush=True)
        abort(1)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        abort(1)
    except KeyboardInterrupt as error:  # a signal before this process noted them (cli.run_cli's Terminated)
        from cli import exit_line

        line, status = exit_line(error)
        print(line, file=sys.stderr, flush=True)
        abort(status)
    except BaseException:
        import traceback

        traceback.print_exc()
        abort(1)
