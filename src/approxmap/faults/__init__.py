"""Hardware faults in real number formats: bit flips and stuck-at bits in fp32, fp16, bf16
and int8 activations, weights and biases.

Importing the package registers the error models `bitflip` and `stuckbit` (importing the
analysis layer, the command line, or any public name of `approxmap` does so too):

>>> import approxmap as am
>>> error = am.create_error_model("bitflip", format="fp16", bits="exponent")
>>> error.mode, error.positions
('single', (10, 11, 12, 13, 14))

- `bits`: pure tensor functions (formats, encode/decode, vectorized flips and stuck bits,
  distinct random positions).
- `models`: the registered `BitFlip` and `StuckBit` error models.
- `sampling`: statistical fault injection (Leveugle et al., DATE 2009): trials for an error
  margin, and how many faults a campaign sampled out of how many possible.
"""

from approxmap.faults.bits import FORMATS, Format, get_format, parse_bits
from approxmap.faults.models import BitFault, BitFlip, StuckBit
from approxmap.faults.sampling import (
    FaultSampling,
    achieved_margin,
    plan_fault_sampling,
    sample_size,
)

__all__ = ["FORMATS", "BitFault", "BitFlip", "FaultSampling", "Format", "StuckBit",
           "achieved_margin", "get_format", "parse_bits", "plan_fault_sampling", "sample_size"]
