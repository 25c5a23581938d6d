"""Safe loading of weights: never unpickle code from a model file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from approxmap.core.exceptions import CheckpointError


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state_dict from a `.safetensors` file or a torch file with weights_only=True.

    Raises CheckpointError for a missing, corrupt or unsafe file (one that carries pickled
    code or objects other than tensors), or one that holds no state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Weights file not found: {path}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise CheckpointError(
            f"Refused to load {path}: it is not a plain weights file ({first[:160]}). "
            "approxmap never unpickles code; save a state_dict or use safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"Cannot read weights file {path}: corrupt or not a torch file "
                              f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})."
                              ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(
            f"{path} does not hold a state_dict (a mapping of parameter names to tensors)."
        )
    return dict(obj)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"Cannot read safetensors file {path}: {exc}") from None


def load_weights_into(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load a state_dict file into `model` strictly; a mismatch is a CheckpointError."""
    state = load_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = " ".join(lines[1:3]) if len(lines) > 1 else lines[0]
        raise CheckpointError(f"Weights in {path} do not fit the model: {detail[:300]}") from None
    return model
