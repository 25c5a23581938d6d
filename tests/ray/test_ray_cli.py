"""--engine ray and --address on the command line. Without Ray installed, the engine says how
to install it (these tests need no Ray: they hide it if it is there)."""

from __future__ import annotations

import sys

import pytest

import approxmap as am
from approxmap.cli import main
from approxmap.engine.ray import INSTALL_HINT

SMALL = ["profile", "--images", "20", "--trials", "1", "--sigma", "0.5", "--quiet"]


@pytest.fixture
def without_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("approxmap: error:"), err
    return err[0]


def test_without_ray_the_engine_says_how_to_install_it(without_ray, tmp_path, capsys):
    assert "ray" in am.list_engines()  # registered whether or not Ray is installed
    with pytest.raises(am.ApproxmapError) as raised:
        am.create_engine("ray")
    assert str(raised.value) == INSTALL_HINT
    assert "pip install 'approxmap[ray]'" in INSTALL_HINT
    assert main([*SMALL, "--out", str(tmp_path / "x"), "--engine", "ray"]) == 2
    assert one_error_line(capsys) == f"approxmap: error: {INSTALL_HINT}"


def test_address_is_only_for_the_ray_engine(tmp_path, capsys):
    assert main([*SMALL, "--out", str(tmp_path / "x"), "--address", "auto"]) == 2
    assert "--address is for --engine ray" in one_error_line(capsys)


def test_model_recipes_build_from_names_modules_and_file_text(tmp_path):
    import pickle

    from torch import nn

    net = tmp_path / "net.py"
    net.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Flatten(), "
                   "nn.Linear(784, 10))\n")
    recipes = [am.ModelRecipe.from_spec("mnist-cnn"),
               am.ModelRecipe.from_spec("approxmap.zoo.models:MnistCNN"),
               am.ModelRecipe.from_spec(f"{net}:build")]
    net.unlink()  # the file recipe carries the text
    for recipe in recipes:
        model = pickle.loads(pickle.dumps(recipe))()  # as a worker receives it
        assert isinstance(model, nn.Module) and not model.training
    with pytest.raises(am.UnknownNameError):
        am.ModelRecipe.from_spec("no-such-model")
    with pytest.raises(am.InvalidParameterError, match="Cannot read model file"):
        am.ModelRecipe.from_spec(f"{net}:build")
    with pytest.raises(am.InvalidParameterError, match="not a model spec"):
        am.ModelRecipe.from_spec("a.py:")
