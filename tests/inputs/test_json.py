"""Kind 21: every JSON file approxmap writes parses with a strict reader (no NaN, Infinity),
also when results hold undefined numbers: a constant criterion (Spearman rho undefined),
label-free data (no loss), a model whose outputs are NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.torch import save_file

import approxmap as am

from .conftest import FAST, USER_MODELS, ok, run_cli, strict_json

CONSTANT_MODEL = USER_MODELS + '''

def constant():
    """Every filter equal: every criterion is constant, so rank correlations are undefined."""
    model = Net()
    for p in model.parameters():
        torch.nn.init.constant_(p, 0.01)
    return model
'''


@pytest.fixture(scope="module")
def cases(tmp_path_factory, data_npz):
    folder = tmp_path_factory.mktemp("json")
    (folder / "models.py").write_text(CONSTANT_MODEL)
    arrays = np.load(data_npz)
    np.savez(folder / "unlabeled.npz", x=arrays["x"])
    state = am.create_model("mnist-cnn").state_dict()
    state["fc_layers.2.weight"][0, 0] = math.nan
    save_file(state, folder / "nan.safetensors")
    return {
        "constant model": ("--model", f"{folder / 'models.py'}:constant", "--data",
                           f"npz:{data_npz}"),
        "label-free data": ("--data", f"npz:{folder / 'unlabeled.npz'}"),
        "NaN outputs": ("--weights", str(folder / "nan.safetensors"), "--data",
                        f"npz:{data_npz}"),
    }


PROFILE = ("profile", "--trials", "2", "--sigma", "0,1", "--budget", "0")
CRITERIA = ("significance", "--trials", "1", "--criteria", "l1,mean,apoz,taylor,resilience",
            "--calib-images", "20")
BUDGET = ("significance", "--trials", "1", "--criteria", "l1,resilience", "--budget", "1",
          "--calib-images", "20")
SENSITIVITY = ("sensitivity", "--ratios", "0.5", "--compare", "smallest,random", "--draws", "2",
               "--calib-images", "20")
PRUNE = ("prune", "--ratio", "0.5", "--calib-images", "20", "--repeats", "1")
RUNS = {  # each case with the commands where its undefined numbers show
    "constant model": [CRITERIA, BUDGET, SENSITIVITY],
    "label-free data": [PROFILE, CRITERIA, SENSITIVITY, PRUNE],
    "NaN outputs": [PROFILE, PRUNE],
}


@pytest.mark.parametrize("case", list(RUNS))
def test_every_json_file_is_standard_json(capsys, tmp_path, cases, case):
    files = []
    for i, argv in enumerate(RUNS[case]):
        out = tmp_path / str(i)  # a folder per command: each writes its own files
        ok(run_cli(capsys, *argv, *cases[case], *FAST, "--out", out))
        files += sorted(out.glob("*.json"))
    assert len(files) >= len(RUNS[case])
    for path in files:
        strict_json(path)
    names = {path.name for path in files}
    if case == "constant model":
        text = (tmp_path / "0" / "significance.json").read_text()
        assert "null" in text  # an undefined rho is written as null, not NaN
    if case == "label-free data":
        points = strict_json(tmp_path / "0" / "profile.json")["layers"][0]["points"]
        assert all(p["loss"] is None for p in points)
    if case == "NaN outputs":
        assert {"profile.json", "prune.json", "pruned.json"} <= names


def test_layers_json_is_standard_json(capsys, cases):
    outcome = ok(run_cli(capsys, "layers", "--json", *cases["NaN outputs"][:2]))
    json.loads(outcome.out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
