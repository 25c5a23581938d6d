"""Fixtures of the emulation tests: EvoApprox tables and the backend switch."""

from __future__ import annotations

import pytest
import torch
from emul_helpers import EVO_DIR, EVO_NAMES, load_evo

from approxmap.multipliers import kernels
from approxmap.multipliers.products import Table


@pytest.fixture(scope="session")
def evo_tables() -> dict[str, Table]:
    if not (EVO_DIR / "evo8_luts.npz").is_file():
        pytest.skip("EvoApprox tables missing from the package data")
    return {name: load_evo(name) for name in EVO_NAMES}


@pytest.fixture(params=["onednn", "float"])
def backend(request, monkeypatch):
    """Run a test with the oneDNN int8 backend (if exact here) and with the float backend."""
    if request.param == "onednn" and not kernels.onednn_exact():
        pytest.skip("oneDNN int8 convolution not available or not exact on this CPU")
    if request.param == "float":
        monkeypatch.setattr(kernels, "onednn_exact", lambda: False)
    return request.param


@pytest.fixture(autouse=True)
def one_thread():
    """The tensors here are tiny: one thread avoids waiting on busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
