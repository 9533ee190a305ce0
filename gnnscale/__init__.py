"""gnnscale: GPU-centric data loading and training for graph neural networks on large graphs.

The public names load on first use (PEP 562): ``import gnnscale`` and the command line's parser
import neither torch nor the compiled operators until something needs them."""
import os
from importlib import import_module

# Large CPU tensors on 2 MiB pages (PyTorch's opt-in): first-touch page faults otherwise dominate
# element-wise ops on [batch, hidden] activations (a 128 MiB multiply: ~45 ms -> ~13 ms here).
# PyTorch reads this once, at its first large allocation; set it to 0 to opt out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
__all__ = ["Graph", "TemporalGraph", "load_dataset", "ops"]

# public name -> (submodule, attribute; None for the submodule itself)
_LAZY = {"Graph": (".graph", "Graph"), "TemporalGraph": (".temporal_graph", "TemporalGraph"),
         "load_dataset": (".datasets", "load_dataset"), "ops": (".ops", None)}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # found directly from now on
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
