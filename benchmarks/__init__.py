"""The speed of each stage (`make bench`: python -m benchmarks.run; docs/benchmarks.md)."""


def quick_flag(description: str, takes_quick: bool = True) -> bool:
    """A benchmark's command line: --quick (smaller samples) where it takes one, and nothing else; an unknown or
    abbreviated flag is refused in one line (cli.ArgumentParser), not ignored."""
    from cli import ArgumentParser

    parser = ArgumentParser(description=description)
    if takes_quick:
        parser.add_argument("--quick", action="store_true", help="smaller samples (a few minutes)")
    return bool(getattr(parser.parse_args(), "quick", False))
