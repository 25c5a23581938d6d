"""The campaign-file format without running an analysis: translation into the command's argv,
key lines, every bad file as one line and exit code 2, and resolved configs that read back
to the same parsed arguments."""

from __future__ import annotations

import tomllib
from argparse import Namespace

import pytest
from campaignkit import EXAMPLES

from approxmap.cli import _parser
from approxmap.cli.campaignfile import (
    command_parser,
    key_lines,
    load,
    options,
    read,
    resolved_config,
    translate,
)


def campaign(tmp_path, text, name="campaign.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load(path)


# -- the file is the command line ---------------------------------------------------------------

def test_flat_and_table_forms_give_the_same_command_line(tmp_path):
    table = campaign(tmp_path, """
analysis = "profile"
model = "mnist-cnn"
data = "mnist5k"
images = 500
out = "runs/demo"
[profile]            # the analysis's own options
layers = ["conv_layers.0", "fc_layers.0"]
sigma = [0, 0.5, 1]
trials = 5
""", "table.toml")
    flat = campaign(tmp_path, """
analysis = "profile"
model = "mnist-cnn"
data = "mnist5k"
images = 500
out = "runs/demo"
layers = ["conv_layers.0", "fc_layers.0"]
sigma = [0, 0.5, 1]
trials = 5
""", "flat.toml")
    assert table.argv == flat.argv == [
        "profile", "--model=mnist-cnn", "--data=mnist5k", "--images=500", "--out=runs/demo",
        "--layers", "conv_layers.0", "fc_layers.0", "--sigma=0,0.5,1", "--trials=5"]
    assert vars(table.args) == vars(_parser().parse_args(
        ["profile", "--model", "mnist-cnn", "--data", "mnist5k", "--images", "500", "--out",
         "runs/demo", "--layers", "conv_layers.0", "fc_layers.0", "--sigma", "0,0.5,1",
         "--trials", "5"]))


def test_value_forms(tmp_path):
    c = campaign(tmp_path, """
analysis = "profile"
batch_size = 50                         # _ or -
[profile]
"max-trials" = 9                        # a quoted key
mean = [-0.5, 0]                        # negative numbers
channels = {"conv_layers.0" = [0, 5, 7], "fc_layers.0" = "1,2"}
param = {rate = 0.5, scale = "abs"}     # NAME=VALUE options take a table
sweep = {std = [0, 1]}
refine = true                           # nargs="?": the option alone
quiet = true
""")
    args = c.args
    assert args.batch_size == 50 and args.max_trials == 9 and args.mean == [-0.5, 0.0]
    assert args.channels == ["conv_layers.0=0,5,7", "fc_layers.0=1,2"]
    assert args.param == ["rate=0.5", "scale=abs"] and args.sweep == "std=0,1"
    assert args.refine == 4 and args.quiet is True
    c = campaign(tmp_path, 'analysis = "profile"\nsigma = "0:1:3"\nrefine = 2\nquiet = false\n')
    assert c.args.sigma == [0.0, 0.5, 1.0] and c.args.refine == 2 and c.args.quiet is False
    units = campaign(tmp_path, 'analysis = "units"\nunits = ["exact", "drum:4"]\n')
    assert units.argv[:4] == ["units", "characterize", "exact", "drum:4"]
    listed = campaign(tmp_path, 'analysis = "units list"\npattern = "drum*"\n')
    assert listed.argv == ["units", "list", "drum*"]


def test_overrides_after_the_file_win(tmp_path, cli):
    path = tmp_path / "c.toml"
    path.write_text('analysis = "profile"\nout = "runs/a"\ntrials = 3\n')
    assert load(path, ["--out", "runs/b"]).args.out == "runs/b"
    code, out, _ = cli("run", "--dry-run", path, "--trials", "4")
    assert code == 0
    assert out.strip() == "approxmap profile --out=runs/a --trials=3 --trials 4"


# -- where keys are -----------------------------------------------------------------------------

def test_key_lines_skip_strings_arrays_and_comments():
    text = '''# analysis = "nope"
analysis = "profile"   # a comment with key = value
note = """
sigma = [1]
"""
[profile]
layers = [
  "conv_layers.0",  # trials = 1
  "fc_layers.0", ["x = ]"],
]
"trials" = 5
profile2.seed = 3
'lit' = 'a # b'
[ provenance ]
seed = 1
'''
    tomllib.loads(text)
    lines = key_lines(text)
    assert lines[("analysis",)] == 2 and lines[("note",)] == 3
    assert ("sigma",) not in lines and ("profile", "sigma") not in lines
    assert lines[("profile",)] == 6 and lines[("profile", "layers")] == 7
    assert lines[("profile", "trials")] == 11 and lines[("profile", "profile2", "seed")] == 12
    assert lines[("profile", "lit")] == 13 and lines[("provenance", "seed")] == 15


# -- every bad file: one line, exit code 2, the key and its line ---------------------------------

BAD = {
    "missing": (None, "nope.toml: no such campaign file"),
    "not toml": ('analysis = "profile"\nmodel =\n', "bad.toml line 2: not valid TOML"),
    "not utf-8": (b'analysis = "\xff"\n', "bad.toml: not a TOML campaign file (not UTF-8"),
    "no analysis": ('model = "mnist-cnn"\n', "bad.toml: no analysis key"),
    "analysis not a string": ("analysis = 3\n", "bad.toml line 1: analysis: expected the name"),
    "unknown analysis": ('analysis = "profil"\n', "bad.toml line 1: unknown analysis 'profil' "
                                                  "(did you mean profile?)"),
    "run is no analysis": ('analysis = "run"\n', "bad.toml line 1: unknown analysis 'run'"),
    "bad verb": ('analysis = "units frob"\n', "bad.toml line 1: analysis 'units frob': expected "
                                              "units list or units characterize"),
    "unknown key": ('analysis = "profile"\n\n[profile]\nsigm = [1]\n',
                    "bad.toml line 4: unknown key 'sigm' for analysis profile (did you mean "
                    "sigma?)"),
    "unknown key, no match": ('analysis = "profile"\nzzzz = 1\n',
                              "bad.toml line 2: unknown key 'zzzz' for analysis profile (see "
                              "'approxmap profile --help')"),
    "key of another analysis": ('analysis = "profile"\ncalib-images = 10\n',
                                "bad.toml line 2: unknown key 'calib-images'"),
    "table of another analysis": ('analysis = "profile"\n[emulate]\nunits = ["exact"]\n',
                                  "bad.toml line 2: table [emulate] is for analysis emulate, "
                                  "but this file runs analysis profile"),
    "twice": ('analysis = "profile"\ntrials = 2\n[profile]\ntrials = 3\n',
              "bad.toml line 4: trials is given twice (also line 2)"),
    "flag not boolean": ('analysis = "profile"\nquiet = 1\n',
                         "bad.toml line 2: quiet: a flag: expected true or false, got a number"),
    "boolean for a value": ('analysis = "profile"\ntrials = true\n',
                            "bad.toml line 2: trials: expected a string or number, got a boolean"),
    "array for one value": ('analysis = "profile"\nimages = [1, 2]\n',
                            "bad.toml line 2: images: expected one string or number, got an "
                            "array"),
    "table for one value": ('analysis = "profile"\nmodel = {a = 1}\n',
                            "bad.toml line 2: model: expected one string or number, got a table"),
    "date": ('analysis = "profile"\nmodel = 2024-01-01\n',
             "bad.toml line 2: model: expected a string or number, got a date"),
    "empty list": ('analysis = "profile"\nlayers = []\n',
                   "bad.toml line 2: layers: expected at least one value, got an empty array"),
    "provenance not a table": ('analysis = "profile"\nprovenance = 1\n',
                               "bad.toml line 2: provenance: expected a table"),
    # the command's own validation, mapped back to the key
    "argparse type": ('analysis = "profile"\n\n[profile]\ntrials = 0\n',
                      "bad.toml line 4: trials: expected a number of trials in [1, 100000], "
                      "got '0'"),
    "argparse choice": ('analysis = "profile"\nscale = "absolute"\n',
                        "bad.toml line 2: scale: invalid choice: 'absolute'"),
    "argparse comma list": ('analysis = "profile"\nsigma = ["a"]\n',
                            "bad.toml line 2: sigma: expected a list like"),
    "required": ('analysis = "plan"\nimages = 10\n', "bad.toml line 1: analysis plan needs "
                                                     "units (none given)"),
    "one of required": ('analysis = "prune"\n', "bad.toml line 1: analysis prune needs one of "
                                                "by-class, ratio, layer-ratios, plan"),
    "not allowed with": ('analysis = "prune"\nratio = 0.5\nplan = "x.json"\n',
                         "bad.toml line 3: plan: not allowed with ratio"),
    "spec error naming the flag": ('analysis = "profile"\n[profile]\nrefine = 30\n',
                                   "bad.toml line 3: refine: --refine takes 0 to 20 steps"),
    "spec error naming a parameter": ('analysis = "profile"\nsigma = [-1, 0]\n',
                                      "bad.toml line 2: sigma: The 'std' parameter of Gaussian "
                                      "must be >= 0"),
    "spec error naming another flag": ('analysis = "profile"\nerror = "stuck"\n\nsigma = [0]\n',
                                       "bad.toml line 4: sigma: --sigma sweeps the std"),
    "spec error quoting a value": ('analysis = "units"\nunits = ["nosuch"]\n',
                                   "bad.toml line 2: units: Unknown multiplier type 'nosuch'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_one_line_and_exit_code_2(tmp_path, monkeypatch, cli, case):
    text, expected = BAD[case]
    monkeypatch.chdir(tmp_path)
    name = "nope.toml" if text is None else "bad.toml"
    if isinstance(text, bytes):
        (tmp_path / name).write_bytes(text)
    elif text is not None:
        (tmp_path / name).write_text(text)
    code, out, err = cli("run", name, "--out", tmp_path / "out")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and not out, err
    assert lines[0].startswith(f"approxmap: error: {expected}"), lines[0]
    assert not (tmp_path / "out").exists()


def test_an_error_of_the_command_line_after_the_file_is_not_the_file_s(tmp_path, cli):
    path = tmp_path / "c.toml"
    path.write_text('analysis = "profile"\n')
    code, _, err = cli("run", path, "--images", "0")
    assert code == 2
    assert err.strip() == ("approxmap: error: argument --images: expected a number of images in "
                           "[1, 10000000], got '0' (see 'approxmap profile --help')")


def test_a_layer_error_names_the_key(tmp_path, cli):
    path = tmp_path / "c.toml"
    path.write_text('analysis = "profile"\nimages = 20\nquiet = true\n'
                    '[profile]\nlayers = ["nosuchlayer"]\n')
    code, _, err = cli("run", path, "--out", tmp_path / "out")
    assert code == 2
    assert err.startswith(f"approxmap: error: {path} line 5: layers: Layer selection "
                          "'nosuchlayer' matches no layer")


# -- resolved configs read back to the same arguments -------------------------------------------

ARGVS = [
    ["profile"],
    ["profile", "--layers", "conv_layers.0", "Linear", "--channels", "conv_layers.0=0,5",
     "--error", "gaussian", "--param", "scale=abs", "--sweep", "std=0:1:5", "--mean=-0.5,0",
     "--refine", "--ci-target", "2", "--max-trials", "20", "--engine", "local",
     "--device", "auto", "--weights", 'w "odd"\\.pt', "--output-key", "0", "--quiet"],
    ["profile", "--error", "stuck", "--rate", "0,0.1", "--value", "-1e-05", "--seed", "7"],
    ["significance", "--criteria", "l1,apoz", "--budget", "2", "--sigma", "0.25"],
    ["sensitivity", "--ratios", "0.1:0.9:9", "--compare", "smallest,random", "--draws", "2"],
    ["prune", "--by-class", "prunable", "--thresholds", "0.1,0.3"],
    ["prune", "--plan", "pruned.json", "--finetune-epochs", "1", "--lr", "0.001"],
    ["units", "characterize", "exact", "drum:4", "--model", "mnist-cnn"],
    ["units", "characterize", "exact"],
    ["emulate", "--units", "drum:4,exact", "--all-layers", "--no-per-layer"],
    ["predict", "--units", "drum:4", "--calibration", "percentile", "--percentile", "99.9"],
    ["plan", "--units", "drum:4", "--granularity", "class", "--prune", "--energy", "e.toml"],
]


@pytest.mark.parametrize("argv", ARGVS, ids=[" ".join(a[:2]) for a in ARGVS])
def test_a_resolved_config_reads_back_to_the_same_arguments(tmp_path, argv):
    args = _parser().parse_args(argv)
    text = resolved_config(args, out="runs/x", data="mnist5k", command_line="approxmap ...")
    path = tmp_path / "config.toml"
    path.write_text(text)
    data, lines = read(path)
    words = argv[:2] if argv[0] == "units" else argv[:1]
    assert data["analysis"] == ("units" if argv[0] == "units" else argv[0])
    # every option is in the file: with its value, or as a comment when it has none
    for key, action in options(command_parser(words)).items():
        value = getattr(args, action.dest)
        assert (key in data or key in data[argv[0]]) == (value is not None
                                                        or action.dest in ("out", "data")), key
        assert value is not None or action.dest in ("out", "data") or (
            f"# {key} = (not set)" in text), key
    again = load(path).args
    expected = Namespace(**{**vars(args), "out": "runs/x",
                            "data": args.data or ("mnist5k" if "data" in vars(args) else None)})
    assert vars(again) == vars(expected)
    assert data["provenance"]["command"] == "approxmap ..."
    assert translate(str(path), data, lines).argv[0] == argv[0]


def test_engine_and_device_are_recorded(tmp_path):
    args = _parser().parse_args(["emulate", "--units", "exact", "--device", "cuda:1"])
    data = tomllib.loads(resolved_config(args, out="o"))
    assert data["engine"] == "local" and data["device"] == "cuda:1"


def test_another_version_s_config_warns_and_runs(tmp_path, cli):
    path = tmp_path / "config.toml"
    path.write_text('analysis = "list"\nwhat = "engines"\n[provenance]\napproxmap = "0.0.1"\n'
                    'torch = "1.0"\n')
    code, out, err = cli("run", path)
    assert code == 0 and "local" in out
    assert err.startswith(f"approxmap: warning: {path} was written by approxmap 0.0.1")


def test_the_examples_parse(tmp_path):
    for path in sorted(EXAMPLES.glob("*.toml")):
        assert load(path, ["--out", str(tmp_path)]).args.out == str(tmp_path)
