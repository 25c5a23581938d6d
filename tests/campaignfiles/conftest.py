"""Fixtures of tests/campaignfiles (the helpers live in campaignkit.py)."""

import pytest

from approxmap.cli import main


@pytest.fixture
def cli(capsys):
    """main(argv) -> (exit code, stdout, stderr)."""
    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
