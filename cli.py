"""The scripts' command line: the error a user can fix (UserError), the parser that refuses abbreviated flags, the
one line and exit status a script ends with (run_cli), and the checks of flag values made before any work.

Nothing here imports NumPy or TensorFlow: a script imports it before `blas.prepare_blas()`, and rollout workers
raise its UserError.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import signal
import sys
import typing
from typing import Callable, Sequence


class UserError(Exception):
    """A problem the user can fix (a missing or corrupt input, a bad flag). Printed as one line, exit status 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (a `kill`, a scheduler ending the job). A KeyboardInterrupt, so that every clean-up written for
    Ctrl-C (temporary files removed, rollout workers stopped) runs for it too."""


_sigterm_received = False


def _raise_terminated(signum, frame) -> None:
    global _sigterm_received
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up of the first
    _sigterm_received = True
    raise Terminated()


class HelpWithDefaults(argparse.HelpFormatter):
    """--help with every flag's default: "(default: X)" follows a help text that does not name its default itself,
    for a flag whose default is a value (not None, "", [] or () (an empty tuple field), which each help text explains,
    nor a switch's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if (text == argparse.SUPPRESS or "default" in text.lower() or default is False or default in (None, "", [], ())
                or default == argparse.SUPPRESS):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


class ArgumentParser(argparse.ArgumentParser):
    """The scripts' command-line parser: a flag is taken only as spelled in --help (argparse's default takes any
    unambiguous prefix, so a typo such as 01's `--total_episode 4` would run as --total_episodes and write over a
    batch, and model.py's `--final` would start 100 episodes), and a command line it refuses is one line,
    `error: ...` with exit status 2, without the usage text. Its --help gives every flag's default
    (HelpWithDefaults). Its subcommands' parsers are of this class too."""

    def __init__(self, *args, allow_abbrev: bool = False, formatter_class=HelpWithDefaults, **kwargs):
        super().__init__(*args, allow_abbrev=allow_abbrev, formatter_class=formatter_class, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


class StoppedPartWay(KeyboardInterrupt):
    """A Ctrl-C or SIGTERM (`stop`) that came part-way through work whose result so far is worth a word (`done`,
    e.g. "after 72 of 100 episodes: 801.20 +- 90.03 over 72"): the script's last line says both."""

    def __init__(self, stop: KeyboardInterrupt, done: str):
        super().__init__(done)
        self.stop, self.done = stop, done


def exit_line(error: BaseException) -> tuple[str, int] | None:
    """The one line and exit status with which a script ends on `error`, or None if it is a bug (a traceback). A stop
    that C code wrapped in another exception ends the script as that stop (stop_within)."""
    if not isinstance(error, UserError):
        error = stop_within(error)
    if isinstance(error, StoppedPartWay):
        line, status = exit_line(error.stop)
        return f"{line} {error.done}", status
    if isinstance(error, UserError):
        return f"error: {error}", 1
    if isinstance(error, Terminated):
        return "terminated (SIGTERM)", 128 + signal.SIGTERM
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    return None


def stop_within(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM (a KeyboardInterrupt) that `error` is, or that C code turned into it: a signal handled
    inside a C function that then returned a result (TensorFlow converting a NumPy array) is raised as "SystemError:
    ... returned a result with an exception set", with the handler's exception as its __cause__. Only causes are
    followed: an error raised while handling a stop (its __context__) is a bug of its own."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


def _quiet_unraisable(unraisable) -> None:
    """sys.unraisablehook once a script stops on Ctrl-C or SIGTERM: an object the stop cut half-way through building
    (a Box2D body whose constructor the signal interrupted) fails in its finalizer as the script exits, and Python
    would print that after the script's last line."""


def run_cli(main: Callable[[], object]) -> None:
    """Run a script's main(): a UserError, Ctrl-C or SIGTERM prints one line to stderr and exits non-zero (1, 130,
    143), no traceback. SIGTERM is turned into an exception (Terminated) so that it unwinds like Ctrl-C: a save under
    way removes its temporary file, and no partial file is left. A stop that C code wrapped in another exception is
    still a stop (stop_within), and what finalizers say as the stopped script exits is not printed."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # leave a handler or an inherited SIG_IGN alone
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main()
        if _sigterm_received:  # its exception was lost (raised where Python only prints it): still not a success
            raise Terminated()
    except (Exception, KeyboardInterrupt) as error:
        ending = exit_line(error)
        if ending is None:
            raise
        line, status = ending
        if not isinstance(error, UserError):
            sys.unraisablehook = _quiet_unraisable
        print(line, file=sys.stderr)
        sys.exit(status)


MAX_SEED = 2 ** 62  # a seed flag's largest value: a run's seeds count up from it and are kept as int64


def check_flags(args, at_least: dict[str, int] | None = None, positive: Sequence[str] = (),
                non_negative: Sequence[str] = (), seeds: Sequence[str] = ()) -> None:
    """Refuse out-of-range flags before any work, one line each. at_least: {flag: minimum} for integers; positive
    and non_negative: float flags that must be finite and > 0 (or >= 0); argparse reads "nan" and "inf" as floats,
    and a NaN compares False with everything, so it would pass a plain `< 0` test; seeds: integer flags from 0 to
    MAX_SEED (NumPy takes no negative seed, and one past int64 overflowed deep in a run). A None (unset) flag
    passes."""
    for name, minimum in (at_least or {}).items():
        value = getattr(args, name)
        if value is not None and value < minimum:
            raise UserError(f"--{name} must be at least {minimum}, got {value}")
    for name in seeds:
        value = getattr(args, name)
        if value is not None and not 0 <= value <= MAX_SEED:
            raise UserError(f"--{name} must be from 0 to {MAX_SEED} (2^62), got {value}")
    for names, low, words in ((positive, "above", "above 0"), (non_negative, "from", "0 or more")):
        for name in names:
            value = getattr(args, name)
            if value is None:
                continue
            if not math.isfinite(value) or value < 0 or (low == "above" and value == 0):
                raise UserError(f"--{name} must be a finite number {words}, got {value}")


def check_init_from(init_from: str | None, out_dir: str, out_flag: str, model: str) -> None:
    """--init_from DIR starts a new model from DIR's NumPy copy and writes it to `out_dir`: the same folder would
    overwrite what it starts from, so it is refused (`model`: "V" or "M")."""
    if init_from is not None and os.path.realpath(init_from) == os.path.realpath(out_dir):
        raise UserError(f"--init_from {init_from} is the {out_flag} the new {model} is written to; give another "
                        f"{out_flag} (or leave --init_from out to resume that {model})")


# Typed settings: a script's flags declared once, as the fields of a frozen dataclass (in the manner of CleanRL's
# `Args`), each with its default and help. The parser is made from the class, and a parsed command line is an
# instance of it: typed, checked in its __post_init__ (a UserError), never changed after (dataclasses.replace makes
# a changed copy, checked again). Library code takes the settings object or its fields, never an argparse Namespace.

def option(default=dataclasses.MISSING, help: str = "", *, flags: Sequence[str] = (), positional: bool = False,
           hidden: Sequence[str] = (), **argparse_options):
    """A settings field that is a command-line flag `--<field name>`: its default, its --help text, short `flags`
    (e.g. ("-o",)), `hidden` old spellings accepted but not shown (e.g. ("--num_workers",)), `positional` for an
    argument without a flag, and any other add_argument option (choices, metavar, type, nargs, const, action). The
    type comes from the field's annotation (str, int, float, a bool switch, `X | None`, `tuple[X, ...]`) unless
    `type` or `action` is given."""
    metadata = {"help": help, "flags": tuple(flags), "positional": positional, "hidden": tuple(hidden),
                "argparse": argparse_options}
    return dataclasses.field(default=default, metadata={"cli": metadata})


def _flag_fields(settings_class) -> list[tuple[dataclasses.Field, dict, type]]:
    """The fields of `settings_class` that are flags, each with its option() metadata and its annotated type."""
    hints = typing.get_type_hints(settings_class)
    return [(field, field.metadata["cli"], hints[field.name]) for field in dataclasses.fields(settings_class)
            if "cli" in field.metadata]


def _plain_type(annotation) -> tuple[type, bool]:
    """(the type a flag's text is read as, whether it is a tuple of them) of an annotation: `int | None` -> int,
    `tuple[float, ...]` -> (float, True)."""
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (tuple, list):
        return arguments[0], True
    if arguments and typing.get_origin(annotation) is not None:  # a union with None
        return _plain_type(arguments[0])[0], False
    return annotation, False


def add_settings(parser: argparse.ArgumentParser, settings_class) -> None:
    """Add a flag (or positional argument) for every option() field of the dataclass `settings_class`."""
    for field, meta, annotation in _flag_fields(settings_class):
        kind, many = _plain_type(annotation)
        options = dict(meta["argparse"])
        if "action" not in options and "type" not in options:
            if kind is bool:
                options["action"] = "store_true"
            else:
                options["type"] = kind
        if many:
            options.setdefault("nargs", "+")
        default = field.default
        if meta["positional"]:
            if default is not dataclasses.MISSING:
                options.setdefault("nargs", "?")
                options["default"] = default
            parser.add_argument(field.name, help=meta["help"], **options)
            continue
        if default is not dataclasses.MISSING:
            options["default"] = default
        else:
            options["required"] = True
        parser.add_argument(*meta["flags"], f"--{field.name}", dest=field.name, help=meta["help"], **options)
        for alias in meta["hidden"]:
            options.update(default=argparse.SUPPRESS, required=False)
            parser.add_argument(alias, dest=field.name, help=argparse.SUPPRESS, **options)


def settings_from(settings_class, namespace: argparse.Namespace):
    """The `settings_class` instance of a parsed command line (its flags' values; a tuple field as a tuple)."""
    values = {}
    for field, _, annotation in _flag_fields(settings_class):
        value = getattr(namespace, field.name)
        values[field.name] = tuple(value) if _plain_type(annotation)[1] and value is not None else value
    return settings_class(**values)


def given_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> frozenset[str]:
    """The destinations of the flags `argv` gives (short and hidden spellings included): what a resume treats as
    asked for, as opposed to left at its default. Parsed again with every default replaced by a marker."""
    marker = object()
    again = copy.deepcopy(parser)
    flags = {action.dest for action in again._actions if action.option_strings and action.dest != "help"}
    again.set_defaults(**dict.fromkeys(flags, marker))
    return frozenset(name for name, value in vars(again.parse_args(argv)).items()
                     if name in flags and value is not marker)


class SettingsParser(ArgumentParser):
    """The parser of one settings dataclass: `parse(argv)` is an instance of it, `given(argv)` the flags given."""

    def __init__(self, settings_class, **kwargs):
        super().__init__(**kwargs)
        self.settings_class = settings_class
        add_settings(self, settings_class)

    def parse(self, argv: Sequence[str] | None = None):
        return settings_from(self.settings_class, self.parse_args(argv))

    def given(self, argv: Sequence[str] | None = None) -> frozenset[str]:
        return given_flags(self, argv)


def to_argv(settings, only: Sequence[str] | None = None) -> list[str]:
    """The command-line arguments that give `settings` (its fields that differ from their default, or the fields
    named in `only`): parsing them with its class's parser gives `settings` again."""
    positional, argv = [], []
    for field, meta, annotation in _flag_fields(type(settings)):
        value = getattr(settings, field.name)
        if (only is None and value == field.default) or (only is not None and field.name not in only):
            continue
        kind, many = _plain_type(annotation)
        words = [str(int(v) if isinstance(v, bool) else v) for v in (value if many else [value])]
        if meta["positional"]:
            positional += words
        elif meta["argparse"].get("action") is None and kind is bool and "type" not in meta["argparse"]:
            if value:  # a switch: present or not
                argv.append(f"--{field.name}")
        elif value is not None:
            argv += [f"--{field.name}", *words]
    return positional + argv
