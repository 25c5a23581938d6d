"""A sweep of bad invocations over every command, grouped by kind: each one is exit code 2
and exactly one stderr line `approxmap: error: ...` (no traceback, no other line), and
nothing is written to its run folder.

Run alone for the counts: `pytest tests/inputs/test_sweep.py -q` (one test per invocation).
"""

from __future__ import annotations

import os
import pickle
import sqlite3

import numpy as np
import pytest

from .conftest import one_error, run_cli

# Placeholders filled by the `files` fixture (and {out}, a new run folder per invocation,
# which must stay empty or absent): {npz} good data, {nan} NaN data, {models} a
# module of user models, {dir} a scratch folder, {fifo}, {text}, {random}, {npy}, {pkl},
# {trunc} a truncated npz, {objects} an npz of pickled objects, {foreign} a folder with
# another application's results.sqlite, {ratios} a bad layer-ratios file, {plan} a bad plan.
D = ("--data", "npz:{npz}", "--images", "20", "--quiet")
P = ("profile", *D, "--trials", "1", "--sigma", "0,1")
G = ("significance", *D, "--trials", "1", "--criteria", "l1")
S = ("sensitivity", *D, "--ratios", "0.5")
R = ("prune", *D, "--ratio", "0.5")
ANALYSES = {"profile": P, "significance": G, "sensitivity": S, "prune": R}

SWEEP: dict[str, list[tuple[str, ...]]] = {
    "arguments": [
        (), ("nope",), ("profile", "--nope"), ("profile", "extra"), ("list",), ("list", "nope"),
        ("list", "models", "no-such-*"), ("report",), ("train",), ("layers", "--out", "x"),
        ("profile", "--sig", "0,1"), ("prune",), ("prune", "--ratio", "0.5", "--plan", "x"),
        ("profile", "--scale", "sideways"), ("significance", "--scope", "planet"),
    ],
    "user code": [
        (*a, "--model", "{models}:" + f, "--batch-size", "5", "--out", "{out}")
        for f in ("raises_value", "raises_exit", "raises_interrupt", "returns_int",
                  "forward_value_3", "forward_exit_5", "forward_interrupt_5")
        for a in (P, S)
    ] + [
        ("profile", *D, "--model", "{dir}/import_raises.py:build", "--out", "{out}"),
        ("layers", "--model", "{dir}/import_exits.py:build"),
        ("layers", "--model", "{models}:raises_interrupt", "--input-shape", "1,28,28"),
        ("prune", *D, "--ratio", "0.5", "--model", "{models}:hungry", "--out", "{out}"),
    ],
    "corrupt files": [
        (*P, "--weights", w, "--out", "{out}")
        for w in ("{text}", "{random}", "{pkl}", "{fifo}", "/dev/null", "{dir}", "{npz}")
    ] + [
        (*P[:1], "--data", f"npz:{d}", "--out", "{out}")
        for d in ("{trunc}", "{npy}", "{objects}", "{text}", "{random}", "{fifo}", "/dev/zero")
    ] + [
        (*R[:-2], "--layer-ratios", "{ratios}", "--out", "{out}"),
        (*R[:-2], "--plan", "{plan}", "--out", "{out}"),
        (*R[:-2], "--plan", "{fifo}", "--out", "{out}"),
        (*R[:-2], "--layer-ratios", "/dev/zero", "--out", "{out}"),
        ("train", "--arch", "lenet5", "--cache-dir", "/dev/null"),
    ],
    "model specs": [
        ("layers", "--model", spec) for spec in (":", ":f", "..:f", ".foo:bar", "a.py:", "pkg:1x")
    ] + [(*P, "--model", spec, "--out", "{out}") for spec in ("{text}:f", "{dir}:f", "a:b:c")],
    "non-finite data": [
        (*a[:1], "--data", "npz:{nan}", "--images", "60", "--quiet", *a[6:], "--out",
         "{out}") for a in ANALYSES.values()
    ] + [("layers", "--data", "npz:{nan}")],
    "beyond the machine": [
        ("layers", "--input-shape", s) for s in ("-1,28,28", "0,28,28", "1,100000,100000", "")
    ] + [
        (*R, "--threads", "100000"), (*R, "--latency-batch", "10000000"),
        (*P, "--batch-size", "10000000"), (*G, "--images", "999999999"),
        (*S, "--calib-images", "0"), (*R, "--repeats", "0"),
    ],
    "one option everywhere": [
        (*a, opt, value, "--out", "{out}") for a in ANALYSES.values()
        for opt, value in (("--seed", "-1"), ("--seed", "abc"), ("--batch-size", "0"),
                           ("--images", "0"), ("--data", ""), ("--out", ""), ("--model", ""),
                           ("--weights", ""), ("--device", "tpu"), ("--engine", "nope"),
                           ("--device", "cuda:x"))
    ] + [("layers", "--model", ""), ("layers", "--data", ""), ("layers", "--images", "0"),
         ("train", "--arch", "lenet5", "--seed", "-1"), ("train", "--arch", "lenet5", "--data", "")],
    "refused before the first trial": [
        (*P, "--layers", "nope", "--out", "{out}"), (*G, "--layers", "nope", "--out", "{out}"),
        (*S, "--layers", "nope", "--out", "{out}"), (*P, "--site", "nowhere", "--out", "{out}"),
        (*P, "--error", "nope", "--out", "{out}"), (*G, "--criteria", "nope", "--out", "{out}"),
    ],
    "shared run folders": [(*a, "--out", "{foreign}") for a in ANALYSES.values()] + [
        ("report", "{foreign}"), ("report", "{dir}/empty"), ("report", "/dev/null"),
    ],
    "hangs": [
        (*P[:-2], "--sigma", "0:1:1000000"), (*P[:-4], "--trials", "1000000000"),
        (*P[:-2], "--sweep", "std=0:1:1000000"), (*P, "--refine", "1000"),
        (*S[:-2], "--ratios", "0:1:5000"),
    ],
    "silent values": [
        ("significance", "--sigma", "1e308"), (*P[:-2], "--sigma", "0,1e308"),
        (*P, "--mean", "1e308"), (*P[:-2], "--sweep", "std=0,2", "--sigma", "0,1"),
        ("profile", "--data", "npz:"), ("profile", "--data", "idx:"),
        ("profile", "--data", "folder:"), ("profile", "--output-key", ""),
        ("profile", "--budget", "-1"), ("prune", "--ratio", "1.5"),
    ],
}
CASES = [(kind, i, argv) for kind, table in SWEEP.items() for i, argv in enumerate(table)]


