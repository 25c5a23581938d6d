"""approxmap: where in a trained CNN can arithmetic be inexact, and how much error may it take?

The public API:

>>> import approxmap as am
>>> model = am.create_model("mnist-cnn")                                   # doctest: +SKIP
>>> data = am.create_dataset("mnist5k", images=500)                        # doctest: +SKIP
>>> profile = am.profile_layers(model, data, am.ProfileSpec(sweep=(0, 0.5, 1)),
...                             am.Run(trials=5))                           # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from approxmap.core.version import __version__  # noqa: F401 (re-exported)

# Not `from typing import TYPE_CHECKING`: importing typing is most of this module's import
# time, which is the time before the command line can handle a Ctrl-C. Type checkers treat
# a constant of this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LAZY = {
    "ApproxmapError": "approxmap.core.exceptions",
    "BitFlip": "approxmap.faults",
    "Campaign": "approxmap.campaign",
    "CheckpointError": "approxmap.core.exceptions",
    "Counts": "approxmap.core.records",
    "Custom": "approxmap.core.errors",
    "DataError": "approxmap.core.exceptions",
    "Engine": "approxmap.engine",
    "ErrorModel": "approxmap.core.errors",
    "EvalData": "approxmap.core.data",
    "Gaussian": "approxmap.core.errors",
    "Injector": "approxmap.engine",
    "InvalidParameterError": "approxmap.core.exceptions",
    "LayerInfo": "approxmap.core.layers",
    "LocalEngine": "approxmap.engine",
    "ModelError": "approxmap.core.exceptions",
    "ModelRecipe": "approxmap.zoo",
    "ProfileResult": "approxmap.analysis.profile",
    "ProfileSpec": "approxmap.analysis.profile",
    "PruneResult": "approxmap.analysis.prune",
    "PruneSpec": "approxmap.analysis.prune",
    "PruningPlan": "approxmap.pruning",
    "RayEngine": "approxmap.engine",
    "Renderer": "approxmap.report",
    "Result": "approxmap.analysis.results",
    "Run": "approxmap.campaign",
    "RunFolder": "approxmap.report",
    "Scenario": "approxmap.core.scenario",
    "Section": "approxmap.report",
    "SensitivityResult": "approxmap.analysis.sensitivity",
    "SensitivitySpec": "approxmap.analysis.sensitivity",
    "SignificanceResult": "approxmap.analysis.filters",
    "SignificanceSpec": "approxmap.analysis.filters",
    "Site": "approxmap.core.sites",
    "SiteStats": "approxmap.core.stats",
    "Store": "approxmap.campaign",
    "StoreError": "approxmap.core.exceptions",
    "StuckAt": "approxmap.core.errors",
    "StuckBit": "approxmap.faults",
    "Summary": "approxmap.core.statistics",
    "Target": "approxmap.core.targets",
    "TrialRecord": "approxmap.core.records",
    "Uniform": "approxmap.core.errors",
    "UnknownNameError": "approxmap.core.exceptions",
    "agreement": "approxmap.analysis.significance",
    "classify_by_budget": "approxmap.analysis.classify",
    "classify_by_thresholds": "approxmap.analysis.classify",
    "compute_significance": "approxmap.analysis.significance",
    "create_dataset": "approxmap.zoo",
    "create_engine": "approxmap.engine",
    "create_error_model": "approxmap.core.errors",
    "create_model": "approxmap.zoo",
    "identity_of": "approxmap.report",
    "layer_table": "approxmap.core.layers",
    "list_criteria": "approxmap.analysis.significance",
    "list_datasets": "approxmap.zoo",
    "list_engines": "approxmap.engine",
    "list_error_models": "approxmap.core.errors",
    "list_models": "approxmap.zoo",
    "list_targets": "approxmap.core.targets",
    "load_pruned": "approxmap.pruning",
    "load_state_dict": "approxmap.zoo",
    "logits_of": "approxmap.core.outputs",
    "mean_ci": "approxmap.core.statistics",
    "measure_latency": "approxmap.core.latency",
    "plan_fault_sampling": "approxmap.faults",
    "profile_layers": "approxmap.analysis.profile",
    "prune_analysis": "approxmap.analysis.prune",
    "prune_model": "approxmap.pruning",
    "pruning_units": "approxmap.pruning",
    "register_criterion": "approxmap.analysis.significance",
    "register_dataset": "approxmap.zoo",
    "register_engine": "approxmap.engine",
    "register_error_model": "approxmap.core.errors",
    "register_model": "approxmap.zoo",
    "register_renderer": "approxmap.report",
    "register_result": "approxmap.analysis.results",
    "register_target": "approxmap.core.targets",
    "sample_size": "approxmap.faults",
    "save_pruned": "approxmap.pruning",
    "select_layers": "approxmap.core.sites",
    "sensitivity": "approxmap.analysis.sensitivity",
    "sensitivity_analysis": "approxmap.analysis.sensitivity",
    "significance_analysis": "approxmap.analysis.filters",
    "trial_seed": "approxmap.core.scenario",
    "wilson": "approxmap.core.statistics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'approxmap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from approxmap.analysis.classify import classify_by_budget, classify_by_thresholds
    from approxmap.analysis.filters import (
        SignificanceResult,
        SignificanceSpec,
        significance_analysis,
    )
    from approxmap.analysis.profile import ProfileResult, ProfileSpec, profile_layers
    from approxmap.analysis.prune import PruneResult, PruneSpec, prune_analysis
    from approxmap.analysis.results import Result, register_result
    from approxmap.analysis.sensitivity import (
        SensitivityResult,
        SensitivitySpec,
        sensitivity,
        sensitivity_analysis,
    )
    from approxmap.analysis.significance import (
        agreement,
        compute_significance,
        list_criteria,
        register_criterion,
    )
    from approxmap.campaign import Campaign, Run, Store
    from approxmap.core.data import EvalData
    from approxmap.core.errors import (
        Custom,
        ErrorModel,
        Gaussian,
        StuckAt,
        Uniform,
        create_error_model,
        list_error_models,
        register_error_model,
    )
    from approxmap.core.exceptions import (
        ApproxmapError,
        CheckpointError,
        DataError,
        InvalidParameterError,
        ModelError,
        StoreError,
        UnknownNameError,
    )
    from approxmap.core.latency import measure_latency
    from approxmap.core.layers import LayerInfo, layer_table
    from approxmap.core.outputs import logits_of
    from approxmap.core.records import Counts, TrialRecord
    from approxmap.core.scenario import Scenario, trial_seed
    from approxmap.core.sites import Site, select_layers
    from approxmap.core.statistics import Summary, mean_ci, wilson
    from approxmap.core.stats import SiteStats
    from approxmap.core.targets import Target, list_targets, register_target
    from approxmap.engine import (
        Engine,
        Injector,
        LocalEngine,
        RayEngine,
        create_engine,
        list_engines,
        register_engine,
    )
    from approxmap.faults import BitFlip, StuckBit, plan_fault_sampling, sample_size
    from approxmap.pruning import (
        PruningPlan,
        load_pruned,
        prune_model,
        pruning_units,
        save_pruned,
    )
    from approxmap.report import Renderer, RunFolder, Section, identity_of, register_renderer
    from approxmap.zoo import (
        ModelRecipe,
        create_dataset,
        create_model,
        list_datasets,
        list_models,
        load_state_dict,
        register_dataset,
        register_model,
    )


__all__ = [
    "ApproxmapError", "BitFlip", "Campaign", "CheckpointError", "Counts", "Custom", "DataError",
    "Engine", "ErrorModel", "EvalData", "Gaussian", "Injector", "InvalidParameterError",
    "LayerInfo", "LocalEngine", "ModelError", "ModelRecipe", "ProfileResult", "ProfileSpec", "PruneResult",
    "PruneSpec", "PruningPlan", "RayEngine", "Renderer", "Result", "Run", "RunFolder", "Scenario", "Section", "SensitivityResult",
    "SensitivitySpec", "SignificanceResult", "SignificanceSpec", "Site", "SiteStats", "Store",
    "StoreError", "StuckAt", "StuckBit", "Summary", "Target", "TrialRecord", "Uniform", "UnknownNameError",
    "agreement", "classify_by_budget", "classify_by_thresholds", "compute_significance",
    "create_dataset", "create_engine", "create_error_model", "create_model", "identity_of",
    "layer_table", "list_criteria", "list_datasets", "list_engines", "list_error_models",
    "list_models", "list_targets", "load_pruned", "load_state_dict", "logits_of",
    "measure_latency", "mean_ci", "plan_fault_sampling", "profile_layers", "prune_analysis", "prune_model",
    "pruning_units", "register_criterion", "register_dataset", "register_engine",
    "register_error_model", "register_model", "register_renderer", "register_result",
    "register_target", "sample_size", "save_pruned", "select_layers", "sensitivity", "sensitivity_analysis",
    "significance_analysis", "trial_seed", "wilson",
]
