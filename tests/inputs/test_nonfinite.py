"""Kind 13: NaN/Inf evaluation inputs are one line naming the data, on every data path; NaN/Inf
in a weight never aborts a profile: the statistics leave them out and the trials count
non-finite outputs (DUE)."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import approxmap as am
from approxmap.core.exceptions import DataError
from approxmap.core.stats import SiteStats

from .conftest import FAST, ok, one_error, run_cli, strict_json

BAD_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@pytest.fixture
def bad_npz(tmp_path, data_npz):
    arrays = np.load(data_npz)
    files = {}
    for name, value in BAD_VALUES.items():
        for dtype in (np.float32, np.float64):
            x = arrays["x"].astype(dtype)
            x[7, 0, 3, 4] = value
            path = tmp_path / f"{name}-{np.dtype(dtype).name}.npz"
            np.savez(path, x=x, y=arrays["y"])
            files[path.stem] = path
    return files


COMMANDS = [("profile", "--sigma", "0,1", "--trials", "1"),
            ("significance", "--criteria", "l1"), ("sensitivity", "--ratios", "0.5"),
            ("prune", "--ratio", "0.5"), ("layers",)]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_nonfinite_inputs_are_one_line_naming_the_data(capsys, tmp_path, bad_npz, command):
    for stem, path in bad_npz.items():
        out = () if command[0] == "layers" else ("--out", tmp_path / "o", "--quiet")
        # --images 60: the bad sample is in every subset the commands take
        line = one_error(run_cli(capsys, *command, "--data", f"npz:{path}", "--images", "60",
                                 *out), "NaN or Inf", path.name)
        assert "1 samples" in line, stem
        assert not (tmp_path / "o").exists()


def test_every_data_path_reaches_the_check(tmp_path, data_npz):
    """npz, idx (float32 IDX images), the API's EvalData, and fine-tuning data."""
    x = np.load(data_npz)["x"].astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    images = x[:, 0]
    header = struct.pack(">BBBB", 0, 0, 0x0D, 3) + struct.pack(">3I", *images.shape)
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(header + images.astype(">f4").tobytes()))
    with pytest.raises(DataError, match="NaN or Inf"):
        am.create_dataset(f"idx:{folder}")
    with pytest.raises(DataError, match="NaN or Inf"):
        am.EvalData(torch.from_numpy(x))
    with pytest.raises(DataError, match="NaN or Inf"):
        am.EvalData(torch.from_numpy(x).double().mul(1e300).mul(1e300))  # Inf after a cast


def test_nonfinite_finetuning_data(capsys, tmp_path, data_arg, bad_npz):
    line = one_error(run_cli(capsys, "prune", "--ratio", "0.5", *data_arg, *FAST,
                             "--finetune-epochs", "1", "--train-data",
                             f"npz:{bad_npz['nan-float32']}", "--out", tmp_path / "o"),
                     "NaN or Inf")
    assert "nan-float32.npz" in line


@pytest.mark.parametrize("values", [[math.nan], [math.inf], [math.nan, -math.inf]])
def test_site_statistics_leave_nonfinite_values_out(values):
    clean = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    damaged = clean.clone()
    flat = damaged.view(-1)
    for i, value in enumerate(values):
        flat[7 + 11 * i] = value
    kept = torch.ones_like(flat, dtype=torch.bool)
    kept[[7 + 11 * i for i in range(len(values))]] = False
    stats = SiteStats.of(damaged)
    assert stats.nonfinite == len(values)
    assert stats.count == int(kept.sum())
    assert math.isclose(stats.std, float(flat[kept].double().std(unbiased=False)), rel_tol=1e-9)
    assert all(math.isfinite(v) for v in (stats.mean, stats.min, stats.max, stats.absmax))
    assert bool(torch.isfinite(stats.channel_std).all())
    assert bool(torch.isfinite(stats.sample).all())
    assert SiteStats.of(clean).nonfinite == 0


def test_a_site_without_one_finite_value():
    stats = SiteStats.of(torch.full((2, 3, 4), math.nan))
    assert (stats.count, stats.nonfinite, stats.std) == (0, 24, 0.0)
    assert am.Gaussian(std=1.0, scale="rel").resolve(stats).std == 0.0


@pytest.fixture(scope="module")
def damaged_weights(tmp_path_factory):
    """mnist-cnn with one NaN weight and one Inf weight in fc_layers.2, and one with a NaN
    weight in conv_layers.0."""
    folder = tmp_path_factory.mktemp("weights")
    state = am.create_model("mnist-cnn").state_dict()
    files = {}
    for name, key, value in (("nan-fc", "fc_layers.2.weight", math.nan),
                             ("inf-fc", "fc_layers.2.weight", math.inf),
                             ("nan-conv", "conv_layers.0.weight", math.nan)):
        damaged = {k: v.clone() for k, v in state.items()}
        damaged[key].view(-1)[5] = value
        files[name] = folder / f"{name}.safetensors"
        save_file(damaged, files[name])
    return files


@pytest.mark.parametrize("weights", ["nan-fc", "inf-fc", "nan-conv"])
@pytest.mark.parametrize("site", ["weight", "output"])
def test_a_nonfinite_weight_at_the_injected_layer_counts_due(capsys, tmp_path, data_arg,
                                                             damaged_weights, weights, site):
    layer = "conv_layers.0" if weights == "nan-conv" else "fc_layers.2"
    out = tmp_path / "o"
    outcome = ok(run_cli(capsys, "profile", "--weights", damaged_weights[weights], *data_arg,
                         *FAST, "--trials", "2", "--sigma", "0,0.5,1", "--site", site,
                         "--layers", layer, "--out", out))
    assert all(line.startswith("approxmap: warning:") for line in outcome.lines)
    assert any("NaN or Inf" in line for line in outcome.lines)
    profile = strict_json(out / "profile.json")
    points = profile["layers"][0]["points"]
    assert [p["magnitude"] for p in points] == [0, 0.5, 1]
    assert all(p["nonfinite"] > 0 and p["trials"] == 2 for p in points)
