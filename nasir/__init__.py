"""nasir: a declarative graph-IR compiler for efficient CNN architectures.

Write an architecture once as an `.arch` spec; nasir parses it, elaborates it into a
NetworkX IR of primitive ops, counts its costs statically, and lowers it to PyTorch.

    >>> import nasir
    >>> ir = nasir.load("resnet20")            # a shipped spec, by name
    >>> nasir.stats(ir).total.params
    >>> model = nasir.compile("resnet20")      # a torch.nn.Module
"""

from nasir.api import compile, load, parse_shape
from nasir.errors import SourceLoc, SpecError
from nasir.ir import IR
from nasir.passes.costs import CountingPolicy, count_costs
from nasir.passes.pipeline import transform
from nasir.weights import load_weights

__version__ = "0.1.0"


def stats(ir: IR, policy: str | CountingPolicy = "paper"):
    """Static cost report of shape-checked IR under a counting policy."""
    if isinstance(policy, str):
        policy = CountingPolicy.parse(policy)
    return count_costs(ir, policy)


__all__ = ["IR", "CountingPolicy", "SourceLoc", "SpecError", "__version__", "compile",
           "count_costs", "load", "load_weights", "parse_shape", "stats",
           "transform"]
