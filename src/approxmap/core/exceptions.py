"""The one exception hierarchy of approxmap; the CLI turns each into one line and exit code 2."""

from __future__ import annotations

import re


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


_LOW_PRECISION = re.compile(r"not implemented for '(Half|BFloat16)'|Low precision dtypes|"
                            r"Unsupported dtype (Half|BFloat16)")


class ModelError(ApproxmapError):
    """The model's own code (its factory or forward) raised; `kind` names the exception."""

    def __init__(self, message: str, kind: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.kind, self.detail = kind, detail

    @classmethod
    def from_exception(cls, exc: BaseException, where: str = "The model's forward") -> ModelError:
        """One line: where, the exception's kind and its first line; an op that has no
        float16/bfloat16 kernel on this device gets a hint on what to do."""
        text = str(exc).strip()
        detail = text.splitlines()[0][:200] if text else ""
        kind = type(exc).__name__
        hint = ("; this op has no kernel for the model's reduced-precision dtype on this "
                "device: run the model in float32 (model.float()) or on a GPU"
                if _LOW_PRECISION.search(detail) else "")
        return cls(f"{where} raised {kind}" + (f": {detail}" if detail else "") + hint, kind,
                   detail)

    def reads_as_shape_mismatch(self) -> bool:
        """True when the error reads like inputs of the wrong shape (the data's fault)."""
        return self.kind in ("RuntimeError", "ValueError", "IndexError") and any(
            word in self.detail for word in ("shape", "size", "channels", "dimension", "mat1"))
