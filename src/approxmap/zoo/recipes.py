"""Model recipes: how another process (a Ray worker) rebuilds a model's modules.

A recipe names the model the way the command line does (a zoo name, `path/file.py:factory`
or `pkg.module:factory`) and carries the text of a named file, so a worker needs neither a
copy of the file nor pickled code: it builds the architecture itself and receives only the
weights (the model's state_dict). No code travels that the user did not name.

>>> recipe = ModelRecipe.from_spec("mnist-cnn")
>>> recipe.spec, recipe.source is None
('mnist-cnn', True)
>>> model = recipe()              # the untrained architecture, in eval mode   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from approxmap.core.exceptions import InvalidParameterError, ModelError
from approxmap.core.outputs import logits_of
from approxmap.zoo.models import create_model, get_model_info


@dataclass(frozen=True)
class ModelRecipe:
    """A picklable description of how to build a model's architecture.

    Args:
        spec: a zoo name, `path/to/file.py:factory` or `package.module:factory`.
        source: for a file spec, the file's text (read by `from_spec`): workers execute it
            instead of reading the file, so other machines need no copy of it.
        output_key: for a model returning a tuple or dict, the key of its logits (the
            `--output-key` view, `logits_of`).

    Calling the recipe builds the model in eval mode: a zoo model's untrained architecture,
    or the factory's result (a factory that loads weights itself still runs, and must find
    its files where it runs); the weights are then loaded from the state_dict it is sent.
    """

    spec: str
    source: str | None = None
    output_key: int | str | None = None

    @classmethod
    def from_spec(cls, spec: str, output_key: int | str | None = None) -> ModelRecipe:
        """The recipe of a model spec, reading a named file now.

        Raises:
            UnknownNameError: a zoo name that is not registered.
            InvalidParameterError: not a model spec, or the file cannot be read.
        """
        location, sep, attr = spec.rpartition(":")
        if not sep:
            get_model_info(spec)  # raises UnknownNameError, naming the registered models
            return cls(spec, None, output_key)
        if not location.strip() or not attr.isidentifier():
            raise InvalidParameterError(
                f"{spec!r} is not a model spec: give a zoo name, path/to/file.py:factory or "
                "package.module:factory.")
        if not _is_file_spec(location):
            return cls(spec, None, output_key)
        try:
            source = Path(location).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidParameterError(f"Cannot read model file {location}: {exc}") from None
        return cls(spec, source, output_key)

    def __call__(self) -> nn.Module:
        return self.build()

    def build(self) -> nn.Module:
        """The model's architecture in eval mode (its weights as the factory leaves them).

        Raises:
            UnknownNameError / InvalidParameterError: the spec names nothing buildable here.
            ModelError: the factory (or the file's code) raised.
        """
        location, sep, attr = self.spec.rpartition(":")
        if not sep:
            model = create_model(self.spec, pretrained=False)
        else:
            factory = getattr(self._module(location), attr, None)
            if not callable(factory):
                raise InvalidParameterError(f"{location!r} has no callable named {attr!r}.")
            try:
                model = factory()
            except (Exception, SystemExit) as exc:
                raise ModelError.from_exception(exc, f"Model factory {self.spec!r}") from None
            if not isinstance(model, nn.Module):
                raise InvalidParameterError(f"Model factory {self.spec!r} must return a "
                                            f"torch.nn.Module, got {type(model).__name__}.")
        if self.output_key is not None:
            model = logits_of(model, self.output_key)
        return model.eval()

    def _module(self, location: str) -> types.ModuleType:
        if self.source is None:
            if _is_file_spec(location):
                raise InvalidParameterError(f"The recipe of {self.spec!r} lacks the file's text "
                                            "(make it with ModelRecipe.from_spec).")
            try:
                return importlib.import_module(location)
            except ImportError as exc:
                raise InvalidParameterError(f"Cannot import model module {location!r}: {exc}") from None
            except (Exception, SystemExit) as exc:
                raise ModelError.from_exception(exc, f"Importing model module {location!r}") from None
        digest = hashlib.blake2b(f"{location}\0{self.source}".encode(), digest_size=8).hexdigest()
        name = f"approxmap_recipe_{digest}"
        module = sys.modules.get(name)
        if module is None:  # executed once per process, under a name derived from its text
            module = types.ModuleType(name)
            module.__file__ = str(Path(location).resolve())
            sys.modules[name] = module
            try:
                exec(compile(self.source, module.__file__, "exec"), module.__dict__)
            except (Exception, SystemExit) as exc:
                sys.modules.pop(name, None)
                raise ModelError.from_exception(exc, f"Importing model file {location}") from None
        return module


def _is_file_spec(location: str) -> bool:
    return location.endswith(".py") or "/" in location


__all__ = ["ModelRecipe"]
