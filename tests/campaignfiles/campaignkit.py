"""Helpers of tests/campaignfiles: a run folder's JSON results compared apart from what cannot
repeat."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# What differs between two runs of the same configuration: the command line, the creation
# date, and measured wall-clock times (prune's latency, emulate's and predict's seconds).
UNREPEATABLE = {"command", "created", "seconds", "latency", "latency_ms"}


def without_unrepeatable(data):
    if isinstance(data, dict):
        return {k: without_unrepeatable(v) for k, v in data.items() if k not in UNREPEATABLE}
    if isinstance(data, list):
        return [without_unrepeatable(v) for v in data]
    return data


def results(folder: Path) -> dict[str, object]:
    """Every JSON file of a run folder, without its unrepeatable entries."""
    files = {p.name: without_unrepeatable(json.loads(p.read_text()))
             for p in sorted(folder.glob("*.json"))}
    assert files, f"no result in {folder}"
    return files
