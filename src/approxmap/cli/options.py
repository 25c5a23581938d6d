"""Every command-line option shared by several commands, defined (and validated) once.

A value that argparse's `type=` rejects ends as one line and exit code 2; ranges that
depend on other options are checked by the specs of the public API.
"""

from __future__ import annotations

import argparse
import math
import re

MAX_TRIALS = 100_000
MAX_SWEEP = 1_000
MAX_IMAGES = 10_000_000
MAX_BATCH = 65_536


def int_in(low: int, high: int, what: str = "an integer"):
    """An argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} in [{low}, {high}], got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} in [{low}, {high}], got {text!r}")
        return value

    return parse


positive_int = int_in(1, 2**31 - 1)
seed_int = int_in(0, 2**63 - 1, "a seed (an integer)")
trials_int = int_in(1, MAX_TRIALS, "a number of trials")
images_int = int_in(1, MAX_IMAGES, "a number of images")
batch_int = int_in(1, MAX_BATCH, "a batch size")


def real(low: float = -math.inf, high: float = math.inf, closed_low: bool = True):
    """A finite float in [low, high] (or (low, high] when closed_low is False)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(value) and value <= high and (value >= low if closed_low else value > low)
        if not ok:
            bracket = "[" if closed_low else "("
            raise argparse.ArgumentTypeError(f"expected a number in {bracket}{low:g}, {high:g}], "
                                             f"got {text!r}")
        return value

    return parse


def text(what: str):
    """A non-empty string (an empty --data or --out is an error, never the default)."""

    def parse(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{what} is empty")
        return value

    return parse


def device_name(value: str) -> str:
    """--device: cpu, cuda, cuda:N or auto (whether CUDA is there is checked when the engine
    is made, before any model or data is loaded)."""
    from approxmap.engine.base import DEVICES

    if not re.fullmatch(r"cpu|cuda|cuda:\d+|auto", value):
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(DEVICES)}, got {value!r}")
    return value


def engine_name(value: str) -> str:
    """--engine: a registered engine."""
    from approxmap.engine import list_engines

    if value not in list_engines():
        from approxmap.core.registry import close_matches_hint

        hint = close_matches_hint(value, list_engines())
        raise argparse.ArgumentTypeError(f"unknown engine {value!r}.{hint} Known: "
                                         f"{', '.join(list_engines())}")
    return value


def number_list(value: str) -> list[float]:
    """'0,0.1,0.5', 'START:STOP:N' (N evenly spaced values, both ends) or 'A:B' (the integers
    from A to B), at most MAX_SWEEP values."""
    try:
        if value.count(":") == 1:
            first, last = (int(v) for v in value.split(":"))
            if not 0 <= last - first < MAX_SWEEP:
                raise argparse.ArgumentTypeError(f"expected A:B with A <= B and at most "
                                                 f"{MAX_SWEEP} integers, got {value!r}")
            values = [float(v) for v in range(first, last + 1)]
        elif ":" in value:
            start, stop, count = value.split(":")
            n = int(count)
            if not 1 <= n <= MAX_SWEEP:
                raise argparse.ArgumentTypeError(
                    f"expected 1 to {MAX_SWEEP} values, got {n} in {value!r}")
            first, last = float(start), float(stop)
            values = [first + (last - first) * i / max(n - 1, 1) for i in range(n)]
            values = [round(v, 12) for v in values]
        else:
            values = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a list like 0,0.1,0.5 or START:STOP:N, got {value!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {value!r}")
    if len(values) > MAX_SWEEP:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_SWEEP} values, got {len(values)}")
    return values


