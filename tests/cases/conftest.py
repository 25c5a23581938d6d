"""Fixtures of tests/cases (the helpers live in casekit.py)."""

import pytest
from casekit import Cli


@pytest.fixture
def cli(capsys) -> Cli:
    """`approxmap ...` run in this process: cli.ok(...), cli.refused(...)."""
    return Cli(capsys)
