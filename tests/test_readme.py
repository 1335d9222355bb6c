"""The README against the scripts: every flag its stage table names exists in that script's --help (and every flag
of --help is in the table), and every table of the README renders: no blank line inside it, as many cells in each
row as in its header. Each script runs with --help as a subprocess, as a user would; nothing is trained."""

import functools
import glob
import os
import re
import subprocess
import sys

import pytest

from scripts import ENVIRONMENT, ROOT

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
    result = subprocess.run([sys.executable, os.path.join(ROOT, script), *words, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=ENVIRONMENT)
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
