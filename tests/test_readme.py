"""The README against the scripts: every flag its stage table names exists in that script's --help (and every flag
of --help is in the table), and every table of the README renders: no blank line inside it, as many cells in each
row as in its header. Each script runs with --help as a subprocess, as a user would; nothing is trained."""

import functools
import glob
import json
import os
import re
import sys

import pytest

from scripts import ENVIRONMENT, ROOT, run_command

README = os.path.join(ROOT, "README.md")
STAGE_HEADER = ("stage", "flags (default)", "writes")
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")  # -o, --num_worker; not 1e-4, first-frame or a_{t-1}
SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


def read_readme() -> str:
    with open(README, encoding="utf-8") as handle:
        return handle.read()


def cells(line: str) -> list[str]:
    """The cells of a table row: split on the pipes that are not escaped (a pipe in a code span splits it too)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def tables(text: str) -> list[tuple[int, list[str]]]:
    """Every run of consecutive lines starting with '|', with the number of its first line (1-based)."""
    found, block, start = [], [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("|"):
            if not block:
                start = number
            block.append(line)
        elif block:
            found.append((start, block))
            block = []
    if block:
        found.append((start, block))
    return found


def table_problems(text: str) -> list[str]:
    """What keeps a table from rendering as one table: a fragment without its header and separator (a blank line
    cut it), or a row with another number of cells than the header."""
    problems = []
    for start, lines in tables(text):
        if len(lines) < 2 or not SEPARATOR.match(lines[1].strip()):
            problems.append(f"line {start}: a table row without a header and separator line above it "
                            f"(a blank line inside a table?)")
            continue
        width = len(cells(lines[0]))
        for offset, line in enumerate(lines):
            if len(cells(line)) != width:
                problems.append(f"line {start + offset}: {len(cells(line))} cells, the header has {width}")
    return problems


def stage_rows(text: str) -> list[tuple[list[str], list[str]]]:
    """(command words, cells) of each row of the stage table, e.g. (['pretrained.py', 'pack'], [...])."""
    for _, lines in tables(text):
        if tuple(cells(lines[0])) == STAGE_HEADER:
            rows = []
            for line in lines[2:]:
                row = cells(line)
                words = row[0].strip("`").split()
                rows.append(([word for word in words if not word.isupper()], row))  # ENV is a placeholder
            return rows
    raise AssertionError(f"README.md has no table with the header {' | '.join(STAGE_HEADER)}")


@functools.lru_cache(maxsize=None)
def help_flags(command: tuple[str, ...]) -> frozenset[str]:
    """Option strings of `python <script> [subcommand] --help` (both forms, as in -o and --optimizer)."""
    script, *words = command
    result = run_command([sys.executable, os.path.join(ROOT, script), *words, "--help"], cwd=ROOT, timeout=120,
                         env=ENVIRONMENT)
    assert result.returncode == 0, f"{' '.join(command)} --help failed:\n{result.stderr}"
    flags = set()
    for line in result.stdout.splitlines():
        match = re.match(r"\s+(-.*)", line)  # "  -o {cma,...}, --optimizer {cma,...}   help text"
        if match:
            head = re.split(r"\s{2,}", match.group(1))[0]
            flags.update(re.findall(r"(?:^|, )(--?[A-Za-z][\w-]*)", head))
    return frozenset(flags - {"-h", "--help"})


def unknown_flags(text: str) -> list[str]:
    """Flags the stage table names that its script's --help does not have."""
    problems = []
    for command, row in stage_rows(text):
        known = help_flags(tuple(command))
        for flag in sorted(set(FLAG.findall(" ".join(row[1:])))):
            if flag not in known:
                problems.append(f"{' '.join(command)}: {flag} is not in its --help")
    return problems


def test_the_readme_tables_render():
    assert table_problems(read_readme()) == []


def test_every_flag_in_the_stage_table_exists():
    assert unknown_flags(read_readme()) == []


def test_every_flag_of_every_script_is_in_the_stage_table():
    missing = []
    for command, row in stage_rows(read_readme()):
        named = set(FLAG.findall(" ".join(row[1:])))
        missing += [f"{' '.join(command)}: {flag}" for flag in sorted(help_flags(tuple(command)))
                    if flag.startswith("--") and flag not in named]
    assert missing == []


def test_every_script_has_a_row():
    scripts = {os.path.basename(path) for path in glob.glob(os.path.join(ROOT, "[0-9][0-9]_*.py"))}
    scripts |= {"model.py", "sweep_temperature.py", "pretrained.py", "plots.py"}
    assert scripts <= {command[0] for command, _ in stage_rows(read_readme())}


