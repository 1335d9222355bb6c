"""plots.py: several 05 runs side by side from their logs, a restart drawn after the generation it went on from, a
malformed run refused in one line."""

import json
from pathlib import Path

import pytest

from es import load_optimizer
from tests.test_training_state import CHECKPOINT


# --- runs side by side: plots.py ---------------------------------------------------------------------------------

def test_plots_py_draws_runs_side_by_side_from_their_logs(tmp_path):
    from PIL import Image

    from figures import read_evaluations, read_history
    from tests.scripts import run

    rows = json.loads(Path(CHECKPOINT.replace(".es.pk", ".hist.json")).read_text())  # a committed run's logs
    evaluations = load_optimizer(CHECKPOINT)[1]["evaluations"]
    (tmp_path / "log").mkdir()
    history = tmp_path / "log" / "a.hist.json"
    history.write_text(json.dumps(rows))
    (tmp_path / "log" / "a.log.json").write_text(json.dumps(evaluations))
    assert read_history(str(history)) == ([row[0] for row in rows], [row[2] for row in rows])
    assert read_evaluations(str(tmp_path / "log" / "a.log.json")) == ([row[0] for row in evaluations],
                                                                      [row[1] for row in evaluations])
    other = tmp_path / "log" / "b.hist.json"  # a second run with no .log.json beside it: a line, no dots
    other.write_text(json.dumps([[1, 1.0, -20.5], [2, 2.0, 30]]))
    result = run("plots.py", f"seed 1000={history}", str(other), "--official", cwd=tmp_path)
    assert result.stdout.strip() == "log/runs.png" and result.stderr == ""
    with Image.open(tmp_path / "log" / "runs.png") as image:
        assert image.format == "PNG" and image.size == (800, 450)


@pytest.mark.parametrize("text, parsed", [
    ("log/a.hist.json", ("a", "log/a.hist.json", 0)),
    ("v5000=log/a.hist.json", ("v5000", "log/a.hist.json", 0)),
    ("restart=log/a.hist.json+182", ("restart", "log/a.hist.json", 182)),
    ("log/a.hist.json+7", ("a", "log/a.hist.json", 7)),
    ("x+y=log/a+b.hist.json", ("x+y", "log/a+b.hist.json", 0)),
])
def test_plots_py_reads_a_label_and_a_restart_s_generations_before(text, parsed):
    from figures import parse_run

    assert parse_run(text) == parsed


def test_plots_py_draws_a_restart_after_the_generation_it_went_on_from(tmp_path):
    from figures import read_run
    from tests.scripts import run

    (tmp_path / "r.hist.json").write_text("[[1, 300.0, 790.25], [2, 560.0, 841.64], [3, 830.0, 788.7]]")
    (tmp_path / "r.log.json").write_text("[[2, 774.48, [0.5]]]")
    assert read_run(str(tmp_path / "r.hist.json"), 182) == (([183, 184, 185], [790.25, 841.64, 788.7]),
                                                           ([184], [774.48]), ([], []))
    assert read_run(str(tmp_path / "r.hist.json")) == (([1, 2, 3], [790.25, 841.64, 788.7]), ([2], [774.48]),
                                                       ([], []))
    result = run("plots.py", "restart=r.hist.json+182", "--out", "r.png", "--official", cwd=tmp_path)
    assert result.stdout.strip() == "r.png" and (tmp_path / "r.png").stat().st_size > 0


def test_plots_py_draws_a_dream_run_s_real_game_checks(tmp_path):
    """A dream run's .log.json rows carry a fourth entry, the real game's mean of that generation's new best (None
    where it was not a new best): drawn as crosses at their generations, the dream's means as dots."""
    from figures import read_run
    from tests.scripts import run

    (tmp_path / "d.hist.json").write_text("[[1, 3.0, 310.5], [2, 6.0, 402.0], [3, 9.0, 455.25]]")
    (tmp_path / "d.log.json").write_text(
        "[[1, 520.0, [0.1], 388.5], [2, 505.0, [0.2], null], [3, 610.0, [0.3], 640.75]]")
    assert read_run(str(tmp_path / "d.hist.json"), 10) == (([11, 12, 13], [310.5, 402.0, 455.25]),
                                                          ([11, 12, 13], [520.0, 505.0, 610.0]),
                                                          ([11, 13], [388.5, 640.75]))
    result = run("plots.py", "dream=d.hist.json+10", "--out", "d.png", cwd=tmp_path)
    assert result.stdout.strip() == "d.png" and (tmp_path / "d.png").stat().st_size > 0


@pytest.mark.parametrize("content, beside, message", [
    (None, None, "does not exist"),
    ("[[1, 2.0, 3", None, "is not JSON"),
    ("{}", None, "is not a controller run's history"),
    ("[]", None, "has no generation yet"),
    ("[[1, 2.0]]", None, "its rows start [generation, elapsed s, average]"),
    ("[[1, 2.0, NaN]]", None, "row 1: nan is not a finite number"),
    ('[[1, 2.0, 5], [2, 3.0, "7"]]', None, "row 2: '7' is not a finite number"),
    ("[[1, 2.0, true]]", None, "row 1: True is not a finite number"),
    (f"[[1, 2.0, 1{'0' * 400}]]", None, "row 1: 10000000000000000... is not a finite number"),
    ("[[1, 2.0, 5]]", "[[1, Infinity, []]]", "b.log.json, row 1: inf is not a finite number"),
    ("[[1, 2.0, 5]]", "[3]", "is not a controller run's evaluations"),
    ("[[1, 2.0, 5]]", '[[1, 4.0, [], "high"]]', "b.log.json, row 1: 'high' is not a finite number"),
])
def test_plots_py_refuses_a_malformed_run_in_one_line_and_writes_nothing(tmp_path, content, beside, message):
    from tests.scripts import run
    from tests.test_finite_and_flags import refused

    if content is not None:
        (tmp_path / "b.hist.json").write_text(content)
    if beside is not None:
        (tmp_path / "b.log.json").write_text(beside)
    refused(run("plots.py", "b.hist.json", "--out", "out.png", cwd=tmp_path, check=False), message)
    assert not (tmp_path / "out.png").exists()


def test_plots_py_refuses_what_is_not_a_history_or_a_png(tmp_path):
    from tests.scripts import run
    from tests.test_finite_and_flags import refused

    refused(run("plots.py", "b.log.json", cwd=tmp_path, check=False), "b.log.json is not a .hist.json file")
    refused(run("plots.py", "b.hist.json", "--out", "x.jpg", cwd=tmp_path, check=False), "ending in .png")
    (tmp_path / "b.hist.json").write_text("[[1, 2.0, 5]]")
    (tmp_path / "file").write_text("")
    refused(run("plots.py", "b.hist.json", "--out", "file/x.png", cwd=tmp_path, check=False),
            f"cannot write to {tmp_path / 'file'}: ")
