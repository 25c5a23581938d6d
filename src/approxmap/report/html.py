"""A self-contained ``report.html``: run summary, embedded figures and result tables.

The page needs no network: figures are embedded as base64 data URIs and the only style
is an inline ``<style>`` block. Every value taken from the profile is HTML-escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from approxmap.exceptions import InvalidParameterError
from approxmap.report.figures import (
    check_profile,
    format_number,
    layers_by_rank,
    render_profile_figures,
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9em; } summary { cursor: pointer; margin: .3em 0; }
"""
_MIME = {".png": "image/png", ".svg": "image/svg+xml"}
_CAPTIONS = {
    "curves": "Accuracy against error magnitude, per layer",
    "ranking": "Layer resilience ranking (largest magnitude within budget)",
}


@dataclass(frozen=True)
class Section:
    """An extra report section appended after the profile content.

    Args:
        title: heading text (escaped).
        html: body markup, inserted as given; the analysis that builds it escapes its values.
        figures: .png or .svg files, each embedded after the body.
    """

    title: str
    html: str
    figures: Sequence[Path] = ()


def _data_uri(path: Path) -> str:
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise InvalidParameterError(f"Figures must be .png or .svg files, got {str(path)!r}.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidParameterError(f"Cannot read the figure {str(path)!r}: {exc}.") from exc
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _pick_image(paths: Sequence[Path | str]) -> Path:
    """Return the PNG among paths, else the SVG."""
    candidates = sorted((Path(p) for p in paths), key=lambda p: p.suffix.lower() != ".png")
    usable = [p for p in candidates if p.suffix.lower() in _MIME]
    if not usable:
        raise InvalidParameterError(f"No .png or .svg file among the figure paths {paths!r}.")
    return usable[0]


def _figure_html(paths: Sequence[Path | str], caption: str) -> str:
    src = _data_uri(_pick_image(paths))
    text = escape(caption)
    return f'<figure><img alt="{text}" src="{src}"><figcaption>{text}</figcaption></figure>'


def _caption(key: str) -> str:
    if key.startswith("heatmap:"):
        return f"Accuracy (%) over error mean × σ: layer {key.removeprefix('heatmap:')}"
    return _CAPTIONS.get(key, key)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 0) -> str:
    """Render an escaped table; the first ``left`` columns are left-aligned."""

    def cells(tag: str, values: Sequence[Any]) -> str:
        return "".join(
            f"<{tag}{' class=l' if i < left else ''}>{escape(str(v))}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def _percent(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}"


def _summary_html(profile: Mapping[str, Any]) -> str:
    error = profile.get("error") or {}
    budget_line = profile["clean_accuracy"] - profile["budget_pp"] / 100
    rows = [
        ("Model", profile["model"]),
        ("Dataset", profile["dataset"]),
        ("Images", profile.get("images", "—")),
        ("Clean accuracy", f"{_percent(profile['clean_accuracy'])} %"),
        ("Error model", ", ".join(f"{k}={v}" for k, v in error.items()) or "—"),
        ("Swept magnitude", profile["axis"]),
        ("Budget", f"{profile['budget_pp']:g} pp (accuracy ≥ {_percent(budget_line)} %)"),
        ("Trials per point", _trials_text(profile)),
        ("Seed", profile.get("seed", "—")),
        ("Command", profile.get("command", "—")),
        ("Created", profile.get("created", "—")),
    ]
    return "<h2>Run summary</h2>" + _table(["Item", "Value"], rows, left=2)


def _trials_text(profile: Mapping[str, Any]) -> str:
    if profile.get("trials") is None:
        return "—"
    target = profile.get("ci_target")
    if target is None:
        return str(profile["trials"])
    return f"at least {profile['trials']}, until the 95 % CI half-width is ≤ {target * 100:g} pp"


def _threshold_text(layer: Mapping[str, Any]) -> str:
    threshold = layer["threshold"]
    if threshold is None:
        return "—"
    return (
        f"≥ {format_number(threshold)}" if layer["threshold_censored"] else format_number(threshold)
    )


def _ranking_html(profile: Mapping[str, Any]) -> str:
    rows = [
        (
            layer["rank"] if layer["rank"] is not None else "—",
            layer["name"],
            layer.get("type", "—"),
            f"{layer.get('macs', 0):,}",
            f"{layer.get('params', 0):,}",
            _threshold_text(layer),
        )
        for layer in layers_by_rank(profile)
    ]
    header = ["Rank", "Layer", "Type", "MACs", "Params", f"Threshold ({profile['axis']})"]
    note = (
        "<p>Threshold: largest magnitude whose accuracy drop stays within the budget; "
        "≥ marks a lower bound (every tested magnitude passed), — a layer that fails "
        "already at the smallest magnitude.</p>"
    )
    return "<h2>Layer ranking</h2>" + note + _table(header, rows)


def _points_html(layer: Mapping[str, Any], axis: str) -> str:
    rows = [
        (
            format_number(p["magnitude"]),
            format_number(p.get("mean")),
            _percent(p["accuracy"]),
            f"[{_percent(p.get('ci_low'))}, {_percent(p.get('ci_high'))}]",
            p.get("trials", "—"),
        )
        for p in layer["points"]
    ]
    table = _table([axis, "Mean", "Accuracy (%)", "95% CI (%)", "Trials"], rows)
    title = f"{layer['name']} ({layer.get('type', '?')}), threshold {_threshold_text(layer)}"
    return f"<details><summary>{escape(title)}</summary>{table}</details>"


def _section_html(section: Section) -> str:
    figures = "".join(_figure_html([p], Path(p).stem) for p in section.figures)
    return f"<section><h2>{escape(section.title)}</h2>{section.html}{figures}</section>"


def write_report(
    profile: Mapping[str, Any],
    out_dir: str | Path,
    figures: Mapping[str, Sequence[Path | str]] | None = None,
    sections: Sequence[Section] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` for a profile and return its path.

    Args:
        profile: the content of profile.json.
        out_dir: directory for report.html (created if missing).
        figures: name -> image paths as returned by ``render_profile_figures``; ``None``
            renders them into out_dir first, ``{}`` gives a report without figures.
        sections: extra sections appended after the profile content.

    Example:
        >>> write_report(profile, "runs/demo")  # doctest: +SKIP
        PosixPath('runs/demo/report.html')
    """
    check_profile(profile)
    out = Path(out_dir)
    if figures is None:
        figures = render_profile_figures(profile, out)
    title = f"approxmap report: {profile['model']} on {profile['dataset']}"
    parts = [
        f"<h1>{escape(title)}</h1>",
        _summary_html(profile),
        "<h2>Figures</h2>" if figures else "",
        *(_figure_html(paths, _caption(key)) for key, paths in figures.items()),
        _ranking_html(profile),
        "<h2>Per-layer results</h2>",
        *(_points_html(layer, profile["axis"]) for layer in profile["layers"]),
        *(_section_html(section) for section in sections or ()),
    ]
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(p for p in parts if p)
        + "\n</body></html>\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
