"""The compiled operators (``torch.ops.gnnscale``), loaded once with a message that says how to build
them when they are missing. Only the modules of this package call them."""
import torch

from .. import _extension

_extension.load()
OPS = torch.ops.gnnscale
