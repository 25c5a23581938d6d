"""Helpers of tests/cases: kinds of models that broke neighbouring tools (issue 7).

`fixtures/` holds copies of the failure cases (model files with `build()` factories, their
state_dicts, loaded with weights_only=True, and 5-class 1x16x16 evaluation data); the tests
load them by path, as the command line does with `--model path.py:factory`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

import approxmap as am
from approxmap.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def case(name: str):
    """The model module fixtures/<name>.py (imported once)."""
    key = f"approxmap_test_case_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, FIXTURES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def weights(name: str) -> dict[str, torch.Tensor]:
    return torch.load(str(FIXTURES / name), weights_only=True)


def load_data(name: str = "cases.npz", images: int | None = None) -> am.EvalData:
    z = np.load(FIXTURES / name)
    data = am.EvalData(torch.from_numpy(z["x"]), torch.from_numpy(z["y"]), name)
    return data.subset(images) if images else data


def spec(name: str, factory: str = "build") -> str:
    """A --model argument for fixtures/<name>.py:factory."""
    return f"{FIXTURES / name}.py:{factory}"


def npz(name: str = "cases.npz") -> str:
    return f"npz:{FIXTURES / name}"


def top1_accuracy(model: torch.nn.Module, data: am.EvalData) -> float:
    """The plain eval-mode accuracy of `model` (inputs cast to its floating dtype)."""
    from approxmap.core.layers import cast_to_model

    with torch.no_grad():
        logits = model.eval()(cast_to_model(model, data.x))
    return int((logits.argmax(1) == data.y).sum()) / len(data.y)


class Cli:
    """Runs `approxmap ...` in this process and checks the one-line error contract."""

    def __init__(self, capsys) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, err
        return rc, out, err

    def ok(self, *args: str) -> tuple[str, str]:
        rc, out, err = self(*args)
        assert rc == 0, err
        return out, err

    def refused(self, *args: str) -> str:
        """The command's one error line (exit code 2, no other line but warnings)."""
        rc, out, err = self(*args)
        lines = err.splitlines()
        errors = [line for line in lines if line.startswith("approxmap: error:")]
        assert rc == 2, (rc, out, err)
        assert len(errors) == 1, err
        assert all(line.startswith(("approxmap: error:", "approxmap: warning:"))
                   for line in lines), err
        return errors[0]


RUN = ("--quiet", "--batch-size", "64")  # every analysis command
ONE = ("--trials", "1")  # profile and significance
