"""Any PyG-style model in gnnscale's training and evaluation.

A model here is any ``torch.nn.Module`` whose forward takes ``(x, edge_index)`` as PyG's models
do, ``edge_index`` holding (source, target) pairs that each target aggregates over. Three
entry points serve a trainer:

- :func:`sampled_forward` runs a model on a sampled mini-batch, letting it drop the outer hops
  each layer no longer needs where its forward knows how (gnnscale's encoders, PyG's
  ``BasicGNN`` models);
- :func:`num_layers_of` tells a model's number of message-passing layers, to check against the
  sampler's fanouts;
- :func:`full_neighbourhood_outputs` computes every node's output over its full neighbourhood,
  for evaluation, equal to the model's forward on the whole graph.
"""
import inspect
import os
import shutil
import socket
import tempfile
import warnings
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Union

import torch
from torch import nn
from torch_geometric.nn import GCNConv, MessagePassing
from torch_geometric.nn.models.basic_gnn import BasicGNN
from torch_geometric.nn.norm import BatchNorm as PyGBatchNorm
from torch_geometric.nn.norm import LayerNorm as PyGLayerNorm

from .. import ops
from ..distributed.ranks import SINGLE, Ranks
from ..graph import Graph
from ..npy import FEATURE_ALIGNMENT, npy_header
from ..sampling import NeighborSampler, SampledSubgraph
from ..storage import DiskTensor, FeatureCache, UnifiedTensor
from .encoders import GNNEncoder

Features = Union[torch.Tensor, UnifiedTensor, DiskTensor, FeatureCache]
_ROW_SOURCES = (UnifiedTensor, DiskTensor, FeatureCache)  # tables read with gather(index, device=...)

# ---------------------------------------------------------------------------------------------
# Forward on sampled mini-batches

_GNNSCALE_HOPS = ("num_sampled_nodes", "num_sampled_edges")  # gnnscale's GNNEncoder
_PYG_HOPS = ("num_sampled_nodes_per_hop", "num_sampled_edges_per_hop")  # PyG's BasicGNN
_hop_keywords_of = weakref.WeakKeyDictionary()  # model -> the keyword pair its forward takes, or ()


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel / torch.compile wrappers, whose
    own forward signatures (``*args, **kwargs``) say nothing about the model's."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _hop_keywords(model: nn.Module) -> tuple:
    """The names under which ``model``'s forward takes per-hop node and edge counts (empty when
    it takes none); read from its signature once per model."""
    keywords = _hop_keywords_of.get(model)
    if keywords is None:
        parameters = inspect.signature(_unwrapped(model).forward).parameters
        keywords = next((pair for pair in (_GNNSCALE_HOPS, _PYG_HOPS) if all(name in parameters for name in pair)),
                        ())
        _hop_keywords_of[model] = keywords
    return keywords


def _hop_counts(name: str, counts) -> List[int]:
    if isinstance(counts, torch.Tensor):
        counts = counts.tolist()
    if not isinstance(counts, (list, tuple)) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise ValueError(f"{name} must be a list of non-negative ints (one per hop), got {counts!r}")
    return list(counts)


def _check_hop_counts(x: torch.Tensor, edge_index, num_sampled_nodes, num_sampled_edges):
    nodes = _hop_counts("num_sampled_nodes", num_sampled_nodes)
    edges = _hop_counts("num_sampled_edges", num_sampled_edges)
    if len(nodes) != len(edges) + 1:
        raise ValueError(f"num_sampled_nodes needs one entry more than num_sampled_edges (the seeds, then one per "
                         f"hop), got {len(nodes)} and {len(edges)}")
    if sum(nodes) != x.size(0):
        raise ValueError(f"num_sampled_nodes sums to {sum(nodes)} but x has {x.size(0)} rows")
    if isinstance(edge_index, torch.Tensor) and edge_index.layout == torch.strided and sum(edges) != edge_index.size(1):
        raise ValueError(f"num_sampled_edges sums to {sum(edges)} but edge_index has {edge_index.size(1)} edges")
    return nodes, edges