class Unsafe:
    def __reduce__(self):
        return (os.system, ("echo unsafe",))


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_npz, user_models):
    root = tmp_path_factory.mktemp("sweep")
    arrays = np.load(data_npz)
    nan = dict(arrays)
    nan["x"] = nan["x"].copy()
    nan["x"][3, 0, 5, 5] = np.nan
    np.savez(root / "nan.npz", **nan)
    np.savez(root / "objects.npz", x=np.array([object()] * 4, dtype=object))
    np.save(root / "array.npy", arrays["x"])
    whole = data_npz.read_bytes()
    (root / "trunc.npz").write_bytes(whole[: len(whole) // 2])
    (root / "text.txt").write_text("plain text, not weights\n")
    (root / "random.bin").write_bytes(np.random.default_rng(0).bytes(999))
    (root / "unsafe.pkl").write_bytes(pickle.dumps(Unsafe(), protocol=2))
    (root / "ratios.json").write_text('{"conv_layers.0": 2}')
    (root / "plan.json").write_text('{"format": "approxmap-pruning-plan/1"}')
    os.mkfifo(root / "fifo")
    (root / "empty").mkdir()
    foreign = root / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "results.sqlite") as db:
        db.execute("CREATE TABLE t (a)")
    db.close()
    return {"npz": data_npz, "nan": root / "nan.npz", "models": user_models / "models.py",
            "dir": user_models, "fifo": root / "fifo", "text": root / "text.txt",
            "random": root / "random.bin", "npy": root / "array.npy", "pkl": root / "unsafe.pkl",
            "trunc": root / "trunc.npz", "objects": root / "objects.npz", "foreign": foreign,
            "ratios": root / "ratios.json", "plan": root / "plan.json"}


def test_the_sweep_is_large_and_covers_every_command():
    assert len(CASES) >= 100
    commands = {argv[0] for _, _, argv in CASES if argv}
    assert commands >= {"profile", "layers", "list", "train", "significance", "sensitivity",
                        "prune", "report"}


@pytest.mark.parametrize("kind, index, argv", CASES,
                         ids=[f"{kind}-{index}" for kind, index, _ in CASES])
def test_a_bad_invocation_is_one_line(capsys, tmp_path, files, kind, index, argv):
    out = tmp_path / "out"
    one_error(run_cli(capsys, *(a.format(out=out, **files) for a in argv)))
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
