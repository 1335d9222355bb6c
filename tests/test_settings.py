"""cli's typed settings: a frozen dataclass declares a script's flags; parsing gives an instance of it, checked, with
the flags a command line gave; to_argv gives the command line back."""

from __future__ import annotations

import dataclasses

import pytest

from cli import SettingsParser, UserError, option, to_argv


@dataclasses.dataclass(frozen=True)
class Example:
    env_name: str = option(help="the environment", positional=True, choices=("car_racing", "doom_take_cover"))
    num_worker: int = option(4, "worker processes", flags=("-n",), hidden=("--num_workers",))
    sigma_init: float = option(0.1, "initial step size")
    temperature: float | None = option(None, "dream temperature (default: the environment's)")
    new_model: bool = option(False, "start from scratch")
    seeds: tuple[int, ...] = option((1, 2), "episode seeds")

    def __post_init__(self):
        if self.num_worker < 1:
            raise UserError(f"--num_worker must be at least 1, got {self.num_worker}")


def parser() -> SettingsParser:
    return SettingsParser(Example, description="an example")


def test_defaults_types_and_frozen():
    settings = parser().parse(["doom_take_cover"])
    assert settings == Example("doom_take_cover", 4, 0.1, None, False, (1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.num_worker = 3


def test_every_spelling_and_type():
    settings = parser().parse(["car_racing", "-n", "2", "--sigma_init", "0.5", "--temperature", "1.15",
                               "--new_model", "--seeds", "7", "8", "9"])
    assert settings == Example("car_racing", 2, 0.5, 1.15, True, (7, 8, 9))
    assert type(settings.num_worker) is int and type(settings.sigma_init) is float
    assert parser().parse(["car_racing", "--num_workers", "3"]).num_worker == 3  # the hidden old spelling


def test_given_names_the_flags_on_the_command_line():
    assert parser().given(["car_racing"]) == frozenset()
    assert parser().given(["car_racing", "-n", "4", "--num_workers", "4", "--new_model"]) == {"num_worker",
                                                                                              "new_model"}


def test_checks_run_on_parse_and_on_replace():
    with pytest.raises(UserError, match="--num_worker must be at least 1, got 0"):
        parser().parse(["car_racing", "-n", "0"])
    with pytest.raises(UserError, match="got -2"):
        dataclasses.replace(parser().parse(["car_racing"]), num_worker=-2)


def test_refused_command_lines_exit_2(capsys):
    for argv in (["car_racing", "--num_work", "2"], ["cartpole"], ["car_racing", "-n", "two"], []):
        with pytest.raises(SystemExit) as stop:
            parser().parse(argv)
        assert stop.value.code == 2
    assert capsys.readouterr().err.count("error: ") == 4


def test_help_shows_every_default_but_not_hidden_spellings(capsys):
    with pytest.raises(SystemExit):
        parser().parse(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("worker processes (default: 4)", "initial step size (default: 0.1)", "episode seeds (default: 1 2)"):
        assert shown in text
    assert "--num_workers" not in text


@pytest.mark.parametrize("settings", [Example("car_racing"), Example("doom_take_cover", 2, 0.25, 1.1, True, (5,)),
                                      Example("car_racing", seeds=(3, 4, 5), new_model=True)])
def test_to_argv_round_trips(settings):
    assert parser().parse(to_argv(settings)) == settings
    assert to_argv(Example("car_racing", 2)) == ["car_racing", "--num_worker", "2"]
    assert to_argv(Example("car_racing", 2), only=("sigma_init",)) == ["--sigma_init", "0.1"]
