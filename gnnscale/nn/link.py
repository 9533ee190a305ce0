"""Edge decoder for link prediction: an MLP over the element-wise product of the two endpoint
embeddings (the decoder of OGB's reference link-prediction examples)."""
import torch
from torch import nn
from torch.nn import functional as F

from .. import ops


class LinkPredictor(nn.Module):
    def __init__(self, dim: int, hidden: int = 256, num_layers: int = 3, dropout: float = 0.5):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        dims = [dim] + [hidden] * (num_layers - 1) + [1]
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(num_layers))
        self.dropout = dropout

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """A logit per pair (row i of ``source`` with row i of ``target``)."""
        x = source * target
        for layer in self.layers[:-1]:
            x = ops.dropout(F.relu(layer(x)), self.dropout, self.training)
        return self.layers[-1](x).squeeze(-1)
