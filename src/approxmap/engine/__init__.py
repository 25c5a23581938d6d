"""The engine layer: the Engine protocol and registry, the local engine (torch.fx graph split
with a prefix cache), the Ray engine (optional extra), the clean pass, and one-off injection with hooks."""

from approxmap.engine.base import (
    Calibration,
    Engine,
    TrialPlan,
    create_engine,
    list_engines,
    register_engine,
    resolve_device,
)
from approxmap.engine.inject import Injector
from approxmap.engine.local import LocalEngine
from approxmap.engine.ray import RayEngine  # registers "ray"; Ray itself is imported lazily

__all__ = ["Calibration", "Engine", "Injector", "LocalEngine", "RayEngine", "TrialPlan", "create_engine",
           "list_engines", "register_engine", "resolve_device"]
