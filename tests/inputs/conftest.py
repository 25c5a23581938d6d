"""Shared helpers of the input-robustness tests: run the CLI in-process, check its one-line
errors, write tiny user models, and snapshot run folders byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from approxmap.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SRC = ROOT / "src"

# Small and fast: 20 images of the shipped 60-image MNIST fixture, one or two trials.
FAST = ("--images", "20", "--quiet")


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def run_cli(capsys, *argv: str) -> Outcome:
    """`approxmap ARGV` in this process (argparse's exits become codes)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def one_error(outcome: Outcome, *fragments: str, warnings_ok: bool = False) -> str:
    """Assert exit code 2 and exactly one `approxmap: error:` line naming `fragments` (and,
    with `warnings_ok`, only warning lines besides it); returns the error line."""
    lines = outcome.lines
    assert outcome.code == 2, (outcome.code, outcome.err)
    assert "Traceback" not in outcome.err, outcome.err
    errors = [line for line in lines if line.startswith("approxmap: error: ")]
    assert len(errors) == 1, outcome.err
    others = [line for line in lines if line not in errors]
    if warnings_ok:
        assert all(line.startswith("approxmap: warning: ") for line in others), outcome.err
    else:
        assert not others, outcome.err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def ok(outcome: Outcome) -> Outcome:
    assert outcome.code == 0, outcome.err
    assert "approxmap: error" not in outcome.err
    return outcome


@pytest.fixture(scope="session")
def data_npz(tmp_path_factory) -> Path:
    """The shipped 60-image MNIST fixture (6 per class), copied."""
    path = tmp_path_factory.mktemp("data") / "mnist60.npz"
    shutil.copy(FIXTURES / "mnist60.npz", path)
    return path


@pytest.fixture(scope="session")
def data_arg(data_npz) -> tuple[str, str]:
    return ("--data", f"npz:{data_npz}")


USER_MODELS = '''
import os

import torch
from torch import nn


class Net(nn.Module):
    """A tiny CNN; `fail_at`: the forward call that raises `exc`; `untraceable`: data-dependent
    control flow, so torch.fx cannot split it and every trial calls this forward."""

    def __init__(self, fail_at=None, exc=None, untraceable=False):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 7 * 7, 10)
        self.calls, self.fail_at, self.exc, self.untraceable = 0, fail_at, exc, untraceable

    def forward(self, x):
        if self.untraceable and float(x.sum()) < -1e30:
            x = -x
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise self.exc
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def good():
    return Net()


def from_env():
    """Fails at the forward call given by $AM_FAIL_AT (never when unset); same weights."""
    at = os.environ.get("AM_FAIL_AT")
    return Net(int(at) if at else None, ValueError("boom from the environment"),
               untraceable=True)


def raises_value():
    raise ValueError("bad configuration")


def raises_exit():
    raise SystemExit(3)


def raises_interrupt():
    raise KeyboardInterrupt


def returns_int():
    return 3


class Hungry(Net):
    def forward(self, x):
        if x.shape[0] > 4:
            raise MemoryError
        return super().forward(x)


def hungry():
    return Hungry()


class CudaHungry(Net):
    def forward(self, x):
        if x.shape[0] > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return super().forward(x)


def cuda_hungry():
    return CudaHungry()
'''

for _n in (3, 5):
    USER_MODELS += f'''

def forward_value_{_n}():
    return Net({_n}, ValueError("boom on call {_n}"))


def forward_exit_{_n}():
    return Net({_n}, SystemExit(4))


def forward_interrupt_{_n}():
    return Net({_n}, KeyboardInterrupt())
'''


@pytest.fixture(scope="session")
def user_models(tmp_path_factory) -> Path:
    """A module of tiny user models (see USER_MODELS), plus modules whose import raises."""
    folder = tmp_path_factory.mktemp("user")
    (folder / "models.py").write_text(textwrap.dedent(USER_MODELS))
    (folder / "import_raises.py").write_text("raise RuntimeError('import fails')\n")
    (folder / "import_exits.py").write_text("import sys\nsys.exit(5)\n")
    (folder / "import_interrupts.py").write_text("raise KeyboardInterrupt\n")
    (folder / "syntax_error.py").write_text("def broken(:\n")
    return folder


def snapshot(folder: Path) -> dict[str, str] | None:
    """Every file of a folder (recursively) and the hash of its bytes; None when absent."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def trial_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT * FROM trials").fetchall())


def strict_json(path: Path):
    """Parse as standard JSON: NaN, Infinity and -Infinity are errors."""
    def refuse(constant):
        raise ValueError(f"{path.name} holds the non-standard constant {constant}")
    return json.loads(path.read_text(), parse_constant=refuse)


def cli_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SRC))
    env.pop("AM_FAIL_AT", None)
    return env


def cli_process(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "approxmap", *map(str, argv)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)

