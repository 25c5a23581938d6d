"""Kind 11: corrupt or wrong files (weights, npz data, pruning plans, layer ratios) are one
line naming the file; nothing is unpickled, random bytes are never called pickled data, and
special files (FIFO, device, folder) are refused before anything reads them."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

import approxmap as am
from approxmap.core.exceptions import CheckpointError, DataError
from approxmap.zoo.checkpoints import load_state_dict

from .conftest import FAST, one_error, run_cli


class Unsafe:
    """A class a weights file must never be able to instantiate."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture
def bad_files(tmp_path):
    """Name -> path of a bad input file of each kind."""
    rng = np.random.default_rng(0)
    files = {}

    def put(name, content: bytes):
        files[name] = tmp_path / name
        files[name].write_bytes(content)

    put("text.pt", b"hello, these are not weights\n")
    put("random.pt", rng.bytes(4096))
    put("random_no_suffix", rng.bytes(512))
    put("empty.pt", b"")
    put("pickle_dict.pkl", pickle.dumps({"a": 1}, protocol=2))
    put("pickle_code.pkl", pickle.dumps(Unsafe(), protocol=2))
    put("random.safetensors", rng.bytes(300))
    put("empty.safetensors", b"")
    put("zip_text.pt", b"PK\x03\x04" + rng.bytes(200))
    torch.save({"w": Unsafe()}, tmp_path / "unsafe_zip.pt")
    files["unsafe_zip.pt"] = tmp_path / "unsafe_zip.pt"
    good = am.create_model("mnist-cnn").state_dict()
    torch.save(good, tmp_path / "good.pt")
    whole = (tmp_path / "good.pt").read_bytes()
    put("truncated.pt", whole[: len(whole) // 2])
    torch.save([1, 2, 3], tmp_path / "list.pt")
    files["list.pt"] = tmp_path / "list.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "mismatch.pt")
    files["mismatch.pt"] = tmp_path / "mismatch.pt"
    (tmp_path / "folder").mkdir()
    files["folder"] = tmp_path / "folder"
    os.mkfifo(tmp_path / "fifo")
    files["fifo"] = tmp_path / "fifo"
    files["devnull"] = "/dev/null"
    files["devzero"] = "/dev/zero"
    files["missing"] = tmp_path / "missing.pt"
    return files


WEIGHTS = {  # file -> fragments of the one line
    "text.pt": ("not a weights file",),
    "random.pt": ("not a weights file",),
    "random_no_suffix": ("not a weights file",),
    "empty.pt": ("is empty",),
    "pickle_dict.pkl": ("Cannot read weights file",),
    "pickle_code.pkl": ("pickle",),
    "random.safetensors": ("safetensors",),
    "empty.safetensors": ("safetensors",),
    "zip_text.pt": ("Cannot read weights file",),
    "unsafe_zip.pt": ("Refused to load", "never unpickles"),
    "truncated.pt": ("Cannot read weights file",),
    "list.pt": ("does not hold a state_dict",),
    "mismatch.pt": ("do not fit the model",),
    "folder": ("is a folder",),
    "fifo": ("is a FIFO",),
    "devnull": ("is a device",),
    "devzero": ("is a device",),
    "missing": ("not found",),
}


@pytest.mark.parametrize("name", list(WEIGHTS))
def test_bad_weights_files(capsys, tmp_path, bad_files, data_arg, name):
    line = one_error(run_cli(capsys, "profile", "--weights", bad_files[name], *data_arg, *FAST,
                             "--out", tmp_path / "o"), *WEIGHTS[name])
    assert str(bad_files[name]) in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["text.pt", "random.pt", "random_no_suffix", "zip_text.pt",
                                  "truncated.pt", "pickle_dict.pkl"])
def test_random_bytes_are_never_called_pickled_data(bad_files, name):
    with pytest.raises(CheckpointError) as info:
        load_state_dict(bad_files[name])
    message = str(info.value)
    assert "\n" not in message
    assert "pickled data" not in message.lower()
    assert "Refused" not in message  # a damaged file is not an unsafe one


def test_nothing_is_unpickled(bad_files, capfd):
    for name in ("pickle_code.pkl", "unsafe_zip.pt"):
        with pytest.raises(CheckpointError):
            load_state_dict(bad_files[name])
    assert "pwned" not in capfd.readouterr().out


def make_npz_files(tmp_path, good) -> dict:
    x, y = good["x"], good["y"]
    files = {}

    def save(name, **arrays):
        files[name] = tmp_path / name
        np.savez(files[name], **arrays)

    save("objects.npz", x=np.array([{"a": 1}] * len(x), dtype=object), y=y)
    save("strings.npz", x=np.array(["a"] * len(x)), y=y)
    save("no_x.npz", images=x, y=y)
    save("no_samples.npz", x=x[:0], y=y[:0])
    save("float_labels.npz", x=x, y=y.astype(np.float32))
    save("short_labels.npz", x=x, y=y[:3])
    save("flat.npz", x=x.reshape(-1))
    whole = (tmp_path / "objects.npz").read_bytes()
    np.savez(tmp_path / "ok.npz", x=x, y=y)
    whole = (tmp_path / "ok.npz").read_bytes()
    for name, content in {"truncated.npz": whole[: len(whole) // 2], "head.npz": whole[:64],
                          "text.npz": b"x,y\n1,2\n", "empty.npz": b"",
                          "random.npz": np.random.default_rng(1).bytes(2048)}.items():
        files[name] = tmp_path / name
        files[name].write_bytes(content)
    np.save(tmp_path / "array.npy", x)
    files["array.npy"] = tmp_path / "array.npy"
    with zipfile.ZipFile(tmp_path / "not_numpy.npz", "w") as archive:
        archive.writestr("x.npy", b"not an array")
    files["not_numpy.npz"] = tmp_path / "not_numpy.npz"
    (tmp_path / "dir.npz").mkdir()
    files["dir.npz"] = tmp_path / "dir.npz"
    os.mkfifo(tmp_path / "fifo.npz")
    files["fifo.npz"] = tmp_path / "fifo.npz"
    files["devnull"] = "/dev/null"
    return files


NPZ = {
    "objects.npz": ("object arrays", "never loaded"),
    "strings.npz": ("numeric array",),
    "no_x.npz": ("no array named 'x'",),
    "no_samples.npz": ("no samples",),
    "float_labels.npz": ("integer labels",),
    "short_labels.npz": ("integer labels",),
    "flat.npz": ("numeric array (N, ...)",),
    "truncated.npz": ("truncated or corrupt",),
    "head.npz": ("Cannot read",),
    "text.npz": ("not a zip archive",),
    "empty.npz": ("empty",),
    "random.npz": ("not a zip archive",),
    "array.npy": (".npy",),
    "not_numpy.npz": ("not a numpy array",),
    "dir.npz": ("is a folder",),
    "fifo.npz": ("is a FIFO",),
    "devnull": ("is a device",),
}


@pytest.mark.parametrize("name", list(NPZ))
def test_bad_npz_data(capsys, tmp_path, data_npz, name):
    files = make_npz_files(tmp_path, np.load(data_npz))
    line = one_error(run_cli(capsys, "profile", "--data", f"npz:{files[name]}", *FAST,
                             "--out", tmp_path / "o"), *NPZ[name])
    assert "pickled data" not in line or name == "objects.npz"
    assert not (tmp_path / "o").exists()
    with pytest.raises(DataError):  # the API raises the same one-line error
        am.create_dataset(f"npz:{files[name]}")


PRUNE_FILES = {
    "broken.json": ('{"conv_layers.0": 0.5', "Cannot read"),
    "list.json": ("[1, 2]", ""),
    "text.json": ("ratios: high", "Cannot read"),
    "binary.json": (bytes(range(256)), "not text"),
    "empty.json": ("", "Cannot read"),
    "nan.json": ('{"conv_layers.0": NaN}', ""),
    "string.json": ('{"conv_layers.0": "half"}', ""),
}


@pytest.mark.parametrize("option", ["--layer-ratios", "--plan"])
@pytest.mark.parametrize("name", [*PRUNE_FILES, "fifo", "folder", "/dev/null", "/dev/zero",
                                  "missing.json"])
def test_bad_prune_plan_and_layer_ratio_files(capsys, tmp_path, data_arg, option, name):
    if name in PRUNE_FILES:
        content, fragment = PRUNE_FILES[name]
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    elif name == "fifo":
        path, fragment = tmp_path / "fifo", "is a FIFO"
        os.mkfifo(path)  # reading it would block forever
    elif name == "folder":
        path, fragment = tmp_path, "is a folder"
    elif name.startswith("/dev"):
        path, fragment = name, "is a device"  # /dev/zero would never end
    else:
        path, fragment = tmp_path / name, "not found"
    line = one_error(run_cli(capsys, "prune", option, path, *data_arg, *FAST,
                             "--out", tmp_path / "o"), fragment)
    assert str(path) in line
    assert not (tmp_path / "o").exists()


def test_a_damaged_pruning_plan_names_its_file(capsys, tmp_path, data_arg):
    plan = tmp_path / "pruned.json"
    plan.write_text('{"format": "approxmap-pruning-plan/1", "base": "mnist-cnn"}')
    line = one_error(run_cli(capsys, "prune", "--plan", plan, *data_arg, *FAST,
                             "--out", tmp_path / "o"))
    assert str(plan) in line
