"""Reports of analyses: figures (PNG/SVG) and a self-contained report.html."""

from __future__ import annotations

from approxmap.report.figures import (
    plot_curves,
    plot_heatmap,
    plot_ranking,
    render_profile_figures,
    save_figure,
)
from approxmap.report.html import Section, write_report
from approxmap.report.profile_files import (
    write_profile_csv,
    write_profile_json,
    write_profile_outputs,
)

__all__ = [
    "Section",
    "plot_curves",
    "plot_heatmap",
    "plot_ranking",
    "render_profile_figures",
    "save_figure",
    "write_profile_csv",
    "write_profile_json",
    "write_profile_outputs",
    "write_report",
]
