"""`approxmap list models|datasets|errors`: what the registries hold."""

from __future__ import annotations

import dataclasses

from approxmap.errors import list_error_models
from approxmap.errors.models import _REGISTRY as ERROR_REGISTRY
from approxmap.zoo import get_dataset_info, get_model_info, list_datasets, list_models

HELP = "list the registered models, datasets or error models"


def add_parser(sub) -> None:
    p = sub.add_parser("list", help=HELP, description=HELP.capitalize() + ".")
    p.add_argument("what", choices=("models", "datasets", "errors"))
    p.add_argument("pattern", nargs="?", default="*", help="glob over names (default *)")
    p.set_defaults(run=run)


def run(args) -> int:
    {"models": _models, "datasets": _datasets, "errors": _errors}[args.what](args.pattern)
    return 0


def _models(pattern: str) -> None:
    for name in list_models(pattern):
        info = get_model_info(name)
        print(f"{name}\n  {info.description}\n  input: {'x'.join(map(str, info.input_shape))}, "
              f"{info.num_classes} classes; {info.normalization}\n  source: {info.source} "
              f"({info.license})\n  clean accuracy: {info.clean_accuracy}")


def _datasets(pattern: str) -> None:
    for name in list_datasets(pattern):
        info = get_dataset_info(name)
        classes = "unlabeled" if info.num_classes is None else f"{info.num_classes} classes"
        print(f"{name}\n  {info.description}\n  samples: {'x'.join(map(str, info.input_shape))}, "
              f"{classes}\n  source: {info.source} ({info.license})")
    print("\nAlso: --data npz:FILE (arrays x and y), and the schemes listed in the README.")


def _errors(pattern: str) -> None:
    for name in list_error_models(pattern):
        cls = ERROR_REGISTRY.get(name)
        params = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name}({params})\n  {doc}")