def test_a_misspelt_flag_is_caught():
    text = read_readme()
    assert "`--learning_rate` (1e-3" in text
    problems = unknown_flags(text.replace("`--learning_rate` (1e-3", "`--learning_rat` (1e-3"))
    assert problems == ["04_train_rnn.py: --learning_rat is not in its --help"]


@pytest.mark.parametrize("damage", ["blank line", "missing cell"])
def test_a_broken_table_is_caught(damage):
    text = read_readme()
    row = next(line for line in text.splitlines() if line.startswith("| `model.py ENV` |"))
    broken = row.replace("| `model.py ENV` |", "| `model.py ENV`") if damage == "missing cell" else "\n" + row
    problems = table_problems(text.replace(row, broken))
    assert len(problems) == 1, problems


# Every command line the documents give (README, docs/, runs/README.md, the shipped manifests' commands), parsed by
# its own script's parse_args, as a user pasting it would run it; placeholders (<mode>, ...) are left out.
DOCUMENTS = ("README.md", "docs/*.md", "runs/README.md")
COMMAND = re.compile(r"python3? ([\w.-]+\.py)\b([^\n]*)")
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", flags=re.M | re.S)  # indented too, in a list item
PLACEHOLDER = re.compile(r"<[^>]*>|\bENV\b")  # an elided value (--command ...) still parses
PARSE = """
import contextlib, importlib.util, io, json, os, shlex, sys
sys.path.insert(0, os.getcwd())
modules, problems = {}, []
for script, rest in json.load(sys.stdin):
    if script not in modules:
        spec = importlib.util.spec_from_file_location("doc_" + script[:-3].replace(".", "_"), script)
        modules[script] = module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    error = io.StringIO()
    try:
        with contextlib.redirect_stderr(error):
            modules[script].parse_args(shlex.split(rest, comments=True))
    except SystemExit:
        problems.append(f"{script}{rest}: " + error.getvalue().strip().splitlines()[-1])
print(json.dumps(problems))
"""


def code_snippets(text: str) -> list[str]:
    """Fenced blocks' lines (a trailing backslash joins the next) and inline code spans (one may wrap lines)."""
    snippets = []
    for block in re.findall(FENCE, text):
        snippets += block.replace("\\\n", " ").splitlines()
    prose = re.sub(FENCE, "", text)
    snippets += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    return snippets


def documented_commands(texts: list[str]) -> list[tuple[str, str]]:
    """(script, the rest of its line) of every `python <script>.py ...` in the snippets, placeholders left out."""
    found = []
    for text in texts:
        for snippet in code_snippets(text):
            for match in COMMAND.finditer(snippet):
                if not PLACEHOLDER.search(match.group(0)):
                    found.append((match.group(1), match.group(2)))
    return found


def manifest_commands() -> list[str]:
    texts = []
    for path in sorted(glob.glob(os.path.join(ROOT, "pretrained", "*", "manifest.json"))):
        with open(path, encoding="utf-8") as handle:
            texts += [f"```\n{command}\n```\n" for command in json.load(handle)["commands"]]
    return texts


def document_texts() -> list[str]:
    texts = []
    for pattern in DOCUMENTS:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            with open(path, encoding="utf-8") as handle:
                texts.append(handle.read())
    return texts + manifest_commands()


def parse_problems(commands: list[tuple[str, str]]) -> list[str]:
    """Each command that its script's argument parser refuses, with the parser's own last line."""
    result = run_command([sys.executable, "-c", PARSE], input=json.dumps(commands), cwd=ROOT, timeout=120,
                         env=ENVIRONMENT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_documented_command_parses():
    commands = documented_commands(document_texts())
    assert len(commands) > 100  # the extraction still finds the documents' commands
    assert {script for script, _ in commands} >= {"01_generate_data.py", "02_train_vae.py", "03_generate_rnn_data.py",
                                                  "04_train_rnn.py", "05_train_controller.py", "model.py",
                                                  "plots.py", "pretrained.py"}
    assert parse_problems(commands) == []


def test_a_documented_command_with_a_wrong_flag_is_caught():
    text = ("Train:\n```\npython 04_train_rnn.py --start_batch 0 --max_batch 9 --epochs 20   # a comment\n```\n"
            "- then C:\n  ```\n  python 05_train_controller.py car_racing \\\n    --num_worker 2 --num_episodes 4\n  ```\n"
            "and then `python model.py car_racing\n--final_mode --num_worker 2` or `python model.py car_racing"
            " --filename <best> --final_mode`.\n")
    commands = documented_commands([text])
    assert [script for script, _ in commands] == ["04_train_rnn.py", "05_train_controller.py", "model.py"]
    problems = parse_problems(commands)
    assert len(problems) == 1 and problems[0].startswith("05_train_controller.py car_racing")
    assert "error: unrecognized arguments: --num_episodes 4 (see: " in problems[0]