def name_list(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def unit_list(value: str) -> list[str]:
    """Multiplier names separated by commas, where a parametrized name keeps its own commas:
    `bam:2,6,drum:4` is ["bam:2,6", "drum:4"] (a bare number continues the name before it)."""
    units: list[str] = []
    for token in name_list(value):
        if units and ":" in units[-1] and re.fullmatch(r"[0-9.]+", token):
            units[-1] += "," + token
        else:
            units.append(token)
    return units


def add_model_args(parser: argparse.ArgumentParser, data: bool = True,
                   default_model: str | None = "mnist-cnn") -> None:
    default = f"default: {default_model}" if default_model else "default: none"
    parser.add_argument("--model", default=default_model, type=text("--model"),
                        help="zoo name (see `approxmap list models`), path/to/file.py:factory "
                             f"or package.module:factory ({default})")
    parser.add_argument("--weights", metavar="FILE", type=text("--weights"),
                        help="state_dict for the model (.safetensors, or a torch file loaded "
                             "with weights_only=True)")
    parser.add_argument("--output-key", metavar="KEY", type=text("--output-key"),
                        help="for a model returning a tuple or dict: the index or key of its "
                             "logits (e.g. 0 or logits)")
    if data:
        parser.add_argument("--data", default=None, type=text("--data"),
                            help="dataset name (see `approxmap list datasets`), npz:FILE, "
                                 "idx:DIR or folder:DIR (default: the model's dataset)")
        parser.add_argument("--images", type=images_int, metavar="N",
                            help="evaluate on N images: a deterministic class-balanced sample "
                                 "(seeded random when unlabeled)")


def add_run_args(parser: argparse.ArgumentParser, trials: int | None = 10) -> None:
    """--batch-size, --seed, --engine, --address, --device, --quiet (and --trials when given a
    default)."""
    if trials is not None:
        parser.add_argument("--trials", type=trials_int, default=trials,
                            help=f"seeded trials per point (default {trials}, at most {MAX_TRIALS})")
    parser.add_argument("--batch-size", type=batch_int, default=250,
                        help="images per forward pass (default 250; memory grows with it)")
    parser.add_argument("--seed", type=seed_int, default=0, help="campaign seed (default 0)")
    parser.add_argument("--engine", default="local", type=engine_name,
                        help="where trials run: local (default) or ray (pip install "
                             "'approxmap[ray]')")
    parser.add_argument("--address", metavar="ADDR", type=text("--address"),
                        help="with --engine ray: the Ray cluster (auto, HOST:6379, "
                             "ray://HOST:10001; default: a new local one, 1 worker per CPU)")
    parser.add_argument("--device", default="cpu", type=device_name,
                        help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (they show only on a terminal)")


def add_calib_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calib-images", type=images_int, default=1000, metavar="N",
                        help="images (class-balanced) for the data-driven criteria (default 1000)")


def add_quant_args(parser: argparse.ArgumentParser) -> None:
    """The int8 quantization of emulated layers and where its ranges are calibrated."""
    parser.add_argument("--activation", choices=("uint8", "int8"), default="uint8",
                        help="activation coding: uint8 with a zero point (default) or int8 "
                             "symmetric")
    parser.add_argument("--calibration", choices=("minmax", "percentile"), default="minmax",
                        help="activation range from min/max (default) or a percentile")
    parser.add_argument("--percentile", type=real(50, 100, closed_low=False), default=99.99,
                        help="with --calibration percentile (default 99.99)")
    parser.add_argument("--calib-data", type=text("--calib-data"),
                        help="calibration data for the quantization ranges (default: DATA-train "
                             "when it exists, else a class-balanced part of the evaluation data)")
    parser.add_argument("--calib-images", type=images_int, default=500, metavar="N",
                        help="calibration images (class-balanced, default 500)")


def quant_settings(args) -> dict:
    """The spec fields that add_quant_args' options give."""
    return {"activation": args.activation, "calibration": args.calibration,
            "percentile": args.percentile, "calib_images": args.calib_images}


def add_out_arg(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--out", metavar="DIR", type=text("--out"),
                        help=f"run folder (default runs/{command}-MODEL-DATA)")


__all__ = ["MAX_SWEEP", "MAX_TRIALS", "add_calib_args", "device_name", "engine_name", "int_in", "add_model_args", "add_out_arg",
           "add_run_args", "batch_int", "images_int", "name_list", "number_list", "unit_list",
           "positive_int", "real", "seed_int", "text", "trials_int"]
