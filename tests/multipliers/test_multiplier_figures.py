"""Multiplier figures: the pure data functions, then the renderers (OO matplotlib only)."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers import characterize, create_unit
from approxmap.multipliers.formulas import drum
from approxmap.report import multiplier_figures as mf


def test_heatmap_info_in_value_units():
    info = mf._get_error_heatmap_info("drum:6")
    assert info.error.shape == (256, 256) and info.error.dtype == np.int64
    assert info.extent == (-0.5, 255.5, -0.5, 255.5)
    assert int(info.error[200, 100]) == int(drum(200, 100, 6)) - 20000   # row a, column w
    assert info.vmax == np.abs(info.error).max()
    assert "activation" in info.ylabel and "weight" in info.xlabel

    signed = mf._get_error_heatmap_info("evo:v10/mul8s_1L2H")
    assert signed.extent == (-128.5, 127.5, -128.5, 127.5)
    assert signed.a_values[127] == -1 and signed.w_values[0] == -128
    unit = create_unit("evo:v10/mul8s_1L2H")
    assert int(signed.error[127, 127]) == int(unit.product(-1, -1)) - 1

    assert mf._get_error_heatmap_info("exact").vmax == 1.0                # never a 0 range


def test_heatmap_renderer(tmp_path):
    fig = mf.plot_error_heatmap("mitchell")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    image = ax.get_images()[0]
    lo, hi = image.get_clim()
    assert lo == -hi and hi > 0                                        # centred at 0
    assert image.get_cmap().name == mf.HEATMAP_CMAP
    assert ax.get_xlabel() == "weight operand w" and ax.get_ylabel() == "activation operand a"
    fig.savefig(tmp_path / "heat.png", dpi=40)
    assert (tmp_path / "heat.png").stat().st_size > 0


def _rows():
    rows = []
    for layer in ("conv1", "conv2", "fc"):
        for unit in ("drum:6", "mitchell"):
            if (layer, unit) != ("fc", "mitchell"):
                rows.append({"layer": layer, "unit": unit, **characterize(unit).to_dict()})
    return rows


def test_metric_bars_info():
    info = mf._get_metric_bars_info(_rows(), "mred_pct")
    assert info.layers == ["conv1", "conv2", "fc"] and info.units == ["drum:6", "mitchell"]
    assert info.values.shape == (3, 2)
    assert info.values[0, 1] == pytest.approx(characterize("mitchell").mred_pct)
    assert math.isnan(info.values[2, 1])
    assert info.ylabel == "MRED (%)"
    with pytest.raises(InvalidParameterError, match="lacks"):
        mf._get_metric_bars_info([{"layer": "a", "unit": "b"}], "mae")
    with pytest.raises(InvalidParameterError, match="twice"):
        mf._get_metric_bars_info([{"layer": "a", "unit": "b", "mae": 1}] * 2, "mae")
    with pytest.raises(InvalidParameterError, match="number"):
        mf._get_metric_bars_info([{"layer": "a", "unit": "b", "mae": "x"}], "mae")
    with pytest.raises(InvalidParameterError, match="No rows"):
        mf._get_metric_bars_info([], "mae")


def test_metric_bars_renderer(tmp_path):
    fig = mf.plot_unit_metric_bars(_rows(), metric="mae", log=True)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["drum:6", "mitchell"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "conv2", "fc"]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == mf.METRIC_LABELS["mae"]
    fig.savefig(tmp_path / "bars.svg")
    assert (tmp_path / "bars.svg").stat().st_size > 0


def test_object_oriented_matplotlib_only():
    imports = [line for line in inspect.getsource(mf).splitlines()
               if line.startswith(("import ", "from "))]
    assert any("matplotlib.figure import Figure" in line for line in imports)
    assert not any("pyplot" in line for line in imports)
