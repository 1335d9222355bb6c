"""What a reproduce run says about itself: summary.json at its end, and --status while it runs."""

from __future__ import annotations

import os

from files import save_json
from recipe.presets import ControllerPhase

STAGES = ("01", "02", "03", "04", "05", "selection", "score", "pack")


def core_hours(cpu_s: dict) -> dict:
    return {stage: round(seconds / 3600, 4) for stage, seconds in cpu_s.items()}


def phase_curves(run) -> dict:
    """Per controller phase: each of its runs' population average and evaluations by phase generation."""
    curves = {}
    for step in run.recipe.steps:
        if not isinstance(step, ControllerPhase):
            continue
        runs = []
        for run_index, settings in enumerate(run.state.phases.get(step.name, [])):
            trained = run.trained(step, run_index)
            if trained is None:
                continue
            start = settings["start"]
            runs.append({"population": settings["population"], "sigma": settings["sigma"], "start": start,
                         "history": run.phase_dirs(step.name, run_index)[1],
                         "average": [[start + row.generation, row.average] for row in trained.history],
                         "evaluations": [[start + row.generation, row.score] + ([row.real_score]
                                                                                if row.real_score is not None else [])
                                         for row in trained.evaluations]})
        for entry in runs:
            entry["history"] = os.path.relpath(entry["history"], run.folder)
        curves[step.name] = runs
    return curves


def write_summary(run) -> dict:
    """ROOT/<env>/seed<N>/summary.json, written whole; returns it."""
    from recipe.run import git_commit

    results = run.state.results
    scoring = run.recipe.scoring
    summary = {
        "env": run.recipe.env, "seed": run.seed, "preset": run.recipe.preset, "recipe_key": run.key,
        "commit": git_commit(), "commits": run.state.commits, "command": run.command_line(),
        "v_step": {"on": "XLA", "off": "without XLA", None: None}[run.state.jit],
        "scores": {"seeds 111..": results["final"], "seeds 10,000,000..": results["untouched"]},
        "note": None if run.recipe.preset == "full" else
        f"the {run.recipe.preset} preset: episodes of at most {scoring.max_length} steps, toy sizes; not a score",
        "selection": results["selection"],
        "core_hours": core_hours(run.state.cpu_s),
        "core_hours_total": round(sum(run.state.cpu_s.values()) / 3600, 4),
        "phases": phase_curves(run),
        "agent": os.path.join("agent", run.recipe.env),
    }
    save_json(os.path.join(run.folder, "summary.json"), summary, indent=1)
    return summary


def summary_lines(summary: dict) -> list[str]:
    lines = [f"{summary['env']} seed {summary['seed']} ({summary['preset']} preset, recipe {summary['recipe_key']}, "
             f"commit {summary['commit']})"]
    for seeds, score in summary["scores"].items():
        lines.append(f"  {seeds}: {score['mean']:.2f} +- {score['std']:.2f} over {score['episodes']} episodes")
    chosen = summary["selection"]["candidates"][summary["selection"]["chosen"]]
    lines.append(f"  chosen: {chosen['phase']} generation {chosen['generation']} (selection mean "
                 f"{chosen['selection_mean']:.2f})")
    lines.append(f"  core-hours: {summary['core_hours_total']:.2f} ("
                 + ", ".join(f"{stage} {hours:.2f}" for stage, hours in summary["core_hours"].items()) + ")")
    if summary.get("note"):
        lines.append(f"  note: {summary['note']}")
    return lines


def read_summary(folder: str) -> dict | None:
    from reading import SMALL_JSON_BYTES, read_json

    path = os.path.join(folder, "summary.json")
    if not os.path.exists(path):
        return None
    return read_json(path, SMALL_JSON_BYTES, "a reproduce summary", "delete it and resume the run to write it again")


