"""Layer-wise full-neighbourhood inference, as PyG's and DGL's examples evaluate sampled models."""
from typing import Union

import torch

from ..graph import Graph
from ..nn import GNNEncoder
from ..sampling import NeighborSampler
from ..storage import UnifiedTensor


@torch.no_grad()
def layerwise_inference(model: GNNEncoder, graph: Graph, features: Union[UnifiedTensor, torch.Tensor],
                        batch_size: int, device: torch.device) -> torch.Tensor:
    """Outputs of ``model`` for every node, computed one layer at a time over each node's full
    in-neighbourhood, in batches of ``batch_size`` nodes: memory holds one layer's activations,
    and the result equals a full-graph forward pass."""
    model.eval()
    one_hop = NeighborSampler(graph, [-1])
    all_nodes = torch.arange(graph.num_nodes)
    h = features
    for i in range(model.num_layers):
        outputs = []
        for start in range(0, graph.num_nodes, batch_size):
            sample = one_hop.sample(all_nodes[start:start + batch_size], seed=0)
            if isinstance(h, UnifiedTensor):
                x = h.gather(sample.node, device=device).float()
            else:
                x = h[sample.node.to(h.device)].to(device)
            out = model.layer(i, x, sample.edge_index.to(device))
            outputs.append(out[:sample.batch_size].cpu())
        h = torch.cat(outputs)
    return h
