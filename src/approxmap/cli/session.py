"""What every command does first: load the model and data, check the model's output, open
the run folder and build the Run. No analysis or file format logic lives here."""

from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from torch import nn

from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.exceptions import DataError, InvalidParameterError
from approxmap.core.outputs import logits_of
from approxmap.engine.base import create_engine
from approxmap.engine.calibrate import check_model
from approxmap.report.folder import RunFolder, identity_of
from approxmap.zoo.datasets import create_dataset
from approxmap.zoo.models import ModelInfo, load_model


@dataclass
class Loaded:
    """A command's model (with its zoo entry, if any) and evaluation data."""

    model: nn.Module
    info: ModelInfo | None
    data: EvalData
    data_name: str


def output_key(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def load(args, data: bool = True, pretrained: bool = True) -> Loaded:
    """The model (its logits picked by --output-key), the data, and the output check.

    The engine and device are checked first (before a model or data is loaded), and the
    warnings of loading (e.g. more --images asked for than the data holds) are held until
    the command succeeds, so a refused command prints its one line only.

    Raises:
        InvalidParameterError / CheckpointError / DataError / ModelError: one line each.
    """
    if hasattr(args, "engine"):
        args.engine_object = engine_for(args)
    what = args.model if not data else f"{args.model} and its data"
    say(args, f"loading {what} ...")
    from approxmap.cli import _Interrupted

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        loaded = _load(args, data, pretrained)
    _Interrupted.held += [str(item.message) for item in caught]
    return loaded


def _load(args, data: bool, pretrained: bool = True) -> Loaded:
    model, info = load_model(args.model, args.weights, pretrained)
    key = output_key(getattr(args, "output_key", None))
    if key is not None:
        model = logits_of(model, key)
    if not data:
        return Loaded(model, info, None, "")
    spec = args.data or (info.datasets[0] if info and info.datasets else None)
    if spec is None:
        raise InvalidParameterError(f"--data is required for model {args.model!r}.")
    evaluation = create_dataset(spec, args.images)
    if info is not None and evaluation.x is not None and (
            tuple(evaluation.x.shape[1:]) != info.input_shape):
        raise DataError(f"Data {spec!r} has samples of shape {tuple(evaluation.x.shape[1:])}, "
                        f"but model {info.name!r} takes {info.input_shape}.")
    check_model(model, evaluation)
    return Loaded(model, info, evaluation, spec)


def calibration_data(args, data_name: str) -> EvalData | None:
    """--calib-data, else DATA-train when it is registered; None: a part of the evaluation
    data is used (the analysis says so)."""
    from approxmap.zoo.datasets import list_datasets

    name = args.calib_data or (f"{data_name}-train" if f"{data_name}-train" in list_datasets()
                               else None)
    return None if name is None else create_dataset(name, args.calib_images)


def calibration_note(calib: EvalData | None) -> str:
    """A line for outputs whose quantization was calibrated on the evaluation images."""
    if calib is not None:
        return ""
    return ("\nnote: quantization was calibrated on part of the evaluation images (this data has "
            "no separate split; give --calib-data for one)")


def slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value.rsplit("/", 1)[-1]).strip("_") or "model"


def open_folder(args, loaded: Loaded, command: str) -> RunFolder:
    """The run folder (`--out`, or runs/COMMAND-MODEL-DATA), checked against this setup."""
    from approxmap.cli import _Interrupted

    out = args.out or f"runs/{command}-{slug(args.model)}-{slug(loaded.data_name)}"
    folder = RunFolder(out, identity_of(loaded.model, loaded.data, args.model, loaded.data_name))
    keep_config(args, folder, data=loaded.data_name)
    _Interrupted.folder = folder  # an interrupt says how many trials it keeps
    return folder


def keep_config(args, folder: RunFolder, data: str | None = None) -> None:
    """The command's fully resolved options, written by the folder as config.toml (and
    config-COMMAND.toml) with its result: `approxmap run DIR/config.toml` reruns it."""
    from approxmap.cli.campaignfile import resolved_config

    if getattr(args, "command", None):
        folder.keep_config(args.command, resolved_config(args, out=folder.path, data=data,
                                                         command_line=command_line()))


def engine_for(args):
    """The engine the options ask for (--engine, --device, --address)."""
    options: dict[str, Any] = {"device": args.device}
    address = getattr(args, "address", None)
    if args.engine == "ray":  # workers rebuild the model from its spec; only weights travel
        from approxmap.zoo.recipes import ModelRecipe

        options.update(address=address, rebuild=ModelRecipe.from_spec(
            args.model, output_key(getattr(args, "output_key", None))))
    elif address is not None:
        raise InvalidParameterError(f"--address is for --engine ray, not --engine {args.engine}.")
    return create_engine(args.engine, **options)


def make_run(args, folder: RunFolder, **settings: Any) -> Run:
    """The Run of a command: engine (and its cluster address) and device, batch size, seed,
    trials, progress."""
    engine = getattr(args, "engine_object", None) or engine_for(args)
    trials = getattr(args, "trials", None)
    if trials is not None:
        settings.setdefault("trials", trials)
    return folder.run(engine=engine, batch_size=args.batch_size, seed=args.seed,
                      progress=not args.quiet and sys.stderr.isatty(), **settings)


def command_line() -> str:
    import shlex

    return "approxmap " + shlex.join(sys.argv[1:])


def say(args, message: str) -> None:
    """What is about to run, on an interactive stderr (unless --quiet), before the first
    progress bar: a long clean pass is never silent."""
    if not getattr(args, "quiet", False) and sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


__all__ = ["Loaded", "calibration_data", "calibration_note", "command_line", "keep_config",
           "load", "make_run", "open_folder", "output_key", "say", "slug"]
