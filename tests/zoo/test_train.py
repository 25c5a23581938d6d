"""Deterministic training, the checkpoint cache, and refusing checkpoints that carry code."""

from __future__ import annotations

import json
import pathlib
from dataclasses import replace

import pytest
import torch

import approxmap.cli as cli
from approxmap.core.data import EvalData
from approxmap.core.exceptions import ApproxmapError, CheckpointError, UnknownNameError
from approxmap.zoo import create_model, get_model_info
from approxmap.zoo.archs import LeNet5, build_arch
from approxmap.zoo.checkpoints import load_state_dict, load_weights_into
from approxmap.zoo.fashion import fashion_dir
from approxmap.zoo.trained import CACHE_ENV, cache_dir, checkpoint_path
from approxmap.zoo.training import RECIPES, ensure_writable, train, train_model

needs_fashion = pytest.mark.skipif(
    not (fashion_dir() / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST absent; install it with: apt-get install -y dataset-fashion-mnist",
)


def tiny_data(n: int, seed: int) -> EvalData:
    g = torch.Generator().manual_seed(seed)
    return EvalData(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))


def test_same_seed_same_weights_and_global_rng_untouched():
    train_data, test_data = tiny_data(300, 1), tiny_data(64, 2)
    recipe = replace(RECIPES["lenet5"], epochs=1, flip=True)
    rng_before = torch.get_rng_state()
    first = train_model("lenet5", train_data, test_data, recipe, seed=7, quiet=True)
    second = train_model("lenet5", train_data, test_data, recipe, seed=7, quiet=True)
    other = train_model("lenet5", train_data, test_data, recipe, seed=8, quiet=True)
    assert torch.equal(torch.get_rng_state(), rng_before)
    a, b, c = (r.model.state_dict() for r in (first, second, other))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    untimed = [{k: v for k, v in h.items() if k != "seconds"} for h in first.history]
    assert untimed == [{k: v for k, v in h.items() if k != "seconds"} for h in second.history]


def test_batchnorm_arch_trains_deterministically():
    train_data, test_data = tiny_data(130, 3), tiny_data(32, 4)
    recipe = replace(RECIPES["resnet20"], epochs=1, batch_size=64)
    runs = [train_model("resnet20", train_data, test_data, recipe, seed=1, quiet=True)
            for _ in range(2)]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["bn1.num_batches_tracked"]) == 3  # 64 + 64 + 2 samples


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "approxmap"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == pathlib.Path.home() / ".cache" / "approxmap"


def test_missing_checkpoint_names_the_train_command(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))  # vgg16-cifar ships no weights
    with pytest.raises(CheckpointError,
                       match="approxmap train --arch vgg16-cifar --data fashion-mnist"):
        create_model("vgg16-cifar")
    assert create_model("vgg16-cifar", pretrained=False) is not None  # the bare architecture


def test_layers_of_a_model_without_weights(monkeypatch, tmp_path, capsys):
    from approxmap.cli import main

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))  # vgg16-cifar ships no weights
    assert main(["layers", "--model", "vgg16-cifar"]) == 0
    assert "313,463,808 MACs per sample, 14,987,722 parameters" in capsys.readouterr().out


def test_unwritable_cache_dir_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ApproxmapError, match="Cannot write to the cache directory") as info:
        ensure_writable(blocker / "cache")
    assert "\n" not in str(info.value) and "--cache-dir" in str(info.value)


def test_unknown_arch_suggests_close_match():
    with pytest.raises(UnknownNameError, match="Did you mean: resnet20"):
        train("resnet2", quiet=True)


@needs_fashion
def test_checkpoint_round_trip_through_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    result = train("lenet5", epochs=1, train_images=600, seed=3, quiet=True)
    assert result.checkpoint == checkpoint_path("lenet5") == tmp_path / "lenet5-fashion-mnist.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lenet5-fashion-mnist.json", "lenet5-fashion-mnist.safetensors"]  # no temp files left
    meta = json.loads((tmp_path / "lenet5-fashion-mnist.json").read_text())
    assert meta["arch"] == "lenet5" and meta["seed"] == 3 and meta["train_images"] == 600
    assert meta["recipe"]["epochs"] == 1 and len(meta["history"]) == 1
    assert meta["torch_version"] == torch.__version__ and 0.1 < meta["test_accuracy"] <= 1
    loaded = load_weights_into(build_arch("lenet5"), result.checkpoint).eval()
    saved = result.model.state_dict()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in saved.items())
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded(x), result.model.eval()(x))
    shipped = create_model("lenet5")  # the package's own weights win over the cache
    assert not shipped.training and not torch.equal(shipped(x), loaded(x))


@needs_fashion
def test_train_command_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ("train",))  # only this command's module is needed
    code = cli.main(["train", "--arch", "lenet5", "--data", "fashion-mnist", "--epochs", "1",
                     "--train-images", "300", "--cache-dir", str(tmp_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "lenet5: test accuracy" in out and str(tmp_path) in out
    assert (tmp_path / "lenet5-fashion-mnist.safetensors").is_file()


def test_train_command_line_errors(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ("train",))
    assert cli.main(["train", "--arch", "lenet", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unknown arch 'lenet'" in err and "lenet5" in err
    assert cli.main(["train", "--arch", "lenet5", "--data", "mnist5k",
                     "--cache-dir", str(tmp_path)]) == 2
    assert "fashion-mnist" in capsys.readouterr().err


def test_model_info_of_trained_entries():
    info = get_model_info("resnet20")
    assert info.input_shape == (1, 28, 28) and info.num_classes == 10
    assert "fashion-mnist" in info.datasets and info.license and info.normalization
    assert get_model_info("vgg16-cifar").input_shape == (3, 32, 32)


class _WritesMarker:
    """Unpickling this runs Path.touch(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_checkpoint_carrying_pickled_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(6, 1, 5, 5), "payload": _WritesMarker(marker)}, evil)
    with pytest.raises(CheckpointError, match="Refused to load"):
        load_weights_into(LeNet5(), evil)
    with pytest.raises(CheckpointError):
        load_state_dict(evil)
    assert not marker.exists()
    # the payload is live: a plain unpickle would have run it
    torch.load(evil, weights_only=False)
    assert marker.exists()
