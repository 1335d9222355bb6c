"""Stage 05: train C, the linear controller, with CMA-ES (or another evolution strategy) on MPI workers.

    python 05_train_controller.py car_racing --num_worker 16 --num_worker_trial 2 --num_episode 4 --max_length 1000 --eval_steps 25
    python 05_train_controller.py car_racing ... --init_opt ./controller/car_racing.cma.4.32.es.pk
    python 05_train_controller.py doom_take_cover --dream_mode 1 --temperature 1.15 ...

Started from the shell, the script checks its inputs and runs `mpiexec -np <num_worker + 1>` of itself (the
mpiexec installed with the requirements, one BLAS thread a process), staying to end the whole run on a stop. Rank 0
leads: it asks the optimizer for a population of num_worker x num_worker_trial solutions, hands out their episodes
one at a time to whichever worker is free (so no worker idles while another finishes a long one; in the dream,
num_worker_trial solutions a task, rolled out as one batch), and tells the optimizer their average reward over
--num_episode episodes. Started by your own mpiexec (several machines, a host file), it uses the ranks it was given
instead.

Every generation the leader writes, each file whole (controller/training.py lists them): the optimizer state
./controller/<base>.es.pk, the history and curve in ./log, and, every --eval_steps generations, the current mean
evaluated on fresh tracks; ./controller/<base>.best.json only when that score beats every earlier one. Ctrl-C or
SIGTERM stops at once and the last whole checkpoint resumes with --init_opt: the generation count, the history, the
best score and the episode seeds all continue.

--dream_mode 1 (doom_take_cover) evaluates the population inside the MDN-RNN's dream at --temperature; each new
best is also scored in the real game and both scores are logged.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import sys
import time

from blas import prepare_blas
from cli import ArgumentParser, UserError, check_flags, run_cli
from processes import mpi_supervisor, note_stop_signals

if mpi_supervisor() is not None:  # a rank of our mpiexec: signals are noted from the first moment (see there)
    note_stop_signals(mpi_supervisor())

prepare_blas()  # before NumPy loads: every rank one BLAS thread and the pinned kernels, under any mpiexec

SCRIPT = os.path.abspath(__file__)


def parse_args(argv=None):
    from config import CONFIGS, EXP_MODES, FIRST_SEED, add_dream_mode_flag, add_folder_flags
    from es import OPTIMIZER_NAMES

    parser = ArgumentParser(description="Train the controller (C) with an evolution strategy on MPI workers.")
    parser.add_argument("env_name", choices=sorted(CONFIGS), help="the environment")
    parser.add_argument("-o", "--optimizer", default="cma", choices=OPTIMIZER_NAMES,
                        help="the evolution strategy (es.py): cma is the paper's CMA-ES, ses estool's name for pepg")
    parser.add_argument("--init_opt", default="",
                        help="an .es.pk checkpoint to resume from (default: none, a new run)")
    parser.add_argument("--exp_mode", default=None, choices=EXP_MODES,
                        help="what the controller sees (the official EXP_MODE): z, z_hidden, zc, zh, zch; default "
                             "the paper's (car_racing zh, doom_take_cover zch); a resumed run keeps its own")
    parser.add_argument("--init_params", default="",
                        help="a fresh run's search starts at these parameters (a .best.json; default: zeros)")
    parser.add_argument("-e", "--num_episode", type=int, default=1, help="episodes per solution and generation")
    parser.add_argument("-n", "--num_worker", type=int, default=4, help="worker processes (MPI ranks 1..n)")
    parser.add_argument("-t", "--num_worker_trial", type=int, default=1,
                        help="solutions per worker: population = num_worker x num_worker_trial (real episodes are "
                             "handed out one at a time to the next free worker; the dream's, this many solutions a task)")
    parser.add_argument("--eval_steps", type=int, default=25, help="evaluate the mean every this many generations")
    parser.add_argument("--eval_episodes", type=int, default=0,
                        help="episodes of each evaluation (default: the population size, as estool)")
    parser.add_argument("--max_length", type=int, default=-1,
                        help="steps per episode at most (default: the environment's, 1000 or 2100)")
    parser.add_argument("--antithetic", type=int, default=1, choices=(0, 1),
                        help="mirrored pairs share their tracks (openes, pepg, ses)")
    parser.add_argument("--common_seeds", type=int, default=0, choices=(0, 1),
                        help="1: every solution of a generation plays the same --num_episode episodes (tracks), so "
                             "the ranking compares controllers, not tracks (estool and the paper: each its own)")
    parser.add_argument("--cap_time", type=int, default=0, choices=(0, 1),
                        help="cap episodes at twice the previous generation's mean length")
    parser.add_argument("--retrain", type=int, default=0, choices=(0, 1),
                        help="after an evaluation that is not a new best, move the mean back to the best")
    parser.add_argument("-s", "--seed_start", type=int, default=FIRST_SEED,
                        help="first episode seed (and optimizer seed)")
    parser.add_argument("--sigma_init", type=float, default=0.1, help="initial step size (official code: 0.1)")
    parser.add_argument("--sigma_decay", type=float, default=0.999, help="step-size decay (not used by cma)")
    parser.add_argument("--weight_decay", type=float, default=0.01,
                        help="L2 penalty on the weights, subtracted from the rewards the optimizer sees")
    parser.add_argument("--generations", type=int, default=0,
                        help="stop after this many generations of this run (default: run until stopped)")
    add_dream_mode_flag(parser, "1: evaluate the population inside the world model's dream (doom_take_cover)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="dream temperature tau (default: the paper's 1.15 for Doom)")
    parser.add_argument("--real_episodes", type=int, default=32,
                        help="dream mode: real-game episodes scoring each new best")
    parser.add_argument("--phase_times", default=None, metavar="FILE",
                        help="write where each generation's time went (episodes, waiting for the last one, messages, "
                             "the leader's update and save) to FILE as JSON, rewritten every generation "
                             "(benchmarks.bench_controller reads it)")
    add_folder_flags(parser, "controller", "log", "vae", "rnn", "data")
    args = parser.parse_args(argv)
    # which flags the command line gave (short forms included): parsed again with every default
    # replaced by a marker, those still holding it were left out
    marker = object()
    parser.set_defaults(**{action.dest: marker for action in parser._actions if action.option_strings})
    again = parser.parse_args(argv)
    args.given = {name for name, value in vars(again).items() if value is not marker}
    return args


class Plan:
    """Everything settled before the first generation: checked flags, file names, the optimizer and its state.

    With `lock` the run's files are claimed (files.lock_outputs on <controller_dir>/<base>, so a second run on the
    same files is refused naming this one; a killed run's temporary files of this base are removed) and the log
    folder is checked to take files. Rank 0 takes the lock for the whole run. The check before the MPI launch takes
    it too, to refuse at once, and lets it go when it execs mpiexec (the descriptor closes on exec); a run that
    starts in that gap is refused by rank 0 instead.
    """

    def __init__(self, args, lock: bool = False):
        from config import get_config
        from controller.controller import load_params
        from controller.training import new_state

        self.args = args
        self.config = config = get_config(args.env_name)
        for flag in ("num_episode", "num_worker", "num_worker_trial", "eval_steps", "real_episodes"):
            if getattr(args, flag) < 1:
                raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
        # tau divides M's logits (0 would play the most likely mixture while the log shows 0), a zero or negative
        # sigma never moves CMA-ES, a negative decay rewards large weights, and NaN passes every `<` test
        check_flags(args, at_least={"eval_episodes": 0, "generations": 0}, positive=("sigma_init", "temperature"),
                    non_negative=("weight_decay",), seeds=("seed_start",))
        if not (math.isfinite(args.sigma_decay) and 0 < args.sigma_decay <= 1):
            raise UserError(f"--sigma_decay must be above 0 and at most 1, got {args.sigma_decay}")
        if args.max_length == 0 or args.max_length < -1:
            raise UserError(f"--max_length must be at least 1 (or -1: the environment's), got {args.max_length}")
        self.population = args.num_worker * args.num_worker_trial
        if self.population < 2:
            raise UserError("the population (num_worker x num_worker_trial) needs at least 2 solutions")
        if args.init_opt and args.init_params:
            raise UserError("--init_opt resumes a run, --init_params starts a new one: give one of them")
        resumed = self.resume(args.init_opt) if args.init_opt else None
        if resumed is not None:
            self.keep_settings(resumed[1], args.init_opt)
        if args.dream_mode and not config.use_done:
            raise UserError(f"--dream_mode trains inside a world model that predicts the episode's end; {config.name}'s "
                            f"does not (use doom_take_cover; model.py car_racing --dream_mode shows a CarRacing dream)")
        settings = self.settings()
        self.max_length, self.eval_episodes = settings["max_length"], settings["eval_episodes"]
        self.temperature = settings["temperature"]
        self.check_inputs()
        if resumed is not None:
            self.optimizer, self.state = resumed
            if self.state.settings is not None:  # the kept ones, with any this resume changed; a checkpoint from
                self.state.settings = settings  # before settings were kept has none (a default is not its own)
            self.exp_mode = self.state.exp_mode
            self.files = self.training_files()
            self.claim(lock)
            self.refuse_to_replace(args.init_opt)
        else:
            from es import make_optimizer

            start = None
            self.exp_mode = args.exp_mode or config.exp_mode
            if args.init_params:
                start, _, self.exp_mode = load_params(args.init_params, config, args.exp_mode)
            self.files = self.training_files()
            self.claim(lock)
            self.refuse_to_overwrite()
            try:
                self.optimizer = make_optimizer(args.optimizer, self.param_count, self.population,
                                                sigma_init=args.sigma_init, sigma_decay=args.sigma_decay,
                                                weight_decay=args.weight_decay, antithetic=bool(args.antithetic),
                                                seed=args.seed_start, x0=start)
            except ValueError as error:
                raise UserError(str(error)) from None
            self.state = new_state(config.name, args.optimizer, self.population, args.num_episode, args.seed_start,
                                   self.exp_mode)
            self.state.settings = settings

    def settings(self) -> dict:
        """The flags' SETTINGS, resolved (the environment's episode length, not -1), as a checkpoint keeps them."""
        from controller.training import SETTINGS

        args, config = self.args, self.config
        resolved = {"max_length": args.max_length if args.max_length > 0 else config.max_episode_length,
                    "eval_episodes": args.eval_episodes or self.population,
                    "temperature": config.dream_temperature if args.temperature is None else args.temperature}
        return {key: resolved[key] if key in resolved else getattr(args, key) for key in SETTINGS}

    def keep_settings(self, state, path: str) -> None:
        """A resumed run plays on as it started: a setting left off the command line is the checkpoint's (before, a
        dream run resumed without --dream_mode 1 went on in the real game, and one without --max_length or
        --eval_episodes shifted every later seed). Given with another value, a setting of how the run goes on
        (episode length, evaluations, --cap_time, --retrain, --common_seeds) is taken with a note; one that makes it
        another run (the dream and its temperature, the seeds, the optimizer's own settings, held in the checkpoint)
        is refused."""
        from controller.training import CHANGEABLE_SETTINGS

        if state.settings is None:
            return
        args, asked = self.args, self.settings()
        refused = []
        for key, stored in state.settings.items():
            value = asked[key]
            if key not in args.given or value == stored:
                setattr(args, key, stored)
            elif key in CHANGEABLE_SETTINGS:
                print(f"note: --{key} {value:g} from now on (this run had {stored:g})", flush=True)
            else:
                refused.append((key, value, stored))
        if refused:
            asked = " ".join(f"--{key} {value:g}" for key, value, _ in refused)
            kept = " ".join(f"--{key} {stored:g}" for key, _, stored in refused)
            raise UserError(f"{path} was trained with {kept}, this resume asks for {asked}: a resumed run keeps "
                            f"these (leave the flags out, or start a new run)")

    @property
    def param_count(self) -> int:
        from config import controller_shape

        return controller_shape(self.config, self.exp_mode).param_count

    def claim(self, lock: bool) -> None:
        """With `lock`: hold <controller_dir>/<base> for this run (a second run is refused naming this one) and remove
        the temporary files a killed run of this base left; the log folder must take files."""
        if not lock:
            return
        import re

        from files import check_writable, lock_outputs, temporaries_of

        stale = temporaries_of(re.escape(self.files.base) + r"\..+")
        check_writable(self.args.log_dir)
        # both folders: two runs of one base in different --controller_dir with the same --log_dir would rewrite
        # each other's logs every generation
        for folder in (self.args.controller_dir, self.args.log_dir):
            lock_outputs(folder, self.files.base, [(folder, stale)])

    def training_files(self):
        from controller.training import training_files

        return training_files(self.config.name, self.args.optimizer, self.args.num_episode, self.population,
                              self.args.controller_dir, self.args.log_dir, self.exp_mode)

    def check_inputs(self) -> None:
        """A missing weight or data file is named with the command that makes it, before anything starts."""
        from config import MAKES_RNN_DATA
        from controller.agent import check_weight_files

        args = self.args
        # the real game needs V and M (the Evaluator reads them at once); the dream M, and V for the real-game
        # scoring of each new best: read now, so that a bad V is not found generations later
        check_weight_files(self.config, args.vae_dir, args.rnn_dir, read=bool(args.dream_mode))
        if args.dream_mode:
            import glob

            pattern = os.path.join(args.data_dir, f"rnn_initial_{self.config.name}_*.npy")
            if not glob.glob(pattern):
                raise UserError(f"no {pattern} (the dream starts from stored first frames); make them with: "
                                f"{MAKES_RNN_DATA.format(env=self.config.name)}")

    def resume(self, path: str):
        from controller.training import TrainingState
        from es import load_optimizer

        optimizer, data = load_optimizer(path)
        state = TrainingState.from_json(data, path)
        # The file base is made of these: a resume with another value would write into another run's files.
        expected = {"env": self.config.name, "optimizer": self.args.optimizer, "population": self.population,
                    "num_episode": self.args.num_episode, "exp_mode": self.args.exp_mode or state.exp_mode}
        for key, value in expected.items():
            if getattr(state, key) != value:
                flag = {"env": "the environment", "optimizer": "-o", "population":
                        "--num_worker x --num_worker_trial", "num_episode": "--num_episode",
                        "exp_mode": "--exp_mode (or leave it out)"}[key]
                raise UserError(f"{path} was trained with {key} {getattr(state, key)!r}, this run asks for {value!r}; "
                                f"set {flag} to match")
        from config import controller_shape

        from es import optimizer_class

        if type(optimizer) is not optimizer_class(state.optimizer):
            raise UserError(f"{path} holds a {type(optimizer).__name__} optimizer but says it is {state.optimizer!r}; "
                            f"resume from another file")
        count = controller_shape(self.config, state.exp_mode).param_count
        if state.best_params is not None and len(state.best_params) != count:
            raise UserError(f"{path} holds a best controller of {len(state.best_params)} parameters, its "
                            f"{state.exp_mode} controller has {count}; resume from another file")
        if optimizer.num_params != count or optimizer.popsize != self.population:
            raise UserError(f"{path} searches {optimizer.num_params} parameters with a population of "
                            f"{optimizer.popsize}; {self.config.name}'s {state.exp_mode} controller has {count}, "
                            f"this run's population is {self.population}")
        return optimizer, state

    def refuse_to_overwrite(self) -> None:
        """A fresh run never replaces another run's checkpoint, best controller or training history."""
        for path in (self.files.checkpoint, self.files.best, self.files.history):
            if os.path.exists(path):
                raise UserError(f"{path} already exists (an earlier run); resume it with --init_opt "
                                f"{self.files.checkpoint}, or move the old files away to start afresh")

    def refuse_to_replace(self, path: str) -> None:
        """A resume from a copy (--init_opt backup/<base>.es.pk) never writes over another checkpoint of its base."""
        target = self.files.checkpoint
        if os.path.exists(target) and not os.path.samefile(path, target):
            raise UserError(f"resuming {path} would write over {target}, another checkpoint of this run's files; "
                            f"resume that one (--init_opt {target}), or give another --controller_dir")

    def evaluator_settings(self) -> dict:
        """What a worker needs to play episodes, settled here (a resume's checkpoint read, the flags checked): rank
        0 sends it to the workers, which read no checkpoint and check no output of their own (on another machine
        neither need be there)."""
        args = self.args
        return {"env_name": args.env_name, "max_length": self.max_length, "dream_mode": bool(args.dream_mode),
                "temperature": self.temperature, "vae_dir": args.vae_dir, "rnn_dir": args.rnn_dir,
                "data_dir": args.data_dir, "exp_mode": self.exp_mode}

    def make_evaluator(self):
        return make_evaluator(self.evaluator_settings())

    def command(self, arguments) -> str:
        """The command line that runs this script with `arguments`, from the current folder and with this Python,
        quoted for the shell: it works when pasted whatever the paths hold."""
        from processes import python_command

        return " ".join([python_command(), shlex.join([os.path.relpath(SCRIPT), *arguments])])

    def resume_command(self) -> str:
        kept, skip_value = [], False
        for argument in sys.argv[1:]:  # a resume starts from the checkpoint alone: no --init_opt, --init_params
            if skip_value:
                skip_value = False
                continue
            if argument.split("=", 1)[0] in ("--init_opt", "--init_params"):
                skip_value = "=" not in argument
                continue
            kept.append(argument)
        return self.command([*kept, "--init_opt", self.files.checkpoint])

    def resume_hint(self) -> str:
        """How to go on after a stop: from the last checkpoint, or, before the first one, the same command again."""
        if os.path.exists(self.files.checkpoint):
            return f"the last whole checkpoint is {self.files.checkpoint}; resume with: {self.resume_command()}"
        return f"no generation was finished, nothing is saved; start again with: {self.command(sys.argv[1:])}"


def make_evaluator(settings: dict):
    """A worker's episode player, from Plan.evaluator_settings."""
    from config import get_config
    from controller.evaluate import Evaluator

    settings = dict(settings)
    return Evaluator(get_config(settings.pop("env_name")), settings.pop("max_length"), **settings)


class Stopping(Exception):
    """A signal asked the run to stop (its number: `signal_number`)."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


def stopped_line(signal_number: int, plan: Plan) -> str:
    """The line a stopped run ends with: which signal, and how to go on."""
    return f"\n{signal.Signals(signal_number).name} received: stopped; {plan.resume_hint()}"


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


def lead(plan: Plan, pool, workers: int) -> None:
    """Rank 0: the generations, the evaluations and every file, until --generations or a signal."""
    import numpy as np

    from blas import blas_kernel
    from config import FINAL_EPISODES, FIRST_SEED
    from controller.training import (MIRRORED_OPTIMIZERS, HistoryRow, generation_phases, generation_seeds,
                                     progress_line, write_logs)
    from es import save_optimizer
    from files import save_json

    args, config, state, optimizer, files = plan.args, plan.config, plan.state, plan.optimizer, plan.files
    mirrored = bool(args.antithetic) and args.optimizer in MIRRORED_OPTIMIZERS
    common = bool(args.common_seeds)
    # the dream's batches: num_worker_trial solutions a task; real episodes: one a task (evaluate)
    trial_chunks = ([slice(i, i + args.num_worker_trial) for i in range(0, plan.population, args.num_worker_trial)]
                    if args.dream_mode else None)
    where = "dream at tau %.2f" % plan.temperature if args.dream_mode else "real environment"
    same = " (the same ones for every solution)" if common else ""
    variant = optimizer.describe()
    print(f"05: {config.name}, {args.optimizer}{f' ({variant})' if variant else ''} over {plan.param_count} "
          f"parameters (controller {plan.exp_mode}), "
          f"population {plan.population} ({args.num_worker} x {args.num_worker_trial}), {args.num_episode} "
          f"episode(s) of at most {plan.max_length} steps each{same}, {where}, {workers} worker process(es)", flush=True)
    kernel = blas_kernel()
    if state.generation:
        best = state.best_score
        print(f"resuming {args.init_opt} at generation {state.generation} (best so far "
              f"{'none' if best is None else f'{best:.2f}'})", flush=True)
        if state.blas_kernel is None:  # written before checkpoints recorded them (or by a machine without OpenBLAS)
            print(f"note: {args.init_opt} does not say which BLAS kernels its generations ran (older versions did "
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
            write_best(plan)  # the run stopped after saving the checkpoint of a new best, before its .best.json
            print(f"{files.best} written again from the checkpoint (it held "
                  f"{'nothing' if on_disk is None else f'{on_disk:.2f}'})", flush=True)
    print(f"checkpoint {files.checkpoint}, best {files.best}, logs {files.history}, curve {files.plot}", flush=True)
    scored = range(FIRST_SEED, FIRST_SEED + FINAL_EPISODES)  # model.py --final_mode's episodes by default
    what = "tracks" if config.name == "car_racing" else "episodes"  # a seed is a track, or a Doom episode
    first = (state.settings or {}).get("seed_start", state.next_seed)
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
    while args.generations <= 0 or done_this_run < args.generations:
        pool.check()
        started, clock = time.time(), {"started": time.perf_counter()}
        solutions = optimizer.ask()
        seeds = generation_seeds(state, plan.population, args.num_episode, mirrored, common)
        # the cap binds only while --cap_time is on (a resume without it plays full episodes again)
        max_length = min(state.cap_length, plan.max_length) if args.cap_time and state.cap_length else plan.max_length
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
        state.cap_length = 2 * int(np.mean(lengths) + 1.0) if args.cap_time else None
        evaluation_line, new_best = "", False
        clock["told"] = time.perf_counter()
        if generation % args.eval_steps == 0:
            evaluation_line, new_best = evaluate_mean(plan, pool, workers, generation)
        clock["evaluated"] = time.perf_counter()
        state.elapsed_s += time.time() - started
        row = HistoryRow.of(generation, state.elapsed_s, fitness, lengths, optimizer.rms_stdev())
        state.history.append(row)
        state.blas_kernel = kernel
        save_optimizer(files.checkpoint, optimizer, state.to_json())
        if new_best:
            write_best(plan)  # after the checkpoint that holds it: a stop between the two is mended on resume
        write_logs(files, state, optimizer.current_param(), float(np.mean(fitness)))
        clock["saved"] = time.perf_counter()
        if args.phase_times:
            phases.append({"generation": generation, "steps": int(lengths.sum()),
                           **generation_phases(task_times, workers, **clock)})
            save_json(args.phase_times, phases, indent=1)
        print(progress_line(row, time.time() - started) + evaluation_line, flush=True)
        done_this_run += 1
    pool.close()
    print(f"stopped after generation {state.generation}; resume with: {plan.resume_command()}", flush=True)


def write_best(plan: Plan) -> None:
    """The state's best controller into .best.json."""
    import numpy as np

    from controller.controller import save_params

    state = plan.state
    save_params(plan.files.best, np.asarray(state.best_params), state.best_score, plan.config.name, plan.exp_mode)


def evaluate_mean(plan: Plan, pool, workers: int, generation: int) -> tuple[str, bool]:
    """Score the optimizer's current mean on fresh seeds; make it the state's best when it beats every earlier score
    (the caller writes .best.json once the checkpoint holds it). In dream mode a new best is also scored in the real
    game. Returns the text for the progress line and whether there is a new best."""
    import numpy as np

    from controller.training import Evaluation, best_score_on_disk, rounded, take_seeds

    args, state, files = plan.args, plan.state, plan.files
    params = rounded(plan.optimizer.current_param())
    count = plan.eval_episodes
    seeds = take_seeds(state, count).reshape(count, 1)
    rows = np.repeat(params[None], count, axis=0)
    rewards, _ = evaluate(pool, rows, seeds, plan.max_length, split_rows(count, workers) if args.dream_mode else None)
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
        if args.dream_mode:  # scored in the real game (minutes) before anything is written: a run stopped meanwhile
            count = args.real_episodes  # replays this generation on resume and finds the same new best
            seeds = take_seeds(state, count).reshape(count, 1)
            real, _ = evaluate(pool, np.repeat(params[None], count, axis=0), seeds, plan.max_length, real=True)
            if not np.isfinite(real.mean()):
                raise UserError(f"generation {generation}: the new best scored {real.mean()} in the real game "
                                f"(not finite)")
            state.best_real_score = float(real.mean())
            record.real_score = round(float(real.mean()), 2)
            text += f", real game {real.mean():.2f} +- {real.std():.2f} over {count}"
        state.best_score, state.best_params = score, params.tolist()
    elif args.retrain and state.best_params is not None:
        plan.optimizer.set_mean(np.asarray(state.best_params, dtype=np.float64))
        text += " (mean moved back to the best)"
    state.evaluations.append(record)
    return text, new_best


def main(argv=None) -> None:
    args = parse_args(argv)
    from parallel import launched_by_mpi, run_under_mpi

    if not launched_by_mpi():
        from files import release_locks

        plan = Plan(args, lock=True)  # every check that can fail, before any process is started
        release_locks()  # rank 0 takes them for the run
        sys.exit(run_under_mpi(args.num_worker + 1, SCRIPT, sys.argv[1:] if argv is None else list(argv),
                               lambda number: stopped_line(number, plan)))

    from parallel import CHILD_MARKER, world

    comm = world()
    if os.environ.get(CHILD_MARKER) == "1" and comm.Get_size() != args.num_worker + 1:
        # our own relaunch: an mpiexec of another MPI than mpi4py's starts each process as a world of its own
        raise UserError(f"mpiexec started {comm.Get_size()} process(es) in the run's MPI world where "
                        f"{args.num_worker + 1} were asked: it is not of the MPI that mpi4py was built with; use the "
                        f"mpiexec of the mpich wheel (pip install -r requirements.txt puts it beside Python)")
    rank = comm.Get_rank()
    if rank != 0:
        from parallel import serve

        settings = comm.bcast(None, root=0)  # rank 0's, once its checks pass (if they fail, MPI_Abort ends us)
        serve(comm, lambda: make_evaluator(settings))  # an error here goes to rank 0, which ends the run with it
        return
    run_leader(args, comm)


def run_leader(args, comm) -> None:
    """Rank 0 under MPI: any way out that is not a clean finish ends every process (MPI_Abort), never a hang."""
    from parallel import LocalPool, Pool, WorkerFailed, abort, task_runner

    from processes import stop_signal

    def check():  # the signals were noted since this process started (parallel.note_rank_signals)
        if stop_signal() is not None:
            raise Stopping(stop_signal())

    try:
        plan = Plan(args, lock=True)
        check()
        workers = comm.Get_size() - 1
        if workers > 0:
            comm.bcast(plan.evaluator_settings(), root=0)
        pool = Pool(comm, check) if workers > 0 else LocalPool(task_runner(plan.make_evaluator()), check)
        lead(plan, pool, max(workers, 1))
    except Stopping as stopping:
        print(stopped_line(stopping.signal_number, plan), file=sys.stderr, flush=True)
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


if __name__ == "__main__":
    from parallel import launched_by_mpi, note_rank_signals

    if launched_by_mpi():  # first thing: a signal that lands anywhere in a rank stops the whole run (see there)
        note_rank_signals()
    run_cli(main)
