"""`approxmap list models|datasets|errors|targets|engines|criteria`: what the registries hold."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

HELP = "list the registered models, datasets, error models, targets, engines or criteria"
WHAT = ("models", "datasets", "errors", "targets", "engines", "criteria")


def add_parser(sub) -> None:
    p = sub.add_parser("list", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("what", type=_what, metavar="WHAT", help=", ".join(WHAT))
    p.add_argument("pattern", nargs="?", default="*", help="glob over names (default *)")
    p.set_defaults(run=run)


def _what(value: str) -> str:
    """One of WHAT; the singular is accepted (`list model`)."""
    from approxmap.core.registry import close_matches_hint

    singular = {"criterion": "criteria", **{w[:-1]: w for w in WHAT if w.endswith("s")}}
    if value in WHAT or value in singular:
        return singular.get(value, value)
    hint = close_matches_hint(value, list(WHAT))
    raise argparse.ArgumentTypeError(f"unknown list {value!r}.{hint} Choose from "
                                     f"{', '.join(WHAT)}")


def _names(what: str, pattern: str) -> list[str]:
    from approxmap.analysis.significance import list_criteria
    from approxmap.core.errors import list_error_models
    from approxmap.core.targets import list_targets
    from approxmap.engine.base import list_engines
    from approxmap.zoo import list_datasets, list_models

    return {"models": list_models, "datasets": list_datasets, "errors": list_error_models,
            "targets": list_targets, "engines": list_engines, "criteria": list_criteria}[what](
        pattern)


def run(args) -> int:
    """Print the entries; a pattern that matches none is an error (not an empty success)."""
    from approxmap.core.exceptions import InvalidParameterError

    if not _names(args.what, args.pattern):
        raise InvalidParameterError(f"No {args.what} match {args.pattern!r}; `approxmap list "
                                    f"{args.what}` shows them all.")
    {"models": _models, "datasets": _datasets, "errors": _errors, "targets": _targets,
     "engines": _engines, "criteria": _criteria}[args.what](args.pattern)
    return 0


def _models(pattern: str) -> None:
    from approxmap.zoo import get_model_info, list_models

    for name in list_models(pattern):
        info = get_model_info(name)
        print(f"{name}\n  {info.description}\n  input: {'x'.join(map(str, info.input_shape))}, "
              f"{info.num_classes} classes; {info.normalization}\n  source: {info.source} "
              f"({info.license})\n  clean accuracy: {info.clean_accuracy}")


def _datasets(pattern: str) -> None:
    from approxmap.zoo import get_dataset_info, list_datasets

    for name in list_datasets(pattern):
        info = get_dataset_info(name)
        classes = "unlabeled" if info.num_classes is None else f"{info.num_classes} classes"
        print(f"{name}\n  {info.description}\n  samples: {'x'.join(map(str, info.input_shape))}, "
              f"{classes}\n  source: {info.source} ({info.license})")
    print("\nAlso: --data npz:FILE (arrays x and y), idx:DIR, folder:DIR (see the README).")


def _first_line(obj) -> str:
    """The first sentence of the docstring's first paragraph, unwrapped."""
    paragraph = " ".join(inspect.cleandoc(obj.__doc__ or "").split("\n\n")[0].split())
    end = re.search(r"\.\s+(?=[A-Z])", paragraph)  # not at "e.g. 0"
    return paragraph if end is None else paragraph[:end.start() + 1]


def _errors(pattern: str) -> None:
    from approxmap.core.errors import get_error_model_class, list_error_models

    for name in list_error_models(pattern):
        cls = get_error_model_class(name)
        params = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))
        axis = f" Swept by default: {cls.default_axis}." if cls.default_axis else ""
        print(f"{name}({params})\n  {_first_line(cls)}{axis}")


def _targets(pattern: str) -> None:
    from approxmap.core.targets import get_target, list_targets

    for name in list_targets(pattern):
        target = get_target(name)
        print(f"{name} (hook: {target.hook})\n  {_first_line(target)}")


def _engines(pattern: str) -> None:
    from approxmap.engine.base import get_engine_class, list_engines

    for name in list_engines(pattern):
        print(f"{name}\n  {_first_line(get_engine_class(name))}")


def _criteria(pattern: str) -> None:
    from approxmap.analysis.significance import get_criterion, list_criteria

    for name in list_criteria(pattern):
        criterion = get_criterion(name)
        data = " (needs data)" if criterion.needs_data else ""
        print(f"{name}{data}\n  {criterion.description}")


__all__ = ["add_parser", "run"]
