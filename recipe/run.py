"""Run a recipe (recipe/presets.py) as subprocesses of the stage scripts, resumable at any moment.

Files of one run, ROOT/<env>/seed<N>/:

    state.json              the recipe key, env, preset, seed, steps done and their results, CPU seconds per stage;
                            written whole after every step (and every chunk of a controller phase)
    models/<step>/vae|rnn   V's and M's NumPy copies as 02 and 04 saved them (what later steps read)
    phases/<phase>.<run>/   05's controller and log folders of each run of a controller phase (checkpoint .es.pk,
                            .best.json, .hist.json, .log.json); <run> 0, then 1.. for restarts. Once a run has
                            ended (its phase done, or a restart after it) its .es.pk moves to scratch/ended/: only
                            the run under way has one here
    chosen/<phase>.json     the controller a phase hands to the next Collect step
    candidates/, selection/ the candidates and their selection episodes; final/, untouched/: the two scores
    agent/<env>/            the packed candidate (pretrained.py's layout)
    summary.json            at the end
    scratch/                what stages rebuild exactly from seeds (01's and 03's batch files, 02's and 04's working
                            folders) and ended runs' checkpoints: git-ignored; lost, it is made again from state.json

A step counts as done only once state.json says so; a step stopped mid-way is redone from its start, except 05,
which goes on from its last checkpoint, 02 and 04, which go on from their last saved batch file or epoch in
scratch/, and 03, from the batches it wrote (all continue exactly). Stages see only files of this folder, so a
resumed run replays what an unstopped run did.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
from typing import Callable, Sequence

from cli import UserError
from files import repo_root, save_json
from processes import python_command
from reading import LOG_JSON_BYTES, SMALL_JSON_BYTES, read_json
from recipe import seeds as seeding
from recipe.presets import (Collect, ControllerPhase, Encode, Recipe, TrainM, TrainV, recipe_for, recipe_key)

STATE_FORMAT = 1
STAGE_OF = {Collect: "01", TrainV: "02", Encode: "03", TrainM: "04", ControllerPhase: "05"}
SCRATCH_STEPS = (Collect, Encode)  # their outputs live in scratch/ and are rebuilt from seeds


DEFAULT_ROOT = os.path.join("runs", "reproduce")  # reproduce.py's --root


def run_dir(root: str, env: str, seed: int) -> str:
    return os.path.join(root, env, f"seed{seed}")


# --- running a stage -----------------------------------------------------------------------------------------------
def run_stage(command: Sequence[str], cwd: str, on_cpu: Callable[[float], None], tree=None) -> int:
    """Run one stage script in `cwd` and return its exit status; `on_cpu` gets the CPU seconds of it and its
    children, also when it was stopped: the larger of getrusage's count of the descendants waited for (exact when
    all were) and a TreeCpu's samples of every descendant (`tree`, a new one by default), which also sees the MPI
    ranks a stop aborts unwaited.
    Ctrl-C and SIGTERM that reach us are passed on, and we wait for the stage to stop its own way (05 saves its
    checkpoint) before raising in turn."""
    from files import _HELD_LOCKS
    from processes import TreeCpu, run_child

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tree = TreeCpu() if tree is None else tree
    try:
        # the stage holds the run folder's lock too: if we are killed, a new reproduce.py waits for it to be gone;
        # it gets SIGTERM then, and stops its own way (05 saves its checkpoint)
        return run_child(command, cwd=cwd, pass_fds=tuple(_HELD_LOCKS.values()), death_signal=signal.SIGTERM,
                         grace_seconds=120, cpu=tree)
    finally:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        on_cpu(max(waited, tree.seconds))


def script(name: str) -> list[str]:
    return [sys.executable, os.path.join(repo_root(), name)]


def git_commit() -> str:
    """The commit of the code that runs (with '+changes' when the work tree differs from it outside runs/, where
    the runs' own committed state files change as they go)."""
    try:
        head = subprocess.run(["git", "-C", repo_root(), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo_root(), "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)runs"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty else "")


# --- the state -----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunState:
    """state.json: what is done and what it gave. `phases[name]`: the runs of a controller phase, each
    {"population", "sigma", "start" (the phase generation it began at), "init"} ; `cpu_s[stage]` CPU seconds."""
    recipe_key: str
    env: str
    preset: str
    seed: int
    format: int = STATE_FORMAT
    done: list = dataclasses.field(default_factory=list)
    results: dict = dataclasses.field(default_factory=dict)
    phases: dict = dataclasses.field(default_factory=dict)
    cpu_s: dict = dataclasses.field(default_factory=dict)
    commits: list = dataclasses.field(default_factory=list)  # of the code that ran it, in order (a resume may differ)
    finished: bool = False
    jit: str | None = None  # 02's step for every TrainV of the run, "on" (XLA) or "off": what its first 02 used

    @classmethod
    def load(cls, path: str) -> RunState:
        data = read_json(path, SMALL_JSON_BYTES, "a reproduce state file", "move the folder away to start afresh")
        try:
            return cls(**data)
        except (ValueError, TypeError) as error:
            raise UserError(f"{path} is not a reproduce state file ({error}); move the folder away to start "
                            f"afresh") from None

    def save(self, path: str) -> None:
        save_json(path, dataclasses.asdict(self), indent=1)


def recipe_of(root: str, env: str, seed: int, preset: str) -> Recipe:
    """The recipe the run folder of (env, seed) under root follows: presets.recipe_for with the recipe key its
    state.json holds (a retired recipe's run goes on with it), the current recipe for a new folder."""
    path = os.path.join(run_dir(root, env, seed), "state.json")
    return recipe_for(env, preset, RunState.load(path).recipe_key if os.path.exists(path) else None)


class Run:
    """One run of a recipe with one seed, in its folder."""

    def __init__(self, recipe: Recipe, seed: int, root: str, workers: int, jit: str = "auto"):
        self.recipe, self.seed, self.workers, self.root = recipe, seed, workers, root
        seeding.run_base(seed)  # checks the range
        self.key = recipe_key(recipe)
        self.folder = os.path.abspath(run_dir(root, recipe.env, seed))
        self.scratch = os.path.join(self.folder, "scratch")
        self.data_dir = os.path.join(self.scratch, "data")
        self.state_path = os.path.join(self.folder, "state.json")
        self.state = self._load_or_new()
        if jit != "auto" and self.state.jit not in (None, jit):
            raise UserError(f"{self.folder} trains V with --jit {self.state.jit} (its first 02 chose it); a run keeps "
                            f"one step, so that a resumed run ends as an unstopped one: give --jit {self.state.jit} "
                            f"or leave --jit out")
        self.jit = self.state.jit or jit

    # -- identity
    def _load_or_new(self) -> RunState:
        if not os.path.exists(self.state_path):
            return RunState(self.key, self.recipe.env, self.recipe.preset, self.seed)
        state = RunState.load(self.state_path)
        if state.env != self.recipe.env or state.seed != self.seed:
            raise UserError(f"{self.folder} holds a run of {state.env} seed {state.seed}, not {self.recipe.env} "
                            f"seed {self.seed}; give another --root")
        if state.recipe_key != self.key:
            raise UserError(f"{self.folder} holds a run of another recipe ({state.preset} preset, recipe key "
                            f"{state.recipe_key}; this one is {self.recipe.preset}, {self.key}): refusing to mix "
                            f"them; give another --root or --seed")
        return state

    def command_line(self, python: str = "python") -> str:
        """The command that runs (or resumes) this run: as the manifest and summary keep it, or with `python` (a
        resume line gives processes.python_command(), the Python that runs now as the user would type it here)."""
        preset = "" if self.recipe.preset == "full" else f" --preset {self.recipe.preset}"
        return f"{python} reproduce.py {self.recipe.env} --seed {self.seed}{preset}"

    def resume_line(self) -> str:
        """The command that goes on with this run from here: the Python that runs now, as typed in this folder, with
        the --root and --jit that this run needs (a --jit only until its first 02 has chosen)."""
        line = self.command_line(python_command())
        if self.root != DEFAULT_ROOT:
            line += f" --root {shlex.quote(self.root)}"
        if self.state.jit is None and self.jit != "auto":
            line += f" --jit {self.jit}"
        return line

    def save(self) -> None:
        self.state.save(self.state_path)

    # -- paths
    def model_dir(self, step_name: str, kind: str) -> str:
        return os.path.join(self.folder, "models", step_name, kind)

    def phase_dirs(self, phase: str, run: int) -> tuple[str, str]:
        base = os.path.join(self.folder, "phases", f"{phase}.{run}")
        return os.path.join(base, "controller"), os.path.join(base, "log")

    def chosen_path(self, phase: str) -> str:
        return os.path.join(self.folder, "chosen", f"{phase}.json")

    # -- the world model each step sees: the last TrainV and TrainM before it
    def world_model_before(self, index: int) -> tuple[str | None, str | None]:
        vae = rnn = None
        for step in self.recipe.steps[:index]:
            if isinstance(step, TrainV):
                vae = step.name
            elif isinstance(step, TrainM):
                rnn = step.name
        return vae, rnn

    def batches_before(self, index: int) -> int:
        """Batch files written by the Collect steps before step `index`."""
        return sum(-(-step.episodes // step.batch_size) for step in self.recipe.steps[:index]
                   if isinstance(step, Collect))

    def _stage(self, stage: str, command: list[str], what: str) -> None:
        """Run a stage in scratch/; its CPU time is added to state.json whatever happens."""
        os.makedirs(self.scratch, exist_ok=True)

        def count(seconds: float) -> None:
            self.state.cpu_s[stage] = round(self.state.cpu_s.get(stage, 0.0) + seconds, 2)
            self.save()

        status = run_stage(command, self.scratch, count)
        if status:
            raise UserError(f"{what} failed (exit status {status}; its error is above); after fixing the cause, "
                            f"resume with: {self.resume_line()}")

    # -- the scratch folder: what stages rebuild exactly from seeds
    def _scratch_done(self) -> list[str]:
        path = os.path.join(self.scratch, "done.json")
        if not os.path.exists(path):
            return []
        done = read_json(path, SMALL_JSON_BYTES, "a list of the steps scratch/ holds",
                         "delete scratch/ (it is rebuilt)")
        return [name for name in done if isinstance(name, str)] if isinstance(done, list) else []

    def _mark_scratch(self, names: list[str]) -> None:
        os.makedirs(self.scratch, exist_ok=True)
        save_json(os.path.join(self.scratch, "done.json"), names)

    def sync_scratch(self, upto: int) -> None:
        """Rebuild scratch/ (01's and 03's files) as the done steps before `upto` left it, replaying those steps."""
        wanted = [step.name for step in self.recipe.steps[:upto]
                  if isinstance(step, SCRATCH_STEPS) and step.name in self.state.done]
        have = self._scratch_done()
        if have == wanted[:len(have)] and len(have) <= len(wanted):
            missing = wanted[len(have):]
        else:  # another history: start it again
            shutil.rmtree(os.path.join(self.scratch, "data"), ignore_errors=True)
            have, missing = [], wanted
        for index, step in enumerate(self.recipe.steps[:upto]):
            if step.name in missing:
                print(f"== rebuilding scratch data: {step.name} (stage {STAGE_OF[type(step)]}, from its seeds)",
                      flush=True)
                self._run_scratch_step(index, step)
                have.append(step.name)
                self._mark_scratch(have)

    def _run_scratch_step(self, index: int, step) -> None:
        if isinstance(step, Collect):
            self._collect(index, step)
        else:
            self._encode(index, step)

    # -- the steps
    def _collect(self, index: int, step: Collect) -> None:
        collect_index = sum(isinstance(s, Collect) for s in self.recipe.steps[:index])
        command = script("01_generate_data.py") + [
            self.recipe.env, "--total_episodes", str(step.episodes), "--start_batch", str(self.batches_before(index)),
            "--time_steps", str(step.time_steps), "--batch_size", str(step.batch_size),
            "--num_workers", str(self.workers), "--seed", str(seeding.collect_seed(self.seed, collect_index)),
            "--data_dir", self.data_dir, "--overwrite"]  # batch files already there are this step's, from a stopped
        # try (same seeds): 01 writes each file whole, so a stop leaves some of them, and refusing them would wedge
        # the run
        if step.player:
            vae, rnn = self.phase_world_model(step.player)
            command += ["--controller", self.chosen_path(step.player), "--vae_dir", self.model_dir(vae, "vae"),
                        "--rnn_dir", self.model_dir(rnn, "rnn")]
        self._stage("01", command, f"01 ({step.name})")

    def _encode(self, index: int, step: Encode) -> None:
        vae, _ = self.world_model_before(index)
        # every batch when V changed since the last Encode, else only the new ones (the same z as before)
        first, last = 0, self.batches_before(index) - 1
        for earlier in range(index - 1, -1, -1):
            previous = self.recipe.steps[earlier]
            if isinstance(previous, TrainV):
                break
            if isinstance(previous, Encode):
                first = self.batches_before(earlier)
                break
        command = script("03_generate_rnn_data.py") + [
            "--env_name", self.recipe.env, "--max_batch", str(last), "--seed", str(self.seed), "--data_dir",
            self.data_dir, "--vae_dir", self.model_dir(vae, "vae")]
        start = self._encoded_before(step.name, command + ["--start_batch", str(first)], first, last)
        if start > first:
            print(f"03 ({step.name}) goes on from its stopped try: batches {first}..{start - 1} encoded", flush=True)
        if start <= last:
            self._stage("03", command + ["--start_batch", str(start)], f"03 ({step.name})")

    def _encoded_before(self, step_name: str, fresh: list[str], first: int, last: int) -> int:
        """The first batch of first..last that a stopped try of this Encode step left to do: 03 writes a batch's
        files whole, in order, each batch's z from (seed, batch), so the batches written since the try's marker
        (scratch/encode.step.json, naming this step and command), their six files all there, are what an unstopped
        try writes. Without such a marker, `first`, and the marker is written now."""
        from config import data_file
        from rnn.encoding import KINDS

        if not self._same_try("encode", step_name, fresh):
            self._mark_try("encode", step_name, fresh)
            return first
        since = os.stat(self._marker("encode")).st_mtime_ns
        for batch in range(first, last + 1):
            paths = [data_file(kind, self.recipe.env, batch, self.data_dir) for kind in KINDS]
            if not all(os.path.exists(path) and os.stat(path).st_mtime_ns >= since for path in paths):
                return batch
        return last + 1

    def v_batches(self, index: int, step: TrainV) -> tuple[int, int]:
        """The first and last batch file the TrainV step `index` trains on."""
        if step.since is not None:
            collect = next(at for at, earlier in enumerate(self.recipe.steps) if earlier.name == step.since)
            return self.batches_before(collect), self.batches_before(index) - 1
        return 0, (step.batches or self.batches_before(index)) - 1

    def _train_v(self, index: int, step: TrainV) -> None:
        work = os.path.join(self.scratch, "vae")
        first, last = self.v_batches(index, step)
        command = script("02_train_vae.py") + [
            "--env_name", self.recipe.env, "--start_batch", str(first), "--max_batch", str(last),
            "--batch_size", str(step.batch_size), "--learning_rate", repr(step.learning_rate), "--seed", str(self.seed),
            "--data_dir", self.data_dir, "--vae_dir", work, "--verbose", "2"]
        if step.steps_per_file:
            command += ["--steps_per_file", str(step.steps_per_file)]
        previous, _ = self.world_model_before(index)
        start = ["--new_model"] if step.new or previous is None else ["--init_from", self.model_dir(previous, "vae")]
        fresh = command + ["--epochs", str(step.epochs), "--jit", self.jit] + start
        history = self._stopped_try("vae", step.name, fresh)
        left = step.epochs
        if history is None:
            command = fresh
        else:  # 02 finishes a stopped epoch first, and counts it as one of --epochs
            last_row = history[-1]
            ended = last_row["position"] + 1 >= last_row["files"]
            left = step.epochs - last_row["epoch"] + (0 if ended else 1)
            jit = self.jit if self.state.jit is not None else ("on" if history[0]["xla"] else "off")
            command += ["--epochs", str(left), "--jit", jit]
            print(f"02 ({step.name}) goes on from its stopped try: epoch {last_row['epoch']}"
                  f"{'' if ended else ' (part-way)'} of {step.epochs} done", flush=True)
        if left > 0:
            self._stage("02", command, f"02 ({step.name})")
        self._keep_step(work)
        self._keep_model(work, step.name, "vae")

    def _stopped_try(self, kind: str, step_name: str, fresh: list[str]) -> list | None:
        """The training history of a stopped try of this 02 or 04 step in scratch/<kind>/, which the stage goes on
        from exactly (its weights, Adam's state and its epoch count are saved together; the shuffles and draws of an
        epoch are seeded by its number): a try whose marker (scratch/<kind>.step.json) names this step and this
        command, with weights and at least one epoch's (02: one batch file's) row saved. Else None, and the folder
        is emptied and marked for this step's fresh start."""
        from config import rnn_weights_path, vae_weights_path

        work = os.path.join(self.scratch, kind)
        weights = (vae_weights_path if kind == "vae" else rnn_weights_path)(self.recipe.env, **{f"{kind}_dir": work})
        history_path = os.path.join(work, f"{self.recipe.env}.history.json")
        if os.path.exists(weights) and os.path.exists(history_path) and self._same_try(kind, step_name, fresh):
            try:
                history = read_json(history_path, LOG_JSON_BYTES, "a training history", "")
            except UserError:
                history = None
            if isinstance(history, list) and history and all(isinstance(row, dict) for row in history):
                return history
        shutil.rmtree(work, ignore_errors=True)  # another step's folder, or nothing saved yet: start afresh
        self._mark_try(kind, step_name, fresh)
        return None

    @staticmethod
    def _try_mark(step_name: str, fresh: list[str]) -> dict:
        return {"step": step_name, "command": [os.path.basename(fresh[1])] + fresh[2:]}  # no interpreter, no root

    def _same_try(self, name: str, step_name: str, fresh: list[str]) -> bool:
        """Whether the marker scratch/<name>.step.json names this step and its fresh command: the files there are
        a stopped try of it (else the caller starts afresh and marks its try, _mark_try)."""
        marker = self._marker(name)
        if not os.path.exists(marker):
            return False
        try:
            marked = read_json(marker, SMALL_JSON_BYTES, "a stopped step's marker", "")
        except UserError:
            return False
        return marked == self._try_mark(step_name, fresh)

    def _mark_try(self, name: str, step_name: str, fresh: list[str]) -> None:
        os.makedirs(self.scratch, exist_ok=True)
        save_json(self._marker(name), self._try_mark(step_name, fresh))

    def _marker(self, name: str) -> str:
        """scratch/<name>.step.json: which step and command the files of scratch/<name> (or 03's batches) are a
        try of."""
        return os.path.join(self.scratch, f"{name}.step.json")

    def _keep_step(self, work: str) -> None:
        """The training step the run's first 02 chose (--jit auto times the two), kept in state.json for every
        later 02 of the run: a step done again after a stop must not train with the other one and end a float
        rounding away from the unstopped run's V."""
        if self.state.jit is not None:
            return
        history = read_json(os.path.join(work, f"{self.recipe.env}.history.json"), SMALL_JSON_BYTES,
                            "02's history", "run the step again")
        self.state.jit = self.jit = "on" if history[0]["xla"] else "off"
        self.save()

    def _train_m(self, index: int, step: TrainM) -> None:
        work = os.path.join(self.scratch, "rnn")
        command = script("04_train_rnn.py") + [
            "--env_name", self.recipe.env, "--start_batch", "0", "--max_batch", str(self.batches_before(index) - 1),
            "--batch_size", str(step.batch_size), "--seed", str(self.seed), "--data_dir", self.data_dir,
            "--rnn_dir", work, "--verbose", "2"]
        _, previous = self.world_model_before(index)
        start = ["--new_model"] if step.new or previous is None else ["--init_from", self.model_dir(previous, "rnn")]
        fresh = command + ["--epochs", str(step.epochs)] + start
        history = self._stopped_try("rnn", step.name, fresh)
        left = step.epochs - (0 if history is None else len(history))  # 04 saves after every epoch
        if history is not None:
            print(f"04 ({step.name}) goes on from its stopped try: {len(history)} of {step.epochs} epochs done",
                  flush=True)
        if left > 0:
            self._stage("04", fresh if history is None else command + ["--epochs", str(left)], f"04 ({step.name})")
        self._keep_model(work, step.name, "rnn")

    def _keep_model(self, work: str, step_name: str, kind: str) -> None:
        """The NumPy copy the stage saved, into models/<step>/<kind>/ (written whole)."""
        from files import atomic_path

        target = self.model_dir(step_name, kind)
        os.makedirs(target, exist_ok=True)
        name = f"{self.recipe.env}.npz"
        with atomic_path(os.path.join(target, name), suffix=".npz") as temporary:
            shutil.copyfile(os.path.join(work, name), temporary)

    def phase_world_model(self, phase: str) -> tuple[str, str]:
        index = next(i for i, step in enumerate(self.recipe.steps) if getattr(step, "name", None) == phase)
        vae, rnn = self.world_model_before(index)
        return vae, rnn

    # -- controller phases
    def phase_runs(self, phase: ControllerPhase) -> list[dict]:
        runs = self.state.phases.setdefault(phase.name, [])
        if not runs:
            runs.append({"population": phase.population, "sigma": phase.sigma, "start": 0,
                         "init": None if phase.start is None else self.chosen_path(phase.start)})
        return runs

    def training_files(self, phase: ControllerPhase, run_index: int):
        """05's files (controller.training.TrainingFiles) of one run of a controller phase."""
        from controller.training import training_files

        run = self.state.phases[phase.name][run_index]
        controller_dir, log_dir = self.phase_dirs(phase.name, run_index)
        return training_files(self.recipe.env, "cma", phase.episodes, run["population"], controller_dir, log_dir)

    def checkpoint(self, phase: ControllerPhase, run_index: int) -> tuple[str, object | None]:
        """(path of a run's .es.pk, its TrainingState or None before its first generation)."""
        from controller.training import TrainingState
        from es import load_optimizer

        files = self.training_files(phase, run_index)
        if not os.path.exists(files.checkpoint):
            return files.checkpoint, None
        _, state = load_optimizer(files.checkpoint)
        return files.checkpoint, TrainingState.from_json(state, files.checkpoint)

    def ended(self, phase: ControllerPhase, run_index: int) -> bool:
        """Whether a run of a phase trains no more: the phase is done, or a restart followed it."""
        return phase.name in self.state.done or run_index < len(self.state.phases.get(phase.name, [])) - 1

    def retire(self, phase: ControllerPhase) -> None:
        """Move the optimizer checkpoints of a phase's ended runs into scratch/ended/ (git-ignored): nothing trains
        from them again, and their logs hold what the reports and the choice of candidates read (Run.trained), so the
        folder a pause commits keeps only the checkpoint of the run under way."""
        for run_index in range(len(self.state.phases.get(phase.name, []))):
            checkpoint = self.training_files(phase, run_index).checkpoint
            if self.ended(phase, run_index) and os.path.exists(checkpoint):
                target = os.path.join(self.scratch, "ended", f"{phase.name}.{run_index}", os.path.basename(checkpoint))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(checkpoint, target)

    def trained(self, phase: ControllerPhase, run_index: int):
        """A run's generations, history and evaluations (None before its first generation): from its checkpoint, or
        once it has ended and its checkpoint is not here (retire moved it, or it did not travel), from its .hist.json
        and .log.json, which hold the same rows (docs/reproduce.md)."""
        from controller.training import read_logs

        _, trained = self.checkpoint(phase, run_index)
        if trained is None and self.ended(phase, run_index):
            return read_logs(self.training_files(phase, run_index))
        return trained

    def _controller_phase(self, phase_index: int, index: int, phase: ControllerPhase) -> None:
        vae, rnn = self.world_model_before(index)
        while True:
            runs = self.phase_runs(phase)
            run_index = len(runs) - 1
            run = runs[run_index]
            checkpoint, trained = self.checkpoint(phase, run_index)
            done = trained.generation if trained else 0
            budget = phase.generations - run["start"]
            if trained is not None and self._restart_due(phase, run_index, trained, budget):
                controller_dir, _ = self.phase_dirs(phase.name, run_index)
                rule = phase.restart
                runs.append({"population": run["population"] * rule.population_factor, "sigma": rule.sigma,
                             "start": run["start"] + done, "init": self.training_files(phase, run_index).best})
                print(f"== {phase.name}: the population average gained less than {rule.min_gain:g} in "
                      f"{rule.span} generations: restart {len(runs) - 1} from the best, population "
                      f"{runs[-1]['population']}, sigma {rule.sigma}, {phase.generations - runs[-1]['start']} "
                      f"generations left", flush=True)
                self.save()
                self.retire(phase)
                continue
            if done >= budget:
                return
            stop = budget
            if phase.restart and len(runs) - 1 < phase.restart.max_restarts:
                stop = min(budget, (done // phase.restart.window + 1) * phase.restart.window)
            self._run_05(phase_index, index, phase, run_index, checkpoint if trained else None, stop - done,
                         vae, rnn)

    def _restart_due(self, phase: ControllerPhase, run_index: int, trained, budget: int) -> bool:
        rule = phase.restart
        done = trained.generation
        if rule is None or run_index >= rule.max_restarts or done >= budget or done % rule.window:
            return False
        if done < rule.span + rule.window:
            return False
        averages = [row.average for row in trained.history]
        recent = sum(averages[done - rule.window:done]) / rule.window
        earlier = sum(averages[done - rule.span - rule.window:done - rule.span]) / rule.window
        return recent - earlier < rule.min_gain

    def _run_05(self, phase_index: int, index: int, phase: ControllerPhase, run_index: int, checkpoint: str | None,
                generations: int, vae: str, rnn: str) -> None:
        run = self.state.phases[phase.name][run_index]
        controller_dir, log_dir = self.phase_dirs(phase.name, run_index)
        command = script("05_train_controller.py") + [
            self.recipe.env, "--num_worker", str(self.workers),
            "--num_worker_trial", str(run["population"] // self.workers), "--num_episode", str(phase.episodes),
            "--eval_steps", str(phase.eval_every), "--eval_episodes", str(phase.eval_episodes),
            "--generations", str(generations), "--common_seeds", str(int(phase.common_seeds)),
            "--controller_dir", controller_dir, "--log_dir", log_dir, "--vae_dir", self.model_dir(vae, "vae"),
            "--rnn_dir", self.model_dir(rnn, "rnn"), "--data_dir", self.data_dir]
        if phase.max_length:
            command += ["--max_length", str(phase.max_length)]
        if checkpoint:
            command += ["--init_opt", checkpoint]
        else:
            command += ["--seed_start", str(seeding.phase_seed(self.seed, phase_index, run_index)),
                        "--sigma_init", repr(run["sigma"])]
            if run["init"]:
                command += ["--init_params", run["init"]]
            if phase.dream:
                command += ["--dream_mode", "1", "--temperature", repr(phase.temperature),
                            "--real_episodes", str(phase.real_episodes), "--real_every", str(int(phase.real_every))]
        self._stage("05", command, f"05 ({phase.name})")

    def candidates(self, phase: ControllerPhase) -> list[dict]:
        """Every evaluated controller of a phase: {"phase", "run", "generation", "score", "rank_score", "params"};
        rank_score is the real-game score (the evaluation itself, or a dream best's real episodes)."""
        rows = []
        for run_index, run in enumerate(self.state.phases.get(phase.name, [])):
            trained = self.trained(phase, run_index)
            for evaluation in trained.evaluations if trained else []:
                rank = evaluation.real_score if phase.dream else evaluation.score
                if rank is None:
                    continue
                rows.append({"phase": phase.name, "run": run_index, "generation": run["start"] + evaluation.generation,
                             "score": evaluation.score, "rank_score": rank, "params": evaluation.params})
        return rows

    def _choose_for_collect(self, phase: ControllerPhase) -> None:
        """The controller a phase hands on: its evaluated controller with the best real-game score."""
        from controller.controller import save_params

        rows = self.candidates(phase)
        if not rows:
            raise UserError(f"{phase.name} evaluated no controller (no .log.json row with a real-game score); its "
                            f"budget or eval_every is wrong in the recipe")
        best = max(rows, key=lambda row: row["rank_score"])  # max keeps the first of equals: the earliest
        os.makedirs(os.path.dirname(self.chosen_path(phase.name)), exist_ok=True)
        save_params(self.chosen_path(phase.name), best["params"], best["rank_score"], self.recipe.env)
        self.state.results[phase.name] = {key: best[key] for key in ("run", "generation", "score", "rank_score")}

    # -- selection, scoring, packing
    def _select(self) -> None:
        from controller.controller import save_params

        selection = self.recipe.selection
        rows = [row for name in selection.phases for row in self.candidates(self.recipe.phase(name))]
        order = sorted(range(len(rows)), key=lambda i: (-rows[i]["rank_score"], i))[:selection.top]
        results = self.state.results.setdefault("selection", {"candidates": []})
        folder = os.path.join(self.folder, "candidates")
        os.makedirs(folder, exist_ok=True)
        for number, i in enumerate(order):
            row = rows[i]
            if number < len(results["candidates"]):
                continue  # played before a stop
            path = os.path.join(folder, f"candidate{number}.json")
            save_params(path, row["params"], row["rank_score"], self.recipe.env)
            vae, rnn = self.phase_world_model(row["phase"])
            score = self._score(path, vae, rnn, os.path.join(self.folder, "selection"),
                                seeding.selection_seed(self.seed), selection.episodes, selection.max_length,
                                "selection")
            results["candidates"].append({"file": os.path.relpath(path, self.folder), "vae": vae, "rnn": rnn,
                                          **{key: row[key] for key in ("phase", "run", "generation", "score",
                                                                       "rank_score")},
                                          "selection_mean": score["mean"], "selection_std": score["std"]})
            self.save()
        chosen = max(range(len(results["candidates"])), key=lambda i: results["candidates"][i]["selection_mean"])
        results["chosen"] = chosen

    def _score(self, filename: str, vae: str, rnn: str, log_dir: str, first_seed: int, episodes: int,
               max_length: int, stage: str) -> dict:
        command = script("model.py") + [
            self.recipe.env, "--filename", filename, "--final_mode", "--num_episode", str(episodes), "--seed",
            str(first_seed), "--num_worker", str(self.workers), "--log_dir", log_dir,
            "--vae_dir", self.model_dir(vae, "vae"), "--rnn_dir", self.model_dir(rnn, "rnn"),
            "--data_dir", self.data_dir]
        if max_length:
            command += ["--max_length", str(max_length)]
        self._stage(stage, command, f"model.py ({stage})")
        name = os.path.basename(filename)[: -len(".json")]
        return read_json(os.path.join(log_dir, f"{name}.final.json"), SMALL_JSON_BYTES, "a .final.json",
                         "resume the run (the score is played again)")

    def chosen_candidate(self) -> dict:
        selection = self.state.results["selection"]
        return selection["candidates"][selection["chosen"]]

    def _final_scores(self) -> None:
        chosen = self.chosen_candidate()
        scoring = self.recipe.scoring
        for name, seed in (("final", seeding.SCORING_SEED), ("untouched", seeding.UNTOUCHED_SEED)):
            if name in self.state.results:
                continue
            score = self._score(os.path.join(self.folder, chosen["file"]), chosen["vae"], chosen["rnn"],
                                os.path.join(self.folder, name), seed, scoring.episodes, scoring.max_length, "score")
            self.state.results[name] = {key: score[key] for key in ("first_seed", "episodes", "max_length", "mean",
                                                                     "std", "scores", "lengths")}
            self.save()

    def final_file(self, score: str = "final") -> str:
        """The chosen controller's .final.json of the score `score` ("final": seeds 111..; "untouched")."""
        name = os.path.basename(self.chosen_candidate()["file"])[: -len(".json")]
        return os.path.join(self.folder, score, f"{name}.final.json")

    def _pack(self) -> None:
        chosen = self.chosen_candidate()
        command = script("pretrained.py") + [
            "pack", self.recipe.env, "--filename", os.path.join(self.folder, chosen["file"]), "--final",
            self.final_file(), "--untouched", self.final_file("untouched"), "--command", self.command_line(),
            "--run", self.folder, "--root", os.path.join(self.folder, "agent"),
            "--trained_in", "dream" if self.recipe.phase(chosen["phase"]).dream else "game",
            "--vae_dir", self.model_dir(chosen["vae"], "vae"), "--rnn_dir", self.model_dir(chosen["rnn"], "rnn"),
            "--data_dir", self.data_dir]
        self._stage("pack", command, "pretrained.py pack")

    # -- the whole recipe
    def steps(self) -> list[tuple[str, str, bool]]:
        """(name, header, uses scratch/) of every step, the closing ones included."""
        rows = []
        for step in self.recipe.steps:
            kind = type(step)
            uses = kind in (Collect, Encode, TrainV, TrainM) or (kind is ControllerPhase and step.dream)
            rows.append((step.name, f"stage {STAGE_OF[kind]}: {describe(step)}", uses))
        selection = self.recipe.selection
        rows.append(("select", f"selection: the top {selection.top} of {', '.join(selection.phases)} play "
                               f"{selection.episodes} episodes each on the run's own seeds", False))
        rows.append(("score", f"the chosen controller's {self.recipe.scoring.episodes} episodes on seeds 111.. and "
                              f"on 10,000,000..", False))
        rows.append(("pack", "pretrained.py pack into agent/", True))
        return rows

    def run(self) -> dict:
        from files import check_writable, lock_outputs

        for phase in self.recipe.steps:
            if isinstance(phase, ControllerPhase) and phase.population % self.workers:
                raise UserError(f"--workers {self.workers} does not divide {phase.name}'s population of "
                                f"{phase.population}: give a divisor of it (the population is part of the recipe)")
        check_writable(self.folder)  # a read-only folder or a full disk: one line now, not a traceback
        lock_outputs(self.folder, "reproduce")
        commit = git_commit()
        if commit not in self.state.commits[-1:]:
            self.state.commits.append(commit)
        self.save()  # claims the folder for this recipe
        rows = self.steps()
        phase_index = 0
        for index, (name, header, uses_scratch) in enumerate(rows):
            step = self.recipe.steps[index] if index < len(self.recipe.steps) else None
            current_phase = phase_index
            if isinstance(step, ControllerPhase):
                phase_index += 1
            if name in self.state.done:
                if isinstance(step, ControllerPhase):
                    self.retire(step)  # a run stopped between marking the phase done and retiring it
                continue
            print(f"== [{index + 1}/{len(rows)}] {name}, {header}", flush=True)
            if uses_scratch:
                self.sync_scratch(min(index, len(self.recipe.steps)))
            if isinstance(step, Collect):
                self._collect(index, step)
            elif isinstance(step, Encode):
                self._encode(index, step)
            elif isinstance(step, TrainV):
                self._train_v(index, step)
            elif isinstance(step, TrainM):
                self._train_m(index, step)
            elif isinstance(step, ControllerPhase):
                self._controller_phase(current_phase, index, step)
                if any(step.name in (getattr(later, "player", None), getattr(later, "start", None))
                       for later in self.recipe.steps):
                    self._choose_for_collect(step)
            elif name == "select":
                self._select()
            elif name == "score":
                self._final_scores()
            else:
                self._pack()
            if isinstance(step, SCRATCH_STEPS):
                self._mark_scratch(self._scratch_done() + [name])
            self.state.done.append(name)
            self.save()
            if isinstance(step, ControllerPhase):
                self.retire(step)
        from recipe.report import write_summary

        summary = write_summary(self)
        self.state.finished = True
        self.save()
        return summary


def describe(step) -> str:
    if isinstance(step, Collect):
        who = "random play" if step.player is None else f"{step.player}'s chosen controller"
        return f"{step.episodes} episodes of {who}, {step.time_steps} steps at most"
    if isinstance(step, TrainV):
        return (f"V, {'new' if step.new else 'going on'}, {step.epochs} epoch(s) at {step.learning_rate:g}"
                + (f" over the batches of {step.since} and after" if step.since else ""))
    if isinstance(step, Encode):
        return "encode the batches with V"
    if isinstance(step, TrainM):
        return f"M, {'new' if step.new else 'going on'}, {step.epochs} epoch(s)"
    where = f"in the dream at tau {step.temperature}" if step.dream else "in the game"
    shared = ", shared tracks" if step.common_seeds else ""
    return (f"controller {step.population} x {step.episodes} {where}{shared}, {step.generations} generations"
            + (f", restart rule ({step.restart.min_gain:g} in {step.restart.span})" if step.restart else "")
            + (", every evaluated mean played in the game" if step.real_every else ""))
