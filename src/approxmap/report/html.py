"""A self-contained ``report.html``: a run summary and one section per result.

The page needs no network: figures are embedded as base64 data URIs (read from files given
relative to the run folder, so a moved or copied folder rebuilds the same page) and the
only style is an inline ``<style>`` block. Every value is HTML-escaped by the section
builders.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from approxmap.core.exceptions import InvalidParameterError

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


@dataclass(frozen=True)
class Figure:
    """A figure of a section: its file, relative to the run folder, and a caption."""

    path: str
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """A report section.

    Args:
        title: heading text (escaped).
        html: body markup, inserted as given; the renderer that builds it escapes its values.
        figures: figures embedded after the body (paths relative to the run folder).
    """

    title: str
    html: str
    figures: Sequence[Figure] = field(default_factory=tuple)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """An HTML table with every cell escaped; the first `left` columns left-aligned."""

    def cells(tag: str, values: Sequence[Any]) -> str:
        return "".join(f"<{tag}{' class=l' if i < left else ''}>{escape(str(v))}</{tag}>"
                       for i, v in enumerate(values))

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def _data_uri(path: Path) -> str:
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise InvalidParameterError(f"Figures must be .png or .svg files, got {str(path)!r}.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidParameterError(f"Cannot read the figure {str(path)!r}: {exc}.") from exc
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_html(folder: Path, figure: Figure) -> str:
    text = escape(figure.caption or Path(figure.path).stem)
    src = _data_uri(folder / figure.path)
    return f'<figure><img alt="{text}" src="{src}"><figcaption>{text}</figcaption></figure>'


def page(folder: Path, title: str, summary: Sequence[tuple[str, Any]],
         sections: Sequence[Section]) -> str:
    """The whole page: a title, the run summary table and every section, figures embedded."""
    parts = [f"<h1>{escape(title)}</h1>", "<h2>Run summary</h2>",
             table(["Item", "Value"], summary, left=2)]
    for section in sections:
        figures = "".join(_figure_html(folder, f) for f in section.figures)
        parts.append(f"<section><h2>{escape(section.title)}</h2>{section.html}{figures}</section>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


__all__ = ["Figure", "Section", "page", "table"]
