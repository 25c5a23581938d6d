"""Error models: how the errors of approximate arithmetic enter a tensor."""

from approxmap.errors.models import (
    Custom,
    ErrorModel,
    Gaussian,
    StuckAt,
    Uniform,
    create_error_model,
    error_model_from_dict,
    list_error_models,
    register_error_model,
)

__all__ = [
    "Custom",
    "ErrorModel",
    "Gaussian",
    "StuckAt",
    "Uniform",
    "create_error_model",
    "error_model_from_dict",
    "list_error_models",
    "register_error_model",
]
