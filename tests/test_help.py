"""Every script's --help, as a user reads it: each flag has a help text, and each flag whose default is a value (not
None, "" or [], nor a switch's False) says its default. Each script runs as a subprocess with --help, its parser's
flags and defaults read beside the printed text (argparse's print_help, wrapped); nothing is trained."""

import json
import os
import re
import sys

import pytest

from scripts import ENVIRONMENT, ROOT, run_command

pytestmark = pytest.mark.slow  # a subprocess per script and subcommand: left out of make test-fast

COMMANDS = [("01_generate_data.py",), ("02_train_vae.py",), ("03_generate_rnn_data.py",), ("04_train_rnn.py",),
            ("05_train_controller.py",), ("model.py",), ("pretrained.py",), ("pretrained.py", "pack"),
            ("pretrained.py", "verify"), ("pretrained.py", "card"), ("pretrained.py", "play"), ("reproduce.py",),
            ("sweep_temperature.py",), ("plots.py",), ("examples/play_car_racing.py",), ("examples/v_error_by_tic.py",)]

# Runs a script with --help after wrapping argparse's print_help: what it prints goes on as before, and the parser's
# flags (option strings, default, help) go to stderr as one JSON line.
HARNESS = """
import argparse, json, runpy, sys
printed = argparse.ArgumentParser.print_help
def print_help(parser, file=None):
    printed(parser, file)
    flags = [{"options": action.option_strings, "help": action.help, "default": repr(action.default),
              "no_default": action.default is None or action.default is False or action.default in ("", [])
                            or action.default == argparse.SUPPRESS}
             for action in parser._actions if action.option_strings and action.dest != "help"]
    print("FLAGS " + json.dumps(flags), file=sys.stderr)
argparse.ArgumentParser.print_help = print_help
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def help_entries(text: str) -> dict[str, str]:
    """{option string: its help text} of --help's option lines ("  -n N, --num_worker N   help", wrapped)."""
    entries, current = {}, None
    for line in text.splitlines():
        match = re.match(r"^  (-\S.*)$", line)
        if match:
            head, *rest = re.split(r"\s{2,}", match.group(1), maxsplit=1)  # the help may start on the next line
            current = rest[:1]
            for option in re.findall(r"(?:^|, )(--?[A-Za-z][\w-]*)", head):
                entries[option] = current
        elif current is not None and re.match(r"^\s{3,}\S", line):
            current.append(line.strip())
        else:
            current = None
    return {option: " ".join(part for part in parts if part) for option, parts in entries.items()}


def script_help(command: tuple[str, ...]) -> tuple[str, list[dict]]:
    script, *words = command
    result = run_command([sys.executable, "-c", HARNESS, os.path.join(ROOT, script), *words, "--help"], cwd=ROOT,
                         timeout=120, env=ENVIRONMENT)
    assert result.returncode == 0, f"{' '.join(command)} --help failed:\n{result.stderr}"
    flags = next(json.loads(line[len("FLAGS "):]) for line in result.stderr.splitlines() if line.startswith("FLAGS "))
    return result.stdout, flags


def help_problems(text: str, flags: list[dict]) -> list[str]:
    """A shown flag without a help text, or with a default its help text does not name."""
    entries, problems = help_entries(text), []
    for flag in flags:
        if flag["help"] == "==SUPPRESS==":  # a hidden alias: not shown, so nothing to check
            assert not set(flag["options"]) & set(entries), f"{flag['options']} is hidden but shown"
            continue
        shown = entries.get(flag["options"][-1], "")
        if not shown:
            problems.append(f"{flag['options'][-1]}: no help text")
        elif not flag["no_default"] and "default" not in shown.lower():
            problems.append(f"{flag['options'][-1]}: its default {flag['default']} is not shown")
    return problems


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_flag_has_a_help_text_and_its_default(command):
    text, flags = script_help(command)
    assert help_problems(text, flags) == []


def test_a_flag_without_help_or_default_is_caught():
    text = ("options:\n  -h, --help  show this help message and exit\n  --seed SEED\n"
            "  -n NUM_WORKER, --num_worker NUM_WORKER\n                        worker processes\n")
    flags = [{"options": ["--seed"], "help": None, "default": "0", "no_default": False},
             {"options": ["-n", "--num_worker"], "help": "worker processes", "default": "4", "no_default": False}]
    assert help_problems(text, flags) == ["--seed: no help text", "--num_worker: its default 4 is not shown"]


# The shared flags' spellings, parsed by each script's own parse_args in one subprocess (a script's file name starts
# with a digit: it is loaded by path, as tests/test_readme.py loads them).
PARSE = """
import importlib.util, json, os, sys
sys.path.insert(0, os.getcwd())
modules, values = {}, []
for script, words, name in json.load(sys.stdin):
    if script not in modules:
        spec = importlib.util.spec_from_file_location("help_" + script[:-3].replace(".", "_"), script)
        modules[script] = module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    values.append(getattr(modules[script].parse_args(words), name))
print(json.dumps(values))
"""


def parsed(*cases: tuple[str, list[str], str]) -> list:
    result = run_command([sys.executable, "-c", PARSE], cwd=ROOT, timeout=120, env=ENVIRONMENT,
                         input=json.dumps(cases))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_dream_mode_takes_the_same_forms_in_05_and_model_py():
    forms = [[], ["--dream_mode"], ["--dream_mode", "1"], ["--dream_mode", "0"], ["--dream_mode=1"]]
    cases = [(script, ["doom_take_cover", *form], "dream_mode") for script in ("05_train_controller.py", "model.py")
             for form in forms]
    values = parsed(*cases)
    assert values == [0, 1, 1, 0, 1] * 2
    assert [type(value) for value in values] == [int] * 5 + [bool] * 5  # as 05's checkpoints and .final.json keep it


def test_num_worker_is_one_spelling_and_01s_older_one_still_works():
    assert parsed(("01_generate_data.py", ["--num_worker", "3"], "num_worker"),
                  ("01_generate_data.py", ["--num_workers", "2"], "num_worker"),
                  ("05_train_controller.py", ["car_racing", "-n", "5"], "num_worker"),
                  ("model.py", ["car_racing", "--num_worker", "6"], "num_worker")) == [3, 2, 5, 6]


@pytest.mark.parametrize("script", ["05_train_controller.py", "model.py"])
def test_a_dream_mode_of_another_value_is_refused_in_one_line(script):
    result = run_command([sys.executable, os.path.join(ROOT, script), "doom_take_cover", "--dream_mode", "2"],
                         cwd=ROOT, timeout=120, env=ENVIRONMENT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: argument --dream_mode: takes 0, 1 or nothing (1), got '2' (an ENV goes before --dream_mode) "
        f"(see: {script} --help)"]
