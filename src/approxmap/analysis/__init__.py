"""The analysis layer: experiments built on campaigns (profile, significance and classes,
sensitivity, pruning), each returning a typed Result registered by kind.

Importing the package registers every result kind (a run folder reads them all back) and
the built-in fault error models (`approxmap.faults`: bitflip, stuckbit).
"""

from approxmap import faults  # noqa: F401 (registers bitflip, stuckbit)
from approxmap.analysis import filters, profile, prune, sensitivity  # noqa: F401 (registration)