def sampled_forward(model: nn.Module, x: torch.Tensor, edge_index: torch.Tensor,
                    num_sampled_nodes: Optional[Sequence[int]], num_sampled_edges: Optional[Sequence[int]]
                    ) -> torch.Tensor:
    """``model``'s output on a sampled mini-batch (``x`` of its nodes, local ``edge_index``, per-hop
    counts as in :class:`~gnnscale.sampling.SampledSubgraph`); the first rows belong to the seeds.

    A forward that takes ``num_sampled_nodes``/``num_sampled_edges`` (gnnscale's
    :class:`GNNEncoder`) or ``num_sampled_nodes_per_hop``/``num_sampled_edges_per_hop`` (PyG's
    ``BasicGNN`` models) gets them and trims the outer hops per layer; any other model is called
    as ``model(x, edge_index)``. With both counts None, every model is called plainly.
    """
    if num_sampled_nodes is None and num_sampled_edges is None:
        return model(x, edge_index)
    if num_sampled_nodes is None or num_sampled_edges is None:
        raise ValueError("pass both num_sampled_nodes and num_sampled_edges, or neither")
    nodes, edges = _check_hop_counts(x, edge_index, num_sampled_nodes, num_sampled_edges)
    depth = num_layers_of(model)
    if depth is not None and depth > len(edges):
        # Its outermost layers would see nodes whose neighbours were never sampled.
        raise ValueError(f"the model has {depth} message-passing layers but the batch was sampled over "
                         f"{len(edges)} hop(s); sample at least one hop per layer")
    keywords = _hop_keywords(model)
    if not keywords:
        return model(x, edge_index)
    return model(x, edge_index, **{keywords[0]: nodes, keywords[1]: edges})


def num_layers_of(model: nn.Module) -> Optional[int]:
    """The number of message-passing layers of ``model``: ``num_layers`` of gnnscale's
    :class:`GNNEncoder` and PyG's ``BasicGNN`` models, or of any model holding it as a positive
    int attribute (the convention of PyG's examples); None when unknown."""
    model = _unwrapped(model)
    depth = getattr(model, "num_layers", None)
    if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1:
        return depth
    return None


# ---------------------------------------------------------------------------------------------
# Full-neighbourhood outputs, for evaluation

