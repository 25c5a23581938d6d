"""approxmap: where in a trained CNN can arithmetic be inexact, and how much error may it take?

The public API:

>>> import approxmap as am
>>> model = am.create_model("mnist-cnn")                         # doctest: +SKIP
>>> data = am.create_dataset("mnist5k", images=500)              # doctest: +SKIP
>>> profile = am.profile_layers(model, data, sigmas=[0, 0.5, 1])  # doctest: +SKIP
"""

from approxmap.analysis.classify import classify_by_budget, classify_by_thresholds
from approxmap.analysis.latency import measure_latency
from approxmap.analysis.layers import LayerInfo, layer_table
from approxmap.analysis.profile import ProfileSpec, profile_layers
from approxmap.analysis.pruning import (
    PruningPlan,
    prune_model,
    pruning_units,
    sensitivity,
)
from approxmap.analysis.significance import (
    agreement,
    compute_significance,
    list_criteria,
    register_criterion,
)
from approxmap.analysis.stats import Summary, mean_ci, wilson
from approxmap.campaign import Campaign, Scenario, Store, TrialRecord, trial_seed
from approxmap.engine import LocalEngine
from approxmap.errors import (
    Custom,
    ErrorModel,
    Gaussian,
    StuckAt,
    Uniform,
    create_error_model,
    list_error_models,
    register_error_model,
)
from approxmap.exceptions import (
    ApproxmapError,
    CheckpointError,
    DataError,
    InvalidParameterError,
    StoreError,
    UnknownNameError,
)
from approxmap.inject import Injector
from approxmap.sites import Site, select_layers
from approxmap.zoo import (
    EvalData,
    create_dataset,
    create_model,
    list_datasets,
    list_models,
    load_state_dict,
    register_dataset,
    register_model,
)
from approxmap.zoo.pruned import load_pruned, save_pruned

__version__ = "0.1.0"

__all__ = [
    "ApproxmapError", "Campaign", "CheckpointError", "Custom", "DataError", "ErrorModel",
    "EvalData", "Gaussian", "Injector", "InvalidParameterError", "LayerInfo", "LocalEngine",
    "ProfileSpec", "Scenario", "Site", "Store", "StoreError", "StuckAt", "Summary",
    "TrialRecord", "Uniform", "UnknownNameError", "create_dataset", "create_error_model",
    "create_model", "layer_table", "list_datasets", "list_error_models", "list_models",
    "load_state_dict", "mean_ci", "profile_layers", "register_dataset", "register_error_model",
    "register_model", "select_layers", "trial_seed", "wilson",
    "PruningPlan", "agreement", "classify_by_budget", "classify_by_thresholds",
    "compute_significance", "list_criteria", "load_pruned", "measure_latency", "prune_model",
    "pruning_units", "register_criterion", "save_pruned", "sensitivity",
]
