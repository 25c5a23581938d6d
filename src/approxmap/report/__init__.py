"""The report layer: figures, renderers per result kind, the run folder and report.html."""

from approxmap.report.folder import RunFolder, identity_of
from approxmap.report.html import Figure, Section
from approxmap.report.renderers import Renderer, register_renderer

__all__ = ["Figure", "Renderer", "RunFolder", "Section", "identity_of", "register_renderer"]