@contextmanager
def _evaluating(model: nn.Module):
    """Eval mode (no dropout, running statistics) and no autograd, restoring every submodule's own mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def _rows(table: Features, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(table, _ROW_SOURCES):
        rows = table.gather(index, device=device)
    else:
        rows = table[index.to(table.device)].to(device)
    # Half-precision storage halves the bytes moved; the model computes in float32.
    return rows.float() if rows.dtype in (torch.float16, torch.bfloat16) else rows


def _row_block(table: Features, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """Rows ``start:stop`` of a table in memory or on disk."""
    if isinstance(table, torch.Tensor):
        return table[start:stop].to(device)
    return _rows(table, torch.arange(start, stop), device)


def _check_evaluation_inputs(graph, features, batch_size, layer_memory_bytes) -> None:
    if not isinstance(graph, Graph):
        raise ValueError(f"graph must be a gnnscale.Graph, got {type(graph).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if layer_memory_bytes is not None and (isinstance(layer_memory_bytes, bool) or
                                           not isinstance(layer_memory_bytes, int) or layer_memory_bytes < 1):
        raise ValueError(f"layer_memory_bytes must be a positive int or None (no limit), got {layer_memory_bytes!r}")
    if not isinstance(features, (torch.Tensor,) + _ROW_SOURCES):
        raise ValueError(f"features must be a tensor, UnifiedTensor, DiskTensor or FeatureCache, "
                         f"got {type(features).__name__}")
    if isinstance(features, torch.Tensor) and features.dim() != 2:
        raise ValueError(f"features must be a 2-D [num_nodes, width] tensor, got shape {tuple(features.shape)}")
    if len(features) != graph.num_nodes:
        raise ValueError(f"features must have one row per node ({graph.num_nodes}), got {len(features)}")


def _one_hop_samples(graph: Graph, batch_size: int, ranks: Ranks) -> Iterator[SampledSubgraph]:
    """The full in-neighbourhood of every node of this rank's span, ``batch_size`` target nodes at
    a time, in id order."""
    sampler = NeighborSampler(graph, [-1])
    nodes = torch.arange(*ranks.span(graph.num_nodes))
    for start in range(0, nodes.numel(), batch_size):
        yield sampler.sample(nodes[start:start + batch_size], seed=0)


def _normalising_gcn(conv: nn.Module) -> bool:
    return isinstance(conv, GCNConv) and conv.normalize


class _FullGraphGCNNormalisation:
    """GCNConv's symmetric normalisation with the degrees of the whole graph.

    GCNConv weighs edge u -> v by 1/sqrt(deg(u) deg(v)), degrees counting in-edges and a self
    loop per node. In a one-hop sample a target keeps all its in-edges, but a source does not,
    so its degree would be wrong; these weights come from the full graph instead, and the
    convolution runs with its own normalisation switched off. Self loops follow PyG's
    ``add_remaining_self_loops`` on an unweighted graph: a node's existing loops give way to a
    single loop, and every loop weighs 1 (``improved`` changes only weighted graphs' loops).
    """

    def __init__(self, graph: Graph, add_self_loops: bool):
        degree = graph.degree("in")
        self.add_self_loops = add_self_loops
        if add_self_loops:
            targets = graph.indices.to(torch.int64)
            loops = torch.bincount(targets[graph.row() == targets], minlength=graph.num_nodes)
            degree = degree - loops + 1
        inverse_sqrt = degree.double().pow(-0.5)
        self.inverse_sqrt_degree = inverse_sqrt.masked_fill(torch.isinf(inverse_sqrt), 0.0).float()

    def adjacency(self, sample: SampledSubgraph, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The sample's normalised transposed adjacency (row v: the weighted sources of v), sparse CSR."""
        row, col = sample.row, sample.col
        weight = torch.ones(row.numel())
        if self.add_self_loops:
            kept = row != col  # local ids are unique, so this is u != v
            targets = torch.arange(sample.batch_size)
            row, col = torch.cat([row[kept], targets]), torch.cat([col[kept], targets])
            weight = torch.cat([weight[kept], torch.ones(sample.batch_size)])
        weight = self.inverse_sqrt_degree[sample.node[row]] * weight * self.inverse_sqrt_degree[sample.node[col]]
        size = (sample.num_nodes, sample.num_nodes)
        # The ids are local ids of the sample, in range by construction.
        adjacency = torch.sparse_coo_tensor(torch.stack([col, row]), weight.to(dtype), size, check_invariants=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return adjacency.coalesce().to_sparse_csr().to(device)


@contextmanager
def _own_normalisation_off(convs: Sequence[nn.Module]):
    """Switches off the normalisation of GCN layers while they are fed pre-normalised adjacencies."""
    switched = [conv for conv in convs if _normalising_gcn(conv)]
    for conv in switched:
        conv.normalize = False
    try:
        yield
    finally:
        for conv in switched:
            conv.normalize = True


def _adjacency_builders(convs: Sequence[nn.Module], graph: Graph) -> List[Callable]:
    """Per layer: (sample, device, dtype) -> what its convolution takes as adjacency."""
    normalisations = {}
    builders = []
    for conv in convs:
        if _normalising_gcn(conv):
            add_self_loops = bool(conv.add_self_loops)
            if add_self_loops not in normalisations:
                normalisations[add_self_loops] = _FullGraphGCNNormalisation(graph, add_self_loops)
            builders.append(normalisations[add_self_loops].adjacency)
        else:
            builders.append(lambda sample, device, dtype: sample.edge_index.to(device))
    return builders


# A layer: (x of a sample's nodes, adjacency, number of targets) -> the targets' outputs.
Layer = Callable[[torch.Tensor, object, int], torch.Tensor]


class _LayerTables:
    """Where layer-wise evaluation keeps the outputs of its inner layers: in memory while one
    layer's table fits ``budget_bytes`` (None: no limit), else in a ``.npy`` file of a temporary
    folder (under ``spill_dir``, else the system's, $TMPDIR), written in row blocks as they are
    computed and read back through a :class:`DiskTensor` whose host cache holds at most the
    budget. Used as a context: the folder is removed when evaluation ends, however it ends.

    Data-parallel ranks each compute a span of the rows, and every rank reads them all in the
    next layer: within the budget they gather the table into memory; past it, ranks on one machine
    write their spans into one file there (rank 0 creates it and alone removes it, once every rank
    has it open), each reading it through a DiskTensor of its own. Ranks on several machines,
    which share no folder, gather the table into memory and say so."""

    def __init__(self, num_nodes: int, budget_bytes: Optional[int], ranks: Ranks, spill_dir=None):
        self.num_nodes, self.budget_bytes, self.ranks, self.spill_dir = num_nodes, budget_bytes, ranks, spill_dir
        self.folder: Optional[Path] = None
        self.spilled: List[DiskTensor] = []

    def __enter__(self) -> "_LayerTables":
        return self

    def __exit__(self, *error) -> None:
        for table in self.spilled:
            table.close()
        self.spilled = []
        if self.folder is not None and self.ranks.is_main:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def in_memory(self, rows: Iterator[torch.Tensor]) -> torch.Tensor:
        return self.ranks.gather(torch.cat(list(rows)), self.num_nodes)

    def store(self, rows: Iterator[torch.Tensor]) -> Features:
        """A layer's table from its row blocks (in node order), in memory or on disk."""
        first = next(rows, None)
        if first is None:
            return self.in_memory(iter(()))
        table_bytes = self.num_nodes * first.size(1) * first.element_size()
        fits = self.budget_bytes is None or table_bytes <= self.budget_bytes
        if fits:
            return self.in_memory(_chained(first, rows))
        if self.ranks.world_size > 1:
            return self._spill_shared(first, rows)
        return self._spill(first, rows)

    def _new_folder(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="gnnscale-layers-", dir=self.spill_dir))

    def _spill(self, first: torch.Tensor, rest: Iterator[torch.Tensor]) -> DiskTensor:
        if self.folder is None:
            self.folder = self._new_folder()
        path = self.folder / f"layer-{len(self.spilled)}.npy"
        shape = (self.num_nodes, first.size(1))
        written = 0
        with open(path, "wb") as file:
            file.write(npy_header(first.numpy().dtype, shape, alignment=FEATURE_ALIGNMENT))  # rows block-aligned
            for block in _chained(first, rest):
                block.contiguous().numpy().tofile(file)
                written += block.size(0)
            file.flush()
            os.fsync(file.fileno())  # on disk before the direct reads that bypass the page cache
        if written != self.num_nodes:
            raise RuntimeError(f"layer-wise evaluation wrote {written} rows for {self.num_nodes} nodes")
        table = DiskTensor(path, cache_bytes=self.budget_bytes)
        self.spilled.append(table)
        return table

    def _spill_shared(self, first: torch.Tensor, rest: Iterator[torch.Tensor]) -> Features:
        """Every rank's span of the table written into one file of this machine (see the class)."""
        if len(set(self.ranks.gather_objects(socket.gethostname()))) > 1:
            warnings.warn("layer-wise evaluation on ranks of several machines holds each layer's table in memory "
                          "(no folder is shared), beyond inference_memory_gib", RuntimeWarning, stacklevel=4)
            return self.in_memory(_chained(first, rest))
        if self.folder is None:
            self.folder = Path(self.ranks.gather_objects(str(self._new_folder()) if self.ranks.is_main else None)[0])
        path = self.folder / f"layer-{len(self.spilled)}.npy"  # every rank spills the same layers in turn
        header = npy_header(first.numpy().dtype, (self.num_nodes, first.size(1)), alignment=FEATURE_ALIGNMENT)
        row_bytes = first.size(1) * first.element_size()
        if self.ranks.is_main:
            with open(path, "wb") as file:
                file.write(header)
                file.truncate(len(header) + self.num_nodes * row_bytes)
        self.ranks.barrier()
        start, stop = self.ranks.span(self.num_nodes)
        written = 0
        with open(path, "r+b") as file:
            file.seek(len(header) + start * row_bytes)
            for block in _chained(first, rest):
                block.contiguous().numpy().tofile(file)
                written += block.size(0)
            file.flush()
            os.fsync(file.fileno())  # on disk before the direct reads that bypass the page cache
        problem = None if written == stop - start else \
            f"layer-wise evaluation: rank {self.ranks.rank} wrote {written} rows for its {stop - start}"
        self.ranks.agree_on_problems(problem)  # also: every span is written
        table = DiskTensor(path, cache_bytes=self.budget_bytes)
        self.ranks.barrier()  # every rank holds the file open: rank 0 may remove it from now on
        self.spilled.append(table)
        return table

    def release(self, table: Features) -> None:
        """Frees a spilled table no later layer reads (its file and its cache); others stay."""
        if any(table is spilled for spilled in self.spilled):
            self.spilled = [spilled for spilled in self.spilled if spilled is not table]
            table.close()
            if self.ranks.is_main:
                table.path.unlink(missing_ok=True)


def _chained(first: torch.Tensor, rest: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    yield first
    yield from rest


def _layer_rows(layer: Layer, adjacency_of: Callable, h: Features, graph: Graph, batch_size: int,
                device: torch.device, ranks: Ranks) -> Iterator[torch.Tensor]:
    """One layer's outputs of this rank's nodes, a batch of target nodes at a time, on the CPU."""
    for sample in _one_hop_samples(graph, batch_size, ranks):
        x = _rows(h, sample.node, device)
        yield layer(x, adjacency_of(sample, device, x.dtype), sample.batch_size).cpu()


def _layer_by_layer(layers: Sequence[Layer], convs: Sequence[nn.Module], graph: Graph, features: Features,
                    batch_size: int, device: torch.device, ranks: Ranks, tables: _LayerTables,
                    keep_every_layer: bool = False) -> List[Features]:
    """Applies ``layers`` one at a time to every node over its full one-hop neighbourhood:
    memory holds one layer's activations (on the CPU), or ``tables`` puts them on disk. Returns
    the last layer's outputs (in memory), or every layer's with ``keep_every_layer``. Ranks
    compute a span of the nodes each and gather every layer's rows."""
    builders = _adjacency_builders(convs, graph)
    h, outputs = features, []
    with _own_normalisation_off(convs):
        for index, (layer, adjacency_of) in enumerate(zip(layers, builders)):
            rows = _layer_rows(layer, adjacency_of, h, graph, batch_size, device, ranks)
            table = tables.in_memory(rows) if index == len(layers) - 1 else tables.store(rows)
            if not keep_every_layer:
                tables.release(h)
            outputs = outputs + [table] if keep_every_layer else [table]
            h = table
    return outputs


def _encoder_layers(model: GNNEncoder) -> List[Layer]:
    def layer(i):
        return lambda x, adjacency, num_targets: model.layer(i, x, adjacency)[:num_targets]

    return [layer(i) for i in range(model.num_layers)]


def _encoder_outputs(model: GNNEncoder, graph: Graph, features: Features, batch_size: int,
                     device: torch.device, ranks: Ranks, tables: _LayerTables) -> torch.Tensor:
    return _layer_by_layer(_encoder_layers(model), model.convs, graph, features, batch_size, device, ranks,
                           tables)[-1]


def _basic_gnn_layer(model: BasicGNN, i: int) -> Layer:
    """Layer i of a PyG BasicGNN as its forward applies it: convolution, then (except after the
    last layer without jumping knowledge) activation, normalisation and dropout."""
    conv, norm = model.convs[i], model.norms[i]
    bare = i == model.num_layers - 1 and model.jk_mode is None

    def layer(x, adjacency, num_targets):
        x = conv(x, adjacency)[:num_targets]  # the rest is per node: only the targets' rows are needed
        if bare:
            return x
        if model.act is not None and model.act_first:
            x = model.act(x)
        x = norm(x, None, None) if model.supports_norm_batch else norm(x)
        if model.act is not None and not model.act_first:
            x = model.act(x)
        return model.dropout(x)

    return layer


def _basic_gnn_outputs(model: BasicGNN, graph: Graph, features: Features, batch_size: int,
                       device: torch.device, ranks: Ranks, tables: _LayerTables) -> torch.Tensor:
    layers = [_basic_gnn_layer(model, i) for i in range(model.num_layers)]
    combine = hasattr(model, "jk")
    outputs = _layer_by_layer(layers, model.convs, graph, features, batch_size, device, ranks, tables,
                              keep_every_layer=combine)
    if not combine and not hasattr(model, "lin"):
        return outputs[-1]
    rows = []
    for start in range(0, graph.num_nodes, batch_size):
        stop = min(start + batch_size, graph.num_nodes)
        x = [_row_block(h, start, stop, device) for h in outputs]
        x = model.jk(x) if combine else x[-1]
        rows.append((model.lin(x) if hasattr(model, "lin") else x).cpu())
    return torch.cat(rows)


def _node_wise(norm: nn.Module) -> bool:
    """Whether a normalisation treats each node on its own in eval mode (then layer-wise
    evaluation is exact); graph-level ones (GraphNorm, InstanceNorm, LayerNorm mode 'graph', or
    batch norm without running statistics) mix every node of the graph."""
    if isinstance(norm, (nn.Identity, nn.LayerNorm)):
        return True
    if isinstance(norm, PyGBatchNorm):
        norm = norm.module
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        return norm.track_running_stats
    return isinstance(norm, PyGLayerNorm) and norm.mode == "node"


def _aggregates_in_edges(model: nn.Module) -> bool:
    """Whether every message-passing layer aggregates over in-edges (source -> target), the
    neighbourhoods gnnscale's sampler draws."""
    return all(module.flow == "source_to_target" for module in model.modules() if isinstance(module, MessagePassing))


def _layerwise_encoder(model: nn.Module) -> bool:
    return isinstance(model, GNNEncoder) and type(model).forward is GNNEncoder.forward \
        and type(model).layer is GNNEncoder.layer


def _layerwise_basic_gnn(model: nn.Module) -> bool:
    return isinstance(model, BasicGNN) and type(model).forward is BasicGNN.forward \
        and all(_node_wise(norm) for norm in model.norms)


def _needs_whole_graph(model: nn.Module) -> bool:
    """A model whose outputs depend on more than each node's L-hop in-neighbourhood (GCN's
    normalisation by the sources' full degrees, graph-level normalisation, other flows), so
    that no sample of neighbourhoods reproduces its full-graph forward."""
    if not _aggregates_in_edges(model):
        return True
    if isinstance(model, BasicGNN) and not all(_node_wise(norm) for norm in model.norms):
        return True
    return any(_normalising_gcn(module) for module in model.modules())


def _whole_graph_outputs(model: nn.Module, graph: Graph, features: Features, device: torch.device) -> torch.Tensor:
    x = _rows(features, torch.arange(graph.num_nodes), device)
    return model(x, graph.edge_index().to(device)).cpu()


def _sampled_outputs(model: nn.Module, graph: Graph, features: Features, batch_size: int,
                     device: torch.device, ranks: Ranks) -> torch.Tensor:
    """Every node's output from the model's forward on its full L-hop in-neighbourhood."""
    depth = num_layers_of(model)
    if depth is None:
        raise ValueError(f"cannot evaluate {type(model).__name__} over full neighbourhoods: its number of layers is "
                         f"unknown (give the model an int attribute num_layers, the number of message-passing "
                         f"layers its forward applies)")
    sampler = NeighborSampler(graph, [-1] * depth)
    nodes = torch.arange(*ranks.span(graph.num_nodes))
    rows = []
    for start in range(0, nodes.numel(), batch_size):
        sample = sampler.sample(nodes[start:start + batch_size], seed=0)
        x = _rows(features, sample.node, device)
        out = sampled_forward(model, x, sample.edge_index.to(device), sample.num_sampled_nodes,
                              sample.num_sampled_edges)
        rows.append(out[:sample.batch_size].cpu())
    return ranks.gather(torch.cat(rows), graph.num_nodes)


def full_neighbourhood_outputs(model: nn.Module, graph: Graph, features: Features, batch_size: int,
                               device: Union[str, torch.device], ranks: Ranks = SINGLE, *,
                               layer_memory_bytes: Optional[int] = None, spill_dir=None) -> torch.Tensor:
    """Outputs of ``model`` (in eval mode, without gradients) for every node of ``graph`` over its
    full neighbourhood, ``[num_nodes, out]`` on the CPU: what ``model(x, edge_index)`` gives on
    the whole graph, computed in float32 in batches of ``batch_size`` nodes on ``device``.
    ``features``: a tensor, or a table read by row (UnifiedTensor, DiskTensor, FeatureCache).

    - gnnscale's :class:`GNNEncoder` and PyG's ``BasicGNN`` models (GraphSAGE, GCN, GAT, GIN, ...)
      run layer by layer over one-hop neighbourhoods (memory: one layer's activations); GCN
      layers are weighted with the degrees of the whole graph. An inner layer's table larger
      than ``layer_memory_bytes`` (None: no limit) is written to a temporary ``.npy`` file in
      ``spill_dir`` (default: the system's temporary folder) and read back through a
      :class:`DiskTensor` by the next layer; the files are removed before this returns or raises;
    - a model whose output depends on more than each node's in-neighbourhood (a normalising
      ``GCNConv`` outside those models, graph-level normalisation, a ``target_to_source``
      flow) runs on the whole graph at once, which must fit ``device``;
    - any other model runs its forward on the full ``L``-hop neighbourhood of each batch
      (``L``: :func:`num_layers_of`, which must be known) and keeps the batch's rows.

    Data-parallel ``ranks`` share the work: each computes a span of the nodes and all receive
    every node's outputs (every rank calls this).
    """
    _check_evaluation_inputs(graph, features, batch_size, layer_memory_bytes)
    ranks = ranks.sharing(graph.num_nodes)
    device = ops.check_device(device)
    inner = _unwrapped(model)
    # float32 even inside a bfloat16 autocast region: the outputs are scores to rank and compare.
    with _evaluating(inner), torch.autocast(device.type, enabled=False), \
            _LayerTables(graph.num_nodes, layer_memory_bytes, ranks, spill_dir) as tables:
        if _layerwise_encoder(inner) and _aggregates_in_edges(inner):
            return _encoder_outputs(inner, graph, features, batch_size, device, ranks, tables)
        if _layerwise_basic_gnn(inner) and _aggregates_in_edges(inner):
            return _basic_gnn_outputs(inner, graph, features, batch_size, device, ranks, tables)
        if _needs_whole_graph(inner):
            return _whole_graph_outputs(inner, graph, features, device)
        return _sampled_outputs(inner, graph, features, batch_size, device, ranks)
