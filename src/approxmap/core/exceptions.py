"""The one exception hierarchy of approxmap; the CLI turns each into one line and exit code 2."""

from __future__ import annotations


class ApproxmapError(Exception):
    """Base of every error approxmap raises on purpose (bad input, bad state)."""


class InvalidParameterError(ApproxmapError, ValueError):
    """A parameter is out of range or of the wrong kind."""


class UnknownNameError(ApproxmapError, KeyError):
    """A registry or model lookup found no entry of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(ApproxmapError):
    """A weights file is missing, corrupt, unsafe or does not fit the model."""


class DataError(ApproxmapError):
    """Evaluation data is missing, corrupt or does not fit the model."""


class StoreError(ApproxmapError):
    """The results store cannot be used for this campaign."""


class ModelError(ApproxmapError):
    """The model's own code (its factory or forward) raised; `kind` names the exception."""

    def __init__(self, message: str, kind: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.kind, self.detail = kind, detail

    @classmethod
    def from_exception(cls, exc: BaseException, where: str = "The model's forward") -> ModelError:
        text = str(exc).strip()
        detail = text.splitlines()[0][:200] if text else ""
        kind = type(exc).__name__
        return cls(f"{where} raised {kind}" + (f": {detail}" if detail else ""), kind, detail)
