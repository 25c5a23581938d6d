"""Argument helpers shared by the commands: model/data options, number lists, --out."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from torch import nn

from approxmap.exceptions import ApproxmapError, DataError, InvalidParameterError
from approxmap.zoo.datasets import EvalData, create_dataset
from approxmap.zoo.models import ModelInfo, load_model


def add_model_args(parser: argparse.ArgumentParser, data: bool = True) -> None:
    parser.add_argument("--model", default="mnist-cnn",
                        help="zoo name (see `approxmap list models`), path/to/file.py:factory "
                             "or package.module:factory (default: mnist-cnn)")
    parser.add_argument("--weights", metavar="FILE",
                        help="state_dict for the model (.safetensors, or a torch file loaded "
                             "with weights_only=True)")
    if data:
        parser.add_argument("--data", default=None,
                            help="dataset name (see `approxmap list datasets`) or npz:FILE with "
                                 "arrays x, y (default: the model's dataset)")
        parser.add_argument("--images", type=positive_int, metavar="N",
                            help="evaluate on the first N images only")


def load_model_and_data(args) -> tuple[nn.Module, ModelInfo | None, EvalData, str]:
    """The model, its zoo entry, the evaluation data and the dataset's name."""
    model, info = load_model(args.model, args.weights)
    data_spec = args.data or (info.datasets[0] if info and info.datasets else None)
    if data_spec is None:
        raise InvalidParameterError(f"--data is required for model {args.model!r}.")
    data = create_dataset(data_spec, args.images)
    if info is not None and data.x is not None and tuple(data.x.shape[1:]) != info.input_shape:
        raise DataError(
            f"Data {data_spec!r} has samples of shape {tuple(data.x.shape[1:])}, but model "
            f"{info.name!r} takes {info.input_shape}."
        )
    return model, info, data, data_spec


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def number_list(text: str) -> list[float]:
    """'0,0.1,0.5' or 'START:STOP:N' (N evenly spaced values, both ends included)."""
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            n = int(count)
            if n < 1:
                raise ValueError
            values = np.linspace(float(start), float(stop), n).round(12).tolist()
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a list like 0,0.1,0.5 or START:STOP:N, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def writable_dir(path: str | Path) -> Path:
    """Create `path` if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".approxmap-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ApproxmapError(f"Cannot write to output folder {path}: {exc.strerror or exc}") from None
    return path


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])
