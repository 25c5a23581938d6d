"""Safe loading of weights: never unpickle code from a model file."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from approxmap.core.exceptions import CheckpointError
from approxmap.core.files import regular_file


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state_dict from a `.safetensors` file or a torch file with weights_only=True.

    The file's first bytes say what it is: a torch checkpoint (a zip archive, or a pickle
    of the legacy format), or safetensors (also without the suffix); anything else is
    refused without being parsed, so random bytes are never called pickled data.

    Raises:
        CheckpointError (one line): an empty path, a missing, empty or special file (a
            FIFO, a device, a folder), a corrupt file, an unsafe one (one that carries
            pickled code or objects other than tensors), or one that holds no state_dict.
    """
    path = regular_file(path, "weights file", CheckpointError)
    head = _head(path)
    if path.suffix == ".safetensors" or _looks_like_safetensors(head):
        return _check_state(_load_safetensors(path), path)
    if not head:
        raise CheckpointError(f"Weights file {path} is empty.")
    if not (head.startswith(_ZIP) or (head[:1] == b"\x80" and head[1:2] in _PROTOCOLS)):
        raise CheckpointError(
            f"{path} is not a weights file: neither a torch checkpoint (a zip archive or a "
            f"legacy pickle) nor safetensors (it starts with 0x{head[:8].hex()}).")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = " ".join(str(exc).split())
        found = re.search(r"GLOBAL ([\w.]+)", text)  # a class or function it would import
        if found is None:
            raise CheckpointError(f"Cannot read weights file {path}: corrupt pickled data "
                                  f"({_detail(text)}).") from None
        raise CheckpointError(
            f"Refused to load {path}: it is not a plain weights file (it holds a pickled "
            f"{found.group(1)}). approxmap never unpickles code; save a state_dict or use "
            "safetensors.") from None
    except MemoryError:
        raise CheckpointError(f"Cannot read weights file {path}: corrupt (it asks for more "
                              "memory than there is).") from None
    except Exception as exc:  # the unpickler raises many kinds on corrupt input
        raise CheckpointError(f"Cannot read weights file {path}: corrupt or not a torch file "
                              f"({_detail(str(exc)) or type(exc).__name__}).") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return _check_state(obj, path)


_ZIP = b"PK\x03\x04"
_PROTOCOLS = {bytes([p]) for p in range(2, 6)}


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(16)
    except OSError as exc:
        raise CheckpointError(f"Cannot read weights file {path}: {exc.strerror or exc}.") from None


def _looks_like_safetensors(head: bytes) -> bool:
    """8 bytes of little-endian header length, then the JSON header."""
    return len(head) > 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 2**27


def _detail(text: str) -> str:
    return " ".join(text.split())[:160]


def _check_state(obj, path: Path) -> dict[str, torch.Tensor]:
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
        raise CheckpointError(f"Cannot read safetensors file {path}: {_detail(str(exc))}") from None


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
