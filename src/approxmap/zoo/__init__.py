"""Registries of models and datasets, and safe loading of user models, weights and data."""

from approxmap.zoo.checkpoints import load_state_dict
from approxmap.zoo.datasets import (
    DatasetInfo,
    create_dataset,
    get_dataset_info,
    list_datasets,
    register_dataset,
)
from approxmap.zoo.models import (
    ModelInfo,
    create_model,
    get_model_info,
    list_models,
    register_model,
)
from approxmap.zoo.recipes import ModelRecipe

__all__ = [
    "DatasetInfo",
    "ModelInfo",
    "ModelRecipe",
    "create_dataset",
    "create_model",
    "get_dataset_info",
    "get_model_info",
    "list_datasets",
    "list_models",
    "load_state_dict",
    "register_dataset",
    "register_model",
]

from approxmap.zoo import (  # noqa: E402,F401  (registration)
    archs,
    efficientnet,
    fashion,
    folder,
    idx,
    photos,
    trained,
)
