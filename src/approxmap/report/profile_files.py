"""The profile's machine-readable files: profile.json and profile.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

CSV_COLUMNS = ["rank", "layer", "type", "macs", "params", "threshold", "threshold_censored",
               "magnitude", "sigma", "mean", "rate", "accuracy", "ci_low", "ci_high",
               "wilson_low", "wilson_high", "top5", "agreement", "nonfinite", "loss", "trials"]


def write_profile_json(profile: dict[str, Any], out_dir: str | Path) -> Path:
    path = Path(out_dir) / "profile.json"
    _atomic_write(path, json.dumps(profile, indent=2, allow_nan=False) + "\n")
    return path


def write_profile_csv(profile: dict[str, Any], out_dir: str | Path) -> Path:
    """One row per (layer, swept point), with the layer's facts repeated on each row."""
    path = Path(out_dir) / "profile.csv"
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for layer in profile["layers"]:
            facts = {"rank": layer["rank"], "layer": layer["name"], "type": layer["type"],
                     "macs": layer["macs"], "params": layer["params"],
                     "threshold": layer["threshold"],
                     "threshold_censored": layer["threshold_censored"]}
            for point in layer["points"]:
                writer.writerow({**facts, **{k: point.get(k) for k in CSV_COLUMNS if k in point}})
    tmp.replace(path)
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_profile_outputs(profile: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write profile.json, profile.csv, the figures (PNG + SVG) and report.html."""
    from approxmap.report.figures import render_profile_figures
    from approxmap.report.html import write_report

    out_dir = Path(out_dir)
    figures = render_profile_figures(profile, out_dir)
    return {"json": write_profile_json(profile, out_dir),
            "csv": write_profile_csv(profile, out_dir),
            "report": write_report(profile, out_dir, figures)}