def status_lines(run) -> list[str]:
    """Where a run stands: phase, generation, last evaluation, core-hours spent, an estimate of what is left."""
    state = run.state
    spent = sum(state.cpu_s.values())
    rows = run.steps()
    pending = [(name, header) for name, header, _ in rows if name not in state.done]
    lines = [f"{run.recipe.env} seed {run.seed} ({run.recipe.preset} preset, recipe {run.key}): "
             f"{len(rows) - len(pending)} of {len(rows)} steps done, {spent / 3600:.2f} core-hours spent"]
    if state.finished:
        lines.append("finished: " + os.path.join(run.folder, "summary.json"))
        return lines
    if not pending:
        lines.append("every step done; the summary is written next")
        return lines
    name, header = pending[0]
    lines.append(f"now: {name}, {header}")
    # controller work: generations done and owed, and CPU per generation-episode so far
    episodes_done = episodes_owed = 0
    for step in run.recipe.steps:
        if not isinstance(step, ControllerPhase):
            continue
        generation = 0
        population = step.population
        for run_index, settings in enumerate(state.phases.get(step.name, [])):
            trained = run.trained(step, run_index)
            done = trained.generation if trained else 0
            episodes_done += done * settings["population"] * step.episodes
            generation = settings["start"] + done
            population = settings["population"]
            if trained and trained.evaluations and step.name == name:
                last = trained.evaluations[-1]
                lines.append(f"  last evaluation: {last.score:.2f} at generation {settings['start'] + last.generation}"
                             + (f" ({last.real_score:.2f} in the game)" if last.real_score is not None else ""))
        if step.name == name:
            lines.append(f"  generation {generation} of {step.generations} (population {population})")
        if step.name not in state.done:
            episodes_owed += (step.generations - generation) * population * step.episodes
    phases = {step.name for step in run.recipe.steps if isinstance(step, ControllerPhase)}
    controller_s = state.cpu_s.get("05", 0.0)
    if episodes_done and controller_s:
        left = episodes_owed * controller_s / episodes_done
        lines.append(f"left: about {left / 3600:.2f} core-hours of controller training ({episodes_owed:,} episodes "
                     f"at the rate so far), plus {sum(1 for n, _ in pending if n not in phases)} other steps")
    else:
        lines.append(f"left: {len(pending)} steps; no estimate before the first controller generations")
    return lines


def reproduce_runs(root: str, env: str) -> list[tuple[str, str, int]]:
    """(label, .hist.json, generations before) of the last controller phases (those selection draws from) of every
    seed's run of `env` under `root`, for plots.py: each restart drawn after the generation it went on from."""
    import re

    from cli import UserError
    from controller.training import training_files
    from recipe.presets import RECIPES, recipe_for
    from recipe.run import RunState

    base = os.path.join(root, env)
    folders = sorted((int(match.group(1)), name) for name in (os.listdir(base) if os.path.isdir(base) else [])
                     if (match := re.fullmatch(r"seed(\d+)", name)))
    runs = []
    for seed, name in folders:
        state_path = os.path.join(base, name, "state.json")
        if not os.path.exists(state_path):
            continue
        state = RunState.load(state_path)
        if (env, state.preset) not in RECIPES:
            continue
        recipe = recipe_for(env, state.preset, state.recipe_key)
        for phase_name in recipe.selection.phases:
            phase = recipe.phase(phase_name)
            for run_index, settings in enumerate(state.phases.get(phase_name, [])):
                log_dir = os.path.join(base, name, "phases", f"{phase_name}.{run_index}", "log")
                history = training_files(env, "cma", phase.episodes, settings["population"], log_dir=log_dir).history
                if os.path.exists(history):
                    label = f"seed {seed} {phase_name}" + (f", restart {run_index}" if run_index else "")
                    runs.append((label, history, settings["start"]))
    if not runs:
        raise UserError(f"no reproduce run of {env} with a controller history under {root}: start one with "
                        f"python reproduce.py {env} --seed N")
    return runs
