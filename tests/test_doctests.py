"""The docstring examples run, as pycma's do: es.py's ask/tell loop solves a sphere, and the episode loop
(episodes.py) plays the same episode for the same seed. A module whose example no longer holds fails here."""

import doctest

import pytest

import episodes
import es


@pytest.mark.parametrize("module", [es, episodes], ids=lambda module: module.__name__)
def test_the_docstring_examples_hold(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module.__name__} has no docstring example"
    assert result.failed == 0
