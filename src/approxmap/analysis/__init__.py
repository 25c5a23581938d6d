"""The analysis layer: experiments built on campaigns (profile, significance and classes,
sensitivity, pruning), each returning a typed Result registered by kind.

Importing the package registers every result kind (a run folder reads them all back).
"""

from approxmap.analysis import (  # noqa: F401 (registration)
    emulate,
    filters,
    plan,
    predict,
    profile,
    prune,
    sensitivity,
    units,
)
